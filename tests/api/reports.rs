//! Activity reports: the GraphQL report, and the CSV and JSON-lines
//! downloads of the same rows.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::helpers::{TestApp, push_event};

const REPORT: &str = r#"query($e: ID!, $from: DateTime!, $to: DateTime!, $after: String) {
  activityReport(environmentId: $e, from: $from, to: $to) {
    summary { total byType { value count } byTriggerKind { value count } successRate successfulDeploys }
    rows(first: 100, after: $after) {
      pageInfo { hasNextPage endCursor }
      nodes {
        id queuedAt startedAt finishedAt serviceName environmentName type status
        trigger { kind source reason author { name } }
        commit durationMs rollback
      }
    }
  }
}"#;

/// A period around the test: from an hour ago to an hour from now.
fn around_now() -> (String, String) {
    let hour = chrono::Duration::hours(1);
    let now = chrono::Utc::now();
    ((now - hour).to_rfc3339(), (now + hour).to_rfc3339())
}

/// Every row of the report, paging through its connection, and the summary.
async fn report(app: &TestApp, env: &str, (from, to): (&str, &str)) -> (Vec<Value>, Value) {
    let (mut rows, mut after) = (Vec::new(), Value::Null);
    loop {
        let data = app.gql(REPORT, json!({ "e": env, "from": from, "to": to, "after": after })).await;
        let report = &data["activityReport"];
        rows.extend(report["rows"]["nodes"].as_array().unwrap().iter().cloned());
        if report["rows"]["pageInfo"]["hasNextPage"] != true {
            return (rows, report["summary"].clone());
        }
        after = report["rows"]["pageInfo"]["endCursor"].clone();
    }
}

/// A row of the GraphQL report as the cells of the download, in column
/// order, with `null` as an empty cell.
fn cells(row: &Value) -> Vec<String> {
    let text = |v: &Value| match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let t = &row["trigger"];
    [
        &row["id"],
        &row["queuedAt"],
        &row["startedAt"],
        &row["finishedAt"],
        &row["serviceName"],
        &row["environmentName"],
        &row["type"],
        &row["status"],
        &t["kind"],
        &t["source"],
        &t["author"]["name"],
        &t["reason"],
        &row["commit"],
        &row["durationMs"],
        &row["rollback"],
    ]
    .into_iter()
    .map(text)
    .collect()
}

/// What a spreadsheet must see: a cell that would run as a formula starts
/// with `'`.
fn defused(cell: String) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{cell}") } else { cell }
}

/// Parses CSV with Python's `csv` module: an independent reader.
fn python_csv(bytes: &[u8]) -> Vec<Vec<String>> {
    let script = "import csv, io, json, sys\n\
                  rows = list(csv.reader(io.TextIOWrapper(sys.stdin.buffer, encoding='utf-8', newline=''), strict=True))\n\
                  json.dump(rows, sys.stdout)";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "python's csv module refused the file");
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The header row, written out here rather than taken from the code: a
/// changed column must fail this test.
const HEADER: [&str; 15] = [
    "operation_id",
    "queued_at",
    "started_at",
    "finished_at",
    "service",
    "environment",
    "type",
    "status",
    "trigger_kind",
    "source",
    "author",
    "reason",
    "commit",
    "duration_ms",
    "rollback",
];

#[tokio::test]
async fn the_csv_download_parses_back_to_exactly_the_rows_of_the_graphql_report() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("compliance").await;
    let svc = app
        .create_service(&env, json!({ "name": "ledger", "kind": "JOB", "buildCommand": "true", "webhookSecret": "s3cret-s3cret" }))
        .await;
    // Authors come from pushes, so they can hold anything a name can.
    let pushes = [
        ("Doe, Jane", "a,b"),
        ("say \"hi\"", "q\"uote"),
        ("two\nlines", "c3"),
        ("crlf\r\nname", "c4"),
        ("Zoë 🚀 Ünïcødé", "c5"),
        ("=HYPERLINK(\"http://evil\",\"x\")", "=1+2"),
        ("+1 555", "+c7"),
        ("-2", "-c8"),
        ("@SUM(A1)", "@c9"),
        ("\ttabbed", "c10"),
        ("\rcarriage", "c11"),
    ];
    let mut last = String::new();
    for (n, (author, commit)) in pushes.iter().enumerate() {
        let (status, body) = app
            .push(&svc, Some("s3cret-s3cret"), &push_event("main", commit, author), &format!("d{n}"))
            .await;
        assert_eq!(status, 201, "{body}");
        last = body["operationId"].as_str().unwrap().to_owned();
    }
    // One queue per service: once the last is final, all are.
    app.wait_final(&last).await;
    let (from, to) = around_now();
    let (rows, summary) = report(&app, &env, (&from, &to)).await;
    assert_eq!(rows.len(), pushes.len());
    assert_eq!(summary["total"], pushes.len());
    let authors: Vec<&Value> = rows.iter().map(|r| &r["trigger"]["author"]["name"]).collect();
    assert_eq!(authors, pushes.iter().map(|(a, _)| *a).collect::<Vec<_>>(), "rows come oldest first");

    let url = format!("{}/reports/activity.csv", app.address);
    let query = [("environment", env.as_str()), ("from", &from), ("to", &to)];
    let response = app.client.get(&url).query(&query).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/csv; charset=utf-8");
    let bytes = response.bytes().await.unwrap();
    assert!(bytes.starts_with(format!("{}\r\n", HEADER.join(",")).as_bytes()));
    assert!(bytes.ends_with(b"\r\n"));
    let mut expected = vec![HEADER.map(str::to_owned).to_vec()];
    expected.extend(rows.iter().map(|r| cells(r).into_iter().map(defused).collect()));
    assert_eq!(python_csv(&bytes), expected);

    let ndjson = app.client.get(&url).query(&query).query(&[("format", "ndjson")]).send().await.unwrap();
    assert_eq!(ndjson.headers()["content-type"], "application/x-ndjson");
    let lines: Vec<Value> =
        ndjson.text().await.unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let as_cells = |line: &Value| -> Vec<String> {
        HEADER
            .iter()
            .map(|k| match &line[*k] {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                v => v.to_string(),
            })
            .collect()
    };
    assert_eq!(lines.iter().map(as_cells).collect::<Vec<_>>(), rows.iter().map(cells).collect::<Vec<_>>());
    app.stop().await;
}

