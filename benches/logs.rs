//! Operation logs through opsgraph against plain baselines, measured side
//! by side in one run (the machines are shared and noisy: only ratios
//! mean anything).
//!
//! `cargo bench --bench logs` runs the three scenarios; `cargo bench --bench
//! logs -- ingest` (or `fanout`, `memory`, several allowed) runs some. Each
//! alternates baseline and subject rounds (`ROUNDS`, at least 5) and prints
//! every round and the median. A failed check (a lost, repeated or
//! reordered line, an error answer) aborts the run: a figure from a run
//! that failed its checks is not a figure. A missed target fails the run
//! after every figure is printed.
//!
//! 1. ingest: lines per second through `appendLogs` over HTTP POST
//!    `/graphql` (4 producers, each on its own running operation, each
//!    sending 1,000 lines of 200 bytes per call and awaiting the reply, so
//!    every line is durable first), against raw redb inserts of the same
//!    lines into a plain `(u64, u64) -> &[u8]` table of a separate file in
//!    the same temporary directory, 1,000 lines per commit. The baseline
//!    stores the very bytes the server stores, the serde JSON encoding of
//!    `domain::LogLine` (about 270 bytes for a 200-byte text), encoded in
//!    the loop as the server does: the ratio is the cost of the server path
//!    (HTTP, GraphQL, the writer thread, the checks), not of the row format.
//!    Rounds of 2 s. Target: median ratio ≥ 0.5.
//! 2. fanout: 1,000 subscribers of `operationLogs` over graphql-transport-ws
//!    following one running operation whose producer appends 100 lines of
//!    200 bytes every 100 ms (1,000 lines per second) with `appendLogs`,
//!    against a plain axum WebSocket route built here that assigns the
//!    lines their `seq` and sends them, serialised once per batch in the
//!    same JSON shape as a graphql-transport-ws `next` message, to 1,000
//!    clients through `tokio::sync::broadcast`; its producer posts the same
//!    batches over HTTP to a plain route. Batches of 100 every 100 ms, not
//!    one line every millisecond: deployment machinery ships output in
//!    batches, a commit per line would measure the disk's fsync rather than
//!    the fan-out, and a subscriber then gets one frame per batch (what
//!    `LogBatch` exists for) on both sides. Latency runs from just before
//!    the producer sends a batch (a monotonic timestamp, nanoseconds since
//!    an `Instant` shared by the whole process, written into each line's
//!    text) to the arrival of the frame at each client, one sample per line
//!    per client. So opsgraph's figure includes the durable commit (the
//!    baseline stores nothing). Every client checks that it received every
//!    line exactly once and in order (by `seq`, and by the producer's index
//!    in the text). Clients, producer and servers share one process and one
//!    multi-thread runtime (a worker per core): both sides' clients do the
//!    same work, but they compete with the server for the same cores, so
//!    absolute figures include them. The producer's achieved rate is
//!    printed: a server that cannot take 1,000 lines per second slows it.
//!    Rounds of 3 s of production. Target: median p99 ratio (opsgraph p99 /
//!    baseline p99) ≤ 2.
//! 3. memory: the resident memory (`VmRSS`) of the real `opsgraph` binary,
//!    run as a child process on a new database, before and after 1,000
//!    `operationLogs` subscriptions were opened and each received its
//!    replay (the build's own `SYSTEM` lines and 100 lines of 200 bytes),
//!    reported as (after − before) / 1,000 in KiB, "after" once the
//!    blocking threads the replays started have ended (idle subscribers
//!    hold none). As a reference, the same for 1,000 idle connections to
//!    the plain WebSocket route above (axum's defaults), served by this
//!    benchmark's own executable as a child process. A new process per
//!    round. No target: reported.
//!
//! 1,000 clients need about 2,200 open files in one process: the soft
//! `RLIMIT_NOFILE` is raised to 8,192 at start (or `ulimit -n 8192`).

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use serde_json::{Value, json};

/// The same allocator as the `opsgraph` binary, so the figures are the
/// server's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ROUNDS: usize = 5;
/// Bytes of every line's text.
const LINE_BYTES: usize = 200;
/// Upper bound on waiting for any one thing; never a sleep.
const PATIENCE: Duration = Duration::from_secs(60);
/// WebSocket handshakes in flight at once (the listen backlog is 1,024).
const CONNECTING: usize = 64;
const SUBSCRIBERS: usize = 1_000;
/// Open files the process needs: a client and a server socket per
/// subscriber, and headroom for the runtime, redb and HTTP clients.
const OPEN_FILES: u64 = 8_192;

/// The moment every latency timestamp counts from, shared by producers
/// and clients (they are in one process).
static BASE: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Nanoseconds since [`BASE`].
fn nanos() -> u64 {
    BASE.elapsed().as_nanos() as u64
}

const SCENARIOS: [&str; 3] = ["ingest", "fanout", "memory"];
/// The argument that makes this executable serve the plain WebSocket
/// route alone (the memory scenario's reference process).
const PLAIN_SERVER: &str = "plain-server";

