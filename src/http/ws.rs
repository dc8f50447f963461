//! Subscriptions over WebSocket, by their protocols: `graphql-transport-ws`
//! and the legacy `graphql-ws` (of `subscriptions-transport-ws`).
//!
//! One task per connection reads the client's messages and the open
//! subscriptions' results in turn, and awaits each frame's send: a client
//! that stops reading holds only its own connection (and its subscriptions
//! notice they fall behind once it reads again).
//!
//! Protocol errors close the connection with the codes of the
//! `graphql-transport-ws` specification, on both protocols:
//!
//! | code | when |
//! | --- | --- |
//! | 4400 | a message that is not JSON, of an unknown type, or not of this protocol |
//! | 4401 | a subscription before `connection_ack` |
//! | 4403 | a refused `connection_init` (no valid token in its payload), or the connection's token was revoked or expired |
//! | 4408 | no `connection_init` in time |
//! | 4409 | a subscription id that is already running |
//! | 4429 | a second `connection_init` |
//! | 1008 | a `connection_init` of a caller with too many connections open |
//! | 1009 | a message larger than `--max-body-bytes` |
//!
//! A `subscribe` beyond `--max-subscriptions-per-connection` is answered
//! with an `error` message for that id (`LIMIT_EXCEEDED`); the connection
//! stays open. Each subscription gets its own request id.

use std::sync::Arc;
use std::time::Duration;

use async_graphql::{Executor, Response};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::SinkExt;
use futures_util::stream::{self, BoxStream, SplitSink, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_stream::StreamMap;

use super::limits::ConnectionSlot;
use crate::auth::Authenticated;
use crate::domain::{ErrorCode, now_millis};
use crate::graphql::error::server_error;
use crate::graphql::guard::{self, Caller};
use crate::graphql::{CodedSchema, Prerendered, RequestId};

/// The subprotocols offered, preferred first.
pub const PROTOCOLS: [&str; 2] = ["graphql-transport-ws", "graphql-ws"];

/// The subprotocol of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `graphql-transport-ws`: `subscribe`, `next`, `complete`, ping/pong.
    TransportWs,
    /// Legacy `graphql-ws`: `start`, `data`, `stop`, `connection_terminate`.
    Legacy,
}

impl Protocol {
    /// The protocol of a negotiated `Sec-WebSocket-Protocol`; none chosen
    /// means `graphql-transport-ws`.
    pub fn negotiated(name: Option<&str>) -> Self {
        match name {
            Some("graphql-ws") => Self::Legacy,
            _ => Self::TransportWs,
        }
    }

    /// The type of a result message.
    fn next(self) -> &'static str {
        match self {
            Self::TransportWs => "next",
            Self::Legacy => "data",
        }
    }
}

/// Why a `connection_init` is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The credentials (4403).
    Credentials,
    /// The caller has too many connections open (1008).
    TooManyConnections,
}

/// Who a `connection_init` payload acts as, with the connection's place
/// among its caller's connections.
pub type Authenticate = Box<dyn Fn(&Value) -> Result<(Authenticated, ConnectionSlot), Refusal> + Send>;

/// What the connection needs from the server.
pub struct Session {
    pub schema: CodedSchema,
    /// Who the connection acts as, from the `connection_init` payload.
    pub authenticate: Authenticate,
    pub init_timeout: Duration,
    /// Most subscriptions open at once.
    pub max_subscriptions: usize,
    /// The id of the upgrade request; each subscription's is this with its
    /// id appended (the audit log records it for mutations sent here).
    pub request_id: String,
}

/// A message from the client (both protocols' types; which are allowed
/// depends on the protocol).
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    ConnectionInit {
        #[serde(default)]
        payload: Value,
    },
    Subscribe {
        id: String,
        payload: async_graphql::Request,
    },
    Start {
        id: String,
        payload: async_graphql::Request,
    },
    Complete {
        id: String,
    },
    Stop {
        id: String,
    },
    Ping {
        #[serde(default)]
        payload: Option<Value>,
    },
    Pong {},
    ConnectionTerminate,
}

