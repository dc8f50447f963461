//! What monitoring 500 running instances costs the server, in CPU, at the
//! default interval, against the same server with monitoring off.
//!
//! `cargo bench --bench monitoring` starts two `opsgraph` binaries as child
//! processes (`serve --listen 127.0.0.1:0 --db <tmp>/<name>.redb`, each with
//! its own database and data directory in one temporary directory):
//!
//! - the subject, whose services omit `monitoring` (the defaults: a check
//!   every 5,000 ms, no probe, no disk quota, no scaling), and whose
//!   instances are sampled for usage metrics every 10,000 ms (the default
//!   `--metrics-interval-ms`): the figure includes metrics;
//! - the baseline, whose services say `monitoring: { intervalMs: 0 }`
//!   (monitoring, self-healing and metrics off); everything else is the
//!   same.
//!
//! Each gets one environment with [`SERVICES`] (100) `APPLICATION` services
//! of [`INSTANCES`] (5) instances: 500 running instances per server. 100 × 5
//! rather than 500 × 1: a service is the unit monitoring schedules (one
//! check task per service per interval, its instances checked in turn), and
//! an environment page holds at most 100 services. Each instance serves a
//! TCP port (`port: 0`: any free port, given in `$PORT`), so that
//! monitoring's check is the real one, a TCP connection per instance per
//! interval; without a port it would only look at the process state. The
//! listener is this benchmark's own executable started with the argument
//! `listen` (`exec <bench> listen`): a std `TcpListener` that accepts and
//! drops connections, about 1 MB resident, where a Python one-liner would
//! take ten times that per process (and `nc` is not on every machine).
//! Services have `healthCheck: { graceMs: 50 }` and `stopGraceMs: 1000`.
//!
//! The servers are set up one after the other (two servers picking free
//! ports at once could hand one port to two instances): every service
//! created, then every deploy submitted (the server runs them in
//! parallel), then each deploy's
//! status polled through GraphQL until every one is final; all must be
//! `DEPLOYMENT_OK`. A warm-up of one default interval follows, so that every
//! monitored service was checked at least once before measuring.
//!
//! Then [`ROUNDS`] (5) windows of [`WINDOW`] (30 s). Both servers run all
//! along, and each window samples both at once: the CPU time (utime +
//! stime of `/proc/<pid>/stat`, in clock ticks, divided by
//! `sysconf(_SC_CLK_TCK)`) each server's process used during the window,
//! over the window's wall time. Sampling both over the same window instead
//! of alternating windows is alternation taken to its limit: whatever else
//! the shared machine does in a window weighs on both sides alike. The
//! instances are separate processes: their own CPU is not counted, only
//! the server's. Before every window and after the last, each server must
//! report all 500 current instances `RUNNING` and the environment's
//! `runningStatus` `RUNNING`; after the last window the recovery queue
//! must show no affected service (monitoring found nothing to heal, so the
//! subject's figure is steady-state checking, not redeploys).
//!
//! The figure of a round is (subject − baseline) CPU seconds per wall
//! second, as a percentage of one core. Every round is printed and the
//! median; target: median ≤ 5%. A missed target exits with 1 after the
//! figures are printed. A failed check aborts the run.
//!
//! At the end both servers get SIGTERM (they stop their instances, which
//! run in process groups of their own) and are waited for; any instance
//! process still alive afterwards is killed and fails the run.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use serde_json::{Value, json};

const ROUNDS: usize = 5;
const SERVICES: usize = 100;
const INSTANCES: usize = 5;
/// Length of one measurement window.
const WINDOW: Duration = Duration::from_secs(30);
/// One default monitoring interval, waited once before the first window.
const WARM_UP: Duration = Duration::from_millis(5_000);
/// Most percent of one core monitoring may add.
const TARGET_PERCENT: f64 = 5.0;
/// Upper bound on waiting for all deploys of one server; never a sleep.
const PATIENCE: Duration = Duration::from_secs(600);
/// The argument that makes this executable an instance's TCP listener.
const LISTEN: &str = "listen";

fn main() -> Result<()> {
    // Arguments that start with `-` are cargo's (`--bench`).
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    if args.iter().any(|a| a == LISTEN) {
        return listen();
    }
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run())
}

/// An instance: accepts connections on `$PORT` and drops them, until killed.
fn listen() -> Result<()> {
    let port: u16 = std::env::var("PORT").context("no PORT")?.parse()?;
    let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
    for connection in listener.incoming() {
        drop(connection);
    }
    Ok(())
}

