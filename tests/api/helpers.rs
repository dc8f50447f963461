//! `TestApp::spawn()`: a real server on `127.0.0.1:0` with a temporary redb
//! file, plus GraphQL-over-HTTP and graphql-transport-ws clients.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use opsgraph::app::Application;
use opsgraph::config::ServeArgs;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_util::sync::CancellationToken;

/// Upper bound on waiting for anything in a test: generous, never a sleep.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub struct TestApp {
    pub address: String,
    pub port: u16,
    /// Sends the owner's token with every request (`Authorization`).
    pub client: reqwest::Client,
    /// Sends no token: for requests as someone else ([`TestApp::post_as`]).
    pub anonymous: reqwest::Client,
    /// The owner token the first start made (kept in the directory, so a
    /// restart over the same file acts as the same owner).
    pub token: String,
    shutdown: CancellationToken,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// For the index check at `stop`; dropped before the server stops so
    /// the database file can close.
    store: Option<opsgraph::store::Store>,
    /// Keeps the temporary directory alive as long as the app.
    pub dir: std::sync::Arc<tempfile::TempDir>,
}

impl TestApp {
    /// A server over a new database.
    pub async fn spawn() -> Self {
        let dir = std::sync::Arc::new(tempfile::tempdir().expect("temp dir"));
        Self::spawn_in(dir).await
    }

    /// A server over the database in `dir` (to restart on the same file).
    pub async fn spawn_in(dir: std::sync::Arc<tempfile::TempDir>) -> Self {
        Self::spawn_with(dir, |_| {}).await
    }

    /// A server over a new database with settings changed by `configure`.
    pub async fn spawn_configured(configure: impl FnOnce(&mut ServeArgs)) -> Self {
        Self::spawn_with(std::sync::Arc::new(tempfile::tempdir().expect("temp dir")), configure).await
    }

    async fn spawn_with(
        dir: std::sync::Arc<tempfile::TempDir>,
        configure: impl FnOnce(&mut ServeArgs),
    ) -> Self {
        let db = dir.path().join("opsgraph.redb");
        let mut args = ServeArgs::new(db, "127.0.0.1:0".parse().unwrap());
        args.shutdown_grace_ms = 2_000;
        configure(&mut args);
        let demo = args.demo;
        let app = Application::build(args).await.expect("build the app");
        Self::start(app, dir, demo).await
    }

    /// A server over a new database whose writes and syncs fail when
    /// `faults` says so.
    pub async fn spawn_with_faults(faults: opsgraph::store::StorageFaults) -> Self {
        let dir = std::sync::Arc::new(tempfile::tempdir().expect("temp dir"));
        let db = dir.path().join("opsgraph.redb");
        let store = opsgraph::store::Store::open_with_faults(&db, faults).expect("open the store");
        let mut args = ServeArgs::new(db, "127.0.0.1:0".parse().unwrap());
        args.shutdown_grace_ms = 2_000;
        let app = Application::build_on(args, store).await.expect("build the app");
        Self::start(app, dir, false).await
    }

    /// Serves `app`; once it is ready (and, with `demo`, once the demo
    /// data is seeded), the test can begin.
    async fn start(app: Application, dir: std::sync::Arc<tempfile::TempDir>, demo: bool) -> Self {
        let mut seeded = app.demo_seeded();
        let token_file = dir.path().join("owner.token");
        let token = match app.first_token() {
            Some(first) => {
                std::fs::write(&token_file, &first.secret).expect("keep the owner token");
                first.secret.clone()
            }
            None => std::fs::read_to_string(&token_file).expect("the owner token of the first start"),
        };
        let port = app.port();
        let store = Some(app.store());
        let shutdown = app.shutdown_token();
        let mut ready = app.readiness();
        let server = tokio::spawn(app.run_until_stopped());
        tokio::time::timeout(PATIENCE, ready.wait_for(|r| *r)).await.expect("ready in time").expect("ready");
        if demo {
            let seeded = tokio::time::timeout(PATIENCE, seeded.wait_for(Option::is_some))
                .await
                .expect("the demo seeded in time")
                .expect("the demo seeding reports");
            if let Some(Err(error)) = &*seeded {
                panic!("seeding the demo failed: {error}");
            }
        }
        let mut headers = reqwest::header::HeaderMap::new();
        let bearer = format!("Bearer {token}").parse().expect("a header value");
        headers.insert(reqwest::header::AUTHORIZATION, bearer);
        Self {
            address: format!("http://127.0.0.1:{port}"),
            port,
            client: reqwest::Client::builder().default_headers(headers).build().expect("client"),
            anonymous: reqwest::Client::new(),
            token,
            shutdown,
            server: Some(server),
            store,
            dir,
        }
    }

