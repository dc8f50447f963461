//! The status feed: every running and deployment status change of an
//! environment, replayed from a cursor and followed live.

use serde_json::{Value, json};

use crate::helpers::{Subscription, TestApp};

const CHANGES: &str = "subscription($e: ID!, $after: String) {
  statusChanges(environmentId: $e, after: $after) {
    cursor kind subject subjectId serviceId runningStatus previousRunningStatus deploymentStatus operationId } }";

/// Reads changes until `done` says the last one wanted has come.
async fn read_until(sub: &mut Subscription, done: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut got = Vec::new();
    while let Some(data) = sub.next().await {
        let change = data["statusChanges"].clone();
        let last = done(&change);
        got.push(change);
        if last {
            return got;
        }
    }
    panic!("the feed ended")
}

/// `SUBJECT KIND value` lines, such as `SERVICE RUNNING STARTING<-STOPPED`.
fn lines(changes: &[Value]) -> Vec<String> {
    changes
        .iter()
        .map(|c| match c["kind"].as_str().unwrap() {
            "RUNNING" => format!(
                "{} RUNNING {}<-{}",
                c["subject"].as_str().unwrap(),
                c["runningStatus"].as_str().unwrap(),
                c["previousRunningStatus"].as_str().unwrap_or("none")
            ),
            _ => format!(
                "{} DEPLOYMENT {}",
                c["subject"].as_str().unwrap(),
                c["deploymentStatus"].as_str().unwrap()
            ),
        })
        .collect()
}

fn is(subject: &'static str, kind: &'static str, value: &'static str) -> impl Fn(&Value) -> bool {
    move |c| {
        c["subject"] == subject
            && c["kind"] == kind
            && (c["runningStatus"] == value || c["deploymentStatus"] == value)
    }
}

#[tokio::test]
async fn status_changes_replay_from_a_cursor_and_follow_live_without_gap_or_repeat() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("production").await;
    let svc = app
        .create_service(
            &env,
            json!({ "name": "worker", "kind": "APPLICATION", "startCommand": "exec sleep 60",
                    "healthCheck": { "graceMs": 50 }, "stopGraceMs": 500 }),
        )
        .await;
    let op = app.deploy(&svc, "c1").await;
    assert_eq!(app.wait_final(&op).await["status"], "DEPLOYMENT_OK");

    let mut sub = app.subscribe(CHANGES, json!({ "e": env })).await;
    let all = read_until(&mut sub, is("ENVIRONMENT", "DEPLOYMENT", "DEPLOYMENT_OK")).await;
    let got = lines(&all);
    for expected in [
        "SERVICE DEPLOYMENT QUEUED",
        "ENVIRONMENT DEPLOYMENT QUEUED",
        "SERVICE DEPLOYMENT DEPLOYING",
        "INSTANCE RUNNING STOPPED<-none",
        "INSTANCE RUNNING STARTING<-STOPPED",
        "SERVICE RUNNING STARTING<-STOPPED",
        "ENVIRONMENT RUNNING STARTING<-STOPPED",
        "INSTANCE RUNNING RUNNING<-STARTING",
        "SERVICE RUNNING RUNNING<-STARTING",
        "ENVIRONMENT RUNNING RUNNING<-STARTING",
        "SERVICE DEPLOYMENT DEPLOYMENT_OK",
    ] {
        assert!(got.contains(&expected.to_owned()), "missing {expected}: {got:#?}");
    }
    let position = |line: &str| got.iter().position(|l| l == line).unwrap();
    assert!(position("SERVICE RUNNING STARTING<-STOPPED") < position("SERVICE RUNNING RUNNING<-STARTING"));
    assert_eq!(
        all.iter().filter(|c| c["operationId"] == op).count(),
        got.iter().filter(|l| l.contains("DEPLOYMENT ")).count()
    );
    assert!(all.iter().all(|c| c["serviceId"] == svc || c["subject"] == "ENVIRONMENT"));

    // Resuming after the third change gives exactly the rest.
    let mut resumed = app.subscribe(CHANGES, json!({ "e": env, "after": all[2]["cursor"] })).await;
    let rest = read_until(&mut resumed, is("ENVIRONMENT", "DEPLOYMENT", "DEPLOYMENT_OK")).await;
    assert_eq!(rest, all[3..]);

    // Live: stopping the service.
    let stop = app.action("stop", &svc).await;
    let live = read_until(&mut sub, is("ENVIRONMENT", "RUNNING", "STOPPED")).await;
    let live = lines(&live);
    for expected in [
        "SERVICE DEPLOYMENT QUEUED",
        "SERVICE RUNNING STOPPED<-STOPPING",
        "ENVIRONMENT RUNNING STOPPED<-STOPPING",
    ] {
        assert!(live.contains(&expected.to_owned()), "missing {expected}: {live:#?}");
    }
    app.wait_final(&stop).await;
    let bad = app.post(CHANGES.replace("subscription", "query").as_str(), json!({})).await;
    assert!(bad["errors"].is_array());
    app.stop().await;
}
