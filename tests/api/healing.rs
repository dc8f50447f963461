//! Monitoring and self-healing with real processes: what it finds, the
//! platform redeploys it makes, back-off, giving up, and the recovery
//! queue's limit under a mass failure.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::helpers::TestApp;

const EVENTS: &str = "subscription($e: ID!) { operationEvents(environmentId: $e) {
  kind status operation { id type trigger { kind source reason author { name } } } } }";
const HEALING: &str = "query($s: ID!) { service(id: $s) {
  healing { state redeploysInARow lastFinding gaveUpReason }
  instances { id pid status current } } }";

/// A service that runs `start` with monitoring every 50 ms and the given
/// monitoring settings; deployed and running.
async fn monitored(app: &TestApp, env: &str, name: &str, start: &str, monitoring: Value) -> String {
    let mut settings = json!({ "intervalMs": 50, "backoffMs": 50 });
    settings.as_object_mut().unwrap().extend(monitoring.as_object().unwrap().clone());
    let svc = app
        .create_service(
            env,
            json!({ "name": name, "kind": "APPLICATION", "startCommand": start,
                    "healthCheck": { "graceMs": 50, "timeoutMs": 3000 }, "stopGraceMs": 300,
                    "monitoring": settings }),
        )
        .await;
    let op = app.deploy(&svc, "c1").await;
    assert_eq!(app.wait_final(&op).await["status"], "DEPLOYMENT_OK");
    svc
}

/// Waits for the next operation the platform queues in the environment and
/// returns it as the event showed it.
async fn next_platform_operation(app: &TestApp, env: &str) -> Value {
    let mut events = app.subscribe(EVENTS, json!({ "e": env })).await;
    while let Some(data) = events.next().await {
        let event = &data["operationEvents"];
        if event["kind"] == "QUEUED" && event["operation"]["trigger"]["kind"] == "PLATFORM" {
            return event["operation"].clone();
        }
    }
    panic!("the event feed ended")
}

async fn healing(app: &TestApp, svc: &str) -> Value {
    app.gql(HEALING, json!({ "s": svc })).await["service"].clone()
}