fn main() -> Result<()> {
    // Arguments that start with `-` are cargo's (`--bench`).
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    if args.iter().any(|a| a == PLAIN_SERVER) {
        return runtime.block_on(plain::serve_alone());
    }
    if let Some(unknown) = args.iter().find(|a| !SCENARIOS.contains(&a.as_str())) {
        bail!("unknown scenario `{unknown}`: choose among {SCENARIOS:?} (all by default)");
    }
    let wanted = |name: &str| args.is_empty() || args.iter().any(|a| a == name);
    raise_open_files()?;
    LazyLock::force(&BASE);
    runtime.block_on(async {
        let mut verdicts = Vec::new();
        if wanted("ingest") {
            let ratio = ingest::run().await?;
            verdicts.push((format!("ingest: median ratio {ratio:.2} (target >= 0.5)"), ratio >= 0.5));
        }
        if wanted("fanout") {
            let ratio = fanout::run().await?;
            verdicts.push((format!("fanout: median p99 ratio {ratio:.2} (target <= 2.0)"), ratio <= 2.0));
        }
        if wanted("memory") {
            let (subscriber, plain) = memory::run().await?;
            println!(
                "memory: {subscriber:.1} KiB per idle operationLogs subscriber \
                 (plain axum WebSocket: {plain:.1} KiB per connection), medians of {ROUNDS}"
            );
        }
        for (line, ok) in &verdicts {
            println!("{line} {}", if *ok { "PASS" } else { "FAIL" });
        }
        if verdicts.iter().any(|(_, ok)| !ok) {
            std::process::exit(1);
        }
        Ok(())
    })
}

/// Raises the soft limit on open files to [`OPEN_FILES`] when it is lower
/// (child processes inherit it).
fn raise_open_files() -> Result<()> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < OPEN_FILES {
        ensure!(
            hard >= OPEN_FILES,
            "{SUBSCRIBERS} clients need {OPEN_FILES} open files, the hard limit is {hard}: \
             raise it (`ulimit -Hn {OPEN_FILES}` as root)"
        );
        setrlimit(Resource::RLIMIT_NOFILE, OPEN_FILES, hard)?;
    }
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

/// A line of exactly [`LINE_BYTES`] bytes that starts with `head`.
fn padded(head: String) -> String {
    let mut line = head;
    let filler = "abcdefghijklmnopqrstuvwxyz0123456789";
    while line.len() < LINE_BYTES {
        let take = (LINE_BYTES - line.len()).min(filler.len());
        line.push_str(&filler[..take]);
    }
    line
}

/// An opsgraph server in this process, and what talking to it needs.
mod server {
    use opsgraph::app::Application;
    use opsgraph::config::ServeArgs;
    use tokio_util::sync::CancellationToken;

    use super::*;

    pub struct Server {
        pub port: u16,
        /// Sends the owner token of the first start with every request.
        pub http: reqwest::Client,
        pub token: String,
        shutdown: CancellationToken,
        task: tokio::task::JoinHandle<Result<()>>,
        /// Holds the database; also where baselines keep their files.
        pub dir: tempfile::TempDir,
    }

    impl Server {
        /// A server on `127.0.0.1:0` over a new database, ready.
        pub async fn start() -> Result<Self> {
            let dir = tempfile::tempdir()?;
            let mut args = ServeArgs::new(dir.path().join("opsgraph.redb"), "127.0.0.1:0".parse()?);
            args.data_dir = Some(dir.path().join("data"));
            // One caller holds every subscriber and sends every append.
            args.limits.rate_limit = 0;
            args.limits.max_connections_per_caller = usize::MAX;
            let app = Application::build(args).await?;
            let port = app.port();
            let token = app.first_token().context("a new database prints an owner token")?.secret.clone();
            let mut ready = app.readiness();
            let shutdown = app.shutdown_token();
            let task = tokio::spawn(app.run_until_stopped());
            tokio::time::timeout(PATIENCE, ready.wait_for(|r| *r)).await??;
            Ok(Self { port, http: Self::authorized(&token)?, token, shutdown, task, dir })
        }

        /// A client that sends `token` with every request.
        pub fn authorized(token: &str) -> Result<reqwest::Client> {
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse()?);
            Ok(reqwest::Client::builder().default_headers(headers).build()?)
        }

        pub fn graphql(&self) -> String {
            format!("http://127.0.0.1:{}/graphql", self.port)
        }

