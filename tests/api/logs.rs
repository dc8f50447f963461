//! Operation and service logs: ingest through `appendLogs`, pages,
//! downloads, replay-then-live subscriptions that resume without gap or
//! repeat, slow consumers, long lines and retention.

use serde_json::{Value, json};

use crate::helpers::{HTTP_SERVER, Subscription, TestApp, free_port};

const APPEND: &str = "mutation($op: ID!, $lines: [String!]!, $stream: LogStream) {
  appendLogs(operationId: $op, lines: $lines, stream: $stream) { firstSeq lastSeq } }";
const FOLLOW: &str = "subscription($op: ID!, $after: Int) {
  operationLogs(operationId: $op, after: $after) { lastSeq lines { seq stream text continuesPrevious } } }";
const PAGE: &str = "query($op: ID!, $after: String, $filter: LogFilter) { operation(id: $op) {
  logs(first: 100, after: $after, filter: $filter) {
    edges { cursor node { seq stream text continuesPrevious } } pageInfo { hasNextPage endCursor } } } }";

/// An environment and an operation that takes log lines until it is
/// cancelled: its build never ends. Returns once the build command runs,
/// so opsgraph writes nothing more to the log until the cancel.
async fn held_operation(app: &TestApp, name: &str) -> (String, String) {
    let env = app.create_environment(name).await;
    let op = hold(app, &env).await;
    (env, op)
}

async fn hold(app: &TestApp, env: &str) -> String {
    let service = json!({ "name": "api", "kind": "APPLICATION", "buildCommand": "exec sleep 600" });
    let svc = app.create_service(env, service).await;
    let op = app.deploy(&svc, "c1").await;
    let mut follow = app.subscribe(FOLLOW, json!({ "op": op })).await;
    // The executor's last line before the command runs.
    while let Some(data) = follow.next().await {
        if batch_lines(&data).iter().any(|(_, _, text)| text == "$ exec sleep 600") {
            return op;
        }
    }
    panic!("the operation ended before its build ran")
}

/// Appends `lines` to the operation's STDOUT; returns `(firstSeq, lastSeq)`.
async fn append(app: &TestApp, op: &str, lines: &[String]) -> (u64, u64) {
    let data = app.gql(APPEND, json!({ "op": op, "lines": lines })).await;
    let seqs = &data["appendLogs"];
    (seqs["firstSeq"].as_u64().unwrap(), seqs["lastSeq"].as_u64().unwrap())
}

async fn cancel(app: &TestApp, op: &str) {
    app.gql(
        "mutation($op: ID!) { cancelOperation(input: { operationId: $op }) { id } }",
        json!({ "op": op }),
    )
    .await;
}

/// Every stored line of an operation, read page by page through GraphQL.
async fn stored_lines(app: &TestApp, op: &str) -> Vec<Value> {
    let mut lines = Vec::new();
    let mut after = Value::Null;
    loop {
        let data = app.gql(PAGE, json!({ "op": op, "after": after })).await;
        let logs = &data["operation"]["logs"];
        lines.extend(logs["edges"].as_array().unwrap().iter().map(|e| e["node"].clone()));
        if logs["pageInfo"]["hasNextPage"] != true {
            return lines;
        }
        after = logs["pageInfo"]["endCursor"].clone();
    }
}

/// A small deterministic pseudo-random sequence (no dependency needed).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// The lines of a `LogBatch` as `(seq, stream, text)`.
fn batch_lines(data: &Value) -> Vec<(u64, String, String)> {
    let batch = &data["operationLogs"];
    let lines = batch["lines"].as_array().unwrap();
    assert!(!lines.is_empty(), "a batch is never empty");
    assert_eq!(batch["lastSeq"], lines.last().unwrap()["seq"], "lastSeq is the last line's seq");
    lines
        .iter()
        .map(|l| {
            let text = l["text"].as_str().unwrap().to_owned();
            (l["seq"].as_u64().unwrap(), l["stream"].as_str().unwrap().to_owned(), text)
        })
        .collect()
}

