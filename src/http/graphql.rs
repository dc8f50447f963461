//! `/graphql` over HTTP (POST, and GET for queries) and WebSocket.

use async_graphql::Executor;
use async_graphql::parser::types::OperationType;
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::extract::{FromRequest, FromRequestParts, Request, State, WebSocketUpgrade};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{AppState, ws};
use crate::domain::ErrorCode;
use crate::graphql::error::server_error;

/// Queries and mutations in a JSON body.
pub async fn post(State(state): State<AppState>, request: GraphQLRequest) -> GraphQLResponse {
    count(&state);
    let request = request.into_inner().data(state.principal());
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
    let request = request.data(state.principal());
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
        let owner = state.principal();
        let session = ws::Session {
            schema: state.schema.clone(),
            authenticate: Box::new(move |_payload| Some(owner.clone())),
            init_timeout: state.connection_init_timeout,
        };
        // Open subscriptions end with the server.
        ws::serve(socket, protocol, session, state.shutdown.cancelled()).await;
    })
}

fn count(state: &AppState) {
    state.requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}
