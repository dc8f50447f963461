//! The activity report download over an environment of 1,000,000
//! operations, against plain baselines measured in the same run (the
//! machines are shared and noisy: only ratios mean anything).
//!
//! `cargo bench --bench reports` seeds the operations straight through the
//! store's write functions, in large transactions, then alternates, for
//! `ROUNDS` (at least 5) rounds:
//!
//! 1. Throughput: `GET /reports/activity.csv` over the whole period through
//!    HTTP, against a raw redb scan of the same rows (the time index, then
//!    each operation row, decoded) written by the same CSV writer to a
//!    sink. Target: median ratio of rows per second ≥ 0.5.
//! 2. Memory: the peak resident memory (`VmHWM`) of a server exporting the
//!    1,000,000 rows, against one exporting the first 100,000. Target:
//!    median ratio ≤ 1.2.
//!
//! The server is the `opsgraph` binary, run as a child process: peak
//! memory is only meaningful for a process that does nothing else, and a
//! fresh process per export makes each peak that export's alone. The
//! baseline runs in this process between two servers (redb locks the file
//! against a second opener).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use opsgraph::domain::resource::NewService;
use opsgraph::domain::{
    Member, Name, Operation, OperationId, OperationStatus, OperationType, RollbackOutcome, ServiceKind,
    ServiceSpec, Step, StepStatus, Trigger, TriggerSource, export, plan::plan,
};
use opsgraph::store::{Store, operations, resources, tables};
use redb::ReadableDatabase;

/// The same allocator as the `opsgraph` binary, so that both sides decode
/// and render rows with the same allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ROUNDS: usize = 5;
const ROWS: u64 = 1_000_000;
const SMALL_ROWS: u64 = 100_000;
/// Operations written per transaction while seeding.
const SEED_BATCH: u64 = 50_000;
/// The seeded operations are queued one second apart from this time.
const BASE_MS: i64 = 1_700_000_000_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("reports.redb");
    let started = Instant::now();
    let env = seed(&db).await?;
    println!("seeded {ROWS} operations in {:.1?}", started.elapsed());
    let full = (BASE_MS, BASE_MS + ROWS as i64 * 1_000);
    let small = (BASE_MS, BASE_MS + SMALL_ROWS as i64 * 1_000);
    let idle = Server::start(&db, dir.path()).await?;
    println!("peak memory of a server that exported nothing: {} MiB", idle.peak_kib()? / 1024);
    idle.stop()?;

    let (mut speed, mut memory) = (Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        let (raw_rows, raw_secs) = raw_scan(&db, env, full)?;
        let big = export_through_server(&db, dir.path(), env, full).await?;
        let little = export_through_server(&db, dir.path(), env, small).await?;
        anyhow::ensure!(
            raw_rows == ROWS && big.rows == ROWS && little.rows == SMALL_ROWS,
            "row counts differ"
        );
        let (raw_rate, http_rate) = (raw_rows as f64 / raw_secs, big.rows as f64 / big.secs);
        let ratio = http_rate / raw_rate;
        let peak = big.peak_kib as f64 / little.peak_kib as f64;
        println!(
            "  round {round}: raw scan {raw_rate:.0} rows/s, HTTP CSV {http_rate:.0} rows/s, ratio {ratio:.2}; \
             peak memory {} MiB for 1M rows vs {} MiB for 100k, ratio {peak:.2}",
            big.peak_kib / 1024,
            little.peak_kib / 1024
        );
        speed.push(ratio);
        memory.push(peak);
    }
    let (speed, memory) = (median(&mut speed), median(&mut memory));
    println!(
        "median ratio, CSV export rows/s (HTTP / raw redb scan): {speed:.2} (target >= 0.5) {}",
        verdict(speed >= 0.5)
    );
    println!(
        "median ratio, peak memory (1M rows / 100k rows): {memory:.2} (target <= 1.2) {}",
        verdict(memory <= 1.2)
    );
    if speed < 0.5 || memory > 1.2 {
        std::process::exit(1);
    }
    Ok(())
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

