//! Crash safety, shown: the real binary under concurrent deploys, log
//! appends and subscribers, killed with SIGKILL at random moments and
//! started again on the same file, over and over.
//!
//! After every kill the file (a copy, so the server's own open is timed on
//! the same state) must pass redb's integrity check; after every restart,
//! once `/readyz` answers 200: every acknowledged mutation and log line is
//! there, and no operation the killed process had started is left
//! unfinished. Subscribers resume from their last cursor each time; at the
//! end what each one received must be exactly the stored feed, with no gap
//! and no repeat.
//!
//! `OPSGRAPH_CRASH_KILLS` (default 20) sets the number of kills,
//! `OPSGRAPH_CRASH_SEED` replays a run (the seed is printed first).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::PATIENCE;

/// xorshift64*: enough randomness to pick moments and services, and a
/// seed to replay a run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `lo..hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

/// The binary, started on the database file; `ready_after` is the time
/// from spawning the process to `/readyz` answering 200.
struct Server {
    child: tokio::process::Child,
    at: Endpoint,
    spawned_at: DateTime<Utc>,
    ready_after: Duration,
    client: reqwest::Client,
}

impl Server {
    /// Starts on `db`; `token` is `None` on a new file, whose first start
    /// prints the owner token this then reads.
    async fn start(db: &Path, token: Option<&str>) -> Self {
        let spawned_at = Utc::now();
        let started = Instant::now();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_opsgraph"))
            .args(["serve", "--listen", "127.0.0.1:0", "--metrics-interval-ms", "0", "--db"])
            .arg(db)
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the binary starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line =
            tokio::time::timeout(PATIENCE, lines.next_line()).await.unwrap().unwrap().expect("address line");
        let address = line.split_whitespace().find(|w| w.starts_with("http://")).expect("address");
        let port = address.trim_end_matches('/').rsplit(':').next().unwrap().parse().unwrap();
        let token = match token {
            Some(token) => token.to_owned(),
            None => loop {
                let line = tokio::time::timeout(PATIENCE, lines.next_line()).await.unwrap().unwrap();
                let line = line.expect("a first start prints its owner token");
                if let Some(token) = line.strip_prefix("OPSGRAPH_TOKEN=") {
                    break token.to_owned();
                }
            },
        };
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
        let client = reqwest::Client::builder().default_headers(headers).build().unwrap();
        let deadline = Instant::now() + PATIENCE;
        loop {
            let ready = client.get(format!("http://127.0.0.1:{port}/readyz")).send().await;
            if ready.is_ok_and(|r| r.status() == 200) {
                break;
            }
            assert!(Instant::now() < deadline, "the server was not ready in time");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Self { child, at: Endpoint { port, token }, spawned_at, ready_after: started.elapsed(), client }
    }

    /// POSTs a request; `None` when the server did not answer (killed).
    async fn try_post(&self, query: &str, variables: Value) -> Option<Value> {
        let url = format!("http://127.0.0.1:{}/graphql", self.at.port);
        let response =
            self.client.post(url).json(&json!({ "query": query, "variables": variables })).send().await;
        response.ok()?.json().await.ok()
    }

    /// A request that must succeed; its `data`.
    async fn gql(&self, query: &str, variables: Value) -> Value {
        let body = self.try_post(query, variables).await.expect("an answer");
        assert!(body.get("errors").is_none(), "{body:#}");
        body["data"].clone()
    }

    /// SIGKILL, now: usable while clients still hold the server.
    fn kill(&self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id().unwrap() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    }

    /// Waits until the killed process is gone (its file closed).
    async fn reap(mut self) {
        self.child.wait().await.unwrap();
    }

    /// SIGTERM, and the exit status must be a clean one.
    async fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id().unwrap() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let status = tokio::time::timeout(PATIENCE, self.child.wait()).await.unwrap().unwrap();
        assert!(status.success(), "exited with {status}");
    }
}

/// Where a running server answers, and the owner token it is called with.
#[derive(Clone)]
struct Endpoint {
    port: u16,
    token: String,
}

