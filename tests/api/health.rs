//! `/livez`, `/readyz` and `/metrics` as an operator reads them, and what
//! a failing disk does to the server.

use std::collections::HashMap;
use std::time::Instant;

use opsgraph::store::StorageFaults;
use serde_json::{Value, json};

use crate::helpers::{PATIENCE, TestApp};

/// The samples of a `/metrics` page, by `name{labels}` as written.
async fn scrape(app: &TestApp) -> HashMap<String, f64> {
    let response = app.client.get(format!("{}/metrics", app.address)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let kind = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    let text = response.text().await.unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("a sample line: {l}"));
            (series.to_owned(), value.parse().unwrap_or_else(|_| panic!("a number: {l}")))
        })
        .collect()
}

/// Scrapes until `series` has `value` (bounded by [`PATIENCE`]).
async fn wait_metric(app: &TestApp, series: &str, value: f64) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let got = scrape(app).await.get(series).copied();
        if got == Some(value) {
            return;
        }
        assert!(Instant::now() < deadline, "{series} stayed {got:?}, expected {value}");
        tokio::task::yield_now().await;
    }
}

async fn readyz(app: &TestApp) -> (u16, String) {
    let response = app.client.get(format!("{}/readyz", app.address)).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Polls `/readyz` until it answers `status` (bounded by [`PATIENCE`]).
async fn wait_ready(app: &TestApp, status: u16) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if readyz(app).await.0 == status {
            return;
        }
        assert!(Instant::now() < deadline, "/readyz never answered {status}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_running_server_is_live_and_ready() {
    let app = TestApp::spawn().await;
    let live = app.client.get(format!("{}/livez", app.address)).send().await.unwrap();
    assert_eq!(live.status(), 200);
    assert_eq!(readyz(&app).await, (200, "ready".to_owned()));
    let metrics = scrape(&app).await;
    assert_eq!(metrics["opsgraph_ready"], 1.0);
    assert_eq!(metrics["opsgraph_storage_healthy"], 1.0);
    app.stop().await;
}

#[tokio::test]
async fn metrics_count_requests_operations_log_lines_subscribers_and_commits() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("prod").await;
    let quick = app
        .create_service(&env, json!({ "name": "quick", "kind": "JOB", "buildCommand": "echo built" }))
        .await;
    let slow = app
        .create_service(&env, json!({ "name": "slow", "kind": "JOB", "buildCommand": "exec sleep 60" }))
        .await;
    let deploy =
        "mutation Deploy($s: ID!, $c: String!) { deploy(input: { serviceId: $s, commit: $c }) { id } }";
    let done =
        app.gql(deploy, json!({ "s": quick, "c": "c1" })).await["deploy"]["id"].as_str().unwrap().to_owned();
    app.wait_final(&done).await;
    let hanging =
        app.gql(deploy, json!({ "s": slow, "c": "c1" })).await["deploy"]["id"].as_str().unwrap().to_owned();
    app.wait_status(&env, &hanging, "BUILDING").await;
    let missing = app
        .error_code(
            "query Lookup { operation(id: \"op_999\") { id } service(id: \"nope\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(missing, "BAD_USER_INPUT");

    let before = scrape(&app).await;
    let append =
        "mutation Append($o: ID!) { appendLogs(operationId: $o, lines: [\"a\", \"b\", \"c\"]) { lastSeq } }";
    app.gql(append, json!({ "o": hanging })).await;
    let after = scrape(&app).await;

    let requests = |op: &str, outcome: &str| {
        after
            .get(&format!("opsgraph_graphql_requests_total{{operation=\"{op}\",outcome=\"{outcome}\"}}"))
            .copied()
    };
    assert_eq!(requests("Deploy", "ok"), Some(2.0));
    assert_eq!(requests("Lookup", "BAD_USER_INPUT"), Some(1.0));
    assert_eq!(requests("Append", "ok"), Some(1.0));
    assert_eq!(after["opsgraph_graphql_request_duration_seconds_count{operation=\"Deploy\"}"], 2.0);
    assert_eq!(
        after["opsgraph_graphql_request_duration_seconds_bucket{operation=\"Deploy\",le=\"+Inf\"}"],
        2.0
    );
    assert!(after["opsgraph_graphql_request_duration_seconds_sum{operation=\"Deploy\"}"] > 0.0);

    assert_eq!(after["opsgraph_operations{status=\"DEPLOYMENT_OK\"}"], 1.0);
    assert_eq!(after["opsgraph_operations{status=\"BUILDING\"}"], 1.0);
    assert_eq!(after["opsgraph_operations{status=\"QUEUED\"}"], 0.0);
    assert_eq!(after["opsgraph_operations_running"], 1.0);

    let lines = "opsgraph_log_lines_ingested_total";
    assert_eq!(after[lines] - before[lines], 3.0, "the three appended lines");
    assert!(after["opsgraph_commits_total"] > before["opsgraph_commits_total"]);
    assert!(after["opsgraph_commit_duration_seconds_count"] >= after["opsgraph_commits_total"] - 1.0);
    assert_eq!(after["opsgraph_commit_failures_total"], 0.0);

    // A client following a log counts while it follows.
    let following = "opsgraph_subscribers{subscription=\"operationLogs\"}";
    assert_eq!(after[following], 0.0);
    let sub = app
        .subscribe(
            "subscription($o: ID!) { operationLogs(operationId: $o) { lastSeq } }",
            json!({ "o": hanging }),
        )
        .await;
    wait_metric(&app, following, 1.0).await;
    assert_eq!(scrape(&app).await["opsgraph_subscribers{subscription=\"operationEvents\"}"], 0.0);
    drop(sub);
    wait_metric(&app, following, 0.0).await;

    app.gql(
        "mutation($o: ID!) { cancelOperation(input: { operationId: $o }) { id } }",
        json!({ "o": hanging }),
    )
    .await;
    app.wait_final(&hanging).await;
    app.stop().await;
}

/// Mutations that each commit: a new environment named `name`.
async fn create_environment(app: &TestApp, name: &str) -> Value {
    app.post(
        "mutation($n: String!) { createEnvironment(input: { name: $n }) { id name } }",
        json!({ "n": name }),
    )
    .await
}

/// The names of every environment a client can list.
async fn environment_names(app: &TestApp) -> Vec<String> {
    let data = app.gql("{ environments(first: 100) { nodes { name } } }", json!({})).await;
    data["environments"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_owned())
        .collect()
}

/// For every `n` of the sweep, a disk that starts failing at its `n`-th
/// write or sync from now: the server answers `INTERNAL_SERVER_ERROR` with
/// nothing of the cause, is not ready while storage fails, and once the
/// disk works again it is ready without anyone repairing anything, with
/// every acknowledged change still there — also after a restart.
#[tokio::test]
async fn a_failing_disk_is_answered_with_internal_errors_and_recovered_from_without_loss() {
    let sweep: u64 = std::env::var("OPSGRAPH_FAULT_SWEEP").ok().and_then(|n| n.parse().ok()).unwrap_or(24);
    let mut faults_seen = 0;
    for n in 0..sweep {
        let faults = StorageFaults::new();
        let app = TestApp::spawn_with_faults(faults.clone()).await;
        let mut acknowledged = vec![];
        assert_eq!(create_environment(&app, "before").await["errors"], Value::Null);
        acknowledged.push("before".to_owned());

        faults.fail_after(n);
        let mut failed = None;
        for i in 0..100 {
            let name = format!("e{i}");
            let body = create_environment(&app, &name).await;
            if body["errors"].is_null() {
                acknowledged.push(name);
            } else {
                failed = Some(body);
                break;
            }
        }
        let body = failed.unwrap_or_else(|| panic!("n = {n}: no write failed"));
        assert_eq!(body["errors"][0]["extensions"]["code"], "INTERNAL_SERVER_ERROR", "n = {n}: {body:#}");
        assert_eq!(body["errors"][0]["message"], "internal error", "n = {n}: {body:#}");
        let text = body.to_string();
        assert!(!text.contains("storage") && !text.contains("injected") && !text.contains(".redb"), "{text}");
        assert!(faults.failures() > 0);
        faults_seen += faults.failures();

        // While the disk fails, the server says so and refuses writes.
        assert_eq!(readyz(&app).await, (503, "storage failing".to_owned()), "n = {n}");
        let metrics = scrape(&app).await;
        assert_eq!((metrics["opsgraph_ready"], metrics["opsgraph_storage_healthy"]), (0.0, 0.0));
        let refused = create_environment(&app, "refused").await;
        assert_eq!(refused["errors"][0]["extensions"]["code"], "INTERNAL_SERVER_ERROR", "{refused:#}");

        // The disk comes back: the server reopens the file by itself.
        faults.heal();
        wait_ready(&app, 200).await;
        let names = environment_names(&app).await;
        for name in &acknowledged {
            assert!(names.contains(name), "n = {n}: acknowledged {name} is gone: {names:?}");
        }
        assert_eq!(create_environment(&app, "after").await["errors"], Value::Null, "n = {n}");
        let reopens = scrape(&app).await["opsgraph_storage_reopens_total"];
        assert!(reopens >= 1.0, "n = {n}");
        let dir = app.dir.clone();
        app.stop().await;

        // The file is sound, and a restart finds everything acknowledged.
        let mut db = redb::Database::open(dir.path().join("opsgraph.redb")).expect("the file opens");
        assert!(db.check_integrity().expect("integrity check"), "n = {n}: the file needed repair");
        drop(db);
        let app = TestApp::spawn_in(dir).await;
        let names = environment_names(&app).await;
        for name in acknowledged.iter().chain(["after".to_owned()].iter()) {
            assert!(names.contains(name), "n = {n}: after a restart, {name} is gone: {names:?}");
        }
        app.stop().await;
    }
    println!("storage faults: {sweep} fault points swept, {faults_seen} failed writes or syncs survived");
}
