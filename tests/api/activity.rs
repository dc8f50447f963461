//! The activity timeline, "redeploy this commit", and operations named by
//! selectors.

use serde_json::{Value, json};

use crate::helpers::TestApp;

const TIMELINE: &str = r#"query($e: ID!, $f: ActivityFilter) {
  activity(environmentId: $e, filter: $f, first: 50) {
    nodes {
      type outcome status commit serviceName durationMs canRedeploy cannotRedeployReason
      trigger { kind source reason author { name } }
    }
  }
}"#;

async fn timeline(app: &TestApp, env: &str, filter: Value) -> Vec<Value> {
    let data = app.gql(TIMELINE, json!({ "e": env, "f": filter })).await;
    data["activity"]["nodes"].as_array().unwrap().clone()
}

/// The parts of a block a test compares: type, outcome, commit, trigger
/// (kind, source, reason, author) and the "redeploy this commit" answer.
fn block(node: &Value) -> Value {
    json!({
        "type": node["type"], "outcome": node["outcome"], "commit": node["commit"],
        "service": node["serviceName"], "trigger": node["trigger"], "canRedeploy": node["canRedeploy"],
        "why": node["cannotRedeployReason"],
    })
}

#[tokio::test]
async fn a_timeline_mixing_user_and_platform_operations_shows_each_block() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("prod").await;
    let worker = app
        .create_service(
            &env,
            json!({ "name": "worker", "kind": "APPLICATION", "buildCommand": "[ \"$COMMIT\" != bad ]",
            "startCommand": "exec sleep 120", "healthCheck": { "graceMs": 100 }, "stopGraceMs": 500 }),
        )
        .await;
    let old = app.create_service(&env, json!({ "name": "old", "kind": "JOB", "buildCommand": "true" })).await;
    let c1 = app.deploy(&worker, "c1").await;
    assert_eq!(app.wait_final(&c1).await["status"], "DEPLOYMENT_OK");
    let bad = app
        .gql(
            "mutation($s: ID!) { deploy(input: { serviceId: $s, commit: \"bad\", source: CLI }) { id } }",
            json!({ "s": worker }),
        )
        .await;
    assert_eq!(app.wait_final(bad["deploy"]["id"].as_str().unwrap()).await["status"], "BUILDING_ERROR");
    let o1 = app.deploy(&old, "o1").await;
    app.wait_final(&o1).await;
    let delete = app.action("deleteService", &old).await;
    app.wait_final(&delete).await;
    // A restart of the server: the platform starts the serving worker again.
    let dir = app.dir.clone();
    app.stop().await;
    let app = TestApp::spawn_in(dir).await;
    let start = &timeline(&app, &env, json!(null)).await[0];
    assert_eq!(start["type"], "START");
    let start = app
        .gql("query($e: ID!) { activity(environmentId: $e, first: 1) { nodes { id } } }", json!({ "e": env }))
        .await;
    app.wait_final(start["activity"]["nodes"][0]["id"].as_str().unwrap()).await;

    let blocks: Vec<Value> = timeline(&app, &env, json!(null)).await.iter().map(block).collect();
    let owner = |source: &str| json!({ "kind": "USER", "source": source, "reason": null, "author": { "name": "owner" } });
    let platform =
        json!({ "kind": "PLATFORM", "source": "MONITORING", "reason": "MAINTENANCE", "author": null });
    let not_a_deploy = |t: &str| {
        format!(
            "only DEPLOY and REDEPLOY operations deploy a commit that can be redeployed; this one is a {t}"
        )
    };
    assert_eq!(
        blocks,
        [
            json!({ "type": "START", "outcome": "SUCCEEDED", "commit": "c1", "service": "worker", "trigger": platform,
                    "canRedeploy": false, "why": not_a_deploy("START") }),
            json!({ "type": "DELETE", "outcome": "SUCCEEDED", "commit": "o1", "service": "old", "trigger": owner("API"),
                    "canRedeploy": false, "why": "the service has been deleted" }),
            json!({ "type": "DEPLOY", "outcome": "SUCCEEDED", "commit": "o1", "service": "old", "trigger": owner("API"),
                    "canRedeploy": false, "why": "the service has been deleted" }),
            json!({ "type": "DEPLOY", "outcome": "FAILED", "commit": "bad", "service": "worker", "trigger": owner("CLI"),
                    "canRedeploy": false, "why": "the operation never built its commit successfully" }),
            json!({ "type": "DEPLOY", "outcome": "SUCCEEDED", "commit": "c1", "service": "worker", "trigger": owner("API"),
                    "canRedeploy": true, "why": null }),
        ]
    );
    let nodes = timeline(&app, &env, json!(null)).await;
    assert!(nodes.iter().all(|n| n["durationMs"].as_i64().is_some_and(|d| d >= 0)), "{nodes:#?}");

    let count = |filter: Value| {
        let app = &app;
        let env = env.clone();
        async move { timeline(app, &env, filter).await.len() }
    };
    assert_eq!(count(json!({ "triggerKinds": ["PLATFORM"] })).await, 1);
    assert_eq!(count(json!({ "reasons": ["MAINTENANCE"] })).await, 1);
    assert_eq!(count(json!({ "reasons": ["TIMEOUT"] })).await, 0);
    assert_eq!(count(json!({ "outcomes": ["FAILED"] })).await, 1);
    assert_eq!(count(json!({ "sources": ["CLI"] })).await, 1);
    assert_eq!(count(json!({ "authors": ["owner"] })).await, 4);
    assert_eq!(count(json!({ "types": ["DEPLOY"], "outcomes": ["SUCCEEDED"] })).await, 2);
    assert_eq!(count(json!({ "to": "2000-01-01T00:00:00Z" })).await, 0);
    assert_eq!(count(json!({ "from": "2000-01-01T00:00:00Z" })).await, 5);
    let worker_only = app.timeline(&worker).await;
    assert_eq!(worker_only.len(), 3);
    let code = app.error_code("{ activity { nodes { id } } }", json!({})).await;
    assert_eq!(code, "BAD_USER_INPUT", "a timeline needs an environment or a service");
    app.stop().await;
}