async fn run() -> Result<()> {
    let tck = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)?
        .ok_or_else(|| anyhow!("no _SC_CLK_TCK"))? as f64;
    let exe = std::env::current_exe()?;
    let start = format!("exec '{}' {LISTEN}", exe.display());
    ensure!(!exe.display().to_string().contains('\''), "the benchmark's path holds a quote");
    let dir = tempfile::tempdir()?;
    let subject = Server::start(dir.path(), "subject").await?;
    let baseline = Server::start(dir.path(), "baseline").await?;
    let started = Instant::now();
    // One server after the other: with `port: 0` each server picks a free
    // port by binding and releasing it, and two servers picking at once can
    // hand the same port to two instances (one then fails to bind).
    let subject_env = subject.deploy_all(&start, None).await?;
    let baseline_env = baseline.deploy_all(&start, Some(json!({ "intervalMs": 0 }))).await?;
    println!(
        "{} instances running on each server ({SERVICES} services x {INSTANCES}) after {:.1?}",
        SERVICES * INSTANCES,
        started.elapsed()
    );
    tokio::time::sleep(WARM_UP).await;

    let mut rounds = Vec::new();
    for round in 1..=ROUNDS {
        subject.check_running(&subject_env).await?;
        baseline.check_running(&baseline_env).await?;
        let (s0, b0, t0) = (subject.cpu_ticks()?, baseline.cpu_ticks()?, Instant::now());
        tokio::time::sleep(WINDOW).await;
        let (s1, b1, wall) = (subject.cpu_ticks()?, baseline.cpu_ticks()?, t0.elapsed().as_secs_f64());
        let percent = |ticks: u64| ticks as f64 / tck / wall * 100.0;
        let (s, b) = (percent(s1 - s0), percent(b1 - b0));
        println!(
            "  round {round}: {wall:.1} s; subject {s:.2}% of a core, baseline {b:.2}%, \
             monitoring {:.2}%",
            s - b
        );
        rounds.push((s, b, s - b));
    }
    subject.check_running(&subject_env).await?;
    baseline.check_running(&baseline_env).await?;
    for server in [&subject, &baseline] {
        let data = server.gql("{ recovery { affected queued running } }", json!({})).await?;
        ensure!(
            data["recovery"] == json!({ "affected": 0, "queued": 0, "running": 0 }),
            "{}: monitoring found something to heal: {}",
            server.name,
            data["recovery"]
        );
    }
    subject.stop().await?;
    baseline.stop().await?;

    let column = |f: fn(&(f64, f64, f64)) -> f64| median(&mut rounds.iter().map(f).collect::<Vec<_>>());
    let (s, b, cost) = (column(|r| r.0), column(|r| r.1), column(|r| r.2));
    let ok = cost <= TARGET_PERCENT;
    println!(
        "median: subject {s:.2}% of a core, baseline {b:.2}%; monitoring {} instances costs {cost:.2}% \
         of one core (target <= {TARGET_PERCENT}%) {}",
        SERVICES * INSTANCES,
        if ok { "PASS" } else { "FAIL" }
    );
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

/// The server binary as a child process.
struct Server {
    name: &'static str,
    child: Child,
    graphql: String,
    http: reqwest::Client,
    /// Kept open: the server may write to its stdout again.
    _stdout: BufReader<ChildStdout>,
    /// Instance processes seen running, checked to be gone after stop.
    pids: std::sync::Mutex<Vec<i32>>,
}

impl Server {
    async fn start(dir: &Path, name: &'static str) -> Result<Self> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_opsgraph"))
            .args(["serve", "--listen", "127.0.0.1:0", "--db"])
            .arg(dir.join(format!("{name}.redb")))
            .arg("--data-dir")
            .arg(dir.join(format!("{name}.data")))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()?;
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let address = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .ok_or_else(|| anyhow!("no address in {line:?}"))?
            .trim_end_matches('/')
            .to_owned();
        // A new file: the server prints the owner token of its first start.
        let token = loop {
            let mut line = String::new();
            ensure!(stdout.read_line(&mut line)? > 0, "{name}: no owner token printed");
            if let Some(secret) = line.trim().strip_prefix("OPSGRAPH_TOKEN=") {
                break secret.to_owned();
            }
        };
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse()?);
        // Readiness is a flag the server raises after recovery: poll it.
        let http = reqwest::Client::builder().default_headers(headers).build()?;
        let ready = format!("{address}/readyz");
        while !http.get(&ready).send().await.is_ok_and(|r| r.status().is_success()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let graphql = format!("{address}/graphql");
        Ok(Self { name, child, graphql, http, _stdout: stdout, pids: Default::default() })
    }

    /// Runs a GraphQL request that must succeed; returns its `data`.
    async fn gql(&self, query: &str, variables: Value) -> Result<Value> {
        let body: Value = self
            .http
            .post(&self.graphql)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        ensure!(body.get("errors").is_none(), "{}: GraphQL errors: {body}", self.name);
        Ok(body["data"].clone())
    }