/// Checks that `got` is exactly seq 1, 2, 3 … and that its STDOUT lines are
/// `line 0` … `line {n - 1}` in order.
fn assert_gapless(got: &[(u64, String, String)], n: usize) {
    for (index, (seq, _, _)) in got.iter().enumerate() {
        assert_eq!(*seq, index as u64 + 1, "line {index} of what was received");
    }
    let produced: Vec<&str> =
        got.iter().filter(|(_, s, _)| s == "STDOUT").map(|(_, _, t)| t.as_str()).collect();
    assert_eq!(produced.len(), n, "every produced line arrived once");
    for (index, text) in produced.iter().enumerate() {
        assert_eq!(*text, format!("line {index}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_reconnecting_at_random_points_receives_every_line_once_in_order() {
    const LINES: usize = 100_000;
    const BATCH: usize = 1_000;
    let app = TestApp::spawn().await;
    let (_, op) = held_operation(&app, "production").await;

    let produce = async {
        for start in (0..LINES).step_by(BATCH) {
            let lines: Vec<String> = (start..start + BATCH).map(|n| format!("line {n}")).collect();
            append(&app, &op, &lines).await;
        }
        cancel(&app, &op).await;
    };
    let follow = async {
        let mut rng = Lcg(0x0b5e_55ed);
        let mut got: Vec<(u64, String, String)> = Vec::new();
        let mut reconnects = 0;
        'connection: loop {
            let last = got.last().map_or(0, |(seq, _, _)| *seq);
            let mut sub = app.subscribe(FOLLOW, json!({ "op": op, "after": last })).await;
            // Lines to take before dropping the connection, possibly in
            // the middle of a batch (the rest of it is then discarded).
            let mut budget = rng.below(2_000) + 1;
            while let Some(data) = sub.next().await {
                for line in batch_lines(&data) {
                    if budget == 0 {
                        reconnects += 1;
                        continue 'connection;
                    }
                    got.push(line);
                    budget -= 1;
                }
            }
            // Completed: the operation is final and every line was sent.
            return (got, reconnects);
        }
    };
    let ((), (got, reconnects)) = tokio::join!(produce, follow);

    assert!(reconnects >= 50, "only {reconnects} reconnections");
    assert_gapless(&got, LINES);
    assert!(got.last().unwrap().2.starts_with("finished: CANCELLED"), "{:?}", got.last());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_producers_on_different_operations_each_get_a_gapless_log() {
    const PRODUCERS: usize = 6;
    const LINES: usize = 3_000;
    let app = TestApp::spawn().await;
    let mut ops = Vec::new();
    for n in 0..PRODUCERS {
        ops.push(held_operation(&app, &format!("env-{n}")).await.1);
    }

    let producers = ops.iter().map(|op| async {
        for start in (0..LINES).step_by(250) {
            let lines: Vec<String> = (start..start + 250).map(|n| format!("line {n}")).collect();
            append(&app, op, &lines).await;
        }
    });
    futures_util::future::join_all(producers).await;

    for op in &ops {
        let got: Vec<(u64, String, String)> = stored_lines(&app, op)
            .await
            .iter()
            .map(|l| {
                (
                    l["seq"].as_u64().unwrap(),
                    l["stream"].as_str().unwrap().into(),
                    l["text"].as_str().unwrap().into(),
                )
            })
            .collect();
        assert_gapless(&got, LINES);
        cancel(&app, op).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn a_log_subscription_follows_live_and_completes_when_the_operation_ends() {
    let app = TestApp::spawn().await;
    let (_, op) = held_operation(&app, "production").await;
    let mut sub = app.subscribe(FOLLOW, json!({ "op": op })).await;
    let replayed = batch_lines(&sub.next().await.unwrap());
    assert_eq!(replayed[0].1, "SYSTEM");

    let (first, last) = append(&app, &op, &["one".into(), "two\nthree".into()]).await;
    assert_eq!(last - first, 2, "a string with a line break is two lines");
    let mut live = Vec::new();
    while live.len() < 3 {
        live.extend(batch_lines(&sub.next().await.unwrap()).into_iter().filter(|(_, s, _)| s == "STDOUT"));
    }
    let texts: Vec<&str> = live.iter().map(|(_, _, t)| t.as_str()).collect();
    assert_eq!(texts, ["one", "two", "three"]);
    assert_eq!(live[0].0, first);

    cancel(&app, &op).await;
    let mut rest = Vec::new();
    while let Some(data) = sub.next().await {
        rest.extend(batch_lines(&data));
    }
    assert!(rest.last().unwrap().2.starts_with("finished: CANCELLED"), "{rest:?}");

    // The log of a final operation is closed.
    let body = app.post(APPEND, json!({ "op": op, "lines": ["late"] })).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "INVALID_TRANSITION", "{body}");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("CANCELLED"), "{body}");
    app.stop().await;
}

/// Live batches are rendered once per distinct query and shared between
/// subscribers: each must still get exactly what its own query selects,
/// including when only its variables or a directive on a fragment differ.
#[tokio::test]
async fn subscribers_of_one_log_each_get_the_shape_their_query_selects() {
    const BY_VARIABLE: &str = "subscription($op: ID!, $text: Boolean!) {
      operationLogs(operationId: $op) { lastSeq lines { seq text @include(if: $text) } } }";
    const SKIPPED_FRAGMENT: &str = "subscription($op: ID!) {
      operationLogs(operationId: $op) { lastSeq lines { seq ...Text @skip(if: true) } } }
      fragment Text on LogLine { text }";
    const ALIASED: &str = "subscription($op: ID!) {
      operationLogs(operationId: $op) { lastSeq lines { n: seq words: text } } }";
    let app = TestApp::spawn().await;
    let (_, op) = held_operation(&app, "production").await;
    let subscribers = [
        (FOLLOW, json!({ "op": op }), vec!["continuesPrevious", "seq", "stream", "text"]),
        (FOLLOW, json!({ "op": op }), vec!["continuesPrevious", "seq", "stream", "text"]),
        (BY_VARIABLE, json!({ "op": op, "text": false }), vec!["seq"]),
        (BY_VARIABLE, json!({ "op": op, "text": true }), vec!["seq", "text"]),
        (SKIPPED_FRAGMENT, json!({ "op": op }), vec!["seq"]),
        (ALIASED, json!({ "op": op }), vec!["n", "words"]),
    ];
    let mut subs = Vec::new();
    for (query, variables, _) in &subscribers {
        let mut sub = app.subscribe(query, variables.clone()).await;
        // The replay of what is stored: from then on it follows live.
        sub.next().await.expect("the stored lines");
        subs.push(sub);
    }
    let (first, last) = append(&app, &op, &["alpha".into(), "beta".into(), "gamma".into()]).await;
    for (sub, (query, variables, keys)) in subs.iter_mut().zip(&subscribers) {
        let data = sub.next().await.expect("the appended lines");
        let batch = &data["operationLogs"];
        assert_eq!(batch["lastSeq"], last, "{query} {variables}: {batch}");
        let lines = batch["lines"].as_array().unwrap();
        assert_eq!(lines.len() as u64, last - first + 1, "{query} {variables}: {batch}");
        for (index, line) in lines.iter().enumerate() {
            let mut got: Vec<&str> = line.as_object().unwrap().keys().map(String::as_str).collect();
            got.sort_unstable();
            assert_eq!(&got, keys, "{query} {variables}: {line}");
            let seq = line.get("seq").or_else(|| line.get("n")).unwrap();
            assert_eq!(*seq, first + index as u64, "{query} {variables}: {line}");
            if let Some(text) = line.get("text").or_else(|| line.get("words")) {
                assert_eq!(*text, ["alpha", "beta", "gamma"][index]);
            }
        }
    }
    cancel(&app, &op).await;
    app.stop().await;
}