    /// A server started with `--demo`, once the demo data is seeded.
    pub async fn spawn_demo() -> Self {
        Self::spawn_configured(|args| args.demo = true).await
    }

    /// A server started with `--demo` over the database in `dir`.
    pub async fn spawn_with_demo_in(dir: std::sync::Arc<tempfile::TempDir>) -> Self {
        Self::spawn_with(dir, |args| args.demo = true).await
    }

    /// The server's store, for what a test drives directly (a retention
    /// pass at a chosen time).
    pub fn store(&self) -> opsgraph::store::Store {
        self.store.clone().expect("the app is running")
    }

    /// Checks that every secondary index matches its rows, then shuts the
    /// server down gracefully and waits for it (and its database) to close.
    pub async fn stop(mut self) {
        if let Some(store) = self.store.take() {
            let differences = store.index_differences().await.expect("index check");
            assert!(differences.is_empty(), "indexes differ from their rows: {differences:#?}");
        }
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server stopped cleanly");
        }
    }

    /// POSTs a GraphQL request and returns the whole response body.
    pub async fn post(&self, query: &str, variables: Value) -> Value {
        self.client
            .post(format!("{}/graphql", self.address))
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("request sent")
            .json()
            .await
            .expect("JSON response")
    }

    /// POSTs a GraphQL request with `token` (none: no `Authorization`) and
    /// returns the whole response body.
    pub async fn post_as(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut request = self.anonymous.post(format!("{}/graphql", self.address));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("request sent")
            .json()
            .await
            .expect("JSON response")
    }

    /// Runs a request with `token` that must succeed and returns its `data`.
    pub async fn gql_as(&self, token: &str, query: &str, variables: Value) -> Value {
        let body = self.post_as(Some(token), query, variables).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body:#}");
        body["data"].clone()
    }

    /// A new token with `role`, for a new member named after the role (or
    /// the existing one of that name): its secret.
    pub async fn token_for(&self, name: &str, role: &str) -> String {
        let data = self
            .gql(
                "mutation($n: String!, $r: Role!) { addMember(input: { name: $n, role: $r }) { id } }",
                json!({ "n": name, "r": role }),
            )
            .await;
        let member = data["addMember"]["id"].as_str().unwrap().to_owned();
        self.token_of(&member, name).await
    }

    /// A new personal token of member `member`: its secret.
    pub async fn token_of(&self, member: &str, name: &str) -> String {
        let data = self
            .gql(
                "mutation($m: ID!, $n: String!) { createToken(input: { name: $n, memberId: $m }) { secret } }",
                json!({ "m": member, "n": name }),
            )
            .await;
        data["createToken"]["secret"].as_str().unwrap().to_owned()
    }

    /// A new token of `kind` (`WORKER`, `MONITORING`) named `name`: its
    /// secret.
    pub async fn agent_token(&self, kind: &str, name: &str) -> String {
        let data = self
            .gql(
                "mutation($n: String!, $k: TokenKind!) { createToken(input: { name: $n, kind: $k }) { secret } }",
                json!({ "n": name, "k": kind }),
            )
            .await;
        data["createToken"]["secret"].as_str().unwrap().to_owned()
    }

    /// A new `WORKER` token named `name`: its secret.
    pub async fn worker_token(&self, name: &str) -> String {
        self.agent_token("WORKER", name).await
    }

    /// The `connection_init` payload that carries the owner token.
    pub fn init_payload(&self) -> Value {
        json!({ "authorization": format!("Bearer {}", self.token) })
    }

    /// Opens a graphql-transport-ws subscription with `token`.
    pub async fn subscribe_as(&self, token: &str, query: &str, variables: Value) -> Subscription {
        Subscription::open(self.port, token, query, variables).await
    }

    /// Runs a request that must succeed and returns its `data`.
    pub async fn gql(&self, query: &str, variables: Value) -> Value {
        let body = self.post(query, variables).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body:#}");
        body["data"].clone()
    }

    /// Runs a request that must fail and returns its first error's code.
    pub async fn error_code(&self, query: &str, variables: Value) -> String {
        let body = self.post(query, variables).await;
        let code = &body["errors"][0]["extensions"]["code"];
        assert!(code.is_string(), "expected an error with a code: {body:#}");
        code.as_str().unwrap().to_owned()
    }

    pub async fn create_environment(&self, name: &str) -> String {
        let data = self
            .gql(
                "mutation($name: String!) { createEnvironment(input: { name: $name }) { id } }",
                json!({ "name": name }),
            )
            .await;
        data["createEnvironment"]["id"].as_str().unwrap().to_owned()
    }

    /// Creates a service from a `CreateServiceInput` without its
    /// environment id.
    pub async fn create_service(&self, env: &str, mut input: Value) -> String {
        input["environmentId"] = json!(env);
        let data = self
            .gql(
                "mutation($input: CreateServiceInput!) { createService(input: $input) { id } }",
                json!({ "input": input }),
            )
            .await;
        data["createService"]["id"].as_str().unwrap().to_owned()
    }

    pub async fn deploy(&self, service: &str, commit: &str) -> String {
        let data = self
            .gql(
                "mutation($s: ID!, $c: String!) { deploy(input: { serviceId: $s, commit: $c }) { id status } }",
                json!({ "s": service, "c": commit }),
            )
            .await;
        data["deploy"]["id"].as_str().unwrap().to_owned()
    }

    /// Runs a service action mutation (`restart`, `stop`, `start`,
    /// `deleteService`) and returns the operation id.
    pub async fn action(&self, mutation: &str, service: &str) -> String {
        let query = format!("mutation($s: ID!) {{ {mutation}(input: {{ serviceId: $s }}) {{ id }} }}");
        let data = self.gql(&query, json!({ "s": service })).await;
        data[mutation]["id"].as_str().unwrap().to_owned()
    }

    /// The operation as a client sees it.
    pub async fn operation(&self, id: &str) -> Value {
        let data = self.gql(OPERATION_QUERY, json!({ "id": id })).await;
        data["operation"].clone()
    }

    /// Every line of an operation's log, as `STREAM text`.
    pub async fn log_lines(&self, id: &str) -> Vec<String> {
        let text = self
            .client
            .get(format!("{}/operations/{id}/logs", self.address))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines().map(|l| l.split_once(' ').map_or(l, |(_, rest)| rest).to_owned()).collect()
    }

    /// Waits until the operation is final (its log subscription completes)
    /// and returns it.
    pub async fn wait_final(&self, id: &str) -> Value {
        let mut ws = self
            .subscribe(
                "subscription($id: ID!) { operationLogs(operationId: $id) { lastSeq } }",
                json!({ "id": id }),
            )
            .await;
        tokio::time::timeout(PATIENCE, async { while ws.next().await.is_some() {} })
            .await
            .expect("operation became final in time");
        self.operation(id).await
    }

    /// Waits until the operation reaches `status`, following its events.
    pub async fn wait_status(&self, env: &str, op: &str, status: &str) {
        let mut ws = self
            .subscribe(
                "subscription($e: ID!) { operationEvents(environmentId: $e) { status operation { id } } }",
                json!({ "e": env }),
            )
            .await;
        tokio::time::timeout(PATIENCE, async {
            while let Some(event) = ws.next().await {
                let event = &event["operationEvents"];
                if event["operation"]["id"] == op && event["status"] == status {
                    return;
                }
            }
            panic!("the subscription ended before {op} reached {status}");
        })
        .await
        .expect("status reached in time");
    }

    /// Waits until a step of the operation reaches `status`, following the
    /// environment's events.
    pub async fn wait_step(&self, env: &str, op: &str, kind: &str, status: &str) {
        let mut ws = self
            .subscribe(
                "subscription($e: ID!) { operationEvents(environmentId: $e) { operation { id } step { kind status } } }",
                json!({ "e": env }),
            )
            .await;
        let wanted = json!({ "kind": kind, "status": status });
        while let Some(event) = ws.next().await {
            let event = &event["operationEvents"];
            if event["operation"]["id"] == op && event["step"] == wanted {
                return;
            }
        }
        panic!("the subscription ended before {op} had {kind} {status}");
    }

    /// Opens a graphql-transport-ws subscription.
    pub async fn subscribe(&self, query: &str, variables: Value) -> Subscription {
        Subscription::open(self.port, &self.token, query, variables).await
    }

    /// Waits until the service's runtime log has a line containing `text`
    /// and returns it.
    pub async fn wait_service_line(&self, svc: &str, text: &str) -> String {
        let query = "subscription($s: ID!) { serviceLogs(serviceId: $s) { lines { text } } }";
        let mut sub = self.subscribe(query, json!({ "s": svc })).await;
        while let Some(data) = sub.next().await {
            for line in data["serviceLogs"]["lines"].as_array().unwrap() {
                if line["text"].as_str().unwrap().contains(text) {
                    return line["text"].as_str().unwrap().to_owned();
                }
            }
        }
        panic!("the service log ended")
    }

    /// POSTs `query`, whose first error must have `code` and a message that
    /// contains `mentions`.
    pub async fn assert_error(&self, query: &str, variables: Value, code: &str, mentions: &str) {
        let body = self.post(query, variables).await;
        let error = &body["errors"][0];
        assert_eq!(error["extensions"]["code"], code, "{query}: {body:#}");
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(mentions), "{query}: `{message}` should mention `{mentions}`");
    }
}