        /// Cancels `operations` (their build processes end), then stops.
        pub async fn stop(self, operations: &[String]) -> Result<()> {
            cancel(&self.http, &self.graphql(), operations).await?;
            self.shutdown.cancel();
            self.task.await??;
            Ok(())
        }
    }

    /// Runs a GraphQL request that must succeed; returns its `data`.
    pub async fn gql(http: &reqwest::Client, url: &str, query: &str, variables: Value) -> Result<Value> {
        let body: Value = http
            .post(url)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        ensure!(body.get("errors").is_none(), "GraphQL errors: {body}");
        Ok(body["data"].clone())
    }

    fn id(value: &Value) -> Result<String> {
        value.as_str().map(str::to_owned).ok_or_else(|| anyhow!("expected an id, got {value}"))
    }

    /// `count` operations that stay `BUILDING` until cancelled (their build
    /// command sleeps an hour), each of its own service.
    pub async fn running_operations(http: &reqwest::Client, url: &str, count: usize) -> Result<Vec<String>> {
        let env =
            gql(http, url, "mutation { createEnvironment(input: { name: \"logs\" }) { id } }", json!({}))
                .await?;
        let env = id(&env["createEnvironment"]["id"])?;
        let mut operations = Vec::new();
        for n in 0..count {
            let service = gql(
                http,
                url,
                "mutation($e: ID!, $n: String!) { createService(input: { environmentId: $e, name: $n, \
                 kind: JOB, buildCommand: \"exec sleep 3600\", instances: 0 }) { id } }",
                json!({ "e": env, "n": format!("producer-{n}") }),
            )
            .await?;
            let service = id(&service["createService"]["id"])?;
            let op = gql(
                http,
                url,
                "mutation($s: ID!) { deploy(input: { serviceId: $s, commit: \"bench\" }) { id } }",
                json!({ "s": service }),
            )
            .await?;
            operations.push(id(&op["deploy"]["id"])?);
        }
        for op in &operations {
            wait_status(http, url, op, |s| s == "BUILDING").await?;
        }
        Ok(operations)
    }

    /// Polls the operation until `done(status)`.
    async fn wait_status(http: &reqwest::Client, url: &str, op: &str, done: fn(&str) -> bool) -> Result<()> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let data =
                gql(http, url, "query($id: ID!) { operation(id: $id) { status } }", json!({ "id": op }))
                    .await?;
            let status = data["operation"]["status"].as_str().unwrap_or_default();
            if done(status) {
                return Ok(());
            }
            ensure!(Instant::now() < deadline, "operation {op} is still {status}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Cancels the operations and waits until they are final.
    pub async fn cancel(http: &reqwest::Client, url: &str, operations: &[String]) -> Result<()> {
        for op in operations {
            gql(
                http,
                url,
                "mutation($id: ID!) { cancelOperation(input: { operationId: $id }) { id } }",
                json!({ "id": op }),
            )
            .await?;
        }
        for op in operations {
            wait_status(http, url, op, |s| !["QUEUED", "BUILDING", "DEPLOYING", "CANCELLING"].contains(&s))
                .await?;
        }
        Ok(())
    }

    /// `appendLogs`; returns `(firstSeq, lastSeq)`, checked to span the lines.
    pub async fn append(
        http: &reqwest::Client,
        url: &str,
        op: &str,
        lines: Vec<String>,
    ) -> Result<(u64, u64)> {
        let count = lines.len() as u64;
        let data = gql(http, url, APPEND, json!({ "op": op, "lines": lines })).await?;
        append_reply(&data, count)
    }

    pub const APPEND: &str = "mutation($op: ID!, $lines: [String!]!) { appendLogs(operationId: $op, lines: $lines) { firstSeq lastSeq } }";

    /// The `(firstSeq, lastSeq)` of an `appendLogs` answer of `count` lines.
    pub fn append_reply(data: &Value, count: u64) -> Result<(u64, u64)> {
        let reply = &data["appendLogs"];
        let (first, last) = (reply["firstSeq"].as_u64(), reply["lastSeq"].as_u64());
        match (first, last) {
            (Some(first), Some(last)) if last + 1 == first + count => Ok((first, last)),
            _ => bail!("appendLogs of {count} lines answered {reply}"),
        }
    }
}

/// WebSocket clients: graphql-transport-ws subscriptions of `operationLogs`
/// and the plain route's clients, which receive the same frames.
mod client {
    use std::borrow::Cow;

    use futures_util::{SinkExt, StreamExt};
    use serde::Deserialize;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::handshake::client::{Request, Response};
    use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
    use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

    use super::*;

    pub type Socket =
        tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

    const LOGS: &str = "subscription($id: ID!, $after: Int) { operationLogs(operationId: $id, after: $after) \
                        { lastSeq lines { seq at stream text } } }";

    /// Opens an `operationLogs` subscription of `op` after `after`.
    pub async fn subscribe(port: u16, token: &str, op: &str, after: u64) -> Result<Socket> {
        let mut request = format!("ws://127.0.0.1:{port}/graphql").into_client_request()?;
        request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse()?);
        let (mut socket, _) = connect(request).await?;
        let init =
            json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {token}") } });
        socket.send(Message::text(init.to_string())).await?;
        let (_, ack) = next_text(&mut socket).await?.context("closed before connection_ack")?;
        ensure!(kind(&ack)? == "connection_ack", "expected connection_ack, got {ack}");
        let subscribe = json!({ "id": "1", "type": "subscribe",
            "payload": { "query": LOGS, "variables": { "id": op, "after": after } } });
        socket.send(Message::text(subscribe.to_string())).await?;
        Ok(socket)
    }

    /// Connects to the plain route; returns the socket and the `seq` of the
    /// last line published before it was following.
    pub async fn plain(port: u16) -> Result<(Socket, u64)> {
        let (mut socket, _) = connect(format!("ws://127.0.0.1:{port}/ws").into_client_request()?).await?;
        let (_, text) = next_text(&mut socket).await?.context("closed before hello")?;
        let hello: Hello =
            serde_json::from_str(&text).with_context(|| format!("expected hello, got {text}"))?;
        ensure!(hello.kind == "hello", "expected hello, got {text}");
        Ok((socket, hello.last_seq))
    }

    /// Connects with a read buffer about one frame large: tungstenite
    /// zero-fills the whole buffer (128 KiB by default) on every read, a
    /// cost of the clients that would only crowd out the servers.
    async fn connect(request: Request) -> Result<(Socket, Response)> {
        let config = WebSocketConfig::default().read_buffer_size(32 * 1024);
        Ok(tokio_tungstenite::connect_async_with_config(request, Some(config), true).await?)
    }

    /// The next text frame and when it arrived (nanoseconds since
    /// [`BASE`]); `None` once the socket closed.
    pub async fn next_text(socket: &mut Socket) -> Result<Option<(u64, Utf8Bytes)>> {
        loop {
            let next = tokio::time::timeout(PATIENCE, socket.next()).await.context("no frame in time")?;
            let arrival = nanos();
            match next.transpose()? {
                Some(Message::Text(text)) => return Ok(Some((arrival, text))),
                Some(Message::Close(_)) | None => return Ok(None),
                Some(_) => {}
            }
        }
    }

    #[derive(Deserialize)]
    struct Hello {
        #[serde(rename = "type")]
        kind: String,
        #[serde(rename = "lastSeq")]
        last_seq: u64,
    }

    #[derive(Deserialize)]
    struct Kind<'a> {
        #[serde(rename = "type", borrow)]
        kind: Cow<'a, str>,
    }

    fn kind(text: &str) -> Result<Cow<'_, str>> {
        let frame: Kind<'_> = serde_json::from_str(text).with_context(|| format!("not a message: {text}"))?;
        Ok(frame.kind)
    }

    /// A message of the subscription: a `next` message of `operationLogs`
    /// carries a payload, as both sides send it.
    #[derive(Deserialize)]
    struct Frame<'a> {
        #[serde(rename = "type", borrow)]
        kind: Cow<'a, str>,
        #[serde(default, borrow)]
        payload: Option<Payload<'a>>,
    }

    #[derive(Deserialize)]
    struct Payload<'a> {
        #[serde(borrow)]
        data: Data<'a>,
    }

    #[derive(Deserialize)]
    struct Data<'a> {
        #[serde(rename = "operationLogs", borrow)]
        logs: Batch<'a>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Batch<'a> {
        pub last_seq: u64,
        #[serde(borrow)]
        pub lines: Vec<Line<'a>>,
    }

    #[derive(Deserialize)]
    pub struct Line<'a> {
        pub seq: u64,
        #[serde(borrow)]
        pub stream: Cow<'a, str>,
        #[serde(borrow)]
        pub text: Cow<'a, str>,
    }

    /// The batch a `next` message carries: anything else (an error, a
    /// `complete`) fails, and so does a batch whose `lastSeq` is not its
    /// last line's.
    pub fn batch(text: &str) -> Result<Batch<'_>> {
        let batch = match serde_json::from_str::<Frame<'_>>(text) {
            Ok(Frame { kind, payload: Some(payload) }) if kind == "next" => payload.data.logs,
            _ => bail!("expected a log batch, got {}", cut(text)),
        };
        let last = batch.lines.last().map(|l| l.seq);
        ensure!(last == Some(batch.last_seq), "batch with lastSeq {} ends at {last:?}", batch.last_seq);
        Ok(batch)
    }

    /// Enough of a frame for an error message.
    fn cut(text: &str) -> &str {
        let mut end = text.len().min(300);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        &text[..end]
    }

    /// Reads the replay of a new subscription up to `head`, checking that
    /// it holds every `seq` from 1, once, in order.
    pub async fn replay(socket: &mut Socket, head: u64) -> Result<()> {
        let mut next = 1;
        while next <= head {
            let (_, text) = next_text(socket).await?.context("closed during the replay")?;
            for line in batch(&text)?.lines {
                ensure!(line.seq == next, "replay: expected line {next}, got {}", line.seq);
                next += 1;
            }
        }
        Ok(())
    }
}