/// One environment with 20 services and [`ROWS`] finished operations, then
/// the file closed. Returns the environment's id.
async fn seed(db: &Path) -> anyhow::Result<u64> {
    let store = Store::open(db)?;
    let (env, services) = store
        .write(|tx| {
            let org = resources::ensure_first_organization(tx, "default")?;
            let env = resources::create_environment(tx, org.id, Name::parse("name", "production")?, 30)?;
            let mut services = Vec::new();
            for n in 0..20 {
                let new = NewService {
                    environment_id: env.id,
                    name: Name::parse("name", &format!("service-{n}"))?,
                    kind: ServiceKind::Application,
                    spec: ServiceSpec::default(),
                    branch: "main".into(),
                    webhook_secret: None,
                };
                services.push(resources::create_service(tx, org.id, &new)?);
            }
            Ok((env, services))
        })
        .await?;
    for batch in 0..ROWS / SEED_BATCH {
        let (services, env_name) = (services.clone(), env.name.clone());
        store
            .write(move |tx| {
                for n in batch * SEED_BATCH..(batch + 1) * SEED_BATCH {
                    let id = OperationId(tx.next_id("operation")?);
                    let svc = &services[(n % 20) as usize];
                    operations::insert_operation(tx, &operation(id, n, svc, &env_name))?;
                }
                Ok(())
            })
            .await?;
    }
    let closed = store.closed();
    drop(store);
    closed.await;
    Ok(env.id.0)
}

/// The `n`th seeded operation: a finished deploy with every step timed and
/// described, one in ten failed, authors taking turns.
fn operation(id: OperationId, n: u64, svc: &opsgraph::domain::Service, env: &Name) -> Operation {
    let queued_at = BASE_MS + n as i64 * 1_000;
    let failed = n % 10 == 9;
    let mut steps: Vec<Step> =
        plan(OperationType::Deploy, ServiceKind::Application, false).into_iter().map(Step::planned).collect();
    for (i, step) in steps.iter_mut().enumerate() {
        step.status = if failed && i == 3 { StepStatus::Failed } else { StepStatus::Succeeded };
        step.started_at = Some(queued_at + 100 * i as i64);
        step.finished_at = Some(queued_at + 100 * i as i64 + 90);
        step.message = Some(format!("{} done in 90 ms", step.kind.title()));
    }
    let author = Member { id: n % 7, name: format!("member-{}", n % 7) };
    Operation {
        id,
        organization_id: svc.organization_id,
        environment_id: svc.environment_id,
        service_id: svc.id,
        op_type: OperationType::Deploy,
        status: if failed { OperationStatus::DeploymentError } else { OperationStatus::DeploymentOk },
        commit: Some(format!("{:040x}", n * 2_654_435_761)),
        previous_commit: Some(format!("{:040x}", n.saturating_sub(20) * 2_654_435_761)),
        trigger: Trigger::user(author, TriggerSource::Api).expect("a user trigger"),
        service_name: svc.name.as_str().to_owned(),
        environment_name: env.as_str().to_owned(),
        service_kind: ServiceKind::Application,
        queued_at,
        started_at: Some(queued_at + 10),
        finished_at: Some(queued_at + 600),
        steps,
        rollback: if failed { RollbackOutcome::Succeeded } else { RollbackOutcome::NotNeeded },
        target_instances: None,
        redeploy_of: None,
        idempotency_key: None,
        lease: None,
    }
}

