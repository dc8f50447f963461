//! HTTP routes: GraphQL over HTTP and WebSocket, GraphiQL and the live
//! console (with their embedded assets), log downloads, the public status
//! page and its Atom feed, health and metrics. Imports `graphql`, `engine`
//! and `store`; holds no
//! business rules.

mod assets;
mod graphql;
mod health;
mod hooks;
mod limits;
mod logs;
mod reports;
pub mod requests;
mod status;
mod ws;

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::domain::{DomainError, ErrorCode, Principal};
use crate::engine::Engine;
use crate::graphql::CodedSchema;
use crate::store::Store;
pub use limits::TransportLimits;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The schema, behind the wrapper that gives every error a code.
    schema: CodedSchema,
    store: Store,
    engine: Arc<Engine>,
    /// The caller every request acts as until access control exists.
    owner: Principal,
    ready: watch::Receiver<bool>,
    /// Ends open subscriptions when the server shuts down.
    shutdown: CancellationToken,
    /// WebSocket sessions count as tasks, so shutdown waits for them.
    tasks: TaskTracker,
    /// GraphQL requests by operation name and outcome (`/metrics`).
    requests: Arc<requests::RequestMetrics>,
    /// How long a WebSocket client has to send `connection_init`.
    connection_init_timeout: std::time::Duration,
    limits: Arc<TransportLimits>,
    rate: Arc<limits::RateLimiter>,
    connections: limits::Connections,
}

impl AppState {
    pub fn new(
        schema: CodedSchema,
        store: Store,
        engine: Arc<Engine>,
        owner: Principal,
        ready: watch::Receiver<bool>,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Self {
        let requests = Arc::default();
        let connection_init_timeout = std::time::Duration::from_secs(10);
        let limits = crate::config::LimitArgs::default();
        Self {
            schema,
            store,
            engine,
            owner,
            ready,
            shutdown,
            tasks,
            requests,
            connection_init_timeout,
            limits: Arc::new(TransportLimits::from(&limits)),
            rate: Arc::new(limits::RateLimiter::new(limits.rate_limit)),
            connections: limits::Connections::default(),
        }
    }

    /// The transport limits and the requests per second per caller
    /// (the defaults of [`LimitArgs`](crate::config::LimitArgs) unless set).
    pub fn with_limits(mut self, limits: TransportLimits, rate_limit: u32) -> Self {
        self.limits = Arc::new(limits);
        self.rate = Arc::new(limits::RateLimiter::new(rate_limit));
        self
    }

    /// How long a WebSocket client has to send `connection_init` (10 s
    /// unless set).
    pub fn with_connection_init_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.connection_init_timeout = timeout;
        self
    }

    pub fn store(&self) -> Store {
        self.store.clone()
    }

    /// The principal of a request.
    fn principal(&self) -> Principal {
        self.owner.clone()
    }
}

/// A plain-HTTP error: the status that fits the code, and a JSON body with
/// the message and code. Internal details are logged, never sent.
pub(crate) fn error_response(error: DomainError) -> Response {
    let status = match error.code() {
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::BadUserInput | ErrorCode::LimitExceeded => StatusCode::BAD_REQUEST,
        ErrorCode::Conflict | ErrorCode::InvalidTransition | ErrorCode::IdempotencyKeyReused => {
            StatusCode::CONFLICT
        }
        ErrorCode::CursorExpired => StatusCode::GONE,
        ErrorCode::SlowConsumer => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::InternalServerError => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let message = match &error {
        DomainError::Internal(detail) => {
            tracing::error!(%detail, "internal error");
            "internal error".to_owned()
        }
        other => other.to_string(),
    };
    coded_response(status, error.code(), &message)
}

/// A JSON error body `{"error": {"message", "code"}}` with `status`.
pub(crate) fn coded_response(status: StatusCode, code: ErrorCode, message: &str) -> Response {
    let body = serde_json::json!({ "error": { "message": message, "code": code.as_str() } });
    (status, Json(body)).into_response()
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(assets::graphiql))
        .route("/console", get(assets::console))
        .route("/assets/{*path}", get(assets::asset))
        .route("/graphql", get(graphql::get).post(graphql::post))
        .route("/operations/{id}/logs", get(logs::operation_logs))
        .route("/services/{id}/logs", get(logs::service_logs))
        .route("/services/{id}/operations/{selector}/logs", get(logs::selected_operation_logs))
        .route("/reports/activity.csv", get(reports::activity_csv))
        .route(
            "/hooks/github/{id}",
            post(hooks::github).layer(axum::extract::DefaultBodyLimit::max(hooks::MAX_BODY)),
        )
        .route("/status", get(status::html))
        .route("/status/feed.atom", get(status::atom))
        .route("/livez", get(health::livez))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .with_state(state)
}
