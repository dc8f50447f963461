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

#[tokio::test]
async fn operations_filter_by_type_status_source_and_time_and_page_both_ways() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("production").await;
    let other = app.create_environment("staging").await;
    let svc = app.create_service(&env, json!({ "name": "api", "kind": "JOB" })).await;
    let elsewhere = app.create_service(&other, json!({ "name": "api", "kind": "JOB" })).await;
    const DEPLOY: &str = "mutation($s: ID!, $c: String!, $src: TriggerSource!) { deploy(input: { serviceId: $s, commit: $c, source: $src }) { id queuedAt } }";
    let mut ids = Vec::new();
    for (i, source) in ["CLI", "API", "CONSOLE", "CLI", "API"].iter().enumerate() {
        let op = app.gql(DEPLOY, json!({ "s": svc, "c": format!("c{i}"), "src": source })).await;
        let id = op["deploy"]["id"].as_str().unwrap().to_owned();
        app.wait_final(&id).await;
        ids.push((id, op["deploy"]["queuedAt"].as_str().unwrap().to_owned()));
    }
    let stray = app.deploy(&elsewhere, "x").await;
    app.wait_final(&stray).await;
    let restart = app.action("restart", &svc).await;
    app.wait_final(&restart).await;

    const LIST: &str =
        "query($f: OperationFilter, $first: Int, $after: String, $last: Int, $before: String) {
        operations(filter: $f, first: $first, after: $after, last: $last, before: $before) {
            nodes { id } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }";
    let list = |filter: serde_json::Value| {
        let app = &app;
        async move {
            let data = app.gql(LIST, json!({ "f": filter, "first": 50 })).await;
            data["operations"]["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let id = |i: usize| ids[i].0.clone();
    assert_eq!(list(json!({ "environmentId": env, "sources": ["CLI"] })).await, [id(3), id(0)]);
    assert_eq!(list(json!({ "serviceId": svc, "types": ["RESTART"] })).await, std::slice::from_ref(&restart));
    assert_eq!(list(json!({ "environmentId": other })).await, std::slice::from_ref(&stray));
    assert_eq!(list(json!({ "statuses": ["QUEUED", "BUILDING"] })).await, Vec::<String>::new());
    let window = list(
        json!({ "environmentId": env, "types": ["DEPLOY"], "queuedFrom": ids[1].1, "queuedTo": ids[3].1 }),
    )
    .await;
    assert_eq!(window, [id(2), id(1)], "from is inclusive, to exclusive");

    // Forward pages, newest first, then back again.
    let filter = json!({ "serviceId": svc, "types": ["DEPLOY"] });
    let page1 = app.gql(LIST, json!({ "f": filter, "first": 2 })).await["operations"].clone();
    assert_eq!(page1["nodes"], json!([{ "id": id(4) }, { "id": id(3) }]));
    assert_eq!(page1["pageInfo"]["hasNextPage"], true);
    let after = page1["pageInfo"]["endCursor"].clone();
    let page2 = app.gql(LIST, json!({ "f": filter, "first": 2, "after": after })).await["operations"].clone();
    assert_eq!(page2["nodes"], json!([{ "id": id(2) }, { "id": id(1) }]));
    let before = page2["pageInfo"]["startCursor"].clone();
    let back = app.gql(LIST, json!({ "f": filter, "last": 1, "before": before })).await["operations"].clone();
    assert_eq!(back["nodes"], json!([{ "id": id(3) }]));
    assert_eq!(back["pageInfo"]["hasPreviousPage"], true);
    let last = app.gql(LIST, json!({ "f": filter, "last": 2 })).await["operations"].clone();
    assert_eq!(last["nodes"], json!([{ "id": id(1) }, { "id": id(0) }]));
    app.stop().await;
}
