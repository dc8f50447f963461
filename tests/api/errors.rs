//! Every error a client receives carries `extensions.code`: syntax,
//! validation and input-coercion errors over HTTP and WebSocket, and the
//! refusals of `updateEnvironment`.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::{PATIENCE, TestApp};

#[tokio::test]
async fn a_syntax_error_is_bad_user_input_and_says_what_was_expected() {
    let app = TestApp::spawn().await;
    let body = app.post("{ viewer { ", json!({})).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{body:#}");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("expected"), "{message}");
    assert!(body.get("data").is_none_or(Value::is_null), "{body:#}");
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_field_is_bad_user_input_and_named_in_the_message() {
    let app = TestApp::spawn().await;
    app.assert_error("{ viewer { nope } }", json!({}), "BAD_USER_INPUT", "\"nope\"").await;
    app.stop().await;
}

#[tokio::test]
async fn an_argument_of_the_wrong_type_is_bad_user_input_and_named_in_the_message() {
    let app = TestApp::spawn().await;
    let literal = "{ environments(first: \"x\") { nodes { id } } }";
    app.assert_error(literal, json!({}), "BAD_USER_INPUT", "first").await;
    let variable = "query($n: Int) { environments(first: $n) { nodes { id } } }";
    app.assert_error(variable, json!({ "n": "x" }), "BAD_USER_INPUT", "first").await;
    app.stop().await;
}

#[tokio::test]
async fn an_instance_count_beyond_the_int_range_is_bad_user_input_and_nothing_is_created() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("production").await;
    let literal = "mutation($e: ID!) { createService(input: { environmentId: $e, name: \"w\", kind: APPLICATION, instances: 3000000000 }) { id } }";
    app.assert_error(literal, json!({ "e": env }), "BAD_USER_INPUT", "2147483647").await;
    let variable = "mutation($input: CreateServiceInput!) { createService(input: $input) { id } }";
    let input =
        json!({ "environmentId": env, "name": "w", "kind": "APPLICATION", "instances": 3_000_000_000_i64 });
    app.assert_error(variable, json!({ "input": input }), "BAD_USER_INPUT", "2147483647").await;

    let services = app
        .gql("query($e: ID!) { environment(id: $e) { services { nodes { id } } } }", json!({ "e": env }))
        .await;
    assert_eq!(services["environment"]["services"]["nodes"], json!([]));
    app.stop().await;
}

#[tokio::test]
async fn errors_from_resolvers_keep_their_own_code() {
    let app = TestApp::spawn().await;
    let query = "mutation { cancelOperation(input: { operationId: \"op_404\" }) { id } }";
    app.assert_error(query, json!({}), "NOT_FOUND", "op_404").await;
    app.stop().await;
}

#[tokio::test]
async fn a_mutation_over_get_is_refused_with_405_and_a_code() {
    let app = TestApp::spawn().await;
    let query = "mutation { createEnvironment(input: { name: \"staging\" }) { id } }";
    let url =
        reqwest::Url::parse_with_params(&format!("{}/graphql", app.address), [("query", query)]).unwrap();
    let response = app.client.get(url).send().await.unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "POST");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{body:#}");
    assert_eq!(body["errors"][0]["message"], "mutations must be sent with POST");
    let environments = app.gql("{ environments { nodes { name } } }", json!({})).await;
    assert_eq!(environments["environments"]["nodes"], json!([]), "nothing was created");
    app.stop().await;
}

/// Subscribes over graphql-transport-ws and returns every message the
/// server sends for the subscription, up to its `complete`.
async fn subscription_messages(app: &TestApp, query: &str, variables: Value) -> Vec<Value> {
    let mut request = format!("ws://127.0.0.1:{}/graphql", app.port).into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.expect("websocket connects");
    let init = json!({ "type": "connection_init", "payload": app.init_payload() });
    socket.send(Message::text(init.to_string())).await.unwrap();
    let subscribe =
        json!({ "id": "1", "type": "subscribe", "payload": { "query": query, "variables": variables } });
    socket.send(Message::text(subscribe.to_string())).await.unwrap();
    let mut messages = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        while let Some(Ok(message)) = socket.next().await {
            let Message::Text(text) = message else { continue };
            let message: Value = serde_json::from_str(&text).unwrap();
            match message["type"].as_str() {
                Some("connection_ack" | "ping" | "pong") => {}
                Some("complete") => return,
                _ => messages.push(message),
            }
        }
        panic!("the connection closed before the subscription completed: {messages:#?}");
    })
    .await
    .expect("the subscription completed in time");
    messages
}