/// The baseline of the fan-out: a plain axum route that sends every
/// published batch to every connected client through a broadcast channel,
/// as one JSON frame serialised once.
mod plain {
    use std::sync::{Arc, Mutex};

    use axum::Json;
    use axum::extract::State;
    use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
    use axum::response::Response;
    use axum::routing::{get, post};
    use futures_util::{SinkExt, StreamExt};
    use tokio::sync::broadcast;

    use super::*;

    #[derive(Clone)]
    struct Hub {
        frames: broadcast::Sender<Utf8Bytes>,
        /// The `seq` of the last line published; the frame is sent under
        /// this lock, so a client's hello and its first frame agree.
        last_seq: Arc<Mutex<u64>>,
    }

    /// Serves `POST /publish` and `GET /ws` on `127.0.0.1:0`; returns the port.
    pub async fn serve() -> Result<u16> {
        let hub = Hub { frames: broadcast::channel(1_024).0, last_seq: Arc::default() };
        let router =
            axum::Router::new().route("/publish", post(publish)).route("/ws", get(follow)).with_state(hub);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        tokio::spawn(async move { axum::serve(listener, router).await });
        Ok(port)
    }

    /// This executable as the plain server alone: prints its address like
    /// `opsgraph` does, then serves until killed.
    pub async fn serve_alone() -> Result<()> {
        let port = serve().await?;
        println!("plain listening on http://127.0.0.1:{port}/");
        std::future::pending::<()>().await;
        Ok(())
    }

    #[derive(serde::Deserialize)]
    struct Publish {
        lines: Vec<String>,
    }

    async fn publish(State(hub): State<Hub>, Json(body): Json<Publish>) -> Json<Value> {
        let at = chrono::Utc::now().to_rfc3339();
        let mut last = hub.last_seq.lock().expect("publish lock");
        let first = *last + 1;
        let lines: Vec<Value> = (first..)
            .zip(body.lines)
            .map(|(seq, text)| json!({ "seq": seq, "at": at, "stream": "STDOUT", "text": text }))
            .collect();
        *last += lines.len() as u64;
        let frame = json!({ "id": "1", "type": "next",
            "payload": { "data": { "operationLogs": { "lastSeq": *last, "lines": lines } } } });
        // No client connected is not an error.
        let _ = hub.frames.send(frame.to_string().into());
        Json(json!({ "data": { "appendLogs": { "firstSeq": first, "lastSeq": *last } } }))
    }

    async fn follow(State(hub): State<Hub>, upgrade: WebSocketUpgrade) -> Response {
        upgrade.on_upgrade(move |socket| send_frames(socket, hub))
    }

    async fn send_frames(socket: WebSocket, hub: Hub) {
        let (mut sink, mut incoming) = socket.split();
        let (mut frames, last) = {
            let last = hub.last_seq.lock().expect("publish lock");
            (hub.frames.subscribe(), *last)
        };
        let hello = json!({ "type": "hello", "lastSeq": last }).to_string();
        if sink.send(Message::Text(hello.into())).await.is_err() {
            return;
        }
        // The client sends nothing: reading only tells when it is gone. In
        // a task of its own, the socket is read when it has something, not
        // each time a frame goes out (as axum's chat example does).
        let mut gone = tokio::spawn(async move { while let Some(Ok(_)) = incoming.next().await {} });
        loop {
            tokio::select! {
                frame = frames.recv() => match frame {
                    Ok(frame) => if sink.send(Message::Text(frame)).await.is_err() { break },
                    // Nothing stored to catch up from: the client sees the
                    // gap and fails the run.
                    Err(_) => break,
                },
                _ = &mut gone => break,
            }
        }
        gone.abort();
    }
}

