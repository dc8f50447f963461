//! Environments and services, service actions, deletion and bad input.

use serde_json::json;

use crate::helpers::{TestApp, steps};

const COUNTS: &str = "{ environments(first: 100) { nodes { id services(first: 100, includeDeleted: true) { nodes { id } } } } operations(first: 100) { nodes { id } } }";

#[tokio::test]
async fn bad_input_is_refused_with_a_code_that_names_the_problem_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("production").await;
    let svc = app.create_service(&env, json!({ "name": "api", "kind": "APPLICATION" })).await;
    let before = app.gql(COUNTS, json!({})).await;

    let cases = [
        ("mutation { createEnvironment(input: { name: \"\" }) { id } }", json!({}), "BAD_USER_INPUT", "name"),
        (
            "mutation { createEnvironment(input: { name: \"production\" }) { id } }",
            json!({}),
            "CONFLICT",
            "already exists",
        ),
        (
            "mutation($e: ID!) { createService(input: { environmentId: $e, name: \"w\", kind: APPLICATION, instances: -1 }) { id } }",
            json!({ "e": env }),
            "BAD_USER_INPUT",
            "instances",
        ),
        (
            "mutation { createService(input: { environmentId: \"env_999\", name: \"w\", kind: JOB }) { id } }",
            json!({}),
            "NOT_FOUND",
            "env_999",
        ),
        (
            "mutation { deploy(input: { serviceId: \"svc_999\", commit: \"c\" }) { id } }",
            json!({}),
            "NOT_FOUND",
            "svc_999",
        ),
        (
            "mutation { deploy(input: { serviceId: \"op_1\", commit: \"c\" }) { id } }",
            json!({}),
            "BAD_USER_INPUT",
            "not a Service id",
        ),
        (
            "mutation($s: ID!) { deploy(input: { serviceId: $s, commit: \"\" }) { id } }",
            json!({ "s": svc }),
            "BAD_USER_INPUT",
            "commit",
        ),
        (
            "mutation($s: ID!) { scale(input: { serviceId: $s, instances: -2 }) { id } }",
            json!({ "s": svc }),
            "BAD_USER_INPUT",
            "-2",
        ),
        (
            "mutation { cancelOperation(input: { operationId: \"op_404\" }) { id } }",
            json!({}),
            "NOT_FOUND",
            "op_404",
        ),
        (
            "mutation($s: ID!) { redeploy(input: { serviceId: $s }) { id } }",
            json!({ "s": svc }),
            "CONFLICT",
            "never been deployed",
        ),
        ("query { operations(first: 101) { nodes { id } } }", json!({}), "BAD_USER_INPUT", "first"),
        (
            "query { operations(first: 1, after: \"nope\") { nodes { id } } }",
            json!({}),
            "BAD_USER_INPUT",
            "cursor",
        ),
    ];
    for (query, variables, code, mentions) in cases {
        let body = app.post(query, variables).await;
        let error = &body["errors"][0];
        assert_eq!(error["extensions"]["code"], code, "{query}: {body:#}");
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(mentions), "{query}: `{message}` should mention `{mentions}`");
    }
    let missing =
        app.gql("{ service(id: \"svc_999\") { id } operation(id: \"op_999\") { id } }", json!({})).await;
    assert_eq!(missing, json!({ "service": null, "operation": null }));

    assert_eq!(app.gql(COUNTS, json!({})).await, before, "nothing was written");
    app.stop().await;
}