#[tokio::test]
async fn a_subscription_with_an_unknown_field_gets_a_coded_error_over_websocket() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("production").await;
    let query = "subscription($e: ID!) { operationEvents(environmentId: $e) { nope } }";
    let messages = subscription_messages(&app, query, json!({ "e": env })).await;
    let [message] = messages.as_slice() else { panic!("expected one message: {messages:#?}") };
    assert_eq!(message["type"], "next", "{message:#}");
    let error = &message["payload"]["errors"][0];
    assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{message:#}");
    assert!(error["message"].as_str().unwrap().contains("\"nope\""), "{message:#}");
    app.stop().await;
}

#[tokio::test]
async fn a_subscription_with_a_syntax_error_gets_a_coded_error_over_websocket() {
    let app = TestApp::spawn().await;
    let messages = subscription_messages(&app, "subscription { operationEvents(", json!({})).await;
    let [message] = messages.as_slice() else { panic!("expected one message: {messages:#?}") };
    assert_eq!(message["payload"]["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{message:#}");
    app.stop().await;
}

const RENAME: &str = "mutation($e: ID!, $name: String) { updateEnvironment(input: { environmentId: $e, name: $name }) { id name } }";

#[tokio::test]
async fn renaming_an_environment_keeps_the_name_its_operations_were_queued_with() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("production").await;
    let svc = app.create_service(&env, json!({ "name": "job", "kind": "JOB", "buildCommand": "true" })).await;
    let before = app.deploy(&svc, "c1").await;
    app.wait_final(&before).await;

    let renamed = app.gql(RENAME, json!({ "e": env, "name": "production-eu" })).await;
    assert_eq!(renamed["updateEnvironment"], json!({ "id": env, "name": "production-eu" }));
    let read = app.gql("query($e: ID!) { environment(id: $e) { name } }", json!({ "e": env })).await;
    assert_eq!(read["environment"]["name"], "production-eu");
    assert_eq!(app.operation(&before).await["environmentName"], "production");

    let after = app.deploy(&svc, "c2").await;
    assert_eq!(app.wait_final(&after).await["environmentName"], "production-eu");

    // Without a name, and with its own name, nothing changes.
    let same = app.gql(RENAME, json!({ "e": env, "name": null })).await;
    assert_eq!(same["updateEnvironment"]["name"], "production-eu");
    let same = app.gql(RENAME, json!({ "e": env, "name": "production-eu" })).await;
    assert_eq!(same["updateEnvironment"]["name"], "production-eu");
    app.stop().await;
}

#[tokio::test]
async fn renaming_an_environment_to_an_empty_or_taken_name_or_an_unknown_id_is_refused() {
    let app = TestApp::spawn().await;
    let production = app.create_environment("production").await;
    app.create_environment("staging").await;

    let cases = [
        (json!({ "e": production, "name": "" }), "BAD_USER_INPUT", "name"),
        (json!({ "e": production, "name": "-eu" }), "BAD_USER_INPUT", "name"),
        (json!({ "e": production, "name": "staging" }), "CONFLICT", "already exists"),
        (json!({ "e": "env_999", "name": "qa" }), "NOT_FOUND", "env_999"),
        (json!({ "e": "svc_1", "name": "qa" }), "BAD_USER_INPUT", "not a Environment id"),
    ];
    for (variables, code, mentions) in cases {
        app.assert_error(RENAME, variables, code, mentions).await;
    }
    let names = app.gql("{ environments { nodes { name } } }", json!({})).await;
    assert_eq!(
        names["environments"]["nodes"],
        json!([{ "name": "production" }, { "name": "staging" }]),
        "nothing was renamed"
    );
    app.stop().await;
}