/// Scenario 1: durable ingest through `appendLogs` against raw redb inserts.
mod ingest {
    use std::sync::Arc;

    use opsgraph::domain::{LogLine, LogStream, now_millis};
    use redb::TableDefinition;

    use super::server::{APPEND, Server, append_reply, running_operations};
    use super::*;

    const PRODUCERS: usize = 4;
    const BATCH: usize = 1_000;
    const ROUND: Duration = Duration::from_secs(2);
    /// Key: (producer, seq). Value: a `LogLine` as the server encodes it.
    const RAW_LINES: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("lines");

    /// Runs the scenario; returns the median ratio.
    pub async fn run() -> Result<f64> {
        let server = Server::start().await?;
        let url = server.graphql();
        let operations = running_operations(&server.http, &url, PRODUCERS).await?;
        let lines: Arc<Vec<String>> =
            Arc::new((0..BATCH).map(|n| padded(format!("ingest line {n:06} "))).collect());
        let bodies: Vec<Arc<Vec<u8>>> = operations
            .iter()
            .map(|op| json!({ "query": APPEND, "variables": { "op": op, "lines": *lines } }))
            .map(|body| serde_json::to_vec(&body).map(Arc::new))
            .collect::<Result<_, _>>()?;
        let raw = Arc::new(redb::Database::create(server.dir.path().join("raw.redb"))?);
        let mut raw_seqs = [0u64; PRODUCERS];
        println!(
            "ingest: {PRODUCERS} producers x appendLogs of {BATCH} lines of {LINE_BYTES} bytes over HTTP \
             vs raw redb, {BATCH} lines per commit; {ROUNDS} rounds of {ROUND:?} each side"
        );
        let mut ratios = Vec::new();
        for round in 1..=ROUNDS {
            let (db, batch, mut seqs) = (raw.clone(), lines.clone(), raw_seqs);
            let base;
            (base, raw_seqs) = tokio::task::spawn_blocking(move || {
                raw_round(&db, &batch, &mut seqs).map(|rate| (rate, seqs))
            })
            .await??;
            let subject = appends_round(&server.http, &url, &bodies).await?;
            let ratio = subject / base;
            println!(
                "  round {round}: raw redb {base:.0} lines/s, appendLogs {subject:.0} lines/s, ratio {ratio:.2}"
            );
            ratios.push(ratio);
        }
        server.stop(&operations).await?;
        let ratio = median(&mut ratios);
        println!("  median ratio {ratio:.2}");
        Ok(ratio)
    }

    /// Lines per second stored by `PRODUCERS` loops of `appendLogs`, each
    /// call awaited.
    async fn appends_round(http: &reqwest::Client, url: &str, bodies: &[Arc<Vec<u8>>]) -> Result<f64> {
        let start = Instant::now();
        let deadline = start + ROUND;
        let producers: Vec<_> = bodies
            .iter()
            .map(|body| {
                let (http, url, body) = (http.clone(), url.to_owned(), body.clone());
                tokio::spawn(async move {
                    let (mut lines, mut last) = (0u64, 0u64);
                    while Instant::now() < deadline {
                        let response = http
                            .post(&url)
                            .header(reqwest::header::CONTENT_TYPE, "application/json")
                            .body(body.to_vec())
                            .send()
                            .await?;
                        let reply: Value = response.error_for_status()?.json().await?;
                        ensure!(reply.get("errors").is_none(), "appendLogs failed: {reply}");
                        let (first, now_last) = append_reply(&reply["data"], BATCH as u64)?;
                        ensure!(first > last, "appendLogs stored lines {first}.. after {last}");
                        (lines, last) = (lines + BATCH as u64, now_last);
                    }
                    Ok::<_, anyhow::Error>(lines)
                })
            })
            .collect();
        let mut total = 0;
        for producer in producers {
            total += producer.await??;
        }
        Ok(total as f64 / start.elapsed().as_secs_f64())
    }

    /// Lines per second of sequential commits of `lines` each, the
    /// producers' turns in rotation.
    fn raw_round(db: &redb::Database, lines: &[String], seqs: &mut [u64; PRODUCERS]) -> Result<f64> {
        let start = Instant::now();
        let (mut stored, mut bytes) = (0usize, Vec::new());
        for producer in (0..PRODUCERS).cycle() {
            if start.elapsed() >= ROUND {
                break;
            }
            let txn = db.begin_write()?;
            {
                let mut table = txn.open_table(RAW_LINES)?;
                let at = now_millis();
                for text in lines {
                    seqs[producer] += 1;
                    let seq = seqs[producer];
                    let line = LogLine {
                        seq,
                        at,
                        stream: LogStream::Stdout,
                        text: text.clone(),
                        instance: None,
                        continued: false,
                    };
                    bytes.clear();
                    serde_json::to_writer(&mut bytes, &line)?;
                    table.insert((producer as u64, seq), bytes.as_slice())?;
                }
            }
            txn.commit()?;
            stored += lines.len();
        }
        Ok(stored as f64 / start.elapsed().as_secs_f64())
    }
}

/// Scenario 2: 1,000 live subscribers of one operation's log against a
/// plain WebSocket broadcast.
mod fanout {
    use futures_util::{StreamExt, TryStreamExt, stream};
    use tokio::time::MissedTickBehavior;

    use super::client::{self, Socket};
    use super::server::{self, Server, running_operations};
    use super::*;