#[tokio::test]
async fn append_logs_refuses_bad_input_with_a_code_and_stores_nothing() {
    let app = TestApp::spawn_configured(|args| args.max_append_lines = 3).await;
    let (_, op) = held_operation(&app, "production").await;
    let before = stored_lines(&app, &op).await.len();
    let cases = [
        (json!({ "op": op, "lines": [] }), "BAD_USER_INPUT", "at least one line"),
        (json!({ "op": op, "lines": ["a", "b\nc\nd"] }), "BAD_USER_INPUT", "at most 3 lines"),
        (json!({ "op": op, "lines": ["x"], "stream": "SYSTEM" }), "BAD_USER_INPUT", "SYSTEM"),
        (json!({ "op": "op_999", "lines": ["x"] }), "NOT_FOUND", "op_999"),
        (json!({ "op": "svc_1", "lines": ["x"] }), "BAD_USER_INPUT", "svc_1"),
    ];
    for (variables, code, words) in cases {
        let body = app.post(APPEND, variables.clone()).await;
        assert_eq!(body["errors"][0]["extensions"]["code"], code, "{variables}: {body}");
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(words), "{variables}: {message}");
    }
    assert_eq!(stored_lines(&app, &op).await.len(), before, "nothing was stored");
    let body = app.post(APPEND, json!({ "op": op, "lines": ["err"], "stream": "STDERR" })).await;
    assert!(body.get("errors").is_none(), "{body}");
    cancel(&app, &op).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscriber_does_not_hold_back_another_and_ends_as_slow_consumer() {
    const BATCHES: usize = 12;
    const BATCH: usize = 1_000;
    let app = TestApp::spawn_configured(|args| args.slow_consumer_lag = 5_000).await;
    let (_, op) = held_operation(&app, "production").await;
    let mut fast = app.subscribe(FOLLOW, json!({ "op": op })).await;
    let mut slow =
        Subscription::open_with_buffer(app.port, &app.token, FOLLOW, json!({ "op": op }), Some(16 * 1024))
            .await;
    // Both have replayed what was stored and follow live.
    let mut slow_got = batch_lines(&slow.next().await.unwrap());
    let mut fast_got = batch_lines(&fast.next().await.unwrap());

    // Lines of about 1 KB: 12 MB, far more than the socket buffers hold
    // (the server's send buffer grows to 4 MB at most), so the server
    // feels the stalled client.
    let pad = "x".repeat(1_000);
    let produce = async {
        let mut last = 0;
        for b in 0..BATCHES {
            let lines: Vec<String> =
                (b * BATCH..(b + 1) * BATCH).map(|n| format!("line {n} {pad}")).collect();
            last = append(&app, &op, &lines).await.1;
        }
        last
    };
    // The fast subscriber gets everything while the slow one reads nothing.
    let follow = async {
        while fast_got.iter().filter(|(_, s, _)| s == "STDOUT").count() < BATCHES * BATCH {
            fast_got.extend(batch_lines(&fast.next().await.unwrap()));
        }
    };
    let (last, ()) = tokio::join!(produce, follow);
    assert_eq!(fast_got.last().unwrap().0, last);

    // The slow one gets what was sent before it fell behind, then the error.
    let error = loop {
        match slow.next_result().await.expect("ended with an error, not completed") {
            Ok(data) => slow_got.extend(batch_lines(&data)),
            Err(errors) => break errors,
        }
    };
    assert_eq!(error[0]["extensions"]["code"], "SLOW_CONSUMER", "{error}");
    assert!(slow_got.last().unwrap().0 < last, "it was ended before the end of the log");
    // It resumes from its cursor and misses nothing.
    let mut again = app.subscribe(FOLLOW, json!({ "op": op, "after": slow_got.last().unwrap().0 })).await;
    while slow_got.last().unwrap().0 < last {
        slow_got.extend(batch_lines(&again.next().await.unwrap()));
    }
    let strip = |got: &[(u64, String, String)]| -> Vec<(u64, String, String)> {
        got.iter().map(|(s, st, t)| (*s, st.clone(), t.replace(&pad, "").trim_end().to_owned())).collect()
    };
    assert_gapless(&strip(&slow_got), BATCHES * BATCH);
    assert_gapless(&strip(&fast_got), BATCHES * BATCH);
    cancel(&app, &op).await;
    app.stop().await;
}

