//! Monitoring of the local executor's running instances. Every service is
//! checked on its own interval, in a task of its own (a hanging probe
//! never delays the others):
//!
//! - an instance whose process exited (its row is in `ERROR`);
//! - a TCP connection to an instance's port that cannot be opened;
//! - a probe (an HTTP path or a command) that does not answer in time;
//! - a data directory over its disk quota.
//!
//! The first finding goes to the recovery queue ([`super::healing`]). A
//! service with nothing wrong is then checked for scaling out
//! ([`super::scaling`]), when its spec asks for it.
//! Services with an operation queued or running are left alone (their
//! instances are changing), as are jobs and services monitoring already
//! acts on.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;

use super::healing::record_service_line;
use super::{Engine, scaling};
use crate::domain::monitor::{Finding, Probe};
use crate::domain::{DomainError, Instance, InstanceStatus, Service, ServiceId, ServiceKind};
use crate::store::{Reader, operations, resources};

/// How often monitoring looks for services that are due.
const TICK: Duration = Duration::from_millis(100);

/// Runs monitoring until shutdown.
pub async fn run(engine: Arc<Engine>, shutdown: CancellationToken) {
    let mut last_check: HashMap<ServiceId, Instant> = HashMap::new();
    let mut in_flight: HashSet<ServiceId> = HashSet::new();
    let mut checks: JoinSet<ServiceId> = JoinSet::new();
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            Some(done) = checks.join_next() => {
                if let Ok(svc) = done {
                    in_flight.remove(&svc);
                }
                continue;
            }
            _ = ticks.tick() => {}
        }
        let watched = match engine.store.read(watched_services).await {
            Ok(watched) => watched,
            Err(error) => {
                tracing::error!(%error, "monitoring could not read the services");
                continue;
            }
        };
        // A service left alone on this tick (an operation runs on it) starts
        // its scaling window afresh.
        let ids: HashSet<ServiceId> = watched.iter().map(|(svc, _)| svc.id).collect();
        engine.scaling.retain(|svc| ids.contains(&svc));
        let now = Instant::now();
        for (svc, instances) in watched {
            let every = Duration::from_millis(svc.spec.monitoring.interval_ms);
            let due = last_check.get(&svc.id).is_none_or(|at| now.duration_since(*at) >= every);
            if !due || in_flight.contains(&svc.id) || !engine.healing.watches(svc.id) {
                continue;
            }
            last_check.insert(svc.id, now);
            in_flight.insert(svc.id);
            let engine = engine.clone();
            checks.spawn(async move {
                let id = svc.id;
                match check(&engine, &svc, &instances).await {
                    Some(finding) => {
                        if let Some(line) = engine.healing.report(svc, finding) {
                            record_service_line(&engine, id, line).await;
                        }
                    }
                    None => scaling::check(&engine, &svc, &instances).await,
                }
                id
            });
        }
    }
}

/// The live services monitoring should look at, with their current
/// instances: not jobs, not with monitoring off, not while an operation is
/// queued or running on them, and only those with an instance.
fn watched_services(r: Reader<'_>) -> Result<Vec<(Service, Vec<Instance>)>, DomainError> {
    let mut out = Vec::new();
    for svc in resources::all_services(r)? {
        if !is_monitored(&svc) {
            continue;
        }
        if operations::queue_end(r, svc.id, false)?.is_some() {
            continue;
        }
        let instances: Vec<Instance> =
            resources::instances_of(r, svc.id)?.into_iter().filter(|i| i.current).collect();
        if !instances.is_empty() {
            out.push((svc, instances));
        }
    }
    Ok(out)
}

/// Whether monitoring watches `svc` at all: live, not a job, and with
/// monitoring on.
pub fn is_monitored(svc: &Service) -> bool {
    !svc.is_deleted() && svc.kind != ServiceKind::Job && svc.spec.monitoring.interval_ms != 0
}

/// The first thing wrong with the service, if any.
async fn check(engine: &Engine, svc: &Service, instances: &[Instance]) -> Option<Finding> {
    let spec = &svc.spec.monitoring;
    let limit = Duration::from_millis(spec.probe_timeout_ms.max(1));
    for inst in instances {
        match inst.status {
            InstanceStatus::Error => {
                return Some(Finding::Exited { instance: inst.id, code: inst.exit_code });
            }
            InstanceStatus::Running => {}
            _ => continue,
        }
        let Some(port) = inst.port else { continue };
        let stream = match timeout(limit, TcpStream::connect(("127.0.0.1", port))).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                return Some(Finding::Unreachable { instance: inst.id, port, error: e.to_string() });
            }
            Err(_) => {
                let error = format!("no connection within {} ms", limit.as_millis());
                return Some(Finding::Unreachable { instance: inst.id, port, error });
            }
        };
        let (work, _) = engine.executor.service_dirs(svc.id);
        if let Some(probe) = &spec.probe
            && let Err(detail) = run_probe(probe, stream, port, &work, limit).await
        {
            let probe = match probe {
                Probe::Http(path) => format!("GET {path}"),
                Probe::Command(command) => format!("`{command}`"),
            };
            return Some(Finding::Timeout { instance: inst.id, probe, detail });
        }
    }
    let quota_mb = spec.disk_quota_mb?;
    let (executor, id) = (engine.executor.clone(), svc.id);
    let used = tokio::task::spawn_blocking(move || executor.data_usage(id)).await.ok()?;
    let used_mb = used / (1024 * 1024);
    (used > quota_mb * 1024 * 1024).then_some(Finding::DiskFull { used_mb, quota_mb })
}

/// Runs the probe; `Err` says what went wrong.
async fn run_probe(
    probe: &Probe,
    mut stream: TcpStream,
    port: u16,
    work: &Path,
    limit: Duration,
) -> Result<(), String> {
    let answered = match probe {
        Probe::Http(path) => {
            let ask = async {
                let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
                stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
                let mut head = [0u8; 12];
                let n = stream.read(&mut head).await.map_err(|e| e.to_string())?;
                if head[..n].starts_with(b"HTTP/") {
                    Ok(())
                } else {
                    Err("the answer is not HTTP".to_owned())
                }
            };
            timeout(limit, ask).await
        }
        Probe::Command(command) => {
            let run = async {
                let status = super::local::probe_command(command, work).await.map_err(|e| e.to_string())?;
                if status.success() { Ok(()) } else { Err(format!("the command ended with {status}")) }
            };
            timeout(limit, run).await
        }
    };
    answered.unwrap_or_else(|_| Err(format!("no answer within {} ms", limit.as_millis())))
}
