//! `/graphql` over HTTP (POST, and GET for queries) and WebSocket.
//!
//! HTTP follows the GraphQL-over-HTTP specification:
//!
//! - a POST body must be `application/json` (415 otherwise, before anything
//!   is read or run: a form or `text/plain` post from a browser page cannot
//!   run a mutation), at most `--max-body-bytes` (413);
//! - GET runs queries only: a mutation is answered with 405 and
//!   `Allow: POST`;
//! - the reply is `application/graphql-response+json` or `application/json`,
//!   whichever the `Accept` header prefers (no `Accept`, or a wildcard:
//!   `application/json`; neither acceptable: 406). With
//!   `application/graphql-response+json`, a request that could not start
//!   (it did not parse, validate or keep the limits) is a 400 without
//!   `data`; with `application/json` it is a 200, as legacy clients expect;
//! - a JSON array (a batch) is refused unless `--max-batch` allows it;
//! - every caller gets `--rate-limit` requests per second (429 past it).
//!
//! Every reply carries `x-request-id`, and every error in it that id in
//! `extensions.requestId`; the server logs each error with the same id.

use async_graphql::Executor;
use async_graphql::parser::types::OperationType;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Request, State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::limits::Caller as CallerKey;
use super::{AppState, ws};
use crate::domain::{DomainError, ErrorCode, now_millis};
use crate::graphql::RequestId;
use crate::graphql::error::{server_error, stamp};
use crate::graphql::guard::{self, Caller};

/// The media types of a GraphQL reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Media {
    GraphqlResponse,
    Json,
}

impl Media {
    fn as_str(self) -> &'static str {
        match self {
            Self::GraphqlResponse => "application/graphql-response+json; charset=utf-8",
            Self::Json => "application/json; charset=utf-8",
        }
    }

    /// The reply type the `Accept` header prefers; `None` when it accepts
    /// neither.
    fn negotiate(headers: &HeaderMap) -> Option<Self> {
        let Some(accept) = headers.get(header::ACCEPT) else { return Some(Self::Json) };
        let accept = accept.to_str().ok()?;
        let mut ranges: Vec<(f32, Self)> = accept
            .split(',')
            .filter_map(|range| {
                let mut parts = range.split(';').map(str::trim);
                let media = parts.next()?.to_ascii_lowercase();
                let quality = parts
                    .filter_map(|p| p.strip_prefix("q="))
                    .find_map(|q| q.parse::<f32>().ok())
                    .unwrap_or(1.0);
                let kind = match media.as_str() {
                    "application/graphql-response+json" => Self::GraphqlResponse,
                    "application/json" | "application/*" | "*/*" => Self::Json,
                    _ => return None,
                };
                (quality > 0.0).then_some((quality, kind))
            })
            .collect();
        // Stable: among equal qualities, the client's order wins.
        ranges.sort_by(|a, b| b.0.total_cmp(&a.0));
        ranges.first().map(|&(_, kind)| kind)
    }
}

/// A request's id and how to answer it.
struct Reply {
    id: RequestId,
    media: Media,
}

impl Reply {
    /// `request` with this request's id, for errors and the audit log.
    fn identify(&self, request: async_graphql::Request) -> async_graphql::Request {
        request.data(self.id.clone()).data(guard::RequestId(self.id.0.to_string()))
    }

    /// A refusal before anything ran: `status`, a GraphQL-shaped body with
    /// one coded error and no `data`.
    fn refuse(&self, status: StatusCode, code: ErrorCode, message: &str) -> Response {
        let mut response = async_graphql::Response::from_errors(vec![server_error(message, code)]);
        stamp(&mut response, &self.id);
        self.json(status, body_without_data(&response))
    }

    /// The reply to an executed request.
    fn graphql(&self, response: async_graphql::Response) -> Response {
        let refused = response.data == async_graphql::Value::Null
            && !response.errors.is_empty()
            && response.errors.iter().all(|e| e.path.is_empty());
        let (status, body) = match (self.media, refused) {
            (Media::GraphqlResponse, true) => (StatusCode::BAD_REQUEST, body_without_data(&response)),
            _ => (StatusCode::OK, serde_json::to_value(&response).unwrap_or(Value::Null)),
        };
        let mut reply = self.json(status, body);
        reply.headers_mut().extend(response.http_headers);
        reply
    }

    fn json(&self, status: StatusCode, body: Value) -> Response {
        let mut reply = (status, body.to_string()).into_response();
        let headers = reply.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(self.media.as_str()));
        if let Ok(id) = HeaderValue::from_str(&self.id.0) {
            headers.insert("x-request-id", id);
        }
        reply
    }
}

fn body_without_data(response: &async_graphql::Response) -> Value {
    serde_json::json!({ "errors": response.errors })
}

