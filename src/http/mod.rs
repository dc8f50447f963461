//! HTTP routes: GraphQL over HTTP and WebSocket, GraphiQL and the live
//! console (with their embedded assets), log downloads, the public status
//! page and its Atom feed, health and metrics. Imports `graphql`, `auth`,
//! `engine` and `store`; holds no business rules.
//!
//! Who may reach what:
//!
//! | route | caller |
//! | --- | --- |
//! | `/graphql` | per field: see `graphql::guard` |
//! | `/operations/…/logs`, `/services/…/logs`, `/reports/activity.csv` | a member's token (`Read`) |
//! | `/reports/audit.csv` | `ADMIN` or `OWNER` (`ReadAudit`) |
//! | `/hooks/github/{id}` | anyone: the body's signature is checked instead |
//! | `/`, `/console`, `/assets/…`, `/status`, `/status/feed.atom`, `/livez`, `/readyz`, `/metrics` | anyone (the pages hold no data of an organization) |

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
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{Authenticated, Registry};
use crate::domain::{Action, DomainError, ErrorCode, Principal, now_millis};
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
    /// Who each request's token acts as.
    registry: Arc<Registry>,
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
        registry: Arc<Registry>,
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
            registry,
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

    /// Who the `Authorization` header of a request acts as.
    fn authenticate(&self, headers: &HeaderMap) -> Result<Authenticated, DomainError> {
        let value = headers.get(header::AUTHORIZATION).map(|v| v.to_str().unwrap_or(""));
        self.registry.authenticate(value, now_millis())
    }

    /// The caller of a plain-HTTP route classified as `action`:
    /// `UNAUTHENTICATED` (401) or `FORBIDDEN` (403) otherwise.
    fn caller(&self, headers: &HeaderMap, action: Action) -> Result<Principal, DomainError> {
        let principal = self.authenticate(headers)?.principal;
        principal.check(action)?;
        Ok(principal)
    }
}

/// The header that carries a request's id.
pub const REQUEST_ID: &str = "x-request-id";

/// Gives every request an id: the client's `X-Request-Id` when it is a
/// short printable value, else a new one; the response carries it back,
/// and the audit log records it.
async fn request_id(mut request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let given = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 100 && v.chars().all(|c| c.is_ascii_graphic()))
        .map(str::to_owned);
    let id = given.unwrap_or_else(new_request_id);
    let value = HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("-"));
    request.headers_mut().insert(REQUEST_ID, value.clone());
    let mut response = next.run(request).await;
    response.headers_mut().insert(REQUEST_ID, value);
    response
}

/// `req_` and 16 random hexadecimal characters (a counter if the system has
/// no randomness to give).
fn new_request_id() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut bytes = [0u8; 8];
    match getrandom::fill(&mut bytes) {
        Ok(()) => format!("req_{}", hex::encode(bytes)),
        Err(_) => format!("req_n{}", COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)),
    }
}

/// The request id of a request that went through [`request_id`].
pub(crate) fn request_id_of(headers: &HeaderMap) -> String {
    headers.get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned()
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
        .route("/reports/audit.csv", get(reports::audit_csv))
        .route(
            "/hooks/github/{id}",
            post(hooks::github).layer(axum::extract::DefaultBodyLimit::max(hooks::MAX_BODY)),
        )
        .route("/status", get(status::html))
        .route("/status/feed.atom", get(status::atom))
        .route("/livez", get(health::livez))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .layer(axum::middleware::from_fn(request_id))
        .with_state(state)
}
