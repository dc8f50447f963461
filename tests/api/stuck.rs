//! Stuck operations: a step that hangs ends by its timeout, and a step or
//! a rollback that does not respond ends by a forced cancel.

use serde_json::{Value, json};

use crate::helpers::{TestApp, steps};

const FORCE: &str =
    "mutation($id: ID!) { cancelOperation(input: { operationId: $id, force: true }) { id status rollback } }";

const SPEC: &str = "query($id: ID!) { service(id: $id) { spec { operationTimeoutMs } instances { id } } }";

/// An instance that ignores SIGTERM, whose health check waits an hour and
/// whose stop waits an hour for it to exit: once started, cancelling its
/// deploy stops the health check, but the rollback (stopping the new
/// instance) hangs.
fn stubborn(name: &str) -> Value {
    json!({ "name": name, "kind": "APPLICATION",
            "startCommand": "trap '' TERM; echo up; while true; do sleep 1; done",
            "healthCheck": { "graceMs": 3600000 }, "stopGraceMs": 3600000 })
}

fn has_line_starting(log: &[String], start: &str) -> bool {
    log.iter().any(|l| l.starts_with(start))
}

#[tokio::test]
async fn a_build_that_hangs_is_cancelled_at_its_timeout_and_the_next_operation_runs() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("staging").await;
    let svc = app
        .create_service(
            &env,
            json!({ "name": "api", "kind": "JOB", "operationTimeoutMs": 1000,
                    "buildCommand": "echo building $COMMIT; if [ $COMMIT = c1 ]; then exec sleep 600; fi" }),
        )
        .await;
    let spec = app.gql(SPEC, json!({ "id": svc })).await;
    assert_eq!(spec["service"]["spec"]["operationTimeoutMs"], 1000);

    let hanging = app.deploy(&svc, "c1").await;
    app.wait_status(&env, &hanging, "BUILDING").await;
    // The timeout is read when an operation starts: going back to the
    // defaults now leaves the running one with its 1000 ms.
    let update = "mutation($s: ID!) { updateService(input: { serviceId: $s, operationTimeoutMs: null }) { spec { operationTimeoutMs } } }";
    let updated = app.gql(update, json!({ "s": svc })).await;
    assert_eq!(updated["updateService"]["spec"]["operationTimeoutMs"], Value::Null);
    let next = app.deploy(&svc, "c2").await;

    let op = app.wait_final(&hanging).await;
    assert_eq!(op["status"], "CANCELLED");
    assert_eq!(op["rollback"], "NOT_NEEDED");
    assert_eq!(steps(&op)[0], ("BUILD".into(), "CANCELLED".into()));
    let log = app.log_lines(&hanging).await;
    assert!(log.contains(&"STDOUT building c1".to_owned()), "{log:#?}");
    assert!(log.contains(&"SYSTEM timed out after 1000 ms in step build: cancelling".to_owned()), "{log:#?}");
    assert_eq!(log.last().map(String::as_str), Some("SYSTEM finished: CANCELLED"));

    let next = app.wait_final(&next).await;
    assert_eq!(next["status"], "DEPLOYMENT_OK");
    assert!(next["startedAt"].as_str() >= op["finishedAt"].as_str(), "the next one waited its turn");
    app.stop().await;
}

#[tokio::test]
async fn a_step_whose_rollback_ignores_sigterm_ends_by_a_forced_cancel() {
    let app = TestApp::spawn_configured(|args| args.force_cancel_grace_ms = 500).await;
    let env = app.create_environment("production").await;
    let svc = app.create_service(&env, stubborn("web")).await;
    let op = app.deploy(&svc, "c1").await;
    app.wait_step(&env, &op, "HEALTH_CHECK", "RUNNING").await;
    let next = app.action("stop", &svc).await;

    // The answer is the operation as it ended.
    let forced = app.gql(FORCE, json!({ "id": op })).await["cancelOperation"].clone();
    assert_eq!(forced, json!({ "id": op, "status": "CANCELLED", "rollback": "FAILED" }));
    let ended = app.operation(&op).await;
    assert!(ended["finishedAt"].is_string());
    assert!(steps(&ended).contains(&("HEALTH_CHECK".into(), "CANCELLED".into())), "{ended:#}");
    let log = app.log_lines(&op).await;
    for start in [
        "SYSTEM forced cancel requested by owner: stopping the current step; what has not ended in 500 ms is abandoned",
        "SYSTEM forced end: still running 500 ms after the cancel; abandoned ",
        "SYSTEM killed and removed inst_",
        "SYSTEM left as it was: the service has no instances",
    ] {
        assert!(has_line_starting(&log, start), "missing `{start}…` in {log:#?}");
    }
    assert_eq!(log.last().map(String::as_str), Some("SYSTEM finished: CANCELLED (rollback FAILED)"));
    // The instance that ignored SIGTERM is gone, process and all.
    let killed = log.iter().find(|l| l.starts_with("SYSTEM killed and removed")).unwrap();
    let pid = killed.split("(pid ").nth(1).and_then(|rest| rest.split(')').next()).expect("a pid");
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "process {pid} still runs");
    let svc_now = app.gql(SPEC, json!({ "id": svc })).await;
    assert_eq!(svc_now["service"]["instances"], json!([]));

    // The queue moves on, and nothing writes to the finished operation.
    assert_eq!(app.wait_final(&next).await["status"], "DEPLOYMENT_OK");
    assert_eq!(app.operation(&op).await["status"], "CANCELLED");
    assert_eq!(app.log_lines(&op).await, log);
    app.stop().await;
}

