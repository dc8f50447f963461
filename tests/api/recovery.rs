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
    let build = format!("touch '{}'; exec sleep 120", marker.display());
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
        if batch.to_string().contains("$ touch") && marker.exists() {
            break;
        }
    }
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
    assert!(!orphan_alive(&marker), "the orphaned build was stopped");

    app.gql(
        "mutation($s: ID!) { updateService(input: { serviceId: $s, buildCommand: \"echo fixed\" }) { id } }",
        json!({ "s": svc }),
    )
    .await;
    let again = app.deploy(&svc, "c2").await;
    assert_eq!(app.wait_final(&again).await["status"], "DEPLOYMENT_OK");
    app.stop().await;
}

/// Whether a `sleep 120` started by the killed server's build still runs.
fn orphan_alive(marker: &std::path::Path) -> bool {
    let owner = format!(
        "OPSGRAPH_OWNER={}",
        std::fs::canonicalize(marker.with_file_name("opsgraph.redb")).unwrap().display()
    );
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
