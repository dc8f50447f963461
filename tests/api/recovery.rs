//! A server that stops mid-deploy (gracefully, or killed) and starts again.

use std::process::Stdio;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::helpers::{PATIENCE, TestApp};

/// The `opsgraph` binary on a random port over a database file.
struct Binary {
    child: tokio::process::Child,
    address: String,
    port: u16,
    /// The owner token its first start printed.
    token: String,
}

impl Binary {
    /// Starts it over a new file and reads its address and owner token
    /// from the lines it prints; the token is kept beside the file (where
    /// `TestApp::spawn_in` finds it).
    async fn start(db: &std::path::Path) -> Self {
        assert!(!db.exists(), "the binary starts on a new file");
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
        let address = line.split_whitespace().find(|w| w.starts_with("http://")).expect("address");
        let address = address.trim_end_matches('/').to_owned();
        let port = address.rsplit(':').next().unwrap().parse().unwrap();
        let token = loop {
            let line = tokio::time::timeout(PATIENCE, lines.next_line()).await.unwrap().unwrap().expect("token");
            if let Some(token) = line.strip_prefix("OPSGRAPH_TOKEN=") {
                break token.to_owned();
            }
        };
        std::fs::write(db.parent().unwrap().join("owner.token"), &token).unwrap();
        Self { child, address, port, token }
    }

    /// Runs a request that must succeed; returns the `id` of its one field.
    async fn id(&self, query: &str, variables: serde_json::Value) -> String {
        let body: serde_json::Value = reqwest::Client::new()
            .post(format!("{}/graphql", self.address))
            .bearer_auth(&self.token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(body.get("errors").is_none(), "{body:#}");
        let data = body["data"].as_object().unwrap();
        data.values().next().unwrap()["id"].as_str().unwrap().to_owned()
    }

    /// An environment with one service made of `fields` (GraphQL input that
    /// may use the variables declared in `declared`).
    async fn service(&self, declared: &str, fields: &str, variables: serde_json::Value) -> String {
        let env =
            self.id("mutation { createEnvironment(input: { name: \"prod\" }) { id } }", json!({})).await;
        let mut variables = variables;
        variables["e"] = json!(env);
        let query = format!(
            "mutation($e: ID!{declared}) {{ createService(input: {{ environmentId: $e, {fields} }}) {{ id }} }}"
        );
        self.id(&query, variables).await
    }

    async fn deploy(&self, svc: &str, commit: &str) -> String {
        let query = "mutation($s: ID!, $c: String!) { deploy(input: { serviceId: $s, commit: $c }) { id } }";
        self.id(query, json!({ "s": svc, "c": commit })).await
    }

    /// Follows an operation's log until `until` says stop (or it ends).
    async fn follow(&self, op: &str, mut until: impl FnMut(&serde_json::Value) -> bool) {
        let query = "subscription($id: ID!) { operationLogs(operationId: $id) { lines { text } } }";
        let mut watch = crate::helpers::Subscription::open(self.port, &self.token, query, json!({ "id": op })).await;
        while let Some(batch) = watch.next().await {
            if until(&batch["operationLogs"]["lines"]) {
                return;
            }
        }
    }
}

#[tokio::test]
async fn a_server_killed_mid_deploy_ends_the_operation_on_restart_and_accepts_a_new_deploy() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("opsgraph.redb");
    let marker = dir.path().join("build-started");
    let mut server = Binary::start(&db).await;
    // c1's build hangs until the server is killed; later commits build at once.
    let build = format!(
        "if [ $COMMIT = c1 ]; then touch '{}'; echo building c1; exec sleep 120; fi; echo built $COMMIT",
        marker.display()
    );
    let svc = server
        .service(", $b: String!", "name: \"api\", kind: JOB, buildCommand: $b", json!({ "b": build }))
        .await;
    let op = server.deploy(&svc, "c1").await;
    let queued = server.deploy(&svc, "c2").await;
    server.follow(&op, |lines| lines.as_array().unwrap().iter().any(|l| l["text"] == "building c1")).await;
    assert!(marker.exists(), "the build started");
    server.child.kill().await.unwrap();

    let app = TestApp::spawn_in(std::sync::Arc::new(dir)).await;
    let ended = app.operation(&op).await;
    assert_eq!(ended["status"], "BUILDING_ERROR", "{ended:#}");
    assert_eq!(ended["rollback"], "NOT_NEEDED");
    let log = app.log_lines(&op).await;
    let interrupted = "SYSTEM interrupted: the opsgraph server stopped while this operation was running";
    assert!(log.iter().any(|l| l == interrupted), "{log:#?}");
    assert!(!has_processes(&db), "the orphaned build was stopped");

    // What was queued behind it runs now, and a new deploy is accepted.
    let resumed = app.wait_final(&queued).await;
    assert_eq!(resumed["status"], "DEPLOYMENT_OK", "{resumed:#}");
    let again = app.deploy(&svc, "c3").await;
    assert_eq!(app.wait_final(&again).await["status"], "DEPLOYMENT_OK");
    assert!(app.log_lines(&again).await.contains(&"STDOUT built c3".to_owned()));
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
    let mut server = Binary::start(&db).await;
    let fields = "name: \"web\", kind: APPLICATION, startCommand: \"sleep 300 & exec sleep 300\", instances: 2, \
                  healthCheck: { graceMs: 50 }";
    let svc = server.service("", fields, json!({})).await;
    let op = server.deploy(&svc, "c1").await;
    server.follow(&op, |_| false).await;
    assert!(has_processes(&db), "instances run before the signal");

    let pid = nix::unistd::Pid::from_raw(server.child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(PATIENCE, server.child.wait()).await.unwrap().unwrap();
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
    app.wait_step(&env, &op, "HEALTH_CHECK", "RUNNING").await;
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