#[tokio::test]
async fn a_deleted_service_keeps_its_operations_readable_by_name() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("staging").await;
    let svc = app
        .create_service(&env, json!({ "name": "billing", "kind": "APPLICATION", "startCommand": "exec sleep 60", "healthCheck": { "graceMs": 50 }, "stopGraceMs": 500 }))
        .await;
    let deploy = app.deploy(&svc, "c1").await;
    assert_eq!(app.wait_final(&deploy).await["status"], "DEPLOYMENT_OK");

    let delete = app.action("deleteService", &svc).await;
    let delete = app.wait_final(&delete).await;
    assert_eq!(delete["status"], "DEPLOYMENT_OK");
    assert_eq!(delete["type"], "DELETE");
    assert_eq!(
        steps(&delete).into_iter().map(|(k, _)| k).collect::<Vec<_>>(),
        ["STOP_INSTANCES", "REMOVE_SERVICE"]
    );

    for id in [&deploy, delete["id"].as_str().unwrap()] {
        let op = app.operation(id).await;
        assert_eq!(op["service"], serde_json::Value::Null);
        assert_eq!(op["serviceName"], "billing");
        assert_eq!(op["environmentName"], "staging");
    }
    let listed = app
        .gql(
            "query($s: ID!) { operations(filter: { serviceId: $s }) { nodes { type serviceName } } }",
            json!({ "s": svc }),
        )
        .await;
    assert_eq!(
        listed["operations"]["nodes"],
        json!([{ "type": "DELETE", "serviceName": "billing" }, { "type": "DEPLOY", "serviceName": "billing" }])
    );
    let service = app
        .gql("query($id: ID!) { service(id: $id) { deletedAt instances { id } } }", json!({ "id": svc }))
        .await;
    assert!(service["service"]["deletedAt"].is_string());
    assert_eq!(service["service"]["instances"], json!([]));
    let env_services = app
        .gql("query($e: ID!) { environment(id: $e) { services { nodes { id } } } }", json!({ "e": env }))
        .await;
    assert_eq!(env_services["environment"]["services"]["nodes"], json!([]));
    assert_eq!(
        app.error_code("mutation($s: ID!) { restart(input: { serviceId: $s }) { id } }", json!({ "s": svc }))
            .await,
        "CONFLICT"
    );
    // The name is free again.
    app.create_service(&env, json!({ "name": "billing", "kind": "APPLICATION" })).await;
    app.stop().await;
}

async fn state(app: &TestApp, svc: &str) -> serde_json::Value {
    const INSTANCES: &str = "query($id: ID!) { service(id: $id) { currentCommit spec { instances } runningStatus { value } instances { status commit } } }";
    app.gql(INSTANCES, json!({ "id": svc })).await["service"].clone()
}

#[tokio::test]
async fn scale_stop_start_restart_and_redeploy_this_commit_change_the_instances() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("production").await;
    let svc = app
        .create_service(
            &env,
            json!({ "name": "api", "kind": "APPLICATION", "startCommand": "echo up $COMMIT; exec sleep 60", "healthCheck": { "graceMs": 50 }, "stopGraceMs": 500 }),
        )
        .await;
    let c1 = app.deploy(&svc, "c1").await;
    assert_eq!(app.wait_final(&c1).await["status"], "DEPLOYMENT_OK");
    let c2 = app.deploy(&svc, "c2").await;
    assert_eq!(app.wait_final(&c2).await["status"], "DEPLOYMENT_OK");

    let scale = app
        .gql(
            "mutation($s: ID!) { scale(input: { serviceId: $s, instances: 3 }) { id } }",
            json!({ "s": svc }),
        )
        .await;
    assert_eq!(app.wait_final(scale["scale"]["id"].as_str().unwrap()).await["status"], "DEPLOYMENT_OK");
    let s = state(&app, &svc).await;
    assert_eq!(s["spec"]["instances"], 3);
    assert_eq!(s["instances"].as_array().unwrap().len(), 3);

    let down = app
        .gql(
            "mutation($s: ID!) { scale(input: { serviceId: $s, instances: 1 }) { id } }",
            json!({ "s": svc }),
        )
        .await;
    assert_eq!(app.wait_final(down["scale"]["id"].as_str().unwrap()).await["status"], "DEPLOYMENT_OK");
    assert_eq!(state(&app, &svc).await["instances"], json!([{ "status": "RUNNING", "commit": "c2" }]));

    let stop = app.action("stop", &svc).await;
    assert_eq!(app.wait_final(&stop).await["status"], "DEPLOYMENT_OK");
    let s = state(&app, &svc).await;
    assert_eq!(s["runningStatus"]["value"], "STOPPED");
    assert_eq!(s["instances"], json!([{ "status": "STOPPED", "commit": "c2" }]));

    let start = app.action("start", &svc).await;
    assert_eq!(app.wait_final(&start).await["status"], "DEPLOYMENT_OK");
    assert_eq!(state(&app, &svc).await["instances"], json!([{ "status": "RUNNING", "commit": "c2" }]));

    let restart = app.action("restart", &svc).await;
    let restart = app.wait_final(&restart).await;
    assert_eq!(restart["status"], "DEPLOYMENT_OK");
    assert_eq!(restart["commit"], "c2");

    // "Redeploy this commit" on the first deploy: a DEPLOY of c1.
    let back = app
        .gql(
            "mutation($o: ID!) { redeploy(input: { operationId: $o }) { id type commit } }",
            json!({ "o": c1 }),
        )
        .await;
    assert_eq!(back["redeploy"]["type"], "DEPLOY");
    assert_eq!(back["redeploy"]["commit"], "c1");
    assert_eq!(app.wait_final(back["redeploy"]["id"].as_str().unwrap()).await["status"], "DEPLOYMENT_OK");
    let s = state(&app, &svc).await;
    assert_eq!(s["currentCommit"], "c1");
    assert_eq!(s["instances"], json!([{ "status": "RUNNING", "commit": "c1" }]));

    let same = app
        .gql("mutation($s: ID!) { redeploy(input: { serviceId: $s }) { type commit } }", json!({ "s": svc }))
        .await;
    assert_eq!(same["redeploy"], json!({ "type": "REDEPLOY", "commit": "c1" }));
    app.stop().await;
}

