//! Incidents that open themselves: a mass instance failure (many instance
//! processes killed at once) opens a draft incident that follows the
//! recovery and resolves; a single failure does not.

use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::status_page::{component, get, statuses};

/// A service that runs `exec sleep 600` with monitoring every 50 ms;
/// deployed and running.
async fn monitored(app: &TestApp, env: &str, name: &str) -> String {
    let svc = app
        .create_service(
            env,
            json!({ "name": name, "kind": "APPLICATION", "startCommand": "exec sleep 600",
                    "healthCheck": { "graceMs": 50 }, "stopGraceMs": 300,
                    "monitoring": { "intervalMs": 50, "backoffMs": 50 } }),
        )
        .await;
    let op = app.deploy(&svc, "c1").await;
    assert_eq!(app.wait_final(&op).await["status"], "DEPLOYMENT_OK");
    svc
}

/// Kills the running instance of each service with SIGKILL, all at once.
async fn kill_instances(app: &TestApp, services: &[String]) {
    let mut pids = Vec::new();
    for svc in services {
        let data = app
            .gql("query($s: ID!) { service(id: $s) { instances { pid current } } }", json!({ "s": svc }))
            .await;
        let current =
            data["service"]["instances"].as_array().unwrap().iter().find(|i| i["current"] == true).cloned();
        pids.push(current.expect("a current instance")["pid"].as_i64().expect("a pid"));
    }
    for pid in pids {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL)
            .unwrap();
    }
}

/// The id of the next operation the platform queues in the environment.
async fn next_platform_operation(app: &TestApp, env: &str) -> String {
    let query = "subscription($e: ID!) { operationEvents(environmentId: $e) { kind operation { id trigger { kind } } } }";
    let mut events = app.subscribe(query, json!({ "e": env })).await;
    while let Some(data) = events.next().await {
        let event = &data["operationEvents"];
        if event["kind"] == "QUEUED" && event["operation"]["trigger"]["kind"] == "PLATFORM" {
            return event["operation"]["id"].as_str().unwrap().to_owned();
        }
    }
    panic!("the event feed ended")
}

/// Follows the editors' feed until an incident resolves; returns the events.
async fn until_resolved(app: &TestApp) -> Vec<Value> {
    let query =
        "subscription { incidentUpdates(includeDrafts: true) { kind message status incident { id } } }";
    let mut feed = app.subscribe(query, json!({})).await;
    let mut events = Vec::new();
    while let Some(data) = feed.next().await {
        let event = data["incidentUpdates"].clone();
        let done = event["kind"] == "INCIDENT_RESOLVED";
        events.push(event);
        if done {
            return events;
        }
    }
    panic!("the feed ended: {events:#?}")
}

#[tokio::test]
async fn a_mass_instance_failure_opens_an_incident_that_follows_recovery_and_resolves() {
    let app = TestApp::spawn_configured(|args| {
        args.auto_incident_share_percent = 50;
        args.auto_incident_min_services = 3;
        args.auto_incident_window_ms = 600_000;
    })
    .await;
    component(&app, "Applications", None).await;
    let env = app.create_environment("production").await;
    let names = ["billing-worker-7", "ledger-sync-3", "invoice-mailer-2", "fx-rates-9"];
    let mut services = Vec::new();
    for name in names {
        services.push(monitored(&app, &env, name).await);
    }

    // One service failing alone is self-healing, not an incident.
    let (redeploy, ()) =
        tokio::join!(next_platform_operation(&app, &env), kill_instances(&app, &services[..1]));
    assert_eq!(app.wait_final(&redeploy).await["status"], "DEPLOYMENT_OK");
    let drafts = "{ incidents(includeDrafts: true) { nodes { id } } }";
    assert_eq!(app.gql(drafts, json!({})).await["incidents"]["nodes"], json!([]));

    // Every instance dies at once (a host lost its power).
    let (events, ()) = tokio::join!(until_resolved(&app), kill_instances(&app, &services));
    assert_eq!(events[0]["kind"], "INCIDENT_OPENED", "{events:#?}");
    assert!(events[0]["message"].as_str().unwrap().starts_with("Monitoring redeployed"), "{events:#?}");
    let id = events[0]["incident"]["id"].as_str().unwrap().to_owned();
    let progress: Vec<&str> = events
        .iter()
        .filter(|e| e["kind"] == "INCIDENT_UPDATED")
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert!(!progress.is_empty() && progress.iter().all(|m| m.starts_with("Recovery at ")), "{events:#?}");
    let last = events.last().unwrap()["message"].as_str().unwrap();
    assert!(last.starts_with("All ") && last.contains("affected services are running again"), "{last}");

    let query =
        "query($i: ID!) { incident(id: $i, includeDrafts: true) { status automatic openedBy publishedAt
        components { component { name } status }
        affectedServices { name kind recovered service { id } }
        updates { status } summary { peakImpact durationMs text } } }";
    let incident = app.gql(query, json!({ "i": id })).await["incident"].clone();
    assert_eq!((incident["status"].clone(), incident["automatic"].clone()), (json!("RESOLVED"), json!(true)));
    assert_eq!(
        (incident["openedBy"].clone(), incident["publishedAt"].clone()),
        (json!("platform"), Value::Null)
    );
    assert_eq!(
        incident["components"],
        json!([{ "component": { "name": "Applications" }, "status": "OPERATIONAL" }])
    );
    let affected = incident["affectedServices"].as_array().unwrap();
    assert!(affected.len() >= 3, "{incident:#}");
    assert!(affected.iter().all(|s| s["recovered"] == true && names.contains(&s["name"].as_str().unwrap())));
    assert_eq!(statuses(&incident).last(), Some(&"RESOLVED"));
    let summary = &incident["summary"];
    assert!(summary["peakImpact"].as_str().unwrap().contains("affected services down at once"), "{summary}");
    assert!(summary["durationMs"].as_i64().unwrap() >= 0);

    // A draft until a person publishes it; then public, without the names.
    assert_eq!(app.gql("{ incidents { nodes { id } } }", json!({})).await["incidents"]["nodes"], json!([]));
    let edit = "mutation($i: ID!) { editIncidentSummary(input: { incidentId: $i, text: \"A host lost power; all services came back.\" }) { summary { editedBy } } }";
    assert_eq!(
        app.gql(edit, json!({ "i": id })).await["editIncidentSummary"]["summary"]["editedBy"],
        "owner"
    );
    let publish_summary = "mutation($i: ID!) { publishIncidentSummary(input: { incidentId: $i }) { id } }";
    app.assert_error(publish_summary, json!({ "i": id }), "INVALID_TRANSITION", "publish the incident").await;
    app.gql("mutation($i: ID!) { publishIncident(input: { incidentId: $i }) { id } }", json!({ "i": id }))
        .await;
    app.gql(publish_summary, json!({ "i": id })).await;
    let public = app
        .gql("{ incidents { nodes { id affectedServices { name } summary { text } } } }", json!({}))
        .await["incidents"]["nodes"]
        .clone();
    assert_eq!(
        public,
        json!([{ "id": id, "affectedServices": null, "summary": { "text": "A host lost power; all services came back." } }])
    );
    for path in ["/status", "/status/feed.atom"] {
        let (_, _, body) = get(&app, path).await;
        assert!(body.contains("A host lost power"), "{path}: {body}");
        assert!(names.iter().all(|n| !body.contains(n)), "{path} names a service: {body}");
    }
    app.stop().await;
}
