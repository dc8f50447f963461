//! Idempotency keys of the mutations that queue operations: one operation
//! per key and request, the same reply every time (after a lost reply, after
//! a restart), a refusal for another request, and keys kept 24 hours.

use serde_json::{Value, json};

use crate::helpers::TestApp;

const DEPLOY: &str = "mutation($s: ID!, $c: String!, $k: String) { deploy(input: { serviceId: $s, commit: $c, idempotencyKey: $k }) { id type status commit queuedAt trigger { kind source author { name } } } }";

async fn operations_of(app: &TestApp, svc: &str) -> Vec<Value> {
    app.timeline(svc).await
}

#[tokio::test]
async fn ten_concurrent_identical_deploys_with_one_key_create_one_operation_and_get_identical_replies() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("production").await;
    let svc = app.create_service(&env, json!({ "name": "api", "kind": "JOB" })).await;
    let variables = json!({ "s": svc, "c": "c1", "k": "release-7" });
    let replies = futures_util::future::join_all((0..10).map(|_| app.post(DEPLOY, variables.clone()))).await;
    for reply in &replies {
        assert!(reply.get("errors").is_none(), "{reply:#}");
        assert_eq!(reply, &replies[0], "every reply is the first one");
    }
    assert_eq!(replies[0]["data"]["deploy"]["status"], "QUEUED");
    assert_eq!(operations_of(&app, &svc).await.len(), 1, "exactly one operation");
    // Each attempt is on record, all with the one operation as target.
    let op = replies[0]["data"]["deploy"]["id"].clone();
    let audit =
        app.gql("{ auditLog(filter: { action: \"deploy\" }) { nodes { target outcome } } }", json!({})).await;
    let nodes = audit["auditLog"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 10);
    assert!(nodes.iter().all(|n| n["target"] == op && n["outcome"] == "SUCCEEDED"), "{nodes:#?}");
    app.stop().await;
}

#[tokio::test]
async fn a_key_reused_for_another_request_is_refused_and_other_mutations_have_their_own_fingerprint() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("production").await;
    let svc = app.create_service(&env, json!({ "name": "api", "kind": "JOB" })).await;
    let other = app.create_service(&env, json!({ "name": "worker", "kind": "JOB" })).await;
    app.gql(DEPLOY, json!({ "s": svc, "c": "c1", "k": "k1" })).await;
    for variables in [json!({ "s": svc, "c": "c2", "k": "k1" }), json!({ "s": other, "c": "c1", "k": "k1" })]
    {
        assert_eq!(app.error_code(DEPLOY, variables).await, "IDEMPOTENCY_KEY_REUSED");
    }
    let restart =
        "mutation($s: ID!, $k: String) { restart(input: { serviceId: $s, idempotencyKey: $k }) { id } }";
    assert_eq!(app.error_code(restart, json!({ "s": svc, "k": "k1" })).await, "IDEMPOTENCY_KEY_REUSED");
    let scale = "mutation($s: ID!, $n: Int!, $k: String) { scale(input: { serviceId: $s, instances: $n, idempotencyKey: $k }) { id } }";
    let first = app.gql(scale, json!({ "s": other, "n": 2, "k": "s1" })).await;
    assert_eq!(app.gql(scale, json!({ "s": other, "n": 2, "k": "s1" })).await, first);
    assert_eq!(
        app.error_code(scale, json!({ "s": other, "n": 3, "k": "s1" })).await,
        "IDEMPOTENCY_KEY_REUSED"
    );
    // A key is the organization's, not a person's: another member's retry
    // of the same request is the same request.
    let dev = app.token_for("dev", "DEVELOPER").await;
    let again = app.gql_as(&dev, DEPLOY, json!({ "s": svc, "c": "c1", "k": "k1" })).await;
    assert_eq!(again["deploy"]["trigger"]["author"]["name"], "owner", "the first request's reply");
    app.stop().await;
}