const SERVICE: &str = r#"query($s: ID!) {
  service(id: $s) {
    currentCommit
    pin { commit reason pinnedBy { name } operation { id } }
    instances { commit current }
  }
}"#;

async fn web(app: &TestApp) -> String {
    let env = app.create_environment("prod").await;
    app.create_service(
        &env,
        json!({ "name": "web", "kind": "APPLICATION", "buildCommand": "case $COMMIT in bad*) exit 1;; esac",
        "startCommand": "exec sleep 120", "healthCheck": { "graceMs": 50 }, "stopGraceMs": 500 }),
    )
    .await
}

#[tokio::test]
async fn redeploy_this_commit_deploys_the_old_commit_and_pins_the_one_rolled_away_from() {
    let app = TestApp::spawn().await;
    let svc = web(&app).await;
    let c1 = app.deploy(&svc, "c1").await;
    app.wait_final(&c1).await;
    let c2 = app.deploy(&svc, "c2").await;
    app.wait_final(&c2).await;

    let rollback = app
        .gql(
            "mutation($o: ID!) { redeploy(input: { operationId: $o }) { id type commit redeployOf { id } } }",
            json!({ "o": c1 }),
        )
        .await["redeploy"]
        .clone();
    assert_eq!(
        (&rollback["type"], &rollback["commit"], &rollback["redeployOf"]["id"]),
        (&json!("DEPLOY"), &json!("c1"), &json!(c1))
    );
    let rollback_id = rollback["id"].as_str().unwrap();
    assert_eq!(app.wait_final(rollback_id).await["status"], "DEPLOYMENT_OK");

    let service = app.gql(SERVICE, json!({ "s": svc })).await["service"].clone();
    assert_eq!(service["currentCommit"], "c1");
    assert_eq!(service["instances"], json!([{ "commit": "c1", "current": true }]));
    assert_eq!(service["pin"]["commit"], "c2");
    assert_eq!(service["pin"]["pinnedBy"]["name"], "owner");
    assert_eq!(service["pin"]["operation"]["id"], rollback_id);
    assert!(service["pin"]["reason"].as_str().unwrap().contains("rolled back from c2 to c1"), "{service:#}");

    let offered = "query($o: ID!) { operation(id: $o) { canRedeploy cannotRedeployReason } }";
    let c2_block = app.gql(offered, json!({ "o": c2 })).await["operation"].clone();
    assert_eq!(c2_block["canRedeploy"], false);
    assert!(c2_block["cannotRedeployReason"].as_str().unwrap().contains("pinned"), "{c2_block}");
    let code = app
        .error_code("mutation($o: ID!) { redeploy(input: { operationId: $o }) { id } }", json!({ "o": c2 }))
        .await;
    assert_eq!(code, "CONFLICT");

    let unpinned = app
        .gql(
            "mutation($s: ID!) { unpinCommit(input: { serviceId: $s }) { pin { commit } } }",
            json!({ "s": svc }),
        )
        .await;
    assert_eq!(unpinned["unpinCommit"]["pin"], Value::Null);
    assert_eq!(app.gql(offered, json!({ "o": c2 })).await["operation"]["canRedeploy"], true);
    app.stop().await;
}