/// One graphql-transport-ws subscription on its own connection.
pub struct Subscription {
    socket: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
}

impl Subscription {
    pub async fn open(port: u16, token: &str, query: &str, variables: Value) -> Self {
        Self::open_with_buffer(port, token, query, variables, None).await
    }

    /// A subscription whose socket buffers at most about `bytes` it has not
    /// read (the kernel would otherwise grow the buffer to megabytes): a
    /// client that stops reading is then felt by the server quickly.
    pub async fn open_with_buffer(
        port: u16,
        token: &str,
        query: &str,
        variables: Value,
        bytes: Option<u32>,
    ) -> Self {
        let mut request = format!("ws://127.0.0.1:{port}/graphql").into_client_request().unwrap();
        request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
        let tcp = tokio::net::TcpSocket::new_v4().unwrap();
        if let Some(bytes) = bytes {
            tcp.set_recv_buffer_size(bytes).unwrap();
        }
        let stream = tcp.connect(([127, 0, 0, 1], port).into()).await.expect("connects");
        let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
        let (mut socket, _) =
            tokio_tungstenite::client_async(request, stream).await.expect("websocket connects");
        socket
            .send(Message::text(
                json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {token}") } })
                    .to_string(),
            ))
            .await
            .unwrap();
        let ack = next_json(&mut socket).await.expect("connection_ack");
        assert_eq!(ack["type"], "connection_ack", "{ack}");
        let subscribe =
            json!({ "id": "1", "type": "subscribe", "payload": { "query": query, "variables": variables } });
        socket.send(Message::text(subscribe.to_string())).await.unwrap();
        Self { socket }
    }