    const BATCH: usize = 100;
    const PERIOD: Duration = Duration::from_millis(100);
    const BATCHES: usize = 30;
    const LINES: u64 = (BATCH * BATCHES) as u64;
    /// How long a client keeps reading after its last line: anything that
    /// arrives then is checked too (a repeat fails the run).
    const DRAIN: Duration = Duration::from_millis(300);

    /// One side of the comparison.
    enum Side {
        Opsgraph { port: u16, token: String, url: String, op: String },
        Plain { port: u16, url: String },
    }

    /// What one round measured.
    struct Round {
        /// Per line per client, in nanoseconds, sorted.
        latencies: Vec<u64>,
        /// How long each of the producer's sends took, sorted.
        sends: Vec<Duration>,
        /// Lines per second the producer kept up (1,000 offered).
        rate: f64,
        mean_frame: usize,
    }

    impl Round {
        /// The `p` quantile of the latencies, in milliseconds.
        fn ms(&self, p: f64) -> f64 {
            let rank = (p * self.latencies.len() as f64).ceil() as usize;
            self.latencies[rank.clamp(1, self.latencies.len()) - 1] as f64 / 1e6
        }

        fn summary(&self) -> String {
            format!(
                "p50 {:.1} ms, p99 {:.1} ms; producer kept {:.0} lines/s, a send took {:.1?} (median) \
                 to {:.1?}; {} bytes a frame",
                self.ms(0.5),
                self.ms(0.99),
                self.rate,
                self.sends[self.sends.len() / 2],
                self.sends[self.sends.len() - 1],
                self.mean_frame,
            )
        }
    }

    /// Runs the scenario; returns the median p99 ratio.
    pub async fn run() -> Result<f64> {
        let server = Server::start().await?;
        let http = server.http.clone();
        let operations = running_operations(&http, &server.graphql(), 1).await?;
        let opsgraph = Side::Opsgraph {
            port: server.port,
            token: server.token.clone(),
            url: server.graphql(),
            op: operations[0].clone(),
        };
        let port = plain::serve().await?;
        let plain = Side::Plain { port, url: format!("http://127.0.0.1:{port}/publish") };
        println!(
            "fanout: {SUBSCRIBERS} subscribers, {BATCH} lines of {LINE_BYTES} bytes every {PERIOD:?} \
             ({BATCHES} batches a round); latency from before the send to each client, \
             {ROUNDS} rounds each side"
        );
        let (mut ratios, mut p99s, mut rates) = (Vec::new(), (Vec::new(), Vec::new()), Vec::new());
        for n in 1..=ROUNDS {
            let base = round(&plain, &http, n).await?;
            let subject = round(&opsgraph, &http, n).await?;
            let ratio = subject.ms(0.99) / base.ms(0.99);
            println!("  round {n}: p99 ratio {ratio:.2}");
            println!("    plain:    {}", base.summary());
            println!("    opsgraph: {}", subject.summary());
            ratios.push(ratio);
            p99s.0.push(base.ms(0.99));
            p99s.1.push(subject.ms(0.99));
            rates.push(subject.rate);
        }
        server.stop(&operations).await?;
        let ratio = median(&mut ratios);
        println!(
            "  every line reached every subscriber once, in order; median p99: plain {:.1} ms, \
             opsgraph {:.1} ms; median ratio {ratio:.2}",
            median(&mut p99s.0),
            median(&mut p99s.1),
        );
        let rate = median(&mut rates);
        if rate < 900.0 {
            println!(
                "  note: opsgraph's producer kept only {rate:.0} of the 1000 lines/s offered (median): \
                 its latencies were measured under a lighter load than the baseline's"
            );
        }
        Ok(ratio)
    }

    /// Connects every client, produces, and collects what each received.
    async fn round(side: &Side, http: &reqwest::Client, n: usize) -> Result<Round> {
        let marker = format!("warm-up {n}");
        // opsgraph clients start at a marker line: once they received it
        // they are following live. Plain clients follow once greeted.
        let after = match side {
            Side::Opsgraph { .. } => side.publish(http, vec![marker.clone()]).await?.0 - 1,
            Side::Plain { .. } => 0,
        };
        let clients: Vec<(Socket, u64)> = stream::iter(0..SUBSCRIBERS)
            .map(|_| side.connect(after, &marker))
            .buffer_unordered(CONNECTING)
            .try_collect()
            .await?;
        let followers: Vec<_> = clients
            .into_iter()
            .enumerate()
            .map(|(client, (socket, next_seq))| tokio::spawn(follow(client, socket, next_seq)))
            .collect();
        let start = Instant::now();
        let mut sends = produce(side, http).await?;
        let rate = LINES as f64 / start.elapsed().as_secs_f64();
        sends.sort_unstable();
        let (mut latencies, mut frames, mut bytes) = (Vec::new(), 0, 0);
        for follower in followers {
            let follower = follower.await??;
            latencies.extend(follower.latencies);
            (frames, bytes) = (frames + follower.frames, bytes + follower.bytes);
        }
        latencies.sort_unstable();
        Ok(Round { latencies, sends, rate, mean_frame: bytes / frames.max(1) })
    }

    impl Side {
        /// Sends a batch the way the side's producer does; returns the
        /// `seq`s of its first and last line.
        async fn publish(&self, http: &reqwest::Client, lines: Vec<String>) -> Result<(u64, u64)> {
            match self {
                Self::Opsgraph { url, op, .. } => server::append(http, url, op, lines).await,
                Self::Plain { url, .. } => {
                    let count = lines.len() as u64;
                    let reply: Value =
                        http.post(url).json(&json!({ "lines": lines })).send().await?.json().await?;
                    server::append_reply(&reply["data"], count)
                }
            }
        }