const SELECTED: &str = r#"query($s: ID!) {
  service(id: $s) {
    current: operation(selector: { kind: CURRENT }) { id }
    previous: operation(selector: { kind: PREVIOUS }) { id }
    latestFailed: operation(selector: { kind: LATEST_FAILED }) { id }
    newest: operation(selector: { kind: OFFSET, offset: 0 }) { id }
    oneBack: operation(selector: { kind: OFFSET, offset: 1 }) { id }
    fourBack: operation(selector: { kind: OFFSET, offset: 4 }) { id }
    tooFar: operation(selector: { kind: OFFSET, offset: 5 }) { id }
  }
}"#;

#[tokio::test]
async fn selectors_resolve_around_failures_and_name_operations_for_redeploy_and_logs() {
    let app = TestApp::spawn().await;
    let svc = web(&app).await;
    let mut ids = Vec::new();
    for commit in ["c1", "bad1", "c2", "bad2"] {
        let op = app.deploy(&svc, commit).await;
        app.wait_final(&op).await;
        ids.push(op);
    }
    let restart = app.action("restart", &svc).await;
    assert_eq!(app.wait_final(&restart).await["status"], "DEPLOYMENT_OK");
    let [c1, _bad1, c2, bad2] = [&ids[0], &ids[1], &ids[2], &ids[3]];

    let got = app.gql(SELECTED, json!({ "s": svc })).await["service"].clone();
    let id = |key: &str| got[key]["id"].clone();
    assert_eq!(id("current"), json!(c2), "what runs now: the last successful deploy");
    assert_eq!(id("previous"), json!(c1), "what ran before it, past the failure");
    assert_eq!(id("latestFailed"), json!(bad2));
    assert_eq!(id("newest"), json!(restart));
    assert_eq!(id("oneBack"), json!(bad2));
    assert_eq!(id("fourBack"), json!(c1));
    assert_eq!(got["tooFar"], Value::Null);

    // Logs of a named operation, over HTTP.
    let logs = |selector: &str| {
        app.client.get(format!("{}/services/{svc}/operations/{selector}/logs", app.address)).send()
    };
    let log = logs("latest-failed").await.unwrap();
    assert_eq!(log.status(), 200);
    assert!(log.text().await.unwrap().contains("queued DEPLOY of commit bad2"));
    let bad = logs("sideways").await.unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.json::<Value>().await.unwrap()["error"]["code"], "BAD_USER_INPUT");

    // A failed build cannot be redeployed; the previous deploy can: a roll back.
    let redeploy = "mutation($s: ID!, $k: OperationSelectorKind!) { redeploy(input: { serviceId: $s, operation: { kind: $k } }) { id commit redeployOf { id } } }";
    assert_eq!(app.error_code(redeploy, json!({ "s": svc, "k": "LATEST_FAILED" })).await, "CONFLICT");
    let back = app.gql(redeploy, json!({ "s": svc, "k": "PREVIOUS" })).await["redeploy"].clone();
    assert_eq!((&back["commit"], &back["redeployOf"]["id"]), (&json!("c1"), &json!(c1)));
    assert_eq!(app.wait_final(back["id"].as_str().unwrap()).await["status"], "DEPLOYMENT_OK");
    let service = app.gql(SERVICE, json!({ "s": svc })).await["service"].clone();
    assert_eq!((&service["currentCommit"], &service["pin"]["commit"]), (&json!("c1"), &json!("c2")));
    let now = app.gql(SELECTED, json!({ "s": svc })).await["service"].clone();
    assert_eq!(now["current"]["id"], back["id"], "the roll back is what runs now");
    assert_eq!(now["previous"]["id"], json!(c2));
    app.stop().await;
}
