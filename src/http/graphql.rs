//! `/graphql` over HTTP (POST, and GET for queries) and WebSocket, and
//! GraphiQL at `/`.

use async_graphql::Executor;
use async_graphql::http::GraphiQLSource;
use async_graphql::parser::types::OperationType;
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::extract::{FromRequest, FromRequestParts, Query, Request, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::{AppState, ws};
use crate::domain::access::SECRET_PREFIX;
use crate::domain::{DomainError, ErrorCode, now_millis};
use crate::graphql::error::server_error;
use crate::graphql::guard::{Caller, RequestId};

/// The query string of the GraphiQL page.
#[derive(serde::Deserialize)]
pub struct PageQuery {
    token: Option<String>,
}

/// GraphiQL, pointed at `/graphql` for queries and subscriptions. Loads
/// without a token (the page holds no data); `/?token=<secret>` (the URL
/// printed at first start) makes the page send the token with every
/// request and in `connection_init`.
pub async fn graphiql(Query(query): Query<PageQuery>) -> Html<String> {
    // Only a well-formed secret is written into the page: nothing else
    // from the URL reaches the HTML.
    let token = query.token.filter(|t| {
        t.strip_prefix(SECRET_PREFIX)
            .is_some_and(|hex| !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit()))
    });
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut page = GraphiQLSource::build().endpoint("/graphql").subscription_endpoint("/graphql");
    if let Some(bearer) = &bearer {
        page = page.header("Authorization", bearer).ws_connection_param("authorization", bearer);
    }
    Html(page.finish())
}

/// Who a request comes from and its id, for the schema.
fn with_caller(
    state: &AppState,
    headers: &HeaderMap,
    request: async_graphql::Request,
) -> async_graphql::Request {
    let caller = Caller(state.authenticate(headers).map(|a| a.principal).map_err(|e| match e {
        DomainError::Unauthenticated(why) => why,
        other => other.to_string(),
    }));
    request.data(caller).data(RequestId(super::request_id_of(headers)))
}

/// Queries and mutations in a JSON body.
pub async fn post(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: GraphQLRequest,
) -> GraphQLResponse {
    count(&state);
    let request = with_caller(&state, &headers, request.into_inner());
    state.schema.execute(request).await.into()
}

/// `GET /graphql`: a WebSocket upgrade for subscriptions, or a query in the
/// query string. Mutations are refused with 405: a GET must not change
/// anything.
pub async fn get(State(state): State<AppState>, request: Request) -> Response {
    count(&state);
    let (mut parts, body) = request.into_parts();
    let wants_upgrade = parts
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if wants_upgrade {
        return websocket(state, &mut parts).await;
    }
    let headers = parts.headers.clone();
    let request = Request::from_parts(parts, body);
    let request =
        match GraphQLRequest::<async_graphql_axum::rejection::GraphQLRejection>::from_request(request, &())
            .await
        {
            Ok(r) => r.into_inner(),
            Err(rejection) => return rejection.into_response(),
        };
    if is_mutation(&request) {
        let error = server_error("mutations must be sent with POST", ErrorCode::BadUserInput);
        let body = async_graphql::Response::from_errors(vec![error]);
        return (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "POST")], GraphQLResponse::from(body))
            .into_response();
    }
    let request = with_caller(&state, &headers, request);
    GraphQLResponse::from(state.schema.execute(request).await).into_response()
}

/// Whether the operation the request would run is a mutation.
fn is_mutation(request: &async_graphql::Request) -> bool {
    let Ok(document) = async_graphql::parser::parse_query(&request.query) else { return false };
    document.operations.iter().any(|(name, op)| {
        let selected = match (&request.operation_name, name) {
            (Some(wanted), Some(name)) => wanted == name.as_str(),
            _ => true,
        };
        selected && op.node.ty == OperationType::Mutation
    })
}

async fn websocket(state: AppState, parts: &mut axum::http::request::Parts) -> Response {
    let request_id = super::request_id_of(&parts.headers);
    let upgrade = match WebSocketUpgrade::from_request_parts(parts, &()).await {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    // A small read buffer: clients send little (init, subscribe, pong), and
    // tungstenite keeps (and zero-fills) the whole buffer per connection.
    upgrade.read_buffer_size(4 * 1024).protocols(ws::PROTOCOLS).on_upgrade(move |socket| async move {
        // The session counts as a task until the state it holds is gone:
        // locals drop in reverse order, so `state` goes first.
        let _session = state.tasks.token();
        let state = state;
        let protocol = ws::Protocol::negotiated(socket.protocol().and_then(|p| p.to_str().ok()));
        let registry = state.registry.clone();
        let session = ws::Session {
            schema: state.schema.clone(),
            authenticate: Box::new(move |payload| {
                let value = ["authorization", "Authorization"]
                    .iter()
                    .find_map(|k| payload.get(*k))
                    .and_then(|v| v.as_str());
                registry.authenticate(value, now_millis()).ok()
            }),
            init_timeout: state.connection_init_timeout,
            request_id,
        };
        // Open subscriptions end with the server.
        ws::serve(socket, protocol, session, state.shutdown.cancelled()).await;
    })
}

fn count(state: &AppState) {
    state.requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}