#[tokio::test]
async fn a_mutation_over_get_is_refused_with_405() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(format!("{}/graphql", app.address))
        .query(&[("query", "mutation { createEnvironment(input: { name: \"x\" }) { id } }")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    let query = app
        .client
        .get(format!("{}/graphql", app.address))
        .query(&[("query", "{ viewer { member { name } } }")])
        .send()
        .await
        .unwrap();
    assert_eq!(query.status(), 200);
    let body: serde_json::Value = query.json().await.unwrap();
    assert_eq!(body["data"]["viewer"]["member"]["name"], "owner");
    assert_eq!(app.gql(COUNTS, json!({})).await["environments"]["nodes"], json!([]));
    app.stop().await;
}

#[tokio::test]
async fn the_same_idempotency_key_returns_the_same_operation() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("production").await;
    let svc = app.create_service(&env, json!({ "name": "api", "kind": "JOB" })).await;
    const DEPLOY: &str = "mutation($s: ID!, $c: String!) { deploy(input: { serviceId: $s, commit: $c, idempotencyKey: \"push-42\" }) { id } }";
    let first = app.gql(DEPLOY, json!({ "s": svc, "c": "c1" })).await;
    let again = app.gql(DEPLOY, json!({ "s": svc, "c": "c1" })).await;
    assert_eq!(first, again);
    assert_eq!(app.error_code(DEPLOY, json!({ "s": svc, "c": "c2" })).await, "IDEMPOTENCY_KEY_REUSED");
    app.stop().await;
}

#[tokio::test]
async fn operation_events_replay_from_a_cursor_then_follow_live_without_gaps_or_duplicates() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("production").await;
    let svc = app.create_service(&env, json!({ "name": "job", "kind": "JOB" })).await;
    let first = app.deploy(&svc, "c1").await;
    app.wait_final(&first).await;

    const EVENTS: &str = "subscription($e: ID!, $after: String) { operationEvents(environmentId: $e, after: $after) { cursor kind status operation { id } } }";
    let mut all = app.subscribe(EVENTS, json!({ "e": env })).await;
    let mut replayed = Vec::new();
    while let Some(event) = all.next().await {
        let event = event["operationEvents"].clone();
        let last = event["status"] == "DEPLOYMENT_OK";
        replayed.push(event);
        if last {
            break;
        }
    }
    assert_eq!(replayed[0]["kind"], "QUEUED");
    let cursor = replayed[1]["cursor"].as_str().unwrap().to_owned();

    let mut resumed = app.subscribe(EVENTS, json!({ "e": env, "after": cursor })).await;
    let second = app.deploy(&svc, "c2").await;
    let mut seen = Vec::new();
    while let Some(event) = resumed.next().await {
        let event = event["operationEvents"].clone();
        let done = event["operation"]["id"] == second && event["status"] == "DEPLOYMENT_OK";
        seen.push(event);
        if done {
            break;
        }
    }
    assert_eq!(seen[..replayed.len() - 2], replayed[2..], "replay resumes right after the cursor");
    let live: Vec<_> = seen[replayed.len() - 2..]
        .iter()
        .map(|e| (e["kind"].as_str().unwrap(), e["operation"]["id"].as_str().unwrap()))
        .collect();
    assert_eq!(
        live.first(),
        Some(&("QUEUED", second.as_str())),
        "the live part starts with the new operation: {live:?}"
    );
    let cursors: Vec<u64> = seen.iter().map(|e| e["cursor"].as_str().unwrap().parse().unwrap()).collect();
    assert!(cursors.windows(2).all(|w| w[1] > w[0]), "in order and never twice: {cursors:?}");
    app.stop().await;
}