#[tokio::test]
async fn an_over_long_line_is_stored_in_pieces_that_rejoin_to_the_original() {
    let app = TestApp::spawn().await;
    let (_, op) = held_operation(&app, "production").await;
    // 150,000 bytes with two-byte characters, so a cut can fall inside one.
    let long: String = "é".repeat(60_000) + &"a".repeat(30_000);
    let (first, last) = append(&app, &op, &[long.clone(), "after".into()]).await;
    assert_eq!(last - first, 3, "three pieces and the next line");

    let lines = stored_lines(&app, &op).await;
    let pieces: Vec<&Value> = lines.iter().filter(|l| l["seq"].as_u64().unwrap() >= first).collect();
    assert!(pieces.iter().all(|p| p["text"].as_str().unwrap().len() <= 64 * 1024));
    let flags: Vec<bool> = pieces.iter().map(|p| p["continuesPrevious"].as_bool().unwrap()).collect();
    assert_eq!(flags, [false, true, true, false]);
    let rejoined: String = pieces[..3].iter().map(|p| p["text"].as_str().unwrap()).collect();
    assert_eq!(rejoined, long);

    // The text download writes it whole again.
    let text = app.log_lines(&op).await;
    assert!(text.contains(&format!("STDOUT {long}")), "the download has the original line");
    assert!(text.contains(&"STDOUT after".to_owned()));
    cancel(&app, &op).await;
    app.stop().await;
}