/// Why the server closes a connection.
struct Close(u16, &'static str);

const INVALID: Close = Close(4400, "invalid message");
const NOT_ACKNOWLEDGED: Close = Close(4401, "Unauthorized");
const REFUSED: Close = Close(4403, "Forbidden");
const INIT_TIMEOUT: Close = Close(4408, "Connection initialisation timeout");
const DUPLICATE: Close = Close(4409, "Subscriber already exists");
const TOO_MANY_INITS: Close = Close(4429, "Too many initialisation requests");
const TOO_MANY_CONNECTIONS: Close = Close(1008, "too many connections for this caller");
const TOO_BIG: Close = Close(1009, "message too big");
const TOKEN_ENDED: Close = Close(4403, "Forbidden: the token was revoked or has expired");

type Sink = SplitSink<WebSocket, Message>;

/// Serves one connection until the client leaves, a protocol error, or
/// `stop` completes.
pub async fn serve(socket: WebSocket, protocol: Protocol, session: Session, stop: impl Future<Output = ()>) {
    let (mut sink, incoming) = socket.split();
    let messages = incoming.filter_map(|m| async move {
        match m {
            Ok(Message::Text(text)) => Some(Ok(text)),
            Ok(Message::Binary(_)) => Some(Err(INVALID)),
            Err(e) if too_big(&e) => Some(Err(TOO_BIG)),
            Ok(Message::Close(_)) | Err(_) => Some(Err(Close(1000, ""))),
            Ok(Message::Ping(_) | Message::Pong(_)) => None,
        }
    });
    let mut connection = Connection { protocol, caller: None, slot: None, subscriptions: StreamMap::new() };
    let init = tokio::time::sleep(session.init_timeout);
    // Set once the connection is acknowledged: resolves when its token is
    // revoked or expires, and then every subscription of it ends.
    let mut token_ended: Option<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>> = None;
    tokio::pin!(init, stop, messages);
    let ended: Close = loop {
        if token_ended.is_none()
            && let Some(caller) = &connection.caller
        {
            token_ended = Some(Box::pin(token_end(caller)));
        }
        let frame = tokio::select! {
            () = &mut stop => break Close(1001, "server shutting down"),
            () = &mut init, if connection.caller.is_none() => break INIT_TIMEOUT,
            () = async { if let Some(end) = token_ended.as_mut() { end.await } else { std::future::pending().await } } => {
                break TOKEN_ENDED;
            }
            message = messages.next() => match message {
                Some(Ok(text)) => match connection.handle(&text, &session) {
                    Ok(Some(reply)) => reply,
                    Ok(None) => continue,
                    Err(close) => break close,
                },
                Some(Err(close)) => break close,
                None => break Close(1000, ""),
            },
            Some((_, frame)) = connection.subscriptions.next() => frame,
        };
        if sink.send(Message::Text(frame.into())).await.is_err() {
            return;
        }
    };
    close(&mut sink, ended).await;
}

/// Whether a read failed on a message beyond the size limit.
fn too_big(error: &axum::Error) -> bool {
    use std::error::Error;
    let cause = error.source().and_then(|e| e.downcast_ref::<tungstenite::Error>());
    matches!(cause, Some(tungstenite::Error::Capacity(_)))
}

/// Resolves when the caller's token is revoked or expires.
fn token_end(caller: &Authenticated) -> impl Future<Output = ()> + Send + 'static {
    let revoked = caller.revoked.clone();
    let expires_at = caller.expires_at;
    async move {
        let expiry = async {
            match expires_at {
                Some(at) => {
                    let left = u64::try_from(at.saturating_sub(now_millis())).unwrap_or(0);
                    tokio::time::sleep(Duration::from_millis(left)).await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = revoked.cancelled() => {}
            () = expiry => {}
        }
    }
}

async fn close(sink: &mut Sink, Close(code, reason): Close) {
    let frame = CloseFrame { code, reason: Utf8Bytes::from_static(reason) };
    let _ = sink.send(Message::Close(Some(frame))).await;
}

struct Connection {
    protocol: Protocol,
    /// Set by an accepted `connection_init`.
    caller: Option<Authenticated>,
    /// Held while the connection is open.
    slot: Option<ConnectionSlot>,
    /// The frames of each open subscription: its results, then `complete`.
    subscriptions: StreamMap<String, BoxStream<'static, String>>,
}

impl Connection {
    /// Acts on a client message; returns the reply to send, if any.
    fn handle(&mut self, text: &str, session: &Session) -> Result<Option<String>, Close> {
        let message: ClientMessage = serde_json::from_str(text).map_err(|_| INVALID)?;
        let legacy = self.protocol == Protocol::Legacy;
        match message {
            ClientMessage::ConnectionInit { payload } => {
                if self.caller.is_some() {
                    return Err(TOO_MANY_INITS);
                }
                let (caller, slot) = (session.authenticate)(&payload).map_err(|refusal| match refusal {
                    Refusal::Credentials => REFUSED,
                    Refusal::TooManyConnections => TOO_MANY_CONNECTIONS,
                })?;
                self.caller = Some(caller);
                self.slot = Some(slot);
                Ok(Some(json!({ "type": "connection_ack" }).to_string()))
            }
            ClientMessage::Subscribe { id, payload } if !legacy => self.start(id, payload, session),
            ClientMessage::Start { id, payload } if legacy => self.start(id, payload, session),
            ClientMessage::Complete { id } if !legacy => {
                self.subscriptions.remove(&id);
                Ok(None)
            }
            ClientMessage::Stop { id } if legacy => {
                // The legacy protocol confirms a stop with `complete`.
                let stopped = self.subscriptions.remove(&id).is_some();
                Ok(stopped.then(|| complete(&id)))
            }
            ClientMessage::Ping { payload } if !legacy => {
                Ok(Some(json!({ "type": "pong", "payload": payload }).to_string()))
            }
            ClientMessage::Pong {} if !legacy => Ok(None),
            ClientMessage::ConnectionTerminate if legacy => Err(Close(1000, "")),
            _ => Err(INVALID),
        }
    }

    /// Starts subscription `id`.
    fn start(
        &mut self,
        id: String,
        request: async_graphql::Request,
        session: &Session,
    ) -> Result<Option<String>, Close> {
        let principal = self.caller.as_ref().ok_or(NOT_ACKNOWLEDGED)?.principal.clone();
        if self.subscriptions.contains_key(&id) {
            return Err(DUPLICATE);
        }
        let request_id = RequestId::next();
        if self.subscriptions.len() >= session.max_subscriptions {
            let message = format!(
                "this connection has {} subscriptions open, the limit; complete one first",
                session.max_subscriptions
            );
            let mut refused = Response::from_errors(vec![server_error(message, ErrorCode::LimitExceeded)]);
            crate::graphql::error::stamp(&mut refused, &request_id);
            let payload = match self.protocol {
                Protocol::TransportWs => json!(refused.errors),
                Protocol::Legacy => json!(refused.errors.first()),
            };
            return Ok(Some(json!({ "type": "error", "id": id, "payload": payload }).to_string()));
        }
        let prerendered = Arc::new(Prerendered::default());
        let subscription_id = guard::RequestId(format!("{}/{id}", session.request_id));
        let request = request
            .data(Caller(Ok(principal)))
            .data(subscription_id)
            .data(prerendered.clone())
            .data(request_id);
        let (protocol, of) = (self.protocol, id.clone());
        let results = session
            .schema
            .execute_stream(request, None)
            .map(move |response| next_frame(protocol, &of, &response, prerendered.take()));
        let end = complete(&id);
        self.subscriptions.insert(id, results.chain(stream::once(async { end })).boxed());
        Ok(None)
    }
}

fn complete(id: &str) -> String {
    json!({ "type": "complete", "id": id }).to_string()
}

/// A result message. When the subscription handed over its data already
/// serialized (`prerendered`, see [`Prerendered`]), it is written in as is:
/// the same JSON then serves every client of the same batch.
fn next_frame(protocol: Protocol, id: &str, response: &Response, prerendered: Option<Arc<str>>) -> String {
    let field = match &response.data {
        async_graphql::Value::Object(fields) if fields.len() == 1 => fields.keys().next(),
        _ => None,
    };
    match (prerendered, field) {
        (Some(json), Some(field)) => {
            let (kind, id, field) = (json!(protocol.next()), json!(id), json!(field.as_str()));
            let errors = match response.errors.as_slice() {
                [] => String::new(),
                errors => format!(r#","errors":{}"#, json!(errors)),
            };
            format!(r#"{{"type":{kind},"id":{id},"payload":{{"data":{{{field}:{json}}}{errors}}}}}"#)
        }
        _ => json!({ "type": protocol.next(), "id": id, "payload": response }).to_string(),
    }
}