#[tokio::test]
async fn a_retry_after_a_restart_gets_the_first_reply_and_a_key_is_free_again_after_24_hours() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("production").await;
    let svc = app.create_service(&env, json!({ "name": "api", "kind": "JOB" })).await;
    let variables = json!({ "s": svc, "c": "c1", "k": "lost-reply" });
    let first = app.gql(DEPLOY, variables.clone()).await;
    let op = first["deploy"]["id"].as_str().unwrap().to_owned();
    app.wait_final(&op).await;
    let dir = app.dir.clone();
    app.stop().await;

    let app = TestApp::spawn_in(dir).await;
    assert_eq!(app.gql(DEPLOY, variables.clone()).await, first, "the same reply, as the first one gave it");
    assert_eq!(operations_of(&app, &svc).await.len(), 1);
    // A day later (as retention sees it) the key is gone, and free again.
    let later = chrono::Utc::now().timestamp_millis() + opsgraph::store::idempotency::KEPT_MS;
    assert_eq!(opsgraph::store::idempotency::expire(&app.store(), later - 60_000).await.unwrap(), 0);
    assert_eq!(opsgraph::store::idempotency::expire(&app.store(), later + 1).await.unwrap(), 1);
    let fresh = app.gql(DEPLOY, variables).await;
    assert_ne!(fresh["deploy"]["id"], first["deploy"]["id"]);
    assert_eq!(operations_of(&app, &svc).await.len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn a_redeploy_of_a_selected_operation_replays_even_after_the_selector_moved() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("production").await;
    let svc = app.create_service(&env, json!({ "name": "api", "kind": "JOB" })).await;
    for commit in ["c1", "c2"] {
        let op = app.deploy(&svc, commit).await;
        app.wait_final(&op).await;
    }
    let rollback = "mutation($s: ID!) { redeploy(input: { serviceId: $s, operation: { kind: PREVIOUS }, idempotencyKey: \"rb-1\" }) { id commit } }";
    let first = app.gql(rollback, json!({ "s": svc })).await;
    assert_eq!(first["redeploy"]["commit"], "c1");
    app.wait_final(first["redeploy"]["id"].as_str().unwrap()).await;
    // PREVIOUS now names another operation; the retry is still the same
    // request.
    assert_eq!(app.gql(rollback, json!({ "s": svc })).await, first);
    assert_eq!(operations_of(&app, &svc).await.len(), 3);
    app.stop().await;
}

#[tokio::test]
async fn append_logs_retried_with_its_key_appends_nothing_twice() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("production").await;
    let svc = app.create_service(&env, json!({ "name": "api", "kind": "JOB", "executor": "ci" })).await;
    let op = app.deploy(&svc, "c1").await;
    let append = "mutation($o: ID!, $l: [String!]!, $k: String) { appendLogs(operationId: $o, lines: $l, idempotencyKey: $k) { firstSeq lastSeq } }";
    let batch = json!({ "o": op, "l": ["pulling", "pulled"], "k": "lease_1_1/1" });
    let replies = futures_util::future::join_all((0..5).map(|_| app.post(append, batch.clone()))).await;
    for reply in &replies {
        assert_eq!(reply, &replies[0], "every retry gets the first reply");
    }
    let (first, last) =
        (&replies[0]["data"]["appendLogs"]["firstSeq"], &replies[0]["data"]["appendLogs"]["lastSeq"]);
    assert_eq!(last.as_u64().unwrap(), first.as_u64().unwrap() + 1);
    let lines = app.log_lines(&op).await;
    assert_eq!(lines.iter().filter(|l| l.ends_with("pulling")).count(), 1, "{lines:#?}");
    // Other lines under the same key: refused, nothing appended.
    let other = json!({ "o": op, "l": ["something else"], "k": "lease_1_1/1" });
    app.assert_error(append, other, "IDEMPOTENCY_KEY_REUSED", "lease_1_1/1").await;
    // Without a key, a repeat is a repeat.
    let plain = json!({ "o": op, "l": ["again"] });
    app.gql(append, plain.clone()).await;
    app.gql(append, plain).await;
    assert_eq!(app.log_lines(&op).await.iter().filter(|l| l.ends_with("again")).count(), 2);
    app.stop().await;
}