#[tokio::test]
async fn a_timed_out_operation_whose_rollback_hangs_is_ended_by_force() {
    let app = TestApp::spawn_configured(|args| args.force_cancel_grace_ms = 300).await;
    let env = app.create_environment("production").await;
    let mut input = stubborn("web");
    input["operationTimeoutMs"] = json!(3000);
    let svc = app.create_service(&env, input).await;
    let op = app.deploy(&svc, "c1").await;

    let op = app.wait_final(&op).await;
    assert_eq!(op["status"], "CANCELLED");
    assert_eq!(op["rollback"], "FAILED");
    let log = app.log_lines(op["id"].as_str().unwrap()).await;
    for start in [
        "SYSTEM timed out after 3000 ms in step ",
        "SYSTEM forced end: still running 300 ms after the cancel",
    ] {
        assert!(has_line_starting(&log, start), "missing `{start}…` in {log:#?}");
    }
    assert_eq!(log.last().map(String::as_str), Some("SYSTEM finished: CANCELLED (rollback FAILED)"));
    app.stop().await;
}

#[tokio::test]
async fn forcing_a_queued_or_responsive_operation_cancels_it_and_forcing_a_final_one_is_refused() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("staging").await;
    let svc = app
        .create_service(&env, json!({ "name": "api", "kind": "JOB", "buildCommand": "exec sleep 600" }))
        .await;
    let running = app.deploy(&svc, "c1").await;
    let queued = app.deploy(&svc, "c2").await;
    app.wait_step(&env, &running, "BUILD", "RUNNING").await;

    let data = app.gql(FORCE, json!({ "id": queued })).await;
    assert_eq!(data["cancelOperation"]["status"], "CANCELLED");
    assert_eq!(data["cancelOperation"]["rollback"], "NOT_NEEDED");
    let op = app.operation(&queued).await;
    assert!(op["startedAt"].is_null());
    assert!(steps(&op).iter().all(|(_, s)| s == "SKIPPED"));
    assert!(app.log_lines(&queued).await.contains(&"SYSTEM cancelled by owner before it started".to_owned()));

    // A build that stops when asked ends the normal way, within the grace.
    let data = app.gql(FORCE, json!({ "id": running })).await;
    assert_eq!(data["cancelOperation"]["status"], "CANCELLED");
    assert_eq!(data["cancelOperation"]["rollback"], "NOT_NEEDED");
    let log = app.log_lines(&running).await;
    assert!(!has_line_starting(&log, "SYSTEM forced end"), "{log:#?}");
    assert_eq!(log.last().map(String::as_str), Some("SYSTEM finished: CANCELLED"));

    for id in [&queued, &running] {
        assert_eq!(app.error_code(FORCE, json!({ "id": id })).await, "INVALID_TRANSITION");
    }
    app.stop().await;
}

#[tokio::test]
async fn operation_timeouts_outside_one_ms_to_one_day_are_bad_user_input() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("staging").await;
    let create = "mutation($e: ID!, $t: Int) { createService(input: { environmentId: $e, name: \"api\", kind: JOB, operationTimeoutMs: $t }) { id } }";
    for bad in [0, -1, 86_400_001] {
        let code = app.error_code(create, json!({ "e": env, "t": bad })).await;
        assert_eq!(code, "BAD_USER_INPUT", "{bad}");
    }
    let svc = app.create_service(&env, json!({ "name": "api", "kind": "JOB" })).await;
    let spec = app.gql(SPEC, json!({ "id": svc })).await;
    assert_eq!(spec["service"]["spec"]["operationTimeoutMs"], Value::Null, "defaults unless set");
    let update = "mutation($s: ID!, $t: Int) { updateService(input: { serviceId: $s, operationTimeoutMs: $t }) { id } }";
    let body = app.post(update, json!({ "s": svc, "t": 0 })).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("operationTimeoutMs"), "{body:#}");
    app.stop().await;
}
