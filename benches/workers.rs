//! Claims per second by outside workers, against raw redb commits measured
//! in the same run (the machines are shared and noisy: only ratios mean
//! anything).
//!
//! `cargo bench --bench workers` runs both scenarios; each alternates
//! baseline and subject rounds (`ROUNDS`) and prints every round and the
//! median. 16 workers, each its own loop of requests over HTTP with one
//! `WORKER` token, against a server in this process:
//!
//! 1. empty queue: `claimOperation` of a pool with nothing queued (each
//!    answers null, and like every mutation writes its audit record).
//! 2. full queue: 16 services of the pool with 1,500 deploys queued each;
//!    a worker claims, starts step 0, reports it `FAILED` and completes
//!    the operation — four calls, four commits — then claims again. Every
//!    claimed operation is checked to be claimed once only, and a claim
//!    answering null (the queue ran dry) aborts the run.
//!
//! The baseline is sequential redb commits of one operation row each to a
//! separate file in the same directory. No target: the figures are
//! reported.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opsgraph::app::Application;
use opsgraph::config::ServeArgs;
use serde_json::{Value, json};

use common::{BoxError, client, load, median, raw_commits};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ROUNDS: usize = 5;
const ROUND: Duration = Duration::from_secs(2);
const WORKERS: usize = 16;
const QUEUED_PER_SERVICE: usize = 1_500;

const CLAIM: &str = "mutation($w: String!) { claimOperation(input: { pool: \"bench\", workerId: $w }) { id operation { id } } }";
const START: &str = "mutation($l: ID!) { startStep(input: { leaseId: $l, step: 0 }) { id } }";
const FAIL: &str = "mutation($l: ID!) { finishStep(input: { leaseId: $l, step: 0, status: FAILED, message: \"bench\" }) { id } }";
const COMPLETE: &str =
    "mutation($l: ID!) { completeOperation(input: { leaseId: $l, outcome: FAILED }) { id } }";

/// Posts one request; its `data`, or the error it answered with.
async fn call(client: &reqwest::Client, url: &str, query: &str, variables: Value) -> Result<Value, BoxError> {
    let body: Value = client
        .post(url)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await?
        .json()
        .await?;
    if let Some(errors) = body.get("errors") {
        return Err(format!("{errors}").into());
    }
    Ok(body["data"].clone())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut args = ServeArgs::new(dir.path().join("bench.redb"), "127.0.0.1:0".parse()?);
    args.data_dir = Some(dir.path().join("data"));
    args.limits.rate_limit = 0;
    let app = Application::build(args).await?;
    let owner = client(&app.first_token().map(|t| t.secret.clone()).unwrap_or_default())?;
    let url = format!("http://127.0.0.1:{}/graphql", app.port());
    let mut ready = app.readiness();
    let shutdown = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped());
    ready.wait_for(|r| *r).await?;

    let token = call(
        &owner,
        &url,
        "mutation { createToken(input: { name: \"bench\", kind: WORKER }) { secret } }",
        json!({}),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let worker = client(token["createToken"]["secret"].as_str().unwrap_or_default())?;
    let raw = redb::Database::create(dir.path().join("raw.redb"))?;
    let row = vec![b'x'; 600];
    let mut next_key = 0;

    println!("empty queue: {WORKERS} workers polling claimOperation, {ROUNDS} rounds of {ROUND:?} each side");
    let mut empty = Vec::new();
    for round in 1..=ROUNDS {
        let base = raw_commits(&raw, &row, ROUND, &mut next_key)?;
        let (w, u) = (worker.clone(), url.clone());
        let claims = load(WORKERS, ROUND, move |n| {
            let (client, url) = (w.clone(), u.clone());
            async move {
                let data = call(&client, &url, CLAIM, json!({ "w": format!("w{n}") })).await?;
                if !data["claimOperation"].is_null() {
                    return Err("a claim of an empty pool returned an operation".into());
                }
                Ok(())
            }
        })
        .await;
        let ratio = claims / base;
        println!("  round {round}: raw redb {base:.0} commits/s, claims {claims:.0}/s, ratio {ratio:.2}");
        empty.push(ratio);
    }

    let env =
        call(&owner, &url, "mutation { createEnvironment(input: { name: \"bench\" }) { id } }", json!({}))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    let env = env["createEnvironment"]["id"].clone();
    println!(
        "full queue: seeding {WORKERS} services of the pool with {QUEUED_PER_SERVICE} queued deploys each"
    );
    let seeders: Vec<_> = (0..WORKERS)
        .map(|s| {
            let (owner, url, env) = (owner.clone(), url.clone(), env.clone());
            tokio::spawn(async move {
                let create = "mutation($e: ID!, $n: String!) { createService(input: { environmentId: $e, name: $n, kind: JOB, executor: \"bench\" }) { id } }";
                let svc = call(&owner, &url, create, json!({ "e": env, "n": format!("job{s}") })).await?;
                let svc = svc["createService"]["id"].clone();
                let deploy = "mutation($s: ID!, $c: String!) { deploy(input: { serviceId: $s, commit: $c }) { id } }";
                for c in 0..QUEUED_PER_SERVICE {
                    call(&owner, &url, deploy, json!({ "s": svc, "c": format!("c{c}") })).await?;
                }
                Ok::<_, BoxError>(())
            })
        })
        .collect();
    for seeder in seeders {
        seeder.await?.map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    println!(
        "full queue: {WORKERS} workers claiming, starting, failing and completing; {ROUNDS} rounds of {ROUND:?} each side"
    );
    let claimed: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut full = Vec::new();
    for round in 1..=ROUNDS {
        let base = raw_commits(&raw, &row, ROUND, &mut next_key)?;
        let (w, u, seen) = (worker.clone(), url.clone(), claimed.clone());
        let cycles = load(WORKERS, ROUND, move |n| {
            let (client, url, seen) = (w.clone(), u.clone(), seen.clone());
            async move {
                let data = call(&client, &url, CLAIM, json!({ "w": format!("w{n}") })).await?;
                let lease = &data["claimOperation"];
                let (Some(id), Some(op)) = (lease["id"].as_str(), lease["operation"]["id"].as_str()) else {
                    return Err("the queue ran dry: seed more operations".into());
                };
                if !seen.lock().unwrap().insert(op.to_owned()) {
                    return Err(format!("{op} was claimed twice").into());
                }
                for query in [START, FAIL, COMPLETE] {
                    call(&client, &url, query, json!({ "l": id })).await?;
                }
                Ok(())
            }
        })
        .await;
        let ratio = cycles / base;
        println!(
            "  round {round}: raw redb {base:.0} commits/s, {cycles:.0} claims/s ({:.0} calls/s), claims/commits ratio {ratio:.2}",
            cycles * 4.0
        );
        full.push(ratio);
    }
    println!("every claimed operation was claimed once ({} in all)", claimed.lock().unwrap().len());
    println!("empty queue: median claims/s vs raw commits/s ratio {:.2}", median(&mut empty));
    println!(
        "full queue: median claims/s vs raw commits/s ratio {:.2} (each claim is 4 calls)",
        median(&mut full)
    );
    shutdown.cancel();
    server.await??;
    Ok(())
}