    /// The next `data` of the subscription; `None` once it completed.
    /// Panics on an error message.
    pub async fn next(&mut self) -> Option<Value> {
        match self.next_result().await? {
            Ok(data) => Some(data),
            Err(errors) => panic!("subscription error: {errors}"),
        }
    }

    /// The next `data`, or the `errors` of a result that carries them;
    /// `None` once the subscription completed.
    pub async fn next_result(&mut self) -> Option<Result<Value, Value>> {
        loop {
            let message = tokio::time::timeout(PATIENCE, next_json(&mut self.socket))
                .await
                .expect("message in time")?;
            match message["type"].as_str() {
                Some("next") => {
                    let payload = &message["payload"];
                    if let Some(errors) = payload.get("errors") {
                        return Some(Err(errors.clone()));
                    }
                    return Some(Ok(payload["data"].clone()));
                }
                Some("complete") => return None,
                Some("ping") => {
                    let pong = json!({ "type": "pong" }).to_string();
                    self.socket.send(Message::text(pong)).await.unwrap();
                }
                Some("error") => panic!("subscription error: {message}"),
                _ => {}
            }
        }
    }
}

async fn next_json(
    socket: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
) -> Option<Value> {
    while let Some(message) = socket.next().await {
        match message.ok()? {
            Message::Text(text) => return serde_json::from_str(&text).ok(),
            Message::Close(_) => return None,
            _ => {}
        }
    }
    None
}