    /// One environment of [`SERVICES`] services of [`INSTANCES`] instances
    /// running `start`, deployed; returns the environment's id.
    async fn deploy_all(&self, start: &str, monitoring: Option<Value>) -> Result<String> {
        let data =
            self.gql("mutation { createEnvironment(input: { name: \"bench\" }) { id } }", json!({})).await?;
        let env = text(&data["createEnvironment"]["id"])?;
        let mut operations = Vec::new();
        for n in 0..SERVICES {
            let mut input = json!({
                "environmentId": env, "name": format!("svc-{n}"), "kind": "APPLICATION",
                "startCommand": start, "port": 0, "instances": INSTANCES,
                "healthCheck": { "graceMs": 50 }, "stopGraceMs": 1000,
            });
            if let Some(monitoring) = &monitoring {
                input["monitoring"] = monitoring.clone();
            }
            let data = self
                .gql(
                    "mutation($input: CreateServiceInput!) { createService(input: $input) { id } }",
                    json!({ "input": input }),
                )
                .await?;
            let svc = text(&data["createService"]["id"])?;
            let data = self
                .gql(
                    "mutation($s: ID!) { deploy(input: { serviceId: $s, commit: \"bench\" }) { id } }",
                    json!({ "s": svc }),
                )
                .await?;
            operations.push(text(&data["deploy"]["id"])?);
        }
        self.wait_deployed(operations).await?;
        Ok(env)
    }

    /// Polls the operations until every one is final; all must have
    /// succeeded.
    async fn wait_deployed(&self, mut pending: Vec<String>) -> Result<()> {
        let deadline = Instant::now() + PATIENCE;
        while !pending.is_empty() {
            let mut still = Vec::new();
            for op in pending {
                let data = self
                    .gql(
                        "query($id: ID!) { operation(id: $id) { status steps { name status message } } }",
                        json!({ "id": op }),
                    )
                    .await?;
                match data["operation"]["status"].as_str().unwrap_or_default() {
                    "DEPLOYMENT_OK" => {}
                    "QUEUED" | "BUILDING" | "DEPLOYING" | "CANCELLING" => still.push(op),
                    // The steps say which one failed and why.
                    other => {
                        bail!("{}: deploy {op} ended {other}: {}", self.name, data["operation"]["steps"])
                    }
                }
            }
            pending = still;
            ensure!(Instant::now() < deadline, "{}: {} deploys still running", self.name, pending.len());
            if !pending.is_empty() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(())
    }

    /// Fails unless every current instance is `RUNNING`, there are all of
    /// them, and the environment's running status says `RUNNING`.
    async fn check_running(&self, env: &str) -> Result<()> {
        let query = "query($e: ID!) { environment(id: $e) { runningStatus { value }
            services(first: 100) { nodes { instances { pid status current } } } } }";
        let data = self.gql(query, json!({ "e": env })).await?;
        let env = &data["environment"];
        let status = &env["runningStatus"]["value"];
        ensure!(status == "RUNNING", "{}: the environment is {status}", self.name);
        let mut pids = Vec::new();
        for svc in env["services"]["nodes"].as_array().into_iter().flatten() {
            for inst in svc["instances"].as_array().into_iter().flatten().filter(|i| i["current"] == true) {
                ensure!(inst["status"] == "RUNNING", "{}: an instance is {}", self.name, inst["status"]);
                pids.push(inst["pid"].as_i64().ok_or_else(|| anyhow!("no pid in {inst}"))? as i32);
            }
        }
        ensure!(pids.len() == SERVICES * INSTANCES, "{}: {} instances run", self.name, pids.len());
        self.pids.lock().expect("not poisoned").extend(pids);
        Ok(())
    }

    /// Clock ticks of CPU (user and system) the server process used so far.
    fn cpu_ticks(&self) -> Result<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))?;
        // Fields after the command name, which is in parentheses and may
        // hold spaces: the 3rd field (state) first, utime the 14th.
        let rest = &stat[stat.rfind(')').ok_or_else(|| anyhow!("bad stat {stat}"))? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        Ok(fields[11].parse::<u64>()? + fields[12].parse::<u64>()?)
    }

    /// SIGTERM, waits for the server, then checks its instances are gone.
    async fn stop(mut self) -> Result<()> {
        let status = self.terminate()?;
        ensure!(status.success(), "{}: the server exited with {status}", self.name);
        let mut left = 0;
        for pid in std::mem::take(&mut *self.pids.lock().expect("not poisoned")) {
            let pid = nix::unistd::Pid::from_raw(pid);
            if nix::sys::signal::kill(pid, None).is_ok() {
                left += 1;
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            }
        }
        ensure!(left == 0, "{}: {left} instance processes outlived the server", self.name);
        Ok(())
    }

    /// SIGTERM (the server stops its instances), then waits for the exit.
    fn terminate(&mut self) -> Result<std::process::ExitStatus> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)?;
        Ok(self.child.wait()?)
    }
}

/// A run that failed still stops its servers, and so their 500 instances.
impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.terminate();
        }
    }
}

fn text(value: &Value) -> Result<String> {
    value.as_str().map(str::to_owned).ok_or_else(|| anyhow!("expected an id, got {value}"))
}
