//! Maintenance campaigns with real processes: the concurrency limit, the
//! trigger and log line of each redeploy, progress, filters and input
//! errors.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::helpers::TestApp;

const START: &str = "mutation($input: StartMaintenanceInput!) { startMaintenance(input: $input) {
  id status total queued running succeeded failed skipped finishedAt } }";
const PROGRESS: &str = "subscription($id: ID!) { maintenanceProgress(id: $id) {
  id status total queued running succeeded failed skipped finishedAt } }";
const EVENTS: &str = "subscription($e: ID!) { operationEvents(environmentId: $e) {
  kind status operation { id trigger { kind reason } } } }";
const HISTORY: &str = "query($s: ID!) { activity(serviceId: $s, first: 100) { nodes {
  id type status trigger { kind source reason author { name } } } } }";
const FINAL: [&str; 4] = ["DEPLOYMENT_OK", "DEPLOYMENT_ERROR", "BUILDING_ERROR", "CANCELLED"];

/// A long-running service of `kind`; deployed and running unless `deploy`
/// is false.
async fn service(app: &TestApp, env: &str, name: &str, kind: &str, deploy: bool) -> String {
    let svc = app
        .create_service(
            env,
            json!({ "name": name, "kind": kind, "startCommand": "exec sleep 600",
                    "healthCheck": { "graceMs": 50 }, "stopGraceMs": 300 }),
        )
        .await;
    if deploy {
        let op = app.deploy(&svc, "c1").await;
        assert_eq!(app.wait_final(&op).await["status"], "DEPLOYMENT_OK");
    }
    svc
}

async fn start(app: &TestApp, input: Value) -> Value {
    app.gql(START, json!({ "input": input })).await["startMaintenance"].clone()
}

/// Follows the campaign until it completes; returns its last state.
async fn completed(app: &TestApp, id: &str) -> Value {
    let mut progress = app.subscribe(PROGRESS, json!({ "id": id })).await;
    let mut last = Value::Null;
    while let Some(data) = progress.next().await {
        last = data["maintenanceProgress"].clone();
    }
    assert_eq!(last["status"], "COMPLETED", "{last}");
    last
}