/// The baseline: the period's rows read with redb alone (the time index,
/// then each row) and written by the same CSV writer to a sink. Returns
/// rows and seconds.
fn raw_scan(db: &Path, env: u64, (from, to): (i64, i64)) -> anyhow::Result<(u64, f64)> {
    // The server's cache size: the two sides read through the same cache.
    let db = redb::Database::builder().set_cache_size(opsgraph::store::DEFAULT_CACHE_BYTES).open(db)?;
    let start = Instant::now();
    let txn = db.begin_read()?;
    let index = txn.open_table(tables::OPERATIONS_BY_ENVIRONMENT_TIME)?;
    let rows = txn.open_table(tables::OPERATIONS)?;
    let mut sink = std::io::sink();
    let mut buffer = String::with_capacity(70 * 1024);
    export::csv_header(&mut buffer);
    let mut count = 0;
    for entry in index.range::<(u64, i64, u64)>((env, from, 0)..(env, to, 0))? {
        let (_, _, id) = entry?.0.value();
        let row = rows.get(id)?.ok_or_else(|| anyhow::anyhow!("operation {id} missing"))?;
        let op: Operation = serde_json::from_slice(row.value())?;
        export::csv_row(&mut buffer, &op);
        count += 1;
        if buffer.len() >= 64 * 1024 {
            sink.write_all(buffer.as_bytes())?;
            buffer.clear();
        }
    }
    sink.write_all(buffer.as_bytes())?;
    Ok((count, start.elapsed().as_secs_f64()))
}

/// What one export through a fresh server measured.
struct Export {
    rows: u64,
    secs: f64,
    /// The server's peak resident memory over its whole life, in KiB.
    peak_kib: u64,
}

/// Starts the `opsgraph` binary on the file, downloads the period's CSV,
/// reads the server's `VmHWM` and stops it.
async fn export_through_server(
    db: &Path,
    dir: &Path,
    env: u64,
    (from, to): (i64, i64),
) -> anyhow::Result<Export> {
    let server = Server::start(db, dir).await?;
    let at = |ms| chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339();
    let url = format!("{}/reports/activity.csv", server.address);
    let client = reqwest::Client::new();
    let start = Instant::now();
    let mut response = client
        .get(url)
        .bearer_auth(&server.token)
        .query(&[("environment", format!("env_{env}")), ("from", at(from)), ("to", at(to))])
        .send()
        .await?
        .error_for_status()?;
    let mut lines = 0u64;
    while let Some(chunk) = response.chunk().await? {
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    let peak_kib = server.peak_kib()?;
    server.stop()?;
    // The seeded cells hold no line breaks: one line per row, plus the header.
    Ok(Export { rows: lines - 1, secs, peak_kib })
}

/// The server binary as a child process.
struct Server {
    child: Child,
    address: String,
    /// The owner token the first start over the file printed (kept beside
    /// the file for later starts).
    token: String,
}

impl Server {
    async fn start(db: &Path, dir: &Path) -> anyhow::Result<Self> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_opsgraph"))
            .args(["serve", "--listen", "127.0.0.1:0", "--db"])
            .arg(db)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        stdout.read_line(&mut line)?;
        let address = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .ok_or_else(|| anyhow::anyhow!("no address in {line:?}"))?
            .trim_end_matches('/')
            .to_owned();
        let kept = db.with_extension("token");
        let token = match std::fs::read_to_string(&kept) {
            Ok(token) => token,
            Err(_) => loop {
                let mut line = String::new();
                anyhow::ensure!(stdout.read_line(&mut line)? > 0, "no owner token printed");
                if let Some(secret) = line.trim().strip_prefix("OPSGRAPH_TOKEN=") {
                    std::fs::write(&kept, secret)?;
                    break secret.to_owned();
                }
            },
        };
        // Readiness is a flag the server raises after recovery: poll it.
        let client = reqwest::Client::new();
        let ready = format!("{address}/readyz");
        while !client.get(&ready).send().await.is_ok_and(|r| r.status().is_success()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Self { child, address, token })
    }

    /// `VmHWM`: the peak resident set size of the process so far.
    fn peak_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let line =
            status.lines().find(|l| l.starts_with("VmHWM:")).ok_or_else(|| anyhow::anyhow!("no VmHWM"))?;
        Ok(line.split_whitespace().nth(1).unwrap_or("0").parse()?)
    }

    /// SIGTERM, then waits for the process (and its hold on the file) to end.
    fn stop(mut self) -> anyhow::Result<()> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)?;
        let status = self.child.wait()?;
        anyhow::ensure!(status.success(), "the server exited with {status}");
        Ok(())
    }
}
