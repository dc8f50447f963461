//! A server that stops mid-deploy (gracefully, or killed) and starts again.

use std::process::Stdio;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::helpers::{PATIENCE, TestApp};

/// The binary, started on a random port over `db`; returns the child and
/// its address (read from the line it prints).
async fn start_binary(db: &std::path::Path) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_opsgraph"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(db)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line =
        tokio::time::timeout(PATIENCE, lines.next_line()).await.unwrap().unwrap().expect("address line");
    let address =
        line.split_whitespace().find(|w| w.starts_with("http://")).expect("address").trim_end_matches('/');
    let address = address.trim_end_matches("/ (GraphiQL)").to_owned();
    (child, address)
}

async fn post(address: &str, query: &str, variables: serde_json::Value) -> serde_json::Value {
    let body: serde_json::Value = reqwest::Client::new()
        .post(format!("{address}/graphql"))
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(body.get("errors").is_none(), "{body:#}");
    body["data"].clone()
}

#[tokio::test]
async fn a_server_killed_mid_deploy_ends_the_operation_on_restart_and_accepts_a_new_deploy() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("opsgraph.redb");
    let marker = dir.path().join("build-started");
    let (mut server, address) = start_binary(&db).await;
    let env =
        post(&address, "mutation { createEnvironment(input: { name: \"prod\" }) { id } }", json!({})).await;
    let env = env["createEnvironment"]["id"].as_str().unwrap().to_owned();
    // c1's build hangs until the server is killed; later commits build at once.
    let build = format!(
        "if [ \"$COMMIT\" = c1 ]; then touch '{}'; echo building c1; exec sleep 120; fi; echo built $COMMIT",
        marker.display()
    );
    let svc = post(
        &address,
        "mutation($e: ID!, $b: String!) { createService(input: { environmentId: $e, name: \"api\", kind: JOB, buildCommand: $b }) { id } }",
        json!({ "e": env, "b": build }),
    )
    .await["createService"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let op = post(
        &address,
        "mutation($s: ID!) { deploy(input: { serviceId: $s, commit: \"c1\" }) { id } }",
        json!({ "s": svc }),
    )
    .await["deploy"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The build has started (it created the marker): kill -9 the server.
    let mut watch = crate::helpers::Subscription::open(
        address.rsplit(':').next().unwrap().parse().unwrap(),
        "subscription($id: ID!) { operationLogs(operationId: $id) { lines { text } } }",
        json!({ "id": op }),
    )
    .await;
    while let Some(batch) = watch.next().await {
        let lines = batch["operationLogs"]["lines"].as_array().unwrap().clone();
        if lines.iter().any(|l| l["text"] == "building c1") {
            break;
        }
    }
    assert!(marker.exists(), "the build started");
    server.kill().await.unwrap();

    let app = TestApp::spawn_in(std::sync::Arc::new(dir)).await;
    let ended = app.operation(&op).await;
    assert_eq!(ended["status"], "BUILDING_ERROR", "{ended:#}");
    assert_eq!(ended["rollback"], "NOT_NEEDED");
    let log = app.log_lines(&op).await;
    assert!(
        log.contains(
            &"SYSTEM interrupted: the opsgraph server stopped while this operation was running".to_owned()
        ),
        "{log:#?}"
    );
    assert!(!has_processes(&marker.with_file_name("opsgraph.redb")), "the orphaned build was stopped");

    app.gql(
        "mutation($s: ID!) { updateService(input: { serviceId: $s, buildCommand: \"echo fixed\" }) { id } }",
        json!({ "s": svc }),
    )
    .await;
    let again = app.deploy(&svc, "c2").await;
    assert_eq!(app.wait_final(&again).await["status"], "DEPLOYMENT_OK");
    app.stop().await;
}

/// Whether any process started for the database at `db` still runs
/// (each carries the database's mark in its environment).
fn has_processes(db: &std::path::Path) -> bool {
    let owner = format!("OPSGRAPH_OWNER={}", std::fs::canonicalize(db).unwrap().display());
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        std::fs::read(e.path().join("environ"))
            .map(|env| env.split(|b| *b == 0).any(|v| v == owner.as_bytes()))
            .unwrap_or(false)
    })
}