/// The service's `MAINTENANCE` operations, newest first.
async fn maintenance_operations(app: &TestApp, svc: &str) -> Vec<Value> {
    let data = app.gql(HISTORY, json!({ "s": svc })).await;
    data["activity"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["trigger"]["reason"] == "MAINTENANCE")
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maintenance_campaign_with_concurrency_2_never_runs_more_than_two_at_once() {
    const SERVICES: usize = 6;
    let app = TestApp::spawn().await;
    let env = app.create_environment("production").await;
    let mut services = Vec::new();
    for n in 0..SERVICES {
        services.push(service(&app, &env, &format!("svc-{n}"), "APPLICATION", true).await);
    }
    service(&app, &env, "never-deployed", "APPLICATION", false).await;

    let mut events = app.subscribe(EVENTS, json!({ "e": env })).await;
    let input = json!({ "environmentId": env, "description": "kernel patch", "concurrency": 2 });
    let campaign = start(&app, input).await;
    assert_eq!(campaign["status"], "RUNNING");
    assert_eq!((campaign["total"].clone(), campaign["skipped"].clone()), (json!(SERVICES), json!(1)));
    let id = campaign["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("mnt_"), "{id}");

    let (mut in_flight, mut most, mut done) = (HashSet::new(), 0, 0);
    while done < SERVICES {
        let data = events.next().await.expect("the event feed goes on");
        let event = &data["operationEvents"];
        if event["operation"]["trigger"]["reason"] != "MAINTENANCE" {
            continue;
        }
        let op = event["operation"]["id"].as_str().unwrap().to_owned();
        if event["kind"] == "QUEUED" {
            in_flight.insert(op.clone());
        }
        if FINAL.contains(&event["status"].as_str().unwrap()) && in_flight.remove(&op) {
            assert_eq!(event["status"], "DEPLOYMENT_OK", "{event}");
            done += 1;
        }
        most = most.max(in_flight.len());
    }
    assert!(most <= 2, "{most} maintenance redeploys were in flight at once");
    assert_eq!(most, 2, "the campaign used its concurrency");

    let last = completed(&app, &id).await;
    assert_eq!(
        (&last["total"], &last["succeeded"], &last["failed"], &last["skipped"]),
        (&json!(SERVICES), &json!(SERVICES), &json!(0), &json!(1))
    );
    assert_eq!((&last["queued"], &last["running"]), (&json!(0), &json!(0)));
    assert!(last["finishedAt"].is_string(), "{last}");

    for svc in &services {
        let ops = maintenance_operations(&app, svc).await;
        assert_eq!(ops.len(), 1, "{svc}: {ops:#?}");
        assert_eq!(ops[0]["type"], "REDEPLOY");
        assert_eq!(ops[0]["status"], "DEPLOYMENT_OK");
        assert_eq!(
            ops[0]["trigger"],
            json!({ "kind": "PLATFORM", "source": "MONITORING", "reason": "MAINTENANCE", "author": null })
        );
        let log = app.log_lines(ops[0]["id"].as_str().unwrap()).await;
        let line = format!("SYSTEM maintenance campaign {id} started by ");
        assert!(log.iter().any(|l| l.starts_with(&line) && l.ends_with(": kernel patch")), "{svc}: {log:#?}");
    }
    let listed = app.gql("{ maintenanceCampaigns { id status succeeded } }", json!({})).await;
    assert_eq!(
        listed["maintenanceCampaigns"],
        json!([{ "id": id, "status": "COMPLETED", "succeeded": SERVICES }])
    );
    app.stop().await;
}

#[tokio::test]
async fn a_campaign_filtered_by_services_or_kinds_redeploys_only_those() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("production").await;
    let picked = service(&app, &env, "picked", "APPLICATION", true).await;
    let left = service(&app, &env, "left", "APPLICATION", true).await;
    let db = service(&app, &env, "db", "DATABASE", true).await;

    let by_id = start(&app, json!({ "serviceIds": [picked], "description": "one", "concurrency": 1 })).await;
    assert_eq!(by_id["total"], 1);
    let first = completed(&app, by_id["id"].as_str().unwrap()).await;
    assert_eq!(first["succeeded"], 1);
    let by_kind = start(
        &app,
        json!({ "environmentId": env, "kinds": ["DATABASE"], "description": "two", "concurrency": 3 }),
    )
    .await;
    assert_eq!(by_kind["total"], 1);
    assert_eq!(completed(&app, by_kind["id"].as_str().unwrap()).await["succeeded"], 1);

    assert_eq!(maintenance_operations(&app, &picked).await.len(), 1);
    assert_eq!(maintenance_operations(&app, &db).await.len(), 1);
    assert!(maintenance_operations(&app, &left).await.is_empty());
    let listed = app.gql("{ maintenanceCampaigns { id } }", json!({})).await;
    assert_eq!(
        listed["maintenanceCampaigns"],
        json!([{ "id": by_kind["id"] }, { "id": by_id["id"] }]),
        "newest first"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_campaign_that_matches_nothing_completes_at_once() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("empty").await;
    let campaign =
        start(&app, json!({ "environmentId": env, "description": "nothing", "concurrency": 4 })).await;
    assert_eq!((&campaign["status"], &campaign["total"]), (&json!("COMPLETED"), &json!(0)));
    assert!(campaign["finishedAt"].is_string(), "{campaign}");
    let last = completed(&app, campaign["id"].as_str().unwrap()).await;
    assert_eq!(last, campaign);
    app.stop().await;
}

#[tokio::test]
async fn bad_maintenance_input_is_bad_user_input_naming_the_field_and_unknown_ids_are_not_found() {
    let app = TestApp::spawn().await;
    for (input, field) in [
        (json!({ "description": "patch", "concurrency": 0 }), "concurrency"),
        (json!({ "description": "patch", "concurrency": 65 }), "concurrency"),
        (json!({ "description": "", "concurrency": 2 }), "description"),
        (json!({ "description": "x".repeat(501), "concurrency": 2 }), "description"),
    ] {
        let body = app.post(START, json!({ "input": input })).await;
        assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{body:#}");
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(field), "{message}");
    }
    for input in [
        json!({ "environmentId": "env_999", "description": "patch", "concurrency": 2 }),
        json!({ "serviceIds": ["svc_999"], "description": "patch", "concurrency": 2 }),
    ] {
        assert_eq!(app.error_code(START, json!({ "input": input })).await, "NOT_FOUND");
    }
    let missing = app.gql("{ maintenanceCampaign(id: \"mnt_999\") { id } }", json!({})).await;
    assert_eq!(missing["maintenanceCampaign"], Value::Null);
    app.stop().await;
}