fn kill(pid: u64) {
    let pid = nix::unistd::Pid::from_raw(pid as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
}

#[tokio::test]
async fn a_killed_instance_makes_the_platform_redeploy_with_unreachable_and_the_evidence() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("production").await;
    let svc = monitored(&app, &env, "worker", "exec sleep 600", json!({})).await;
    let before = healing(&app, &svc).await;
    assert_eq!(before["healing"]["state"], "WATCHING");
    let instance = before["instances"][0].clone();

    let platform =
        tokio::join!(next_platform_operation(&app, &env), async { kill(instance["pid"].as_u64().unwrap()) })
            .0;
    assert_eq!(platform["type"], "REDEPLOY");
    assert_eq!(
        platform["trigger"],
        json!({ "kind": "PLATFORM", "source": "MONITORING", "reason": "UNREACHABLE", "author": null })
    );
    let id = platform["id"].as_str().unwrap();
    assert_eq!(app.wait_final(id).await["status"], "DEPLOYMENT_OK");
    let evidence =
        format!("SYSTEM monitoring: instance {} was killed by a signal", instance["id"].as_str().unwrap());
    assert!(app.log_lines(id).await.contains(&evidence), "{:#?}", app.log_lines(id).await);

    let after = healing(&app, &svc).await;
    assert_eq!(after["healing"]["redeploysInARow"], 1);
    let current: Vec<&Value> =
        after["instances"].as_array().unwrap().iter().filter(|i| i["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["status"], "RUNNING");
    assert_ne!(current[0]["id"], instance["id"], "a new instance replaced the killed one");
    let recovery =
        app.gql("{ recovery { queued running affected recovered shareRecovered } }", json!({})).await;
    assert_eq!(
        recovery["recovery"],
        json!({ "queued": 0, "running": 0, "affected": 1, "recovered": 1, "shareRecovered": 1.0 })
    );
    app.stop().await;
}

#[tokio::test]
async fn a_probe_that_hangs_gives_timeout_and_monitoring_gives_up_at_the_limit() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("production").await;
    let port = crate::helpers::free_port();
    // Accepts connections (the deploy's TCP check passes) but never answers.
    let start = format!(
        "exec python3 -c 'import socket,time\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((\"127.0.0.1\", {port})); s.listen(64)\nwhile True: time.sleep(1)'"
    );
    let svc = app.create_service(
        &env,
        json!({ "name": "api", "kind": "APPLICATION", "startCommand": start, "port": port,
                "healthCheck": { "timeoutMs": 3000, "graceMs": 50 }, "stopGraceMs": 300,
                "monitoring": { "intervalMs": 50, "probeHttpPath": "/health", "probeTimeoutMs": 200, "maxRedeploys": 1, "backoffMs": 50 } }),
    ).await;
    let platform = tokio::join!(next_platform_operation(&app, &env), async {
        let op = app.deploy(&svc, "c1").await;
        assert_eq!(app.wait_final(&op).await["status"], "DEPLOYMENT_OK");
    })
    .0;
    assert_eq!(platform["trigger"]["reason"], "TIMEOUT");
    let id = platform["id"].as_str().unwrap();
    app.wait_final(id).await;
    let log = app.log_lines(id).await;
    assert!(
        log.iter().any(|l| l.contains("did not answer the probe GET /health: no answer within 200 ms")),
        "{log:#?}"
    );

    // The redeployed instance hangs too: after one redeploy, it gives up.
    let line = app.wait_service_line(&svc, "monitoring gave up").await;
    assert!(line.contains("after 1 platform redeploys in a row"), "{line}");
    let state = healing(&app, &svc).await["healing"].clone();
    assert_eq!(state["state"], "GAVE_UP");
    assert!(state["gaveUpReason"].as_str().unwrap().contains("GET /health"), "{state}");
    // A person deploying again lets monitoring try again.
    let op = app.deploy(&svc, "c2").await;
    app.wait_final(&op).await;
    assert_ne!(healing(&app, &svc).await["healing"]["state"], "GAVE_UP");
    app.stop().await;
}

#[tokio::test]
async fn a_data_directory_over_its_quota_gives_disk_full() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("production").await;
    let start = "head -c 3000000 /dev/zero > \"$DATA_DIR/blob\"; exec sleep 600";
    let platform = tokio::join!(next_platform_operation(&app, &env), async {
        monitored(&app, &env, "db-ish", start, json!({ "diskQuotaMb": 1, "maxRedeploys": 1 })).await
    })
    .0;
    assert_eq!(platform["trigger"]["reason"], "DISK_FULL");
    let id = platform["id"].as_str().unwrap();
    app.wait_final(id).await;
    let log = app.log_lines(id).await;
    assert!(
        log.iter().any(|l| l.contains("the data directory uses 2 MB, over its quota of 1 MB")),
        "{log:#?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_crash_looping_service_is_redeployed_with_back_off_and_left_at_the_limit() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("production").await;
    let svc =
        monitored(&app, &env, "flaky", "sleep 0.3; exit 3", json!({ "maxRedeploys": 3, "backoffMs": 100 }))
            .await;

    let line = app.wait_service_line(&svc, "monitoring gave up").await;
    assert!(line.contains("after 3 platform redeploys in a row"), "{line}");
    assert!(line.contains("exited with status 3"), "{line}");
    let ops =
        app.gql("{ operations(first: 50) { nodes { type trigger { kind reason } } } }", json!({})).await;
    let platform: Vec<&Value> = ops["operations"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["trigger"]["kind"] == "PLATFORM")
        .collect();
    assert_eq!(platform.len(), 3, "{platform:#?}");
    assert!(platform.iter().all(|o| o["type"] == "REDEPLOY" && o["trigger"]["reason"] == "UNREACHABLE"));
    let state = healing(&app, &svc).await;
    assert_eq!(state["healing"]["state"], "GAVE_UP");
    assert_eq!(state["healing"]["redeploysInARow"], 3);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_every_instance_of_20_services_recovers_all_within_the_recovery_limit() {
    const SERVICES: usize = 20;
    let app = TestApp::spawn_configured(|args| args.recovery_concurrency = 2).await;
    let env = app.create_environment("production").await;
    let mut services = Vec::new();
    for n in 0..SERVICES {
        services.push(monitored(&app, &env, &format!("svc-{n}"), "exec sleep 600", json!({})).await);
    }
    let mut pids = Vec::new();
    for svc in &services {
        pids.push(healing(&app, svc).await["instances"][0]["pid"].as_u64().unwrap());
    }

    let mut events = app.subscribe(EVENTS, json!({ "e": env })).await;
    pids.into_iter().for_each(kill);
    let (mut in_flight, mut most, mut done) = (HashSet::new(), 0, 0);
    while done < SERVICES {
        let data = events.next().await.unwrap();
        let event = &data["operationEvents"];
        let op = event["operation"]["id"].as_str().unwrap().to_owned();
        if event["operation"]["trigger"]["kind"] != "PLATFORM" {
            continue;
        }
        if event["kind"] == "QUEUED" {
            in_flight.insert(op.clone());
        }
        if ["DEPLOYMENT_OK", "DEPLOYMENT_ERROR", "BUILDING_ERROR", "CANCELLED"]
            .contains(&event["status"].as_str().unwrap())
            && in_flight.remove(&op)
        {
            assert_eq!(event["status"], "DEPLOYMENT_OK");
            done += 1;
        }
        most = most.max(in_flight.len());
    }
    assert!(most <= 2, "{most} platform redeploys ran at once");
    assert_eq!(most, 2, "the limit was used");
    // The queue's progress, watched: it ends with every service back.
    let mut progress = app
        .subscribe(
            "subscription { recoveryProgress { running affected recovered shareRecovered } }",
            json!({}),
        )
        .await;
    let mut last = Value::Null;
    while last["recovered"] != SERVICES {
        last = progress.next().await.unwrap()["recoveryProgress"].clone();
        assert_eq!(last["affected"], SERVICES, "{last}");
    }
    assert_eq!(
        last,
        json!({ "running": 0, "affected": SERVICES, "recovered": SERVICES, "shareRecovered": 1.0 })
    );
    app.stop().await;
}
