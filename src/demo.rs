//! Demo data (`opsgraph serve --demo`, `opsgraph demo`): an organization
//! with two environments whose services really run on this machine (small
//! shell and Python programs that serve a port and print logs), and a
//! history made by really running operations: deploys that succeed, a build
//! that fails, a start that fails and is rolled back, a cancelled deploy,
//! and a platform redeploy after a worker crashed.
//!
//! Everything goes through the public GraphQL schema as one caller
//! ([`seed`]), so the demo obeys the same rules as any client, and the
//! history it leaves is what a user would have made.
//!
//! Imports `graphql` (the schema) and `domain`; nothing below it directly.

use std::time::Duration;

use anyhow::{Context, bail};
use async_graphql::{Request, Variables};
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::domain::Principal;
use crate::graphql::AppSchema;
use crate::graphql::guard::{Caller, RequestId};

/// Longest the seeding waits for one thing (an operation to end, the
/// worker's crash to be healed) before it gives up with an error.
const PATIENCE: Duration = Duration::from_secs(120);

/// A build that prints its progress, fails the commit `5e0b8d1` (its tests
/// fail), and takes `$STEPS` steps of 0.3 s.
const BUILD: &str = r#"echo "building $SERVICE_NAME at $COMMIT"
i=1; while [ $i -le ${STEPS:-4} ]; do echo "compiling module $i of ${STEPS:-4}"; sleep 0.3; i=$((i+1)); done
case "$COMMIT" in 5e0b8d1) echo "error: 2 of 48 tests failed: checkout_total, refund_partial" >&2; exit 1;; esac
echo "48 tests passed"; echo "image $SERVICE_NAME:$COMMIT ready""#;

/// A web server in Python that answers with its commit and prints a line
/// per request. The commit `c0ffee1` cannot start (a missing setting).
const WEB: &str = r#"case "$COMMIT" in c0ffee1) echo "fatal: DATABASE_URL is not set" >&2; exit 3;; esac
exec python3 -u -c 'import http.server, os, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(("hello from " + os.environ["COMMIT"] + "\n").encode())
    def log_message(self, fmt, *args):
        print("GET", self.path, "->", args[1] if len(args) > 1 else "", flush=True)
print("serving commit", os.environ["COMMIT"], "on port", os.environ["PORT"], flush=True)
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()'"#;

/// A queue worker that prints a line per job. Its first run crashes after
/// two seconds (it leaves a mark in its data directory), so monitoring
/// sees an instance in error and the platform redeploys it.
const WORKER: &str = r#"echo "worker $COMMIT polling the queue"
if [ ! -e "$DATA_DIR/crashed-once" ]; then
  touch "$DATA_DIR/crashed-once"; sleep 2; echo "fatal: lost the connection to the queue" >&2; exit 1
fi
n=0; while true; do n=$((n+1)); echo "processed job $n"; sleep 3; done"#;

/// What the demo made, for the log line at the end and for tests.
#[derive(Debug, Clone)]
pub struct Seeded {
    pub environments: Vec<String>,
    pub services: Vec<String>,
    pub operations: usize,
}

/// Seeds the demo as `caller` (a member of the organization it fills),
/// unless that organization already has an environment: then it does
/// nothing and answers `None`. Waits until the history is complete.
pub async fn seed(schema: &AppSchema, caller: &Principal) -> anyhow::Result<Option<Seeded>> {
    let demo = Demo { schema, caller };
    let existing = demo.run("{ environments(first: 1) { nodes { id } } }", json!({})).await?;
    if !existing["environments"]["nodes"].as_array().is_some_and(Vec::is_empty) {
        return Ok(None);
    }
    let production = demo.environment("production").await?;
    let staging = demo.environment("staging").await?;
    let service = |name: &str, start: &str, instances: u32, steps: u32| {
        json!({ "name": name, "kind": "APPLICATION", "buildCommand": format!("STEPS={steps}\n{BUILD}"),
                "startCommand": start, "port": 0, "instances": instances,
                "healthCheck": { "graceMs": 300, "timeoutMs": 10000 }, "stopGraceMs": 1000 })
    };
    let web = demo.service(&production, service("web", WEB, 2, 4)).await?;
    let api = demo.service(&production, service("api", WEB, 1, 12)).await?;
    let mut worker = service("worker", WORKER, 1, 2);
    worker["port"] = Value::Null;
    worker["monitoring"] = json!({ "intervalMs": 1000, "backoffMs": 500 });
    let worker = demo.service(&production, worker).await?;
    let staging_web = demo.service(&staging, service("web", WEB, 1, 3)).await?;

    // Each service's operations run in order; different services in
    // parallel, so the history is made in a few seconds.
    let mut ops = Vec::new();
    for (svc, commit) in [(&web, "3f6a2c1"), (&web, "5e0b8d1"), (&web, "8b2d4e7")] {
        ops.push(demo.deploy(svc, commit).await?);
    }
    ops.push(demo.deploy(&staging_web, "8b2d4e7").await?);
    ops.push(demo.deploy(&staging_web, "c0ffee1").await?);
    ops.push(demo.deploy(&api, "1d4c7a9").await?);
    let cancelled = demo.deploy(&api, "6f8e2b3").await?;
    ops.push(demo.deploy(&worker, "2a9e5d0").await?);
    // The second api deploy is cancelled once its build is under way.
    demo.wait_status(&production, &cancelled, "BUILDING").await?;
    demo.run(
        "mutation($id: ID!) { cancelOperation(input: { operationId: $id }) { id } }",
        json!({ "id": cancelled }),
    )
    .await?;
    ops.push(cancelled);
    for op in &ops {
        demo.wait_final(op).await?;
    }
    // The worker crashes two seconds after it started; monitoring finds it
    // and the platform redeploys it.
    let healed = tokio::time::timeout(PATIENCE, demo.platform_redeploy(&production))
        .await
        .context("the platform did not redeploy the crashed worker in time")??;
    demo.wait_final(&healed).await?;
    Ok(Some(Seeded {
        environments: vec![production, staging],
        services: vec![web, api, worker, staging_web],
        operations: ops.len() + 1,
    }))
}

