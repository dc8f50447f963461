//! Usage metrics. Every metrics interval (`--metrics-interval-ms`, one
//! setting for the server) one pass reads what each running instance of
//! every monitored service uses — the CPU and memory of its processes, and
//! the bytes under its service's data directory — and stores the samples
//! of all of them in one transaction ([`crate::store::metrics`]): a commit
//! per pass, never one per instance. `Service.metrics` reads them back.
//!
//! - Which instances: the current, `RUNNING` instances of the services
//!   monitoring watches (not jobs, not with `intervalMs: 0`), also while an
//!   operation runs on them.
//! - The pass reads `/proc` and walks the data directories in one blocking
//!   task, off the async workers.
//! - The first pass that sees an instance only takes its baseline (a CPU
//!   figure needs two readings): its samples start one interval after it
//!   does.
//! - Retention deletes samples older than `--metrics-retention-hours`
//!   (see [`crate::store::retention::expire_samples`]).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::local::usage::CpuMeter;
use super::{Engine, LocalExecutor, monitor};
use crate::domain::usage::Sample;
use crate::domain::{DomainError, InstanceId, InstanceStatus, Millis, ServiceId, now_millis};
use crate::store::{Reader, metrics, resources};

/// The instances one pass samples, by service.
type Targets = Vec<(ServiceId, Vec<InstanceId>)>;

/// Samples usage every `every` until shutdown.
pub async fn run(engine: Arc<Engine>, every: Duration, shutdown: CancellationToken) {
    let mut meter = CpuMeter::default();
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let targets = match engine.store.read(sampled).await {
            Ok(targets) => targets,
            Err(error) => {
                tracing::error!(%error, "metrics could not read the services");
                continue;
            }
        };
        let executor = engine.executor.clone();
        let pass = tokio::task::spawn_blocking(move || {
            let samples = sample(&executor, &targets, &mut meter, now_millis());
            (samples, meter)
        });
        let samples = match pass.await {
            Ok((samples, back)) => {
                meter = back;
                samples
            }
            Err(error) => {
                tracing::error!(%error, "a metrics pass failed");
                meter = CpuMeter::default();
                continue;
            }
        };
        if samples.is_empty() {
            continue;
        }
        if let Err(error) = engine.store.write(move |tx| metrics::record(tx, &samples)).await {
            tracing::error!(%error, "storing usage samples failed");
        }
    }
}

/// The current `RUNNING` instances of every monitored service.
fn sampled(r: Reader<'_>) -> Result<Targets, DomainError> {
    let mut out = Vec::new();
    for svc in resources::all_services(r)?.into_iter().filter(monitor::is_monitored) {
        let ids: Vec<InstanceId> = resources::instances_of(r, svc.id)?
            .into_iter()
            .filter(|i| i.current && i.status == InstanceStatus::Running)
            .map(|i| i.id)
            .collect();
        if !ids.is_empty() {
            out.push((svc.id, ids));
        }
    }
    Ok(out)
}

/// One pass at `at`: a sample of each instance that has a CPU baseline.
/// Blocks (reads `/proc` and the data directories).
fn sample(
    executor: &LocalExecutor,
    targets: &Targets,
    meter: &mut CpuMeter,
    at: Millis,
) -> Vec<(ServiceId, Sample)> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (svc, instances) in targets {
        let usage: Vec<_> = instances.iter().filter_map(|id| Some((*id, executor.usage(*id)?))).collect();
        if usage.is_empty() {
            continue;
        }
        let disk_bytes = executor.data_usage(*svc);
        for (instance, usage) in usage {
            seen.insert(instance);
            let reading = meter.reading(instance, usage, at);
            if let Some(cpu_percent) = reading.cpu_percent {
                let memory_bytes = reading.memory_bytes;
                out.push((*svc, Sample { instance, at, cpu_percent, memory_bytes, disk_bytes }));
            }
        }
    }
    meter.retain(|id| seen.contains(&id));
    out
}