#[tokio::test]
async fn a_graceful_shutdown_mid_deploy_stops_instances_and_restart_brings_the_service_back() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("prod").await;
    let svc = app
        .create_service(&env, json!({ "name": "worker", "kind": "APPLICATION", "startCommand": "exec sleep 120", "healthCheck": { "graceMs": 100 } }))
        .await;
    let first = app.deploy(&svc, "c1").await;
    assert_eq!(app.wait_final(&first).await["status"], "DEPLOYMENT_OK");
    app.gql("mutation($s: ID!) { updateService(input: { serviceId: $s, buildCommand: \"exec sleep 120\" }) { id } }", json!({ "s": svc }))
        .await;
    let op = app.deploy(&svc, "c2").await;
    app.wait_status(&env, &op, "BUILDING").await;
    let dir = app.dir.clone();
    app.stop().await;

    let app = TestApp::spawn_in(dir).await;
    let ended = app.operation(&op).await;
    assert_eq!(ended["status"], "BUILDING_ERROR");
    let log = app.log_lines(&op).await;
    assert!(log.iter().any(|l| l.starts_with("SYSTEM interrupted:")), "{log:#?}");

    // The platform starts the service again, on the commit it ran.
    let ops = app
        .gql(
            "query($s: ID!) { operations(filter: { serviceId: $s }, first: 1) { nodes { id type trigger { kind reason } } } }",
            json!({ "s": svc }),
        )
        .await;
    let start = &ops["operations"]["nodes"][0];
    assert_eq!(start["type"], "START");
    assert_eq!(start["trigger"], json!({ "kind": "PLATFORM", "reason": "MAINTENANCE" }));
    assert_eq!(app.wait_final(start["id"].as_str().unwrap()).await["status"], "DEPLOYMENT_OK");
    let svc = app
        .gql(
            "query($id: ID!) { service(id: $id) { currentCommit instances { status commit } } }",
            json!({ "id": svc }),
        )
        .await;
    assert_eq!(svc["service"]["instances"], json!([{ "status": "RUNNING", "commit": "c1" }]));
    app.stop().await;
}

#[tokio::test]
async fn sigterm_stops_the_binary_gracefully_with_every_instance_process() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("opsgraph.redb");
    let (mut server, address) = start_binary(&db).await;
    let env =
        post(&address, "mutation { createEnvironment(input: { name: \"prod\" }) { id } }", json!({})).await;
    let env = env["createEnvironment"]["id"].as_str().unwrap().to_owned();
    let svc = post(
        &address,
        "mutation($e: ID!) { createService(input: { environmentId: $e, name: \"web\", kind: APPLICATION, \
         startCommand: \"sleep 300 & exec sleep 300\", instances: 2, healthCheck: { graceMs: 50 } }) { id } }",
        json!({ "e": env }),
    )
    .await["createService"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let op = post(
        &address,
        "mutation($s: ID!) { deploy(input: { serviceId: $s, commit: \"c1\" }) { id } }",
        json!({ "s": svc }),
    )
    .await["deploy"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let port: u16 = address.rsplit(':').next().unwrap().parse().unwrap();
    let mut watch = crate::helpers::Subscription::open(
        port,
        "subscription($id: ID!) { operationLogs(operationId: $id) { lastSeq } }",
        json!({ "id": op }),
    )
    .await;
    while watch.next().await.is_some() {}
    assert!(has_processes(&db), "instances run before the signal");

    let pid = nix::unistd::Pid::from_raw(server.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(PATIENCE, server.wait()).await.unwrap().unwrap();
    assert!(status.success(), "exited with {status}");
    assert!(!has_processes(&db), "an instance process outlived the server");
}

#[tokio::test]
async fn a_database_interrupted_after_its_old_instance_stopped_is_started_again_on_restart() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("prod").await;
    // v1 serves its port; v2 never does, so its health check waits.
    let start = format!("if [ $COMMIT = v2 ]; then exec sleep 120; fi; {}", crate::helpers::HTTP_SERVER);
    let svc = app
        .create_service(
            &env,
            json!({ "name": "db", "kind": "DATABASE", "startCommand": start, "port": 0,
                    "healthCheck": { "timeoutMs": 60000 }, "stopGraceMs": 1000 }),
        )
        .await;
    let first = app.deploy(&svc, "v1").await;
    assert_eq!(app.wait_final(&first).await["status"], "DEPLOYMENT_OK");
    let op = app.deploy(&svc, "v2").await;
    let mut events = app
        .subscribe("subscription($e: ID!) { operationEvents(environmentId: $e) { operation { id } step { kind status } } }", json!({ "e": env }))
        .await;
    while let Some(event) = events.next().await {
        let event = &event["operationEvents"];
        if event["operation"]["id"] == op
            && event["step"] == json!({ "kind": "HEALTH_CHECK", "status": "RUNNING" })
        {
            break;
        }
    }
    let dir = app.dir.clone();
    app.stop().await;

    let app = TestApp::spawn_in(dir).await;
    let ended = app.operation(&op).await;
    assert_eq!(ended["status"], "DEPLOYMENT_ERROR");
    assert_eq!(ended["rollback"], "FAILED", "the old instance had been stopped: {ended:#}");
    let ops = app
        .gql("query($s: ID!) { operations(filter: { serviceId: $s, types: [START] }) { nodes { id trigger { reason } } } }", json!({ "s": svc }))
        .await;
    let starts = ops["operations"]["nodes"].as_array().unwrap().clone();
    assert_eq!(starts.len(), 1, "exactly one platform start: {starts:?}");
    assert_eq!(app.wait_final(starts[0]["id"].as_str().unwrap()).await["status"], "DEPLOYMENT_OK");
    let svc = app
        .gql(
            "query($id: ID!) { service(id: $id) { currentCommit instances { status commit } } }",
            json!({ "id": svc }),
        )
        .await;
    assert_eq!(svc["service"]["currentCommit"], "v1");
    assert_eq!(svc["service"]["instances"], json!([{ "status": "RUNNING", "commit": "v1" }]));
    app.stop().await;
}
