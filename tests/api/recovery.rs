//! A server that stops mid-deploy (gracefully, or killed) and starts again.

use std::process::Stdio;

use serde_json::{Value, json};
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
        Self::start_with(db, None).await
    }

    /// [`Binary::start`], logging at `debug` into `log` when given. On a
    /// file that already has its owner token kept beside it, the binary is
    /// restarted with that token.
    async fn start_with(db: &std::path::Path, log: Option<&std::path::Path>) -> Self {
        let kept = db.parent().unwrap().join("owner.token");
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_opsgraph"));
        command.args(["serve", "--listen", "127.0.0.1:0", "--db"]).arg(db).env("RUST_LOG", "warn");
        if let Some(log) = log {
            let file = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
            command.env("RUST_LOG", "debug").stderr(file);
        }
        let mut child = command.stdout(Stdio::piped()).kill_on_drop(true).spawn().expect("the binary starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line =
            tokio::time::timeout(PATIENCE, lines.next_line()).await.unwrap().unwrap().expect("address line");
        let address = line.split_whitespace().find(|w| w.starts_with("http://")).expect("address");
        let address = address.trim_end_matches('/').to_owned();
        let port = address.rsplit(':').next().unwrap().parse().unwrap();
        if let Ok(token) = std::fs::read_to_string(&kept) {
            return Self { child, address, port, token };
        }
        let token = loop {
            let line =
                tokio::time::timeout(PATIENCE, lines.next_line()).await.unwrap().unwrap().expect("token");
            if let Some(token) = line.strip_prefix("OPSGRAPH_TOKEN=") {
                break token.to_owned();
            }
        };
        std::fs::write(&kept, &token).unwrap();
        Self { child, address, port, token }
    }

    /// POSTs a request with `token` and a request id; the whole body, or
    /// `None` when no reply came (the server was killed).
    async fn post(
        &self,
        token: &str,
        query: &str,
        variables: serde_json::Value,
        request_id: &str,
    ) -> Option<serde_json::Value> {
        let response = reqwest::Client::new()
            .post(format!("{}/graphql", self.address))
            .bearer_auth(token)
            .header("x-request-id", request_id)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .ok()?;
        response.json().await.ok()
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
        let mut watch =
            crate::helpers::Subscription::open(self.port, &self.token, query, json!({ "id": op })).await;
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

#[tokio::test]
async fn a_killed_server_keeps_the_audit_record_of_every_acknowledged_mutation() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let db = dir.path().join("opsgraph.redb");
    let mut server = Binary::start(&db).await;
    let create = "mutation($n: String!) { createEnvironment(input: { name: $n }) { id } }";
    let (acks, mut acked) = tokio::sync::mpsc::unbounded_channel();
    let attempts: Vec<_> = (0..200)
        .map(|n| {
            let (server, acks) = (&server, acks.clone());
            async move {
                let reply = server
                    .post(&server.token, create, json!({ "n": format!("env-{n}") }), &format!("kill-{n}"))
                    .await;
                let id = reply.and_then(|r| r["data"]["createEnvironment"]["id"].as_str().map(str::to_owned));
                if id.is_some() {
                    let _ = acks.send(n);
                }
                (n, id)
            }
        })
        .collect();
    drop(acks);
    // Killed (SIGKILL) once some mutations were acknowledged and others
    // are still in flight.
    let pid = nix::unistd::Pid::from_raw(server.child.id().unwrap() as i32);
    let killer = async {
        for _ in 0..20 {
            acked.recv().await.expect("acknowledgements");
        }
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    };
    let (results, ()) = tokio::join!(futures_util::future::join_all(attempts), killer);
    let _ = server.child.wait().await;
    let acknowledged: Vec<(usize, String)> =
        results.into_iter().filter_map(|(n, id)| Some((n, id?))).collect();
    assert!(acknowledged.len() >= 20, "{} acknowledged", acknowledged.len());
    assert!(acknowledged.len() < 200, "the kill came while mutations were in flight");

    let app = TestApp::spawn_in(dir).await;
    let records = crate::access::audit_log(&app).await;
    let mut existing: Vec<Value> = Vec::new();
    let mut after = Value::Null;
    loop {
        let page = app
            .gql(
                "query($a: String) { environments(first: 100, after: $a) { nodes { id name } pageInfo { hasNextPage endCursor } } }",
                json!({ "a": after }),
            )
            .await;
        existing.extend(page["environments"]["nodes"].as_array().unwrap().iter().cloned());
        if page["environments"]["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = page["environments"]["pageInfo"]["endCursor"].clone();
    }
    for (n, id) in &acknowledged {
        let record = records.iter().find(|r| r["requestId"] == format!("kill-{n}"));
        let record = record.unwrap_or_else(|| panic!("no audit record of acknowledged kill-{n}"));
        assert_eq!(
            (record["target"].as_str(), record["outcome"].as_str()),
            (Some(id.as_str()), Some("SUCCEEDED"))
        );
    }
    // And no effect without its record, acknowledged or not.
    existing.retain(|e| e["name"].as_str().unwrap().starts_with("env-"));
    for env in &existing {
        assert!(
            records.iter().any(|r| r["target"] == env["id"] && r["outcome"] == "SUCCEEDED"),
            "{env} has no record"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn tokens_never_appear_in_the_server_log_and_the_command_line_makes_more() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("opsgraph.redb");
    let log = dir.path().join("server.log");
    let mut server = Binary::start_with(&db, Some(&log)).await;
    let owner = server.token.clone();
    let created = server
        .post(
            &owner,
            "mutation { createToken(input: { name: \"ci\", role: DEVELOPER }) { secret token { id } } }",
            json!({}),
            "t1",
        )
        .await
        .unwrap();
    let secret = created["data"]["createToken"]["secret"].as_str().unwrap().to_owned();
    let id = created["data"]["createToken"]["token"]["id"].clone();
    let viewer = server.post(&secret, "{ viewer { role } }", json!({}), "t2").await.unwrap();
    assert_eq!(viewer["data"]["viewer"]["role"], "DEVELOPER");
    server
        .post(&secret, "mutation { createEnvironment(input: { name: \"x\" }) { id } }", json!({}), "t3")
        .await;
    server
        .post(
            &owner,
            "mutation($t: ID!) { revokeToken(input: { tokenId: $t }) { id } }",
            json!({ "t": id }),
            "t4",
        )
        .await;
    let refused = server.post(&secret, "{ viewer { role } }", json!({}), "t5").await.unwrap();
    assert_eq!(refused["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    server.post("ogt_1111111111111111111111111111111111111111", "{ viewer { role } }", json!({}), "t6").await;
    let pid = nix::unistd::Pid::from_raw(server.child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(server.child.wait().await.unwrap().success());

    // From the command line, with the server stopped: a second organization
    // and a viewer token of the first one, printed alone on stdout.
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_opsgraph"))
            .args(args)
            .arg("--db")
            .arg(&db)
            .env("RUST_LOG", "debug")
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        (
            String::from_utf8(output.stdout).unwrap().trim().to_owned(),
            String::from_utf8(output.stderr).unwrap(),
        )
    };
    let (org, _) = run(&["org", "create", "--name", "acme"]);
    assert_eq!(org, "org_2");
    let (cli_token, cli_log) =
        run(&["token", "create", "--org", "org_1", "--role", "VIEWER", "--name", "cli"]);
    assert!(cli_token.starts_with("ogt_") && cli_token.len() == 44, "{cli_token}");
    assert!(!cli_log.contains(&cli_token), "the command's log names the token by prefix only: {cli_log}");

    let server = Binary::start_with(&db, Some(&log)).await;
    let viewer =
        server.post(&cli_token, "{ viewer { role member { name } } }", json!({}), "t7").await.unwrap();
    assert_eq!(viewer["data"]["viewer"], json!({ "role": "VIEWER", "member": { "name": "viewer" } }));
    drop(server);

    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("DEBUG") || log.contains("INFO"), "the log was written at debug: {log}");
    for token in [&owner, &secret, &cli_token] {
        assert!(!log.contains(token.as_str()), "a token is in the server log");
        assert!(!log.contains(&token[4..]), "a token's secret part is in the server log");
    }
}
