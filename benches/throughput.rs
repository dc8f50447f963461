//! Throughput of opsgraph against plain baselines, measured side by side in
//! one run (the machines are shared and noisy: only ratios mean anything).
//!
//! `cargo bench --bench throughput` runs both scenarios; each alternates
//! baseline and subject rounds (`ROUNDS`, at least 5) and reports every
//! round's ratio and the median.
//!
//! 1. Reading: `operations(first: 50)` through GraphQL over HTTP, against a
//!    plain axum route that reads the same 50 operations from the same redb
//!    file (through the same store) and serialises them with serde into the
//!    very same JSON document (checked before measuring). Two selections: a
//!    list view (the fields an activity list shows) and a detailed view that
//!    adds every step. Target: median ratio ≥ 0.4.
//! 2. Writing: `deploy` mutations of no-op services from 32 concurrent
//!    clients, against sequential raw redb commits of one operation row
//!    each. Target: median ratio ≥ 1.0.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::routing::get;
use opsgraph::app::Application;
use opsgraph::config::ServeArgs;
use opsgraph::domain::{
    Operation, OperationFilter, OperationStatus, OperationType, OrganizationId, PlatformReason,
    RollbackOutcome, StepKind, StepStatus, TriggerKind, TriggerSource,
};
use opsgraph::store::{PageArgs, Store, operations};
use serde_json::{Value, json};

use common::{BoxError, client, load, median, raw_commits};

/// The same allocator as the `opsgraph` binary, so the figures are the
/// server's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ROUNDS: usize = 5;
const ROUND: Duration = Duration::from_secs(2);
const READERS: usize = 8;
const WRITERS: usize = 32;

/// The fields of an operations list.
const LIST: &str = "{ operations(first: 50) { nodes { id type status commit serviceName environmentName \
    queuedAt startedAt finishedAt rollback trigger { kind source reason } } } }";
/// The same with every step of every operation.
const DETAILED: &str = "{ operations(first: 50) { nodes { id type status commit serviceName environmentName \
    queuedAt startedAt finishedAt rollback trigger { kind source reason } \
    steps { kind status startedAt finishedAt message } } } }";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut args = ServeArgs::new(dir.path().join("bench.redb"), "127.0.0.1:0".parse()?);
    args.data_dir = Some(dir.path().join("data"));
    // One caller sends every request: its rate limit would measure the
    // limiter, not the server.
    args.limits.rate_limit = 0;
    let app = Application::build(args).await?;
    let token = app.first_token().map(|t| t.secret.clone()).unwrap_or_default();
    let port = app.port();
    let store = app.store();
    let mut ready = app.readiness();
    let shutdown = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped());
    ready.wait_for(|r| *r).await?;
    let client = client(&token)?;
    let graphql = format!("http://127.0.0.1:{port}/graphql");

    let services = seed(&client, &graphql).await?;
    let baseline_port = serve_baseline(store.clone()).await?;

    let mut read_ratios = Vec::new();
    for (view, query, steps) in [("list", LIST, false), ("detailed", DETAILED, true)] {
        let baseline_url = format!("http://127.0.0.1:{baseline_port}/operations?steps={steps}");
        same_document(&client, &graphql, query, &baseline_url).await?;
        println!(
            "reading ({view} view): operations(first: 50), {READERS} clients, {ROUNDS} rounds of {ROUND:?} each side"
        );
        let mut ratios = Vec::new();
        for round in 1..=ROUNDS {
            let (c, u) = (client.clone(), baseline_url.clone());
            let base = load(READERS, ROUND, move |_| {
                let (client, url) = (c.clone(), u.clone());
                async move {
                    client.get(url).send().await?.error_for_status()?.bytes().await?;
                    Ok(())
                }
            })
            .await;
            let (c, u) = (client.clone(), graphql.clone());
            let subject =
                load(READERS, ROUND, move |_| {
                    let (client, url) = (c.clone(), u.clone());
                    async move {
                        check(client.post(url).json(&json!({ "query": query })).send().await?.json().await?)
                    }
                })
                .await;
            let ratio = subject / base;
            println!(
                "  round {round}: baseline {base:.0} req/s, graphql {subject:.0} req/s, ratio {ratio:.2}"
            );
            ratios.push(ratio);
        }
        read_ratios.push((view, median(&mut ratios)));
    }

    println!("writing: deploy from {WRITERS} concurrent clients vs sequential raw redb commits");
    let raw = redb::Database::create(dir.path().join("raw.redb"))?;
    let row = serde_json::to_vec(&sample_operation(&store).await?)?;
    let mut write_ratios = Vec::new();
    let mut next_key = 0u64;
    for round in 1..=ROUNDS {
        let base = raw_commits(&raw, &row, ROUND, &mut next_key)?;
        let counter = Arc::new(AtomicU64::new(0));
        let (c, u, services) = (client.clone(), graphql.clone(), services.clone());
        let subject = load(WRITERS, ROUND, move |_| {
            let (client, url) = (c.clone(), u.clone());
            let n = counter.fetch_add(1, Ordering::Relaxed);
            let service = services[n as usize % services.len()].clone();
            async move {
                let body = json!({
                    "query": "mutation($s: ID!, $c: String!) { deploy(input: { serviceId: $s, commit: $c }) { id } }",
                    "variables": { "s": service, "c": format!("c{n}") }
                });
                check(client.post(url).json(&body).send().await?.json().await?)
            }
        })
        .await;
        let ratio = subject / base;
        println!(
            "  round {round}: raw redb {base:.0} commits/s, deploy {subject:.0} ops/s, ratio {ratio:.2}"
        );
        write_ratios.push(ratio);
    }

    let write = median(&mut write_ratios);
    for (view, read) in &read_ratios {
        println!("median ratio, reading ({view} view): {read:.2} (target >= 0.4) {}", verdict(*read >= 0.4));
    }
    println!("median ratio, writing: {write:.2} (target >= 1.0) {}", verdict(write >= 1.0));
    shutdown.cancel();
    server.await??;
    if read_ratios.iter().any(|(_, r)| *r < 0.4) || write < 1.0 {
        std::process::exit(1);
    }
    Ok(())
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