#[tokio::test]
async fn text_and_ndjson_downloads_match_the_stored_lines() {
    let app = TestApp::spawn().await;
    let (_, op) = held_operation(&app, "production").await;
    let lines: Vec<String> = (0..2_500).map(|n| format!("line {n} with \"quotes\" and ünïcode")).collect();
    append(&app, &op, &lines).await;
    app.post(APPEND, json!({ "op": op, "lines": ["to stderr"], "stream": "STDERR" })).await;
    cancel(&app, &op).await;
    app.wait_final(&op).await;
    let stored = stored_lines(&app, &op).await;

    let get = async |format: &str| -> String {
        let url = format!("{}/operations/{op}/logs?format={format}", app.address);
        app.client.get(url).send().await.unwrap().text().await.unwrap()
    };
    let ndjson: Vec<Value> = get("ndjson").await.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(ndjson.len(), stored.len());
    for (row, line) in ndjson.iter().zip(&stored) {
        assert_eq!(
            (&row["seq"], &row["stream"], &row["text"]),
            (&line["seq"], &line["stream"], &line["text"])
        );
        assert_eq!(row["continuesPrevious"], false);
    }
    let text = get("text").await;
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), stored.len());
    for (row, line) in rows.iter().zip(&stored) {
        let (at, rest) = row.split_once(' ').unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{row}");
        assert_eq!(rest, format!("{} {}", line["stream"].as_str().unwrap(), line["text"].as_str().unwrap()));
    }
    let bad =
        app.client.get(format!("{}/operations/{op}/logs?format=xml", app.address)).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.json::<Value>().await.unwrap()["error"]["code"], "BAD_USER_INPUT");
    app.stop().await;
}

#[tokio::test]
async fn retention_deletes_old_lines_and_a_cursor_older_than_retention_expires() {
    let app = TestApp::spawn().await;
    let data = app
        .gql(
            "mutation { createEnvironment(input: { name: \"preview\", logRetentionDays: 1 }) { id logRetentionDays } }",
            json!({}),
        )
        .await;
    assert_eq!(data["createEnvironment"]["logRetentionDays"], 1);
    let env = data["createEnvironment"]["id"].as_str().unwrap().to_owned();
    let op = hold(&app, &env).await;
    let lines: Vec<String> = (0..10).map(|n| format!("line {n}")).collect();
    let (_, last) = append(&app, &op, &lines).await;

    // A pass a day and a half later deletes every line stored so far.
    let later = chrono::Utc::now().timestamp_millis() + 36 * 3_600 * 1_000;
    let deleted = opsgraph::store::retention::expire_logs(&app.store(), later).await.unwrap();
    assert!(deleted >= 10, "deleted {deleted}");
    assert!(stored_lines(&app, &op).await.is_empty());

    // A cursor in the deleted range has expired, over both transports.
    let body = app.post(PAGE, json!({ "op": op, "after": "3" })).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "CURSOR_EXPIRED", "{body}");
    let mut sub = app.subscribe(FOLLOW, json!({ "op": op, "after": 3 })).await;
    let error = sub.next_result().await.unwrap().unwrap_err();
    assert_eq!(error[0]["extensions"]["code"], "CURSOR_EXPIRED", "{error}");

    // New lines go on from the deleted ones; the last cursor still works.
    let (first, _) = append(&app, &op, &["fresh".into()]).await;
    assert_eq!(first, last + 1);
    let mut sub = app.subscribe(FOLLOW, json!({ "op": op, "after": last })).await;
    let got = batch_lines(&sub.next().await.unwrap());
    assert_eq!(got[0], (first, "STDOUT".into(), "fresh".into()));

    // A longer retention keeps them.
    app.gql(
        "mutation($e: ID!) { updateEnvironment(input: { environmentId: $e, logRetentionDays: 30 }) { id } }",
        json!({ "e": env }),
    )
    .await;
    opsgraph::store::retention::expire_logs(&app.store(), later).await.unwrap();
    assert_eq!(stored_lines(&app, &op).await.len(), 1);
    let body = app
        .post("mutation($e: ID!) { updateEnvironment(input: { environmentId: $e, logRetentionDays: 0 }) { id } }", json!({ "e": env }))
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{body}");
    cancel(&app, &op).await;
    app.stop().await;
}