        /// A client that follows live; returns it and the `seq` it expects next.
        async fn connect(&self, after: u64, marker: &str) -> Result<(Socket, u64)> {
            match self {
                Self::Opsgraph { port, token, op, .. } => {
                    let mut socket = client::subscribe(*port, token, op, after).await?;
                    let (_, text) = client::next_text(&mut socket).await?.context("closed before warm-up")?;
                    let batch = client::batch(&text)?;
                    let found = batch.lines.iter().find(|l| l.text == marker).map(|l| l.seq);
                    ensure!(found == Some(batch.last_seq), "expected `{marker}` alone, got {text}");
                    Ok((socket, batch.last_seq + 1))
                }
                Self::Plain { port, .. } => {
                    let (socket, last) = client::plain(*port).await?;
                    Ok((socket, last + 1))
                }
            }
        }
    }

    /// `BATCHES` batches of `BATCH` stamped lines, one every `PERIOD` (or
    /// as soon as the previous send returned, when it took longer); returns
    /// how long each send took.
    async fn produce(side: &Side, http: &reqwest::Client) -> Result<Vec<Duration>> {
        let mut tick = tokio::time::interval(PERIOD);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut sends = Vec::with_capacity(BATCHES);
        for b in 0..BATCHES {
            tick.tick().await;
            let sent = nanos();
            let lines = (0..BATCH).map(|i| stamped(sent, (b * BATCH + i) as u64)).collect();
            side.publish(http, lines).await?;
            sends.push(Duration::from_nanos(nanos() - sent));
        }
        Ok(sends)
    }

    /// A line whose text holds when its batch was sent and its index among
    /// the round's lines.
    fn stamped(sent: u64, index: u64) -> String {
        padded(format!("{sent:020} {index:09} "))
    }

    fn stamp(text: &str) -> Result<(u64, u64)> {
        let parsed =
            text.get(..20).zip(text.get(21..30)).and_then(|(s, i)| Some((s.parse().ok()?, i.parse().ok()?)));
        parsed.ok_or_else(|| anyhow!("not a stamped line: {text}"))
    }

    /// What one client received.
    struct Follower {
        next_seq: u64,
        next_index: u64,
        latencies: Vec<u64>,
        frames: usize,
        bytes: usize,
    }

    /// Reads until every line of the round arrived, then a little longer.
    async fn follow(client: usize, mut socket: Socket, next_seq: u64) -> Result<Follower> {
        let mut f = Follower {
            next_seq,
            next_index: 0,
            latencies: Vec::with_capacity(LINES as usize),
            frames: 0,
            bytes: 0,
        };
        while f.next_index < LINES {
            let Some((arrival, text)) = client::next_text(&mut socket).await? else {
                bail!("client {client}: the stream ended after {} of {LINES} lines", f.next_index);
            };
            f.take(arrival, &text).with_context(|| format!("client {client}"))?;
        }
        while let Ok(more) = tokio::time::timeout(DRAIN, client::next_text(&mut socket)).await {
            let Some((arrival, text)) = more? else { break };
            f.take(arrival, &text).with_context(|| format!("client {client}, after the last line"))?;
        }
        Ok(f)
    }

    impl Follower {
        /// Checks a frame's lines against what must come next and records
        /// the latency of each stamped one. Lines opsgraph writes itself
        /// (`SYSTEM`) take their `seq` and are otherwise skipped.
        fn take(&mut self, arrival: u64, text: &str) -> Result<()> {
            let batch = client::batch(text)?;
            (self.frames, self.bytes) = (self.frames + 1, self.bytes + text.len());
            for line in &batch.lines {
                ensure!(
                    line.seq == self.next_seq,
                    "expected line {} next, got {}: a gap, a repeat or disorder",
                    self.next_seq,
                    line.seq
                );
                self.next_seq += 1;
                if line.stream != "STDOUT" {
                    continue;
                }
                let (sent, index) = stamp(&line.text)?;
                ensure!(
                    index == self.next_index,
                    "expected the producer's line {} next, got {index}",
                    self.next_index
                );
                self.next_index += 1;
                self.latencies.push(arrival.saturating_sub(sent));
            }
            Ok(())
        }
    }
}

/// Scenario 3: resident memory of the real server per idle subscriber.
mod memory {
    use std::path::Path;
    use std::process::Stdio;

    use futures_util::{StreamExt, TryStreamExt, stream};
    use tokio::io::{AsyncBufReadExt, BufReader};
    use tokio::process::Command;

    use super::client;
    use super::server::{append, cancel, running_operations};
    use super::*;

    const REPLAY_LINES: usize = 100;
    /// Time for the server to finish what the last client started.
    const SETTLE: Duration = Duration::from_millis(500);

    /// Resident memory and threads of a process.
    #[derive(Clone, Copy)]
    struct Status {
        rss_kib: u64,
        threads: u64,
    }

    /// A server process, stopped on drop if still running.
    struct Child {
        process: tokio::process::Child,
        port: u16,
        /// The owner token an opsgraph first start prints.
        token: Option<String>,
    }

    /// Runs the scenario; returns the median KiB per opsgraph subscriber
    /// and per plain connection.
    pub async fn run() -> Result<(f64, f64)> {
        let dir = tempfile::tempdir()?;
        println!(
            "memory: VmRSS of a server process before and after {SUBSCRIBERS} idle clients; \
             opsgraph subscribers each got a replay of {REPLAY_LINES} lines of {LINE_BYTES} bytes"
        );
        let (mut opsgraph, mut plain) = (Vec::new(), Vec::new());
        for round in 1..=ROUNDS {
            let (b, a) = plain_round().await?;
            let per_plain = (a.rss_kib as f64 - b.rss_kib as f64) / SUBSCRIBERS as f64;
            let (before, after) = opsgraph_round(&dir.path().join(format!("memory-{round}.redb"))).await?;
            let per_sub = (after.rss_kib as f64 - before.rss_kib as f64) / SUBSCRIBERS as f64;
            println!(
                "  round {round}: plain {} -> {} KiB ({per_plain:.1} KiB each) | opsgraph {} -> {} KiB, \
                 {} -> {} threads ({per_sub:.1} KiB each)",
                b.rss_kib, a.rss_kib, before.rss_kib, after.rss_kib, before.threads, after.threads
            );
            opsgraph.push(per_sub);
            plain.push(per_plain);
        }
        Ok((median(&mut opsgraph), median(&mut plain)))
    }