/// Runs the demo's requests as one caller.
struct Demo<'a> {
    schema: &'a AppSchema,
    caller: &'a Principal,
}

impl Demo<'_> {
    fn request(&self, query: &str, variables: Value) -> Request {
        Request::new(query)
            .variables(Variables::from_json(variables))
            .data(Caller(Ok(self.caller.clone())))
            .data(RequestId("demo".into()))
    }

    /// Runs a query or mutation and returns its data; any error fails.
    async fn run(&self, query: &str, variables: Value) -> anyhow::Result<Value> {
        let response = self.schema.execute(self.request(query, variables)).await;
        if !response.errors.is_empty() {
            let messages: Vec<_> = response.errors.iter().map(|e| e.message.clone()).collect();
            bail!("demo request failed: {}: {query}", messages.join("; "));
        }
        Ok(response.data.into_json()?)
    }

    async fn environment(&self, name: &str) -> anyhow::Result<String> {
        let data = self
            .run(
                "mutation($n: String!) { createEnvironment(input: { name: $n }) { id } }",
                json!({ "n": name }),
            )
            .await?;
        id(&data["createEnvironment"])
    }

    async fn service(&self, env: &str, mut input: Value) -> anyhow::Result<String> {
        input["environmentId"] = json!(env);
        let data = self
            .run(
                "mutation($i: CreateServiceInput!) { createService(input: $i) { id } }",
                json!({ "i": input }),
            )
            .await?;
        id(&data["createService"])
    }

    async fn deploy(&self, service: &str, commit: &str) -> anyhow::Result<String> {
        let data = self
            .run(
                "mutation($s: ID!, $c: String!) { deploy(input: { serviceId: $s, commit: $c, source: CONSOLE }) { id } }",
                json!({ "s": service, "c": commit }),
            )
            .await?;
        id(&data["deploy"])
    }

    /// Follows a subscription until `done` says so (or it ends: `None`).
    async fn follow<T>(
        &self,
        query: &str,
        variables: Value,
        mut done: impl FnMut(&Value) -> Option<T>,
    ) -> anyhow::Result<Option<T>> {
        let mut stream = self.schema.execute_stream(self.request(query, variables));
        let follow = async {
            while let Some(response) = stream.next().await {
                if !response.errors.is_empty() {
                    bail!("demo subscription failed: {:?}", response.errors);
                }
                if let Some(found) = done(&response.data.into_json()?) {
                    return Ok(Some(found));
                }
            }
            Ok(None)
        };
        tokio::time::timeout(PATIENCE, follow).await.with_context(|| format!("waiting for: {query}"))?
    }

    /// Waits until the operation reaches `status`.
    async fn wait_status(&self, env: &str, op: &str, status: &str) -> anyhow::Result<()> {
        let query =
            "subscription($e: ID!) { operationEvents(environmentId: $e) { status operation { id } } }";
        let found = self
            .follow(query, json!({ "e": env }), |d| {
                let event = &d["operationEvents"];
                (event["operation"]["id"] == op && event["status"] == status).then_some(())
            })
            .await?;
        found.context("the operation feed ended")
    }

    /// Waits until the operation is final (its log subscription ends).
    async fn wait_final(&self, op: &str) -> anyhow::Result<()> {
        let query = "subscription($id: ID!) { operationLogs(operationId: $id) { lastSeq } }";
        self.follow(query, json!({ "id": op }), |_| None::<()>).await?;
        Ok(())
    }

    /// The id of the first platform-triggered operation in the environment.
    async fn platform_redeploy(&self, env: &str) -> anyhow::Result<String> {
        let query = "subscription($e: ID!) { operationEvents(environmentId: $e) { kind operation { id trigger { kind } } } }";
        let found = self
            .follow(query, json!({ "e": env }), |d| {
                let op = &d["operationEvents"]["operation"];
                (op["trigger"]["kind"] == "PLATFORM")
                    .then(|| op["id"].as_str().unwrap_or_default().to_owned())
            })
            .await?;
        found.context("the operation feed ended")
    }
}

fn id(object: &Value) -> anyhow::Result<String> {
    object["id"].as_str().map(str::to_owned).context("an answer without an id")
}
