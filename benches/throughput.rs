//! Throughput of opsgraph against plain baselines, measured side by side in
//! one run (the machines are shared and noisy: only ratios mean anything).
//!
//! `cargo bench --bench throughput` runs both scenarios; each alternates
//! baseline and subject rounds (`ROUNDS`, at least 5) and reports every
//! round's ratio and the median.
//!
//! 1. Reading: `operations(first: 50)` through GraphQL over HTTP, against a
//!    plain axum route that reads the same 50 operations from the same redb
//!    file (through the same store) and serialises them with serde.
//!    Target: median ratio ≥ 0.4.
//! 2. Writing: `deploy` mutations of no-op services from 32 concurrent
//!    clients, against sequential raw redb commits of one operation row
//!    each. Target: median ratio ≥ 1.0.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::routing::get;
use opsgraph::app::Application;
use opsgraph::config::ServeArgs;
use opsgraph::domain::{Operation, OperationFilter, OrganizationId};
use opsgraph::store::{PageArgs, Store, operations};
use serde_json::{Value, json};

/// The same allocator as the `opsgraph` binary, so the figures are the
/// server's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ROUNDS: usize = 5;
const ROUND: Duration = Duration::from_secs(2);
const READERS: usize = 8;
const WRITERS: usize = 32;

const QUERY: &str = "{ operations(first: 50) { nodes { id type status commit serviceName environmentName \
    queuedAt startedAt finishedAt rollback trigger { kind source reason } \
    steps { kind status startedAt finishedAt message } } } }";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut args = ServeArgs::new(dir.path().join("bench.redb"), "127.0.0.1:0".parse()?);
    args.data_dir = Some(dir.path().join("data"));
    let app = Application::build(args).await?;
    let port = app.port();
    let store = app.store();
    let mut ready = app.readiness();
    let shutdown = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped());
    ready.wait_for(|r| *r).await?;
    let client = reqwest::Client::new();
    let graphql = format!("http://127.0.0.1:{port}/graphql");

    let services = seed(&client, &graphql).await?;
    let baseline_port = serve_baseline(store.clone()).await?;
    let baseline_url = format!("http://127.0.0.1:{baseline_port}/operations");

    println!("reading: operations(first: 50), {READERS} clients, {ROUNDS} rounds of {ROUND:?} each side");
    let mut read_ratios = Vec::new();
    for round in 1..=ROUNDS {
        let (c, u) = (client.clone(), baseline_url.clone());
        let base = load(READERS, ROUND, move || {
            let (client, url) = (c.clone(), u.clone());
            async move {
                client.get(url).send().await?.error_for_status()?.bytes().await?;
                Ok(())
            }
        })
        .await;
        let (c, u) = (client.clone(), graphql.clone());
        let subject = load(READERS, ROUND, move || {
            let (client, url) = (c.clone(), u.clone());
            async move { check(client.post(url).json(&json!({ "query": QUERY })).send().await?.json().await?) }
        })
        .await;
        let ratio = subject / base;
        println!("  round {round}: baseline {base:.0} req/s, graphql {subject:.0} req/s, ratio {ratio:.2}");
        read_ratios.push(ratio);
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
        let subject = load(WRITERS, ROUND, move || {
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

    let read = median(&mut read_ratios);
    let write = median(&mut write_ratios);
    println!("median ratio, reading: {read:.2} (target >= 0.4) {}", verdict(read >= 0.4));
    println!("median ratio, writing: {write:.2} (target >= 1.0) {}", verdict(write >= 1.0));
    shutdown.cancel();
    server.await??;
    if read < 0.4 || write < 1.0 {
        std::process::exit(1);
    }
    Ok(())
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

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
    Ok(services)
}

/// The baseline read route: the same page of the same store, as JSON.
async fn serve_baseline(store: Store) -> anyhow::Result<u16> {
    async fn handler(State(store): State<Store>) -> Json<Vec<Operation>> {
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
        Json(page.items.into_iter().map(|(_, op)| op).collect())
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let router = axum::Router::new().route("/operations", get(handler)).with_state(store);
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(port)
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

/// Completed requests per second from `clients` concurrent loops over
/// `window`. A failed request aborts the benchmark: a figure from a run
/// that failed is not a figure.
async fn load<F, Fut>(clients: usize, window: Duration, make: F) -> f64
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), BoxError>> + Send + 'static,
{
    let make = Arc::new(make);
    let start = Instant::now();
    let deadline = start + window;
    let loops: Vec<_> = (0..clients)
        .map(|_| {
            let make = make.clone();
            tokio::spawn(async move {
                let mut done = 0u64;
                while Instant::now() < deadline {
                    make().await.expect("request failed during the benchmark");
                    done += 1;
                }
                done
            })
        })
        .collect();
    let mut total = 0;
    for handle in loops {
        total += handle.await.expect("client loop");
    }
    total as f64 / start.elapsed().as_secs_f64()
}

/// Sequential commits of one operation row each, per second.
fn raw_commits(db: &redb::Database, row: &[u8], window: Duration, next_key: &mut u64) -> anyhow::Result<f64> {
    const TABLE: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("operations");
    let start = Instant::now();
    let mut commits = 0u64;
    while start.elapsed() < window {
        let txn = db.begin_write()?;
        txn.open_table(TABLE)?.insert(*next_key, row)?;
        txn.commit()?;
        *next_key += 1;
        commits += 1;
    }
    Ok(commits as f64 / start.elapsed().as_secs_f64())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}