/// Queries and mutations in a JSON body.
pub async fn post(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let reply = match start(&headers) {
        Ok(reply) => reply,
        Err(refused) => return *refused,
    };
    if !is_json(&headers) {
        let message = "POST /graphql takes a JSON body: send `Content-Type: application/json`";
        return reply.refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, ErrorCode::BadUserInput, message);
    }
    let caller = caller_of(&state, &headers);
    if let Some(refused) = over_rate(&state, &reply, &caller) {
        return refused;
    }
    let max = state.limits.max_body_bytes;
    let too_large = || {
        let message = format!("the request body is larger than the limit of {max} bytes");
        reply.refuse(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::LimitExceeded, &message)
    };
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|length| length > max) {
        return too_large();
    }
    let Ok(bytes) = axum::body::to_bytes(body, max).await else { return too_large() };
    match parse_body(&bytes, state.limits.max_batch) {
        Ok(Posted::One(request)) => {
            let request = reply.identify((*request).data(caller));
            reply.graphql(execute_counted(&state, request).await)
        }
        Ok(Posted::Batch(requests)) => {
            let mut responses = Vec::with_capacity(requests.len());
            for request in requests {
                let request = reply.identify(request.data(caller.clone()));
                responses.push(execute_counted(&state, request).await);
            }
            reply.json(StatusCode::OK, serde_json::to_value(&responses).unwrap_or(Value::Null))
        }
        Err((code, message)) => reply.refuse(StatusCode::BAD_REQUEST, code, &message),
    }
}

/// A POST body: one request, or a batch where batches are allowed.
enum Posted {
    One(Box<async_graphql::Request>),
    Batch(Vec<async_graphql::Request>),
}

fn parse_body(bytes: &Bytes, max_batch: usize) -> Result<Posted, (ErrorCode, String)> {
    let bad =
        |e: serde_json::Error| (ErrorCode::BadUserInput, format!("the body is not a GraphQL request: {e}"));
    let value: Value = serde_json::from_slice(bytes).map_err(bad)?;
    match value {
        Value::Array(_) if max_batch == 0 => {
            Err((ErrorCode::BadUserInput, "batched requests are not accepted by this server".to_owned()))
        }
        Value::Array(items) if items.len() > max_batch => Err((
            ErrorCode::LimitExceeded,
            format!("a batch of {} requests is larger than the limit of {max_batch}", items.len()),
        )),
        Value::Array(items) => {
            let requests = items.into_iter().map(serde_json::from_value).collect::<Result<_, _>>();
            Ok(Posted::Batch(requests.map_err(bad)?))
        }
        value => Ok(Posted::One(Box::new(serde_json::from_value(value).map_err(bad)?))),
    }
}

/// `GET /graphql`: a WebSocket upgrade for subscriptions, or a query in the
/// query string. Mutations are refused with 405: a GET must not change
/// anything.
pub async fn get(State(state): State<AppState>, request: Request) -> Response {
    let (mut parts, _body) = request.into_parts();
    let wants_upgrade = parts
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if wants_upgrade {
        return websocket(state, &mut parts).await;
    }
    let reply = match start(&parts.headers) {
        Ok(reply) => reply,
        Err(refused) => return *refused,
    };
    let caller = caller_of(&state, &parts.headers);
    if let Some(refused) = over_rate(&state, &reply, &caller) {
        return refused;
    }
    let request = match async_graphql::http::parse_query_string(parts.uri.query().unwrap_or_default()) {
        Ok(request) => request,
        Err(e) => {
            let message = format!("the query string is not a GraphQL request: {e}");
            return reply.refuse(StatusCode::BAD_REQUEST, ErrorCode::BadUserInput, &message);
        }
    };
    if is_mutation(&request) {
        let mut refused = reply.refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::BadUserInput,
            "mutations must be sent with POST",
        );
        refused.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
        return refused;
    }
    let request = reply.identify(request.data(caller));
    reply.graphql(execute_counted(&state, request).await)
}

/// The request's id (given by the `request_id` layer) and the reply type
/// the client accepts (406 if none).
fn start(headers: &HeaderMap) -> Result<Reply, Box<Response>> {
    let id = RequestId(super::request_id_of(headers).into());
    match Media::negotiate(headers) {
        Some(media) => Ok(Reply { id, media }),
        None => {
            let reply = Reply { id, media: Media::Json };
            let message =
                "the Accept header allows neither application/graphql-response+json nor application/json";
            Err(Box::new(reply.refuse(StatusCode::NOT_ACCEPTABLE, ErrorCode::BadUserInput, message)))
        }
    }
}

/// Who the request's `Authorization` header acts as, or why it does not.
fn caller_of(state: &AppState, headers: &HeaderMap) -> Caller {
    Caller(state.authenticate(headers).map(|a| a.principal).map_err(|e| match e {
        DomainError::Unauthenticated(why) => why,
        other => other.to_string(),
    }))
}

/// The refusal of a caller past its rate limit, if it is. Requests without
/// a valid token are not counted: they are refused by every field but the
/// public ones, which are cheap.
fn over_rate(state: &AppState, reply: &Reply, caller: &Caller) -> Option<Response> {
    let Caller(Ok(principal)) = caller else { return None };
    if state.rate.admit(&CallerKey::of(principal)) {
        return None;
    }
    let message = "too many requests: slow down and retry";
    Some(reply.refuse(StatusCode::TOO_MANY_REQUESTS, ErrorCode::RateLimited, message))
}