    /// The `opsgraph` binary on a new database at `db`.
    async fn opsgraph_round(db: &Path) -> Result<(Status, Status)> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_opsgraph"));
        command
            .arg("--db")
            .arg(db)
            .args(["--listen", "127.0.0.1:0", "--rate-limit", "0"])
            .args(["--max-connections-per-caller", "100000"])
            .env("RUST_LOG", "warn");
        let mut server = Child::spawn(command, "opsgraph listening on ").await?;
        let token = server.token.clone().context("no owner token printed")?;
        let (http, port) = (server::Server::authorized(&token)?, server.port);
        let url = format!("http://127.0.0.1:{port}/graphql");
        let ready = format!("http://127.0.0.1:{port}/readyz");
        let deadline = Instant::now() + PATIENCE;
        while !http.get(&ready).send().await.is_ok_and(|r| r.status().is_success()) {
            ensure!(Instant::now() < deadline, "the server did not get ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let operations = running_operations(&http, &url, 1).await?;
        let op = &operations[0];
        let lines = (0..REPLAY_LINES).map(|n| padded(format!("replay line {n:06} "))).collect();
        let (_, head) = append(&http, &url, op, lines).await?;
        let token = &token;
        let open = || async move {
            let mut socket = client::subscribe(port, token, op, 0).await?;
            client::replay(&mut socket, head).await?;
            Ok::<_, anyhow::Error>(socket)
        };
        // What a first subscription allocates once is not per subscriber.
        for _ in 0..CONNECTING {
            drop(open().await?);
        }
        tokio::time::sleep(SETTLE).await;
        let before = server.status()?;
        let clients: Vec<_> =
            stream::iter(0..SUBSCRIBERS).map(|_| open()).buffer_unordered(CONNECTING).try_collect().await?;
        let after = server.idle(before.threads).await?;
        drop(clients);
        cancel(&http, &url, &operations).await?;
        server.stop().await?;
        Ok((before, after))
    }

    /// This executable as the plain server, with idle clients.
    async fn plain_round() -> Result<(Status, Status)> {
        let mut command = Command::new(std::env::current_exe()?);
        command.arg(PLAIN_SERVER);
        let mut server = Child::spawn(command, "plain listening on ").await?;
        let port = server.port;
        let open = || client::plain(port);
        for _ in 0..CONNECTING {
            drop(open().await?);
        }
        tokio::time::sleep(SETTLE).await;
        let before = server.status()?;
        let clients: Vec<_> =
            stream::iter(0..SUBSCRIBERS).map(|_| open()).buffer_unordered(CONNECTING).try_collect().await?;
        let after = server.idle(before.threads).await?;
        drop(clients);
        server.stop().await?;
        Ok((before, after))
    }

    impl Child {
        /// Starts `command` and reads its port from the line of its
        /// standard output that starts with `banner`.
        async fn spawn(mut command: Command, banner: &str) -> Result<Self> {
            let mut process = command.stdout(Stdio::piped()).kill_on_drop(true).spawn()?;
            let stdout = process.stdout.take().context("no stdout")?;
            let mut lines = BufReader::new(stdout).lines();
            let line = tokio::time::timeout(PATIENCE, lines.next_line())
                .await
                .context("no address printed in time")??
                .context("exited before printing its address")?;
            let port = line
                .strip_prefix(banner)
                .and_then(|rest| rest.strip_prefix("http://127.0.0.1:"))
                .and_then(|rest| rest.split('/').next())
                .and_then(|port| port.parse().ok())
                .ok_or_else(|| anyhow!("unexpected first line: {line}"))?;
            let mut token = None;
            if banner.starts_with("opsgraph") {
                while let Some(line) = tokio::time::timeout(PATIENCE, lines.next_line()).await?? {
                    if let Some(secret) = line.strip_prefix("OPSGRAPH_TOKEN=") {
                        token = Some(secret.to_owned());
                        break;
                    }
                }
            }
            // Keep reading (and dropping) what it prints, so it never blocks.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            Ok(Self { process, port, token })
        }

        fn status(&self) -> Result<Status> {
            let pid = self.process.id().context("the server exited")?;
            let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
            let field = |name: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
                    .ok_or_else(|| anyhow!("no {name} in /proc/{pid}/status"))
            };
            Ok(Status { rss_kib: field("VmRSS:")?, threads: field("Threads:")? })
        }

        /// The status once the process is idle again: the blocking threads
        /// the clients' replays started have ended (tokio lets an idle one
        /// go after 10 s), down to `threads`, and a moment has passed.
        async fn idle(&self, threads: u64) -> Result<Status> {
            let deadline = Instant::now() + Duration::from_secs(20);
            while self.status()?.threads > threads && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            tokio::time::sleep(SETTLE).await;
            self.status()
        }

        /// SIGTERM (a graceful shutdown), then waits for the exit.
        async fn stop(&mut self) -> Result<()> {
            use nix::sys::signal::{Signal, kill};
            use nix::unistd::Pid;
            let pid = self.process.id().context("the server exited early")?;
            kill(Pid::from_raw(i32::try_from(pid)?), Signal::SIGTERM)?;
            tokio::time::timeout(PATIENCE, self.process.wait()).await.context("no exit in time")??;
            Ok(())
        }
    }
}
