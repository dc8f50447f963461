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
    // Each subscription follows the deploy (one may start after its
    // `QUEUED` event, as subscriptions without a cursor start live).
    let mut first = std::collections::BTreeSet::new();
    while first.len() < 2 {
        let message = receive(&mut socket).await;
        assert_eq!(message["type"], "next", "{message}");
        assert!(message["payload"]["data"]["operationEvents"]["kind"].is_string(), "{message}");
        first.insert(message["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(first.into_iter().collect::<Vec<_>>(), ["a", "b"], "each subscription got events");

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
async fn subscriptions_per_connection_and_connections_per_caller_are_bounded() {
    let app = TestApp::spawn_configured(|args| {
        args.limits.max_subscriptions_per_connection = 1;
        args.limits.max_connections_per_caller = 2;
    })
    .await;
    let subscribe = |id: &str| json!({ "id": id, "type": "subscribe", "payload": { "query": "subscription { recoveryProgress { queued } }" } });
    let mut socket = acknowledged(&app).await;
    send(&mut socket, subscribe("1")).await;
    assert_eq!(receive(&mut socket).await["id"], "1");
    // One more is refused for its id; the connection stays.
    send(&mut socket, subscribe("2")).await;
    let refused = receive(&mut socket).await;
    assert_eq!((&refused["type"], &refused["id"]), (&json!("error"), &json!("2")), "{refused:#}");
    assert_eq!(refused["payload"][0]["extensions"]["code"], "LIMIT_EXCEEDED");
    assert!(refused["payload"][0]["extensions"]["requestId"].is_string(), "{refused:#}");
    // Once the first completes, there is room again.
    send(&mut socket, json!({ "id": "1", "type": "complete" })).await;
    send(&mut socket, subscribe("3")).await;
    assert_eq!(receive(&mut socket).await["id"], "3");

    // The caller's second connection is fine; a third is closed at init.
    let _second = acknowledged(&app).await;
    let mut third = connect(&app, "graphql-transport-ws").await;
    send(&mut third, json!({ "type": "connection_init", "payload": app.init_payload() })).await;
    assert_eq!(closed(&mut third).await, (1008, "too many connections for this caller".into()));
    // Closing one makes room for another.
    drop(socket);
    let mut fourth = connect(&app, "graphql-transport-ws").await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        send(&mut fourth, json!({ "type": "connection_init", "payload": app.init_payload() })).await;
        match tokio::time::timeout(PATIENCE, fourth.next()).await.expect("a reply") {
            Some(Ok(Message::Text(text))) => {
                assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["type"], "connection_ack");
                break;
            }
            // The server has not seen the first connection go yet: retry.
            _ => {
                assert!(tokio::time::Instant::now() < deadline, "the closed connection's place was freed");
                fourth = connect(&app, "graphql-transport-ws").await;
            }
        }
    }
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
async fn a_message_over_the_size_limit_closes_with_1009() {
    let app = TestApp::spawn_configured(|args| args.limits.max_body_bytes = 1_024).await;
    let message = |len: usize| {
        let base = json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { recoveryProgress { queued } }", "operationName": "" } });
        let pad = len - base.to_string().len();
        json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { recoveryProgress { queued } }", "operationName": "x".repeat(pad) } })
    };
    let mut socket = acknowledged(&app).await;
    send(&mut socket, message(1_024)).await;
    assert_eq!(receive(&mut socket).await["id"], "1", "a message of exactly the limit is read");
    let mut socket = acknowledged(&app).await;
    send(&mut socket, message(1_025)).await;
    assert_eq!(closed(&mut socket).await, (1009, "message too big".into()));
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
async fn upgrades_from_other_sites_are_refused_unless_configured() {
    let app = TestApp::spawn_configured(|args| {
        args.limits.allowed_origins = vec!["https://console.example".into()]
    })
    .await;
    let upgrade = |origin: &str| {
        let mut request = format!("ws://127.0.0.1:{}/graphql", app.port).into_client_request().unwrap();
        let headers = request.headers_mut();
        headers.insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
        headers.insert("Origin", origin.parse().unwrap());
        tokio_tungstenite::connect_async(request)
    };
    match upgrade("https://evil.example").await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403);
        }
        other => panic!("expected a 403, got {:?}", other.map(|(_, r)| r.status())),
    }
    let own = format!("http://127.0.0.1:{}", app.port);
    for origin in [own.as_str(), "https://console.example"] {
        let (mut socket, _) = upgrade(origin).await.unwrap_or_else(|e| panic!("{origin}: {e}"));
        send(&mut socket, json!({ "type": "connection_init", "payload": app.init_payload() })).await;
        assert_eq!(receive(&mut socket).await["type"], "connection_ack");
    }
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