/// Whether the body is declared as JSON (`application/json`, any
/// parameters).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
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

/// Whether a page at `origin` may open a WebSocket: the server's own
/// origin (same host and port as the request) or a configured one. A
/// client that sends no `Origin` is not a browser page and may.
fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return true };
    let origin = origin.trim_end_matches('/');
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
        return true;
    }
    let authority = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|host| host.eq_ignore_ascii_case(authority))
}

async fn websocket(state: AppState, parts: &mut axum::http::request::Parts) -> Response {
    if !origin_allowed(&parts.headers, &state.limits.allowed_origins) {
        let reply = Reply { id: RequestId(super::request_id_of(&parts.headers).into()), media: Media::Json };
        let message = "WebSocket connections from this origin are not allowed";
        return reply.refuse(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message);
    }
    let request_id = super::request_id_of(&parts.headers);
    let upgrade = match WebSocketUpgrade::from_request_parts(parts, &()).await {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    let max_message = state.limits.max_body_bytes;
    // A small read buffer: clients send little (init, subscribe, pong), and
    // tungstenite keeps (and zero-fills) the whole buffer per connection.
    upgrade
        .read_buffer_size(4 * 1024)
        .max_message_size(max_message)
        .max_frame_size(max_message)
        .protocols(ws::PROTOCOLS)
        .on_upgrade(move |socket| async move {
            // The session counts as a task until the state it holds is gone:
            // locals drop in reverse order, so `state` goes first.
            let _session = state.tasks.token();
            let state = state;
            let protocol = ws::Protocol::negotiated(socket.protocol().and_then(|p| p.to_str().ok()));
            let registry = state.registry.clone();
            let (connections, max) = (state.connections.clone(), state.limits.max_connections_per_caller);
            let session = ws::Session {
                schema: state.schema.clone(),
                authenticate: Box::new(move |payload| {
                    let value = ["authorization", "Authorization"]
                        .iter()
                        .find_map(|k| payload.get(*k))
                        .and_then(|v| v.as_str());
                    let caller =
                        registry.authenticate(value, now_millis()).map_err(|_| ws::Refusal::Credentials)?;
                    let key = CallerKey::of(&caller.principal);
                    let slot = connections.open(key, max).ok_or(ws::Refusal::TooManyConnections)?;
                    Ok((caller, slot))
                }),
                init_timeout: state.connection_init_timeout,
                max_subscriptions: state.limits.max_subscriptions_per_connection,
                request_id,
            };
            // Open subscriptions end with the server.
            ws::serve(socket, protocol, session, state.shutdown.cancelled()).await;
        })
}

/// Runs `request`, counted by operation name, outcome and latency for
/// `/metrics`.
async fn execute_counted(state: &AppState, request: async_graphql::Request) -> async_graphql::Response {
    let started = std::time::Instant::now();
    let name = super::requests::operation_name(&request);
    let response = state.schema.execute(request).await;
    state.requests.record(&name, &response, started.elapsed());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: header::HeaderName, value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn accept_picks_the_preferred_reply_type() {
        let accept = |v| Media::negotiate(&with(header::ACCEPT, v));
        assert_eq!(Media::negotiate(&HeaderMap::new()), Some(Media::Json));
        assert_eq!(accept("application/graphql-response+json"), Some(Media::GraphqlResponse));
        assert_eq!(accept("application/json"), Some(Media::Json));
        assert_eq!(accept("*/*"), Some(Media::Json));
        assert_eq!(
            accept("application/json;q=0.9, application/graphql-response+json"),
            Some(Media::GraphqlResponse)
        );
        assert_eq!(
            accept("application/graphql-response+json, application/json"),
            Some(Media::GraphqlResponse)
        );
        assert_eq!(accept("application/graphql-response+json;q=0, application/json"), Some(Media::Json));
        assert_eq!(accept("text/html"), None);
    }

    #[test]
    fn only_json_bodies_are_taken() {
        assert!(is_json(&with(header::CONTENT_TYPE, "application/json")));
        assert!(is_json(&with(header::CONTENT_TYPE, "Application/JSON; charset=utf-8")));
        assert!(!is_json(&with(header::CONTENT_TYPE, "text/plain")));
        assert!(!is_json(&with(header::CONTENT_TYPE, "application/x-www-form-urlencoded")));
        assert!(!is_json(&HeaderMap::new()));
    }

    #[test]
    fn websocket_origins_are_the_servers_own_or_configured() {
        let mut headers = with(header::HOST, "127.0.0.1:8000");
        assert!(origin_allowed(&headers, &[]));
        headers.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:8000"));
        assert!(origin_allowed(&headers, &[]));
        headers.insert(header::ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(!origin_allowed(&headers, &[]));
        assert!(origin_allowed(&headers, &["https://evil.example".to_owned()]));
    }
}