#[tokio::test]
async fn a_running_instance_prints_into_its_service_log_not_into_the_finished_deploy() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("production").await;
    let port = free_port();
    let svc = app
        .create_service(
            &env,
            json!({ "name": "web", "kind": "APPLICATION", "startCommand": HTTP_SERVER, "port": port,
                    "healthCheck": { "timeoutMs": 1500, "graceMs": 100 }, "stopGraceMs": 2000 }),
        )
        .await;
    let op = app.deploy(&svc, "c1").await;
    assert_eq!(app.wait_final(&op).await["status"], "DEPLOYMENT_OK");
    let follow = "subscription($s: ID!) { serviceLogs(serviceId: $s) { lastSeq lines { seq stream text instance { id } } } }";
    let mut sub = app.subscribe(follow, json!({ "s": svc })).await;

    // The python server logs each request on stderr, after the deploy.
    app.client.get(format!("http://127.0.0.1:{port}/hello")).send().await.unwrap();
    let request_line = loop {
        let data = sub.next().await.unwrap();
        let lines = data["serviceLogs"]["lines"].as_array().unwrap().clone();
        if let Some(line) = lines.into_iter().find(|l| l["text"].as_str().unwrap().contains("GET /hello")) {
            break line;
        }
    };
    assert_eq!(request_line["stream"], "STDERR");
    let instance = request_line["instance"]["id"].as_str().unwrap().to_owned();
    assert!(instance.starts_with("inst_"), "{request_line}");
    assert!(!app.log_lines(&op).await.iter().any(|l| l.contains("GET /hello")), "not in the deploy's log");

    // Filters by instance, stream and text; the download has the instance.
    let query = "query($s: ID!, $f: LogFilter) { service(id: $s) { logs(first: 100, filter: $f) { edges { node { text instance { id } } } } } }";
    let page = async |filter: Value| -> Vec<Value> {
        let data = app.gql(query, json!({ "s": svc, "f": filter })).await;
        data["service"]["logs"]["edges"].as_array().unwrap().clone()
    };
    let served =
        page(json!({ "instanceId": instance, "streams": ["STDOUT"], "contains": "serving commit c1" })).await;
    assert_eq!(served.len(), 1, "{served:?}");
    assert!(page(json!({ "instanceId": "inst_999" })).await.is_empty());
    let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    assert!(page(json!({ "since": future })).await.is_empty());

    let url = format!("{}/services/{svc}/logs", app.address);
    let text = app.client.get(&url).send().await.unwrap().text().await.unwrap();
    assert!(
        text.lines().any(|l| l.contains(&format!("STDERR {instance} ")) && l.contains("GET /hello")),
        "{text}"
    );
    let since = app.client.get(&url).query(&[("since", future.as_str())]).send().await.unwrap();
    assert_eq!(since.text().await.unwrap(), "", "nothing was printed after `since`");
    let bad = app.client.get(&url).query(&[("since", "yesterday")]).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    app.stop().await;
}

#[tokio::test]
async fn the_legacy_graphql_ws_protocol_carries_subscriptions() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let app = TestApp::spawn().await;
    let (_, op) = held_operation(&app, "production").await;
    let mut request = format!("ws://127.0.0.1:{}/graphql", app.port).into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-ws".parse().unwrap());
    let (mut socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "graphql-ws");

    let send = |v: Value| Message::text(v.to_string());
    socket.send(send(json!({ "type": "connection_init", "payload": app.init_payload() }))).await.unwrap();
    let receive = async |socket: &mut tokio_tungstenite::WebSocketStream<_>| -> Value {
        loop {
            let Some(Ok(Message::Text(text))) = socket.next().await else { panic!("the socket closed") };
            let message: Value = serde_json::from_str(&text).unwrap();
            if message["type"] != "ka" {
                return message;
            }
        }
    };
    assert_eq!(receive(&mut socket).await["type"], "connection_ack");
    let start =
        json!({ "id": "7", "type": "start", "payload": { "query": FOLLOW, "variables": { "op": op } } });
    socket.send(send(start)).await.unwrap();
    let data = receive(&mut socket).await;
    assert_eq!(data["type"], "data", "{data}");
    assert_eq!(data["id"], "7");
    assert_eq!(batch_lines(&data["payload"]["data"])[0].0, 1);

    append(&app, &op, &["over the legacy protocol".into()]).await;
    let live = loop {
        let message = receive(&mut socket).await;
        let lines = batch_lines(&message["payload"]["data"]);
        if let Some(line) = lines.into_iter().find(|l| l.1 == "STDOUT") {
            break line;
        }
    };
    assert_eq!(live.2, "over the legacy protocol");
    cancel(&app, &op).await;
    let complete = loop {
        let message = receive(&mut socket).await;
        if message["type"] == "complete" {
            break message;
        }
    };
    assert_eq!(complete["id"], "7");
    app.stop().await;
}