/// What the server acknowledged: each entry got a successful reply.
#[derive(Default)]
struct Ledger {
    environments: Vec<String>,
    operations: Vec<String>,
    /// Per operation, the lines `appendLogs` acknowledged, by seq.
    lines: BTreeMap<String, BTreeMap<u64, String>>,
}

impl Ledger {
    fn snapshot(&self) -> Self {
        Self {
            environments: self.environments.clone(),
            operations: self.operations.clone(),
            lines: self.lines.clone(),
        }
    }
}

/// A subscriber that follows a feed across restarts.
struct Follower {
    /// `operationLogs` of an operation, or `operationEvents` of an
    /// environment.
    feed: Feed,
    /// What it received, in order: log seqs with their text, or event
    /// cursors.
    received: Vec<(String, String)>,
    /// The positions received, to notice a repeat at once.
    seen: HashSet<String>,
    /// Whether the feed completed (an operation's log, once it is final).
    completed: bool,
}

#[derive(Clone)]
enum Feed {
    Logs(String),
    Events(String),
}

impl Follower {
    fn new(feed: Feed) -> Arc<Mutex<Self>> {
        Arc::new(Mutex::new(Self { feed, received: Vec::new(), seen: HashSet::new(), completed: false }))
    }
}

/// Follows from the last position received until the feed completes, the
/// connection drops, or `enough` items were received, checking each item
/// follows on from the one before.
async fn follow(at: Endpoint, follower: Arc<Mutex<Follower>>, enough: usize) {
    let (feed, after) = {
        let f = follower.lock().unwrap();
        if f.completed {
            return;
        }
        (f.feed.clone(), f.received.last().map(|(position, _)| position.clone()))
    };
    let (query, variables) = match &feed {
        Feed::Logs(op) => (
            "subscription($o: ID!, $a: Int) { operationLogs(operationId: $o, after: $a) { lastSeq lines { seq text } } }",
            json!({ "o": op, "a": after.map(|a| a.parse::<i64>().unwrap()).unwrap_or(0) }),
        ),
        Feed::Events(env) => (
            "subscription($e: ID!, $a: String) { operationEvents(environmentId: $e, after: $a) { cursor status operation { id } } }",
            json!({ "e": env, "a": after }),
        ),
    };
    let Some(mut socket) = connect(&at, query, variables).await else { return };
    while let Some(Ok(message)) = socket.next().await {
        let Message::Text(text) = message else { continue };
        let message: Value = serde_json::from_str(&text).unwrap();
        let mut f = follower.lock().unwrap();
        match message["type"].as_str() {
            Some("next") => {
                let payload = &message["payload"];
                assert!(payload.get("errors").is_none(), "subscription error: {payload}");
                match &feed {
                    Feed::Logs(op) => {
                        for line in payload["data"]["operationLogs"]["lines"].as_array().unwrap() {
                            let seq = line["seq"].as_u64().unwrap();
                            let last = f.received.last().map_or(0, |(s, _)| s.parse::<u64>().unwrap());
                            assert_eq!(seq, last + 1, "{op}: a gap or a repeat after seq {last}");
                            f.received.push((seq.to_string(), line["text"].as_str().unwrap().to_owned()));
                        }
                    }
                    Feed::Events(_) => {
                        let event = &payload["data"]["operationEvents"];
                        let cursor = event["cursor"].as_str().unwrap().to_owned();
                        assert!(f.seen.insert(cursor.clone()), "event {cursor} repeated");
                        f.received
                            .push((cursor, format!("{} {}", event["operation"]["id"], event["status"])));
                    }
                }
            }
            Some("complete") => {
                f.completed = true;
                return;
            }
            Some("error") => panic!("subscription error: {message}"),
            _ => {}
        }
        if f.received.len() >= enough {
            return;
        }
    }
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A graphql-transport-ws subscription; `None` if the server is gone.
async fn connect(at: &Endpoint, query: &str, variables: Value) -> Option<Socket> {
    let mut request = format!("ws://127.0.0.1:{}/graphql", at.port).into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.ok()?;
    let init =
        json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {}", at.token) } })
            .to_string();
    socket.send(Message::text(init)).await.ok()?;
    loop {
        match socket.next().await?.ok()? {
            Message::Text(text) if text.contains("connection_ack") => break,
            Message::Close(_) => return None,
            _ => {}
        }
    }
    let subscribe =
        json!({ "id": "1", "type": "subscribe", "payload": { "query": query, "variables": variables } });
    socket.send(Message::text(subscribe.to_string())).await.ok()?;
    Some(socket)
}

/// Every node of a connection field of `Query`, page by page.
async fn all_nodes(server: &Server, field: &str, selection: &str) -> Vec<Value> {
    let query = format!(
        "query($a: String) {{ {field}(first: 100, after: $a) {{ pageInfo {{ hasNextPage endCursor }} nodes {{ {selection} }} }} }}"
    );
    let mut nodes = Vec::new();
    let mut after = Value::Null;
    loop {
        let data = server.gql(&query, json!({ "a": after })).await;
        let page = &data[field];
        nodes.extend(page["nodes"].as_array().unwrap().iter().cloned());
        if page["pageInfo"]["hasNextPage"] != true {
            return nodes;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
}

/// The stored log of an operation as `(seq, text)`.
async fn stored_log(server: &Server, op: &str) -> BTreeMap<u64, String> {
    let url = format!("http://127.0.0.1:{}/operations/{op}/logs?format=ndjson", server.at.port);
    let text = server.client.get(url).send().await.unwrap().text().await.unwrap();
    text.lines()
        .map(|l| {
            let line: Value = serde_json::from_str(l).unwrap();
            (line["seq"].as_u64().unwrap(), line["text"].as_str().unwrap().to_owned())
        })
        .collect()
}

/// Copies the killed server's file and times a raw redb open of the copy
/// (which repairs what the kill left, as the server's open will), then
/// checks its integrity.
fn check_killed_file(db: &Path, dir: &Path) -> Duration {
    let copy = dir.join("copy.redb");
    std::fs::copy(db, &copy).unwrap();
    let started = Instant::now();
    let mut raw = redb::Database::open(&copy).expect("redb opens the killed file");
    let open = started.elapsed();
    assert!(raw.check_integrity().expect("integrity check"), "the file failed its integrity check");
    drop(raw);
    std::fs::remove_file(&copy).unwrap();
    open
}

/// After a restart: everything acknowledged is there, and every operation
/// not final is queued or was started by this process.
/// Checks the lines of the operations in `lines_of` only (all of them
/// at the end).
async fn check_restart(server: &Server, ledger: &Ledger, lines_of: &[String], kill: usize) {
    let names: HashSet<String> = all_nodes(server, "environments", "name")
        .await
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_owned())
        .collect();
    for name in &ledger.environments {
        assert!(names.contains(name), "kill {kill}: acknowledged environment {name} is gone");
    }
    let operations = all_nodes(server, "operations", "id status startedAt").await;
    let stored: HashSet<&str> = operations.iter().map(|o| o["id"].as_str().unwrap()).collect();
    for op in &ledger.operations {
        assert!(stored.contains(op.as_str()), "kill {kill}: acknowledged operation {op} is gone");
    }
    const FINAL: [&str; 4] = ["DEPLOYMENT_OK", "BUILDING_ERROR", "DEPLOYMENT_ERROR", "CANCELLED"];
    for op in &operations {
        let status = op["status"].as_str().unwrap();
        if FINAL.contains(&status) || status == "QUEUED" {
            continue;
        }
        let started: DateTime<Utc> = op["startedAt"].as_str().unwrap().parse().unwrap();
        assert!(started >= server.spawned_at, "kill {kill}: {op} was left {status} by the killed process");
    }
    for op in lines_of.iter().filter(|op| ledger.lines.contains_key(*op)) {
        let log = stored_log(server, op).await;
        for (seq, text) in &ledger.lines[op] {
            assert_eq!(log.get(seq), Some(text), "kill {kill}: acknowledged line {seq} of {op} is gone");
        }
    }
}

fn median_and_max(mut times: Vec<Duration>) -> (Duration, Duration) {
    times.sort();
    (times[times.len() / 2], *times.last().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_killed_at_random_moments_loses_nothing_it_acknowledged() {
    let kills: usize = std::env::var("OPSGRAPH_CRASH_KILLS").ok().and_then(|n| n.parse().ok()).unwrap_or(20);
    let seed: u64 = std::env::var("OPSGRAPH_CRASH_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| Utc::now().timestamp_nanos_opt().unwrap_or(1) as u64 | 1);
    println!("crash test: {kills} kills, OPSGRAPH_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("opsgraph.redb");

    let mut server = Server::start(&db, None).await;
    let token = server.at.token.clone();
    let env = server.gql("mutation { createEnvironment(input: { name: \"prod\" }) { id } }", json!({})).await;
    let env = env["createEnvironment"]["id"].as_str().unwrap().to_owned();
    let create = "mutation($e: ID!, $n: String!, $b: String!) { createService(input: { environmentId: $e, name: $n, kind: JOB, buildCommand: $b }) { id } }";
    let mut quick = Vec::new();
    for n in 0..4 {
        let build = "echo building $COMMIT; sleep 0.1; echo built $COMMIT";
        let data = server.gql(create, json!({ "e": env, "n": format!("job{n}"), "b": build })).await;
        quick.push(data["createService"]["id"].as_str().unwrap().to_owned());
    }
    // Its builds hang until a kill: the log `appendLogs` extends.
    let data =
        server.gql(create, json!({ "e": env, "n": "sink", "b": "echo sink $COMMIT; exec sleep 600" })).await;
    let sink = data["createService"]["id"].as_str().unwrap().to_owned();

    let ledger = Arc::new(Mutex::new(Ledger { environments: vec!["prod".into()], ..Ledger::default() }));
    let events = Follower::new(Feed::Events(env.clone()));
    let mut logs: Vec<Arc<Mutex<Follower>>> = Vec::new();
    let (mut recoveries, mut raw_opens) = (Vec::new(), Vec::new());
    let deploy = "mutation($s: ID!, $c: String!) { deploy(input: { serviceId: $s, commit: $c }) { id } }";

    for kill in 1..=kills {
        let server_ref = Arc::new(server);
        // This round's sink operation, and a follower of its log.
        let data = server_ref.gql(deploy, json!({ "s": sink, "c": format!("sink{kill}") })).await;
        let sink_op = data["deploy"]["id"].as_str().unwrap().to_owned();
        ledger.lock().unwrap().operations.push(sink_op.clone());
        logs.push(Follower::new(Feed::Logs(sink_op.clone())));

        let mut drivers = Vec::new();
        for follower in logs.iter().chain([&events]) {
            drivers.push(tokio::spawn(follow(server_ref.at.clone(), follower.clone(), usize::MAX)));
        }
        for d in 0..2u64 {
            let (server, ledger, quick) = (server_ref.clone(), ledger.clone(), quick.clone());
            let mut rng = Rng(seed ^ (kill as u64 * 31 + d + 1));
            drivers.push(tokio::spawn(async move {
                for k in 0.. {
                    let svc = &quick[rng.range(0, quick.len() as u64) as usize];
                    let commit = format!("k{kill}d{d}n{k}");
                    let Some(body) = server.try_post(deploy, json!({ "s": svc, "c": commit })).await else {
                        return;
                    };
                    let id = body["data"]["deploy"]["id"].as_str().expect("a deploy is accepted").to_owned();
                    ledger.lock().unwrap().operations.push(id);
                    if k % 3 == 0 {
                        let name = format!("k{kill}d{d}n{k}");
                        let query = "mutation($n: String!) { createEnvironment(input: { name: $n }) { id } }";
                        let Some(body) = server.try_post(query, json!({ "n": name })).await else { return };
                        assert!(body.get("errors").is_none(), "{body}");
                        ledger.lock().unwrap().environments.push(name);
                    }
                    tokio::time::sleep(Duration::from_millis(rng.range(10, 60))).await;
                }
            }));
        }
        for a in 0..2u64 {
            let (server, ledger, sink_op) = (server_ref.clone(), ledger.clone(), sink_op.clone());
            drivers.push(tokio::spawn(async move {
                let append = "mutation($o: ID!, $l: [String!]!) { appendLogs(operationId: $o, lines: $l) { firstSeq lastSeq } }";
                for k in 0.. {
                    let lines: Vec<String> = (0..1 + k % 3).map(|i| format!("a{a} call {k} line {i}")).collect();
                    let Some(body) = server.try_post(append, json!({ "o": sink_op, "l": lines })).await else {
                        return;
                    };
                    let reply = &body["data"]["appendLogs"];
                    assert!(body.get("errors").is_none(), "{body}");
                    let first = reply["firstSeq"].as_u64().unwrap();
                    assert_eq!(reply["lastSeq"].as_u64().unwrap(), first + lines.len() as u64 - 1);
                    let mut ledger = ledger.lock().unwrap();
                    let acked = ledger.lines.entry(sink_op.clone()).or_default();
                    acked.extend(lines.into_iter().enumerate().map(|(i, text)| (first + i as u64, text)));
                }
            }));
        }

        // Load for a random moment, then SIGKILL.
        tokio::time::sleep(Duration::from_millis(rng.range(150, 700))).await;
        server_ref.kill();
        for driver in drivers {
            tokio::time::timeout(PATIENCE, driver).await.expect("clients notice the kill").expect("client");
        }
        Arc::try_unwrap(server_ref).ok().expect("no client holds the server").reap().await;
        raw_opens.push(check_killed_file(&db, dir.path()));

        server = Server::start(&db, Some(&token)).await;
        recoveries.push(server.ready_after);
        let acknowledged = ledger.lock().unwrap().snapshot();
        check_restart(&server, &acknowledged, &[sink_op], kill).await;
    }

    // The end: every acknowledged line again, then every follower resumes
    // and must hold exactly the stored feed.
    let ledger = Arc::try_unwrap(ledger).ok().unwrap().into_inner().unwrap();
    let all: Vec<String> = ledger.lines.keys().cloned().collect();
    check_restart(&server, &ledger, &all, kills).await;
    for follower in &logs {
        tokio::time::timeout(PATIENCE, follow(server.at.clone(), follower.clone(), usize::MAX))
            .await
            .expect("the log completes");
        let (op, received) = {
            let f = follower.lock().unwrap();
            let Feed::Logs(op) = f.feed.clone() else { unreachable!() };
            assert!(f.completed, "the log of {op} completed");
            let received: BTreeMap<u64, String> =
                f.received.iter().map(|(s, t)| (s.parse().unwrap(), t.clone())).collect();
            (op, received)
        };
        assert_eq!(
            received,
            stored_log(&server, &op).await,
            "{op}: what the follower received is the stored log"
        );
    }
    let received = events.lock().unwrap().received.clone();
    let fresh = Follower::new(Feed::Events(env.clone()));
    tokio::time::timeout(PATIENCE, follow(server.at.clone(), fresh.clone(), received.len()))
        .await
        .expect("the stored feed holds at least what was received");
    let stored = fresh.lock().unwrap().received[..received.len()].to_vec();
    assert_eq!(received, stored, "the events received across restarts are the stored feed, in order");
    server.stop().await;
    let mut raw = redb::Database::open(&db).expect("the file opens");
    assert!(raw.check_integrity().expect("integrity check"));

    let (recovery_median, recovery_max) = median_and_max(recoveries);
    let (open_median, open_max) = median_and_max(raw_opens);
    println!(
        "crash test: {kills} kills survived; {} operations, {} environments and {} log lines acknowledged; \
         {} events followed across restarts",
        ledger.operations.len(),
        ledger.environments.len(),
        ledger.lines.values().map(BTreeMap::len).sum::<usize>(),
        received.len(),
    );
    println!(
        "crash test: recovery (process start to ready) median {recovery_median:?}, max {recovery_max:?}; \
         raw redb open of the killed file median {open_median:?}, max {open_max:?}"
    );
}
