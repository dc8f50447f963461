//! Cancelling, and the order of operations per service and across services.

use serde_json::json;

use crate::helpers::{TestApp, steps};

const CANCEL: &str = "mutation($id: ID!) { cancelOperation(input: { operationId: $id }) { id status } }";

/// A build that waits until the test creates `gate` in the temp directory.
fn gated_build(app: &TestApp, gate: &str) -> String {
    let path = app.dir.path().join(gate);
    format!("echo waiting; while [ ! -f '{}' ]; do sleep 0.02; done; echo done", path.display())
}

#[tokio::test]
async fn cancelling_a_queued_operation_ends_it_at_once_and_a_running_one_rolls_back() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("staging").await;
    let svc = app
        .create_service(&env, json!({ "name": "api", "kind": "APPLICATION", "buildCommand": "echo building; exec sleep 60", "startCommand": "sleep 60" }))
        .await;
    let running = app.deploy(&svc, "c1").await;
    let queued = app.deploy(&svc, "c2").await;
    app.wait_status(&env, &running, "BUILDING").await;

    let data = app.gql(CANCEL, json!({ "id": queued })).await;
    assert_eq!(data["cancelOperation"]["status"], "CANCELLED");
    let op = app.operation(&queued).await;
    assert_eq!(op["rollback"], "NOT_NEEDED");
    assert!(op["startedAt"].is_null());
    assert!(steps(&op).iter().all(|(_, s)| s == "SKIPPED"));

    let data = app.gql(CANCEL, json!({ "id": running })).await;
    assert_eq!(data["cancelOperation"]["status"], "CANCELLING");
    let op = app.wait_final(&running).await;
    assert_eq!(op["status"], "CANCELLED");
    assert_eq!(op["rollback"], "NOT_NEEDED");
    assert_eq!(steps(&op)[0], ("BUILD".into(), "CANCELLED".into()));
    let log = app.log_lines(&running).await;
    assert!(log.contains(&"STDOUT building".to_owned()), "{log:#?}");
    assert!(log.iter().any(|l| l.starts_with("SYSTEM cancel requested by owner")), "{log:#?}");
    assert_eq!(log.last().map(String::as_str), Some("SYSTEM finished: CANCELLED"));

    for id in [&queued, &running] {
        assert_eq!(app.error_code(CANCEL, json!({ "id": id })).await, "INVALID_TRANSITION");
    }
    app.stop().await;
}

#[tokio::test]
async fn cancelling_after_instances_started_stops_them_and_reports_the_rollback() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("staging").await;
    let svc = app
        .create_service(
            &env,
            json!({ "name": "worker", "kind": "APPLICATION", "startCommand": "exec sleep 60",
                    "healthCheck": { "graceMs": 60000 }, "stopGraceMs": 500 }),
        )
        .await;
    let op = app.deploy(&svc, "c1").await;
    // The health check waits a minute: cancel while it runs.
    app.wait_step(&env, &op, "HEALTH_CHECK", "RUNNING").await;
    app.gql(CANCEL, json!({ "id": op })).await;
    let op = app.wait_final(&op).await;
    assert_eq!(op["status"], "CANCELLED");
    assert_eq!(op["rollback"], "SUCCEEDED");
    assert!(steps(&op).contains(&("START_INSTANCES".into(), "ROLLED_BACK".into())));
    let svc =
        app.gql("query($id: ID!) { service(id: $id) { instances { id } } }", json!({ "id": svc })).await;
    assert_eq!(svc["service"]["instances"], json!([]));
    app.stop().await;
}

#[tokio::test]
async fn operations_on_one_service_run_in_order_and_other_services_run_beside_them() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("production").await;
    let slow = app
        .create_service(
            &env,
            json!({ "name": "slow", "kind": "JOB", "buildCommand": gated_build(&app, "gate") }),
        )
        .await;
    let fast = app
        .create_service(&env, json!({ "name": "fast", "kind": "JOB", "buildCommand": "echo quick" }))
        .await;

    let first = app.deploy(&slow, "a").await;
    let second = app.deploy(&slow, "b").await;
    let third = app.deploy(&slow, "c").await;
    app.wait_status(&env, &first, "BUILDING").await;
    let other = app.deploy(&fast, "x").await;

    // The other service finishes while the first one still builds …
    assert_eq!(app.wait_final(&other).await["status"], "DEPLOYMENT_OK");
    assert_eq!(app.operation(&first).await["status"], "BUILDING");
    // … and the first service's later operations wait their turn.
    for id in [&second, &third] {
        assert_eq!(app.operation(id).await["status"], "QUEUED");
    }

    std::fs::write(app.dir.path().join("gate"), "").unwrap();
    let mut previous_finish = String::new();
    for id in [&first, &second, &third] {
        let op = app.wait_final(id).await;
        assert_eq!(op["status"], "DEPLOYMENT_OK");
        let started = op["startedAt"].as_str().unwrap().to_owned();
        assert!(started >= previous_finish, "{id} started before the previous one finished");
        previous_finish = op["finishedAt"].as_str().unwrap().to_owned();
    }
    let svc = app.gql("query($id: ID!) { service(id: $id) { currentCommit } }", json!({ "id": slow })).await;
    assert_eq!(svc["service"]["currentCommit"], "c");
    app.stop().await;
}

#[tokio::test]
async fn cancelling_while_old_instances_stop_brings_them_back() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("production").await;
    // c1's instance ignores SIGTERM, so stopping it takes the whole (long)
    // grace: time to cancel. c2's stops at once.
    let svc = app
        .create_service(
            &env,
            json!({ "name": "web", "kind": "APPLICATION", "startCommand": "if [ $COMMIT = c1 ]; then trap '' TERM; fi; echo up $COMMIT; while true; do sleep 0.1; done",
                    "healthCheck": { "graceMs": 50 }, "stopGraceMs": 60000 }),
        )
        .await;
    let first = app.deploy(&svc, "c1").await;
    assert_eq!(app.wait_final(&first).await["status"], "DEPLOYMENT_OK");
    let op = app.deploy(&svc, "c2").await;
    app.wait_step(&env, &op, "STOP_OLD_INSTANCES", "RUNNING").await;
    app.gql(CANCEL, json!({ "id": op })).await;
    let op = app.wait_final(&op).await;
    assert_eq!(op["status"], "CANCELLED");
    assert_eq!(op["rollback"], "SUCCEEDED", "{op:#}");
    let svc = app
        .gql(
            "query($id: ID!) { service(id: $id) { currentCommit instances { status commit current } } }",
            json!({ "id": svc }),
        )
        .await;
    assert_eq!(svc["service"]["currentCommit"], "c1");
    assert_eq!(
        svc["service"]["instances"],
        json!([{ "status": "RUNNING", "commit": "c1", "current": true }])
    );
    app.stop().await;
}