#[tokio::test]
async fn a_report_over_a_period_includes_the_operations_of_services_deleted_since() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("prod").await;
    let other = app.create_environment("staging").await;
    let job = |name: &str| json!({ "name": name, "kind": "JOB", "buildCommand": "true" });
    let kept = app.create_service(&env, job("kept")).await;
    let gone = app.create_service(&env, job("gone")).await;
    let elsewhere = app.create_service(&other, job("elsewhere")).await;
    for (svc, commit) in [(&kept, "k1"), (&gone, "g1"), (&elsewhere, "e1")] {
        let op = app.deploy(svc, commit).await;
        app.wait_final(&op).await;
    }
    let delete = app.action("deleteService", &gone).await;
    assert_eq!(app.wait_final(&delete).await["status"], "DEPLOYMENT_OK");

    let (from, to) = around_now();
    let (rows, summary) = report(&app, &env, (&from, &to)).await;
    let seen: Vec<(&Value, &Value, &Value)> =
        rows.iter().map(|r| (&r["serviceName"], &r["type"], &r["commit"])).collect();
    assert_eq!(
        seen,
        [
            (&json!("kept"), &json!("DEPLOY"), &json!("k1")),
            (&json!("gone"), &json!("DEPLOY"), &json!("g1")),
            (&json!("gone"), &json!("DELETE"), &json!("g1"))
        ]
    );
    assert_eq!(
        summary["byType"],
        json!([{ "value": "DEPLOY", "count": 2 }, { "value": "DELETE", "count": 1 }])
    );
    assert_eq!(summary["byTriggerKind"], json!([{ "value": "USER", "count": 3 }]));
    assert_eq!((&summary["successRate"], &summary["successfulDeploys"]), (&json!(1.0), &json!(2)));

    // A period is [from, to): starting at the second row's queue time
    // leaves out exactly the rows queued before it.
    let second = rows[1]["queuedAt"].as_str().unwrap();
    let (later, _) = report(&app, &env, (second, &to)).await;
    let at = |t: &str| chrono::DateTime::parse_from_rfc3339(t).unwrap();
    let expected = rows.iter().filter(|r| at(r["queuedAt"].as_str().unwrap()) >= at(second)).count();
    assert_eq!(later.len(), expected);
    let (before, _) = report(&app, &env, ("2000-01-01T00:00:00Z", second)).await;
    assert_eq!(before.len(), rows.len() - expected);
    let code = app.error_code(REPORT, json!({ "e": env, "from": to, "to": from })).await;
    assert_eq!(code, "BAD_USER_INPUT", "a period must end after it starts");
    app.stop().await;
}

#[tokio::test]
async fn bad_report_parameters_are_refused_with_a_coded_json_error() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("prod").await;
    let (from, to) = around_now();
    let cases = [
        (vec![("from", from.as_str()), ("to", &to)], 400, "BAD_USER_INPUT"),
        (vec![("environment", env.as_str()), ("from", "last tuesday"), ("to", &to)], 400, "BAD_USER_INPUT"),
        (vec![("environment", env.as_str()), ("from", &to), ("to", &from)], 400, "BAD_USER_INPUT"),
        (
            vec![("environment", env.as_str()), ("from", &from), ("to", &to), ("format", "xlsx")],
            400,
            "BAD_USER_INPUT",
        ),
        (vec![("environment", "svc_1"), ("from", &from), ("to", &to)], 400, "BAD_USER_INPUT"),
        (vec![("environment", "env_999"), ("from", &from), ("to", &to)], 404, "NOT_FOUND"),
    ];
    for (query, status, code) in cases {
        let response = app
            .client
            .get(format!("{}/reports/activity.csv", app.address))
            .query(&query)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{query:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{query:?}: {body}");
    }
    // An empty period is just the header.
    let query =
        [("environment", env.as_str()), ("from", "2000-01-01T00:00:00Z"), ("to", "2000-01-02T00:00:00Z")];
    let empty =
        app.client.get(format!("{}/reports/activity.csv", app.address)).query(&query).send().await.unwrap();
    assert_eq!(empty.text().await.unwrap(), format!("{}\r\n", HEADER.join(",")));
    app.stop().await;
}
