//! The WebSocket transport by its protocols: what `graphql-transport-ws`
//! answers, and the close code of each protocol error.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::{PATIENCE, TestApp};

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const EVENTS: &str = "subscription($env: ID!) { operationEvents(environmentId: $env) { kind status } }";

async fn connect(app: &TestApp, protocol: &str) -> Socket {
    let mut request = format!("ws://127.0.0.1:{}/graphql", app.port).into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
    let (socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], protocol);
    socket
}

async fn send(socket: &mut Socket, message: Value) {
    socket.send(Message::text(message.to_string())).await.unwrap();
}

/// The next text message as JSON; panics when the socket closes first.
async fn receive(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(PATIENCE, socket.next()).await.expect("a message in time");
        match message {
            Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).unwrap(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected a message, got {other:?}"),
        }
    }
}

/// Reads until the server closes; returns its close code and reason.
async fn closed(socket: &mut Socket) -> (u16, String) {
    loop {
        let message = tokio::time::timeout(PATIENCE, socket.next()).await.expect("a close in time");
        match message {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (u16::from(frame.code), frame.reason.to_string());
            }
            Some(Ok(Message::Text(text))) => panic!("expected the close, got {text}"),
            Some(Ok(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

/// A connection that was acknowledged.
async fn acknowledged(app: &TestApp) -> Socket {
    let mut socket = connect(app, "graphql-transport-ws").await;
    send(&mut socket, json!({ "type": "connection_init", "payload": app.init_payload() })).await;
    assert_eq!(receive(&mut socket).await, json!({ "type": "connection_ack" }));
    socket
}

#[tokio::test]
async fn ping_is_answered_and_a_completed_subscription_sends_nothing_more() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("production").await;
    let svc = app.create_service(&env, json!({ "name": "api", "kind": "APPLICATION" })).await;
    let mut socket = acknowledged(&app).await;

    send(&mut socket, json!({ "type": "ping", "payload": { "n": 1 } })).await;
    assert_eq!(receive(&mut socket).await, json!({ "type": "pong", "payload": { "n": 1 } }));

    let subscribe = |id: &str| json!({ "id": id, "type": "subscribe", "payload": { "query": EVENTS, "variables": { "env": env } } });
    send(&mut socket, subscribe("a")).await;
    send(&mut socket, subscribe("b")).await;
    app.deploy(&svc, "c1").await;
    // The first event of each subscription (one may run ahead of the
    // other under load).
    let mut first = std::collections::BTreeMap::new();
    while first.len() < 2 {
        let message = receive(&mut socket).await;
        assert_eq!(message["type"], "next", "{message}");
        let kind = message["payload"]["data"]["operationEvents"]["kind"].clone();
        first.entry(message["id"].as_str().unwrap().to_owned()).or_insert(kind);
    }
    assert_eq!(
        first,
        [("a".into(), json!("QUEUED")), ("b".into(), json!("QUEUED"))].into(),
        "each subscription got the event"
    );

    // `a` completes. Messages are handled in order: once the pong is
    // back, the server has ended `a` (what it sent `a` before is skipped).
    send(&mut socket, json!({ "id": "a", "type": "complete" })).await;
    send(&mut socket, json!({ "type": "ping" })).await;
    while receive(&mut socket).await["type"] != "pong" {}
    let op = app.deploy(&svc, "c2").await;
    app.wait_final(&op).await;
    loop {
        let message = receive(&mut socket).await;
        assert_eq!(message["id"], "b", "nothing more for the completed subscription: {message}");
        let event = &message["payload"]["data"]["operationEvents"];
        if event["kind"] == "QUEUED" {
            break;
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn each_protocol_error_closes_the_connection_with_its_code() {
    let app = TestApp::spawn_configured(|args| args.connection_init_timeout_ms = 200).await;
    let subscribe = json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { recoveryProgress { queued } }" } });

    // 4400: not JSON, an unknown type, a message of the other protocol.
    for bad in [
        Message::text("{not json"),
        Message::text(r#"{"type":"hello"}"#),
        Message::text(
            json!({ "id": "1", "type": "start", "payload": { "query": "{ __typename }" } }).to_string(),
        ),
    ] {
        let mut socket = acknowledged(&app).await;
        socket.send(bad.clone()).await.unwrap();
        assert_eq!(closed(&mut socket).await.0, 4400, "{bad:?}");
    }

    // 4401: a subscription before the connection was acknowledged.
    let mut socket = connect(&app, "graphql-transport-ws").await;
    send(&mut socket, subscribe.clone()).await;
    assert_eq!(closed(&mut socket).await, (4401, "Unauthorized".into()));

    // 4408: no `connection_init` in time.
    let mut socket = connect(&app, "graphql-transport-ws").await;
    assert_eq!(closed(&mut socket).await, (4408, "Connection initialisation timeout".into()));

    // 4409: an id that is already running.
    let mut socket = acknowledged(&app).await;
    send(&mut socket, subscribe.clone()).await;
    assert_eq!(receive(&mut socket).await["id"], "1");
    send(&mut socket, subscribe.clone()).await;
    assert_eq!(closed(&mut socket).await.0, 4409);

    // 4429: a second `connection_init`.
    let mut socket = acknowledged(&app).await;
    send(&mut socket, json!({ "type": "connection_init" })).await;
    assert_eq!(closed(&mut socket).await, (4429, "Too many initialisation requests".into()));

    // An acknowledged connection is not timed out: it still answers after
    // twice the initialisation timeout.
    let mut socket = acknowledged(&app).await;
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    send(&mut socket, json!({ "type": "ping" })).await;
    assert_eq!(receive(&mut socket).await["type"], "pong");
    app.stop().await;
}

#[tokio::test]
async fn a_connection_init_without_a_valid_token_is_refused_with_4403() {
    let app = TestApp::spawn().await;
    let viewer = app.token_for("vera", "VIEWER").await;
    for payload in [
        json!({}),
        json!({ "authorization": "Bearer ogt_0000000000000000000000000000000000000000" }),
        json!({ "authorization": app.token.clone() }),
    ] {
        let mut socket = connect(&app, "graphql-transport-ws").await;
        send(&mut socket, json!({ "type": "connection_init", "payload": payload })).await;
        assert_eq!(closed(&mut socket).await, (4403, "Forbidden".into()), "{payload}");
    }
    // Either case of the key is read; a member of any role is acknowledged.
    let mut socket = connect(&app, "graphql-ws").await;
    send(
        &mut socket,
        json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {viewer}") } }),
    )
    .await;
    assert_eq!(receive(&mut socket).await["type"], "connection_ack");
    app.stop().await;
}

#[tokio::test]
async fn revoking_a_token_closes_its_open_subscriptions_at_once_and_spares_the_others() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("production").await;
    let query = "subscription($env: ID!) { operationEvents(environmentId: $env) { kind } }";
    let dev = app.token_for("dev", "DEVELOPER").await;
    let subscribe =
        json!({ "id": "1", "type": "subscribe", "payload": { "query": query, "variables": { "env": env } } });
    let open = |token: String| {
        let (app, subscribe) = (&app, subscribe.clone());
        async move {
            let mut socket = connect(app, "graphql-transport-ws").await;
            send(&mut socket, json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {token}") } })).await;
            assert_eq!(receive(&mut socket).await["type"], "connection_ack");
            send(&mut socket, subscribe).await;
            socket
        }
    };
    let mut revoked = open(dev.clone()).await;
    let mut kept = open(app.token.clone()).await;
    let id = app.gql_as(&dev, "{ viewer { tokenId } }", json!({})).await["viewer"]["tokenId"].clone();
    app.gql("mutation($t: ID!) { revokeToken(input: { tokenId: $t }) { id } }", json!({ "t": id })).await;
    let (code, reason) = closed(&mut revoked).await;
    assert_eq!(code, 4403, "{reason}");
    assert!(reason.contains("revoked"), "{reason}");
    // The owner's subscription goes on.
    let svc = app.create_service(&env, json!({ "name": "api", "kind": "JOB" })).await;
    app.deploy(&svc, "c1").await;
    let event = receive(&mut kept).await;
    assert_eq!(event["payload"]["data"]["operationEvents"]["kind"], "QUEUED", "{event}");
    app.stop().await;
}

#[tokio::test]
async fn an_expiring_token_closes_its_subscriptions_when_it_expires() {
    let app = TestApp::spawn().await;
    let at = (chrono::Utc::now() + chrono::Duration::milliseconds(1_500)).to_rfc3339();
    let short = app
        .gql(
            "mutation($at: DateTime!) { createToken(input: { name: \"short\", expiresAt: $at }) { secret } }",
            json!({ "at": at }),
        )
        .await["createToken"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut socket = connect(&app, "graphql-transport-ws").await;
    send(
        &mut socket,
        json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {short}") } }),
    )
    .await;
    assert_eq!(receive(&mut socket).await["type"], "connection_ack");
    send(&mut socket, json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { recoveryProgress { queued } }" } })).await;
    assert_eq!(receive(&mut socket).await["type"], "next");
    let started = std::time::Instant::now();
    assert_eq!(closed(&mut socket).await.0, 4403);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    app.stop().await;
}