pub const OPERATION_QUERY: &str = r#"
query($id: ID!) {
  operation(id: $id) {
    id type status commit serviceName environmentName rollback
    service { id }
    queuedAt startedAt finishedAt
    trigger { kind source reason author { name } }
    steps { kind name status message }
  }
}"#;

/// A small HTTP server in Python: answers `ok` on $PORT and prints a line
/// per request.
pub const HTTP_SERVER: &str = r#"exec python3 -u -c 'import http.server,os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(os.environ["COMMIT"].encode())
print("serving commit", os.environ["COMMIT"], "on", os.environ["PORT"])
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()'"#;

/// The `steps { kind status }` of an operation as `(kind, status)` pairs.
pub fn steps(op: &Value) -> Vec<(String, String)> {
    op["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["kind"].as_str().unwrap().to_owned(), s["status"].as_str().unwrap().to_owned()))
        .collect()
}

/// A free port on loopback (the executor checks again before using it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A GitHub push event body: `pusher` pushed `commit` to `branch`.
pub fn push_event(branch: &str, commit: &str, pusher: &str) -> Value {
    json!({
        "ref": format!("refs/heads/{branch}"), "before": "0000000", "after": commit,
        "repository": { "full_name": "acme/web" }, "pusher": { "name": pusher, "email": "p@example.com" },
        "head_commit": { "id": commit, "message": "change" }
    })
}

impl TestApp {
    /// Delivers a GitHub `push` event to the service's hook, signed with
    /// `secret` (unsigned when `None`); returns the status and JSON body.
    pub async fn push(
        &self,
        service: &str,
        secret: Option<&str>,
        event: &Value,
        delivery: &str,
    ) -> (u16, Value) {
        let body = event.to_string();
        let mut request = self
            .client
            .post(format!("{}/hooks/github/{service}", self.address))
            .header("content-type", "application/json")
            .header("x-github-event", "push")
            .header("x-github-delivery", delivery);
        if let Some(secret) = secret {
            let secret = opsgraph::domain::WebhookSecret::parse(secret).unwrap();
            request = request
                .header("x-hub-signature-256", opsgraph::domain::webhook::sign(&secret, body.as_bytes()));
        }
        let response = request.body(body).send().await.expect("delivery sent");
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON answer"))
    }

    /// The service's operations, newest first, as the timeline shows them.
    pub async fn timeline(&self, service: &str) -> Vec<Value> {
        let data = self
            .gql(
                "query($s: ID!) { activity(serviceId: $s, first: 100) { nodes { id type status commit redeployOf { id } trigger { kind source author { name } } } } }",
                json!({ "s": service }),
            )
            .await;
        data["activity"]["nodes"].as_array().unwrap().clone()
    }
}