fn check(body: Value) -> Result<(), BoxError> {
    match body.get("errors") {
        Some(errors) => Err(format!("GraphQL errors: {errors}").into()),
        None => Ok(()),
    }
}

/// One environment, 32 no-op services, and 60 finished operations.
async fn seed(client: &reqwest::Client, url: &str) -> anyhow::Result<Vec<String>> {
    let post = |query: &'static str, variables: Value| {
        let (client, url) = (client.clone(), url.to_owned());
        async move {
            let body: Value = client
                .post(url)
                .json(&json!({ "query": query, "variables": variables }))
                .send()
                .await?
                .json()
                .await?;
            anyhow::ensure!(body.get("errors").is_none(), "seeding failed: {body}");
            Ok::<_, anyhow::Error>(body["data"].clone())
        }
    };
    let env = post("mutation { createEnvironment(input: { name: \"bench\" }) { id } }", json!({})).await?;
    let env = env["createEnvironment"]["id"].as_str().unwrap_or_default().to_owned();
    let mut services = Vec::new();
    for i in 0..WRITERS {
        let svc = post(
            "mutation($e: ID!, $n: String!) { createService(input: { environmentId: $e, name: $n, kind: JOB, instances: 0 }) { id } }",
            json!({ "e": env, "n": format!("noop-{i}") }),
        )
        .await?;
        services.push(svc["createService"]["id"].as_str().unwrap_or_default().to_owned());
    }
    for i in 0..60 {
        post(
            "mutation($s: ID!, $c: String!) { deploy(input: { serviceId: $s, commit: $c }) { id } }",
            json!({ "s": services[i % WRITERS], "c": format!("seed{i}") }),
        )
        .await?;
    }
    // Both sides must read the same, settled rows.
    loop {
        let active = post(
            "{ operations(filter: { statuses: [QUEUED, BUILDING, DEPLOYING, CANCELLING] }, first: 1) { nodes { id } } }",
            json!({}),
        )
        .await?;
        if active["operations"]["nodes"].as_array().is_some_and(|n| n.is_empty()) {
            return Ok(services);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts that GraphQL and the baseline answer the same JSON document, so
/// the two sides do the same work for the client.
async fn same_document(
    client: &reqwest::Client,
    graphql: &str,
    query: &str,
    baseline: &str,
) -> anyhow::Result<()> {
    let subject: Value = client.post(graphql).json(&json!({ "query": query })).send().await?.json().await?;
    let base: Value = client.get(baseline).send().await?.json().await?;
    let (s, b) = (&subject["data"]["operations"]["nodes"][0], &base["data"]["operations"]["nodes"][0]);
    anyhow::ensure!(
        subject == base,
        "the baseline answers another document than GraphQL; first nodes:\n{s}\n{b}"
    );
    Ok(())
}

#[derive(serde::Deserialize)]
struct BaselineQuery {
    steps: bool,
}

/// The baseline read route: the same page of the same store, serialised by
/// serde into the document the GraphQL query answers.
async fn serve_baseline(store: Store) -> anyhow::Result<u16> {
    async fn handler(State(store): State<Store>, Query(q): Query<BaselineQuery>) -> Json<Value> {
        let page = store
            .read(|r| {
                operations::operations_page(
                    r,
                    OrganizationId(1),
                    &OperationFilter::default(),
                    &PageArgs::first(50),
                )
            })
            .await
            .expect("read operations");
        let nodes: Vec<OperationView<'_>> =
            page.items.iter().map(|(_, op)| OperationView::new(op, q.steps)).collect();
        Json(json!({ "data": { "operations": { "nodes": nodes } } }))
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let router = axum::Router::new().route("/operations", get(handler)).with_state(store);
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(port)
}

fn time(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis).unwrap_or_default().to_rfc3339()
}

/// An operation as the GraphQL selections present it.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct OperationView<'a> {
    id: String,
    #[serde(rename = "type")]
    op_type: OperationType,
    status: OperationStatus,
    commit: Option<&'a str>,
    service_name: &'a str,
    environment_name: &'a str,
    queued_at: String,
    started_at: Option<String>,
    finished_at: Option<String>,
    rollback: RollbackOutcome,
    trigger: TriggerView,
    #[serde(skip_serializing_if = "Option::is_none")]
    steps: Option<Vec<StepView<'a>>>,
}

#[derive(serde::Serialize)]
struct TriggerView {
    kind: TriggerKind,
    source: TriggerSource,
    reason: Option<PlatformReason>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct StepView<'a> {
    kind: StepKind,
    status: StepStatus,
    started_at: Option<String>,
    finished_at: Option<String>,
    message: Option<&'a str>,
}

impl<'a> OperationView<'a> {
    fn new(op: &'a Operation, steps: bool) -> Self {
        Self {
            id: op.id.to_string(),
            op_type: op.op_type,
            status: op.status,
            commit: op.commit.as_deref(),
            service_name: &op.service_name,
            environment_name: &op.environment_name,
            queued_at: time(op.queued_at),
            started_at: op.started_at.map(time),
            finished_at: op.finished_at.map(time),
            rollback: op.rollback,
            trigger: TriggerView {
                kind: op.trigger.kind,
                source: op.trigger.source,
                reason: op.trigger.reason,
            },
            steps: steps.then(|| {
                op.steps
                    .iter()
                    .map(|s| StepView {
                        kind: s.kind,
                        status: s.status,
                        started_at: s.started_at.map(time),
                        finished_at: s.finished_at.map(time),
                        message: s.message.as_deref(),
                    })
                    .collect()
            }),
        }
    }
}

async fn sample_operation(store: &Store) -> anyhow::Result<Operation> {
    let page = store
        .read(|r| {
            operations::operations_page(
                r,
                OrganizationId(1),
                &OperationFilter::default(),
                &PageArgs::first(1),
            )
        })
        .await?;
    page.items.into_iter().next().map(|(_, op)| op).ok_or_else(|| anyhow::anyhow!("no operation seeded"))
}
