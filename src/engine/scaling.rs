//! Scaling out on usage. On each check of a service that sets a threshold
//! and `maxInstances`, monitoring reads the CPU and memory of every running
//! instance's processes ([`super::local::usage`]) and follows each
//! instance's hot streak ([`crate::domain::scaling`]). When a streak covers
//! the service's window, the platform queues a `SCALE` to one more
//! instance: trigger `PLATFORM`, source `MONITORING`, reason `SCALING`, no
//! author, and the evidence (the instance, what was seen against which
//! threshold, for how long) as `SYSTEM` lines of its log.
//!
//! - **Step:** one instance per `SCALE`, never past `maxInstances`. At the
//!   maximum nothing is queued; the service's log says so, once per streak.
//! - **Cool-down:** a `SCALE` is queued only while the service has no
//!   operation queued or running (checked in the transaction that queues
//!   it), monitoring leaves a service alone while one is, and queueing one
//!   forgets every streak of the service: the next scale-out needs a whole
//!   new window, measured after this one ended. So a service grows by at
//!   most one instance per window, and a still-hot service never piles up
//!   `SCALE`s.
//! - **Not a failure:** scale-outs do not go through the recovery queue,
//!   its back-off or its give-up. A `SCALE` that fails leaves the count as
//!   it was, and the next window may try again. A service has at most one
//!   in flight and each starts one instance, so even a load spike across
//!   every service costs one process start per service per window.
//!
//! The streaks live in memory: after a restart, windows start afresh.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::Engine;
use super::healing::record_service_line;
use super::local::usage::{CpuMeter, ProcUsage};
use crate::domain::scaling::{HotStreak, evidence, scale_out_target, track};
use crate::domain::{
    DomainError, Instance, InstanceId, InstanceStatus, Millis, NewLine, NewOperation, OperationType,
    PlatformReason, Principal, Service, ServiceId, Trigger, now_millis,
};

/// The hot streaks of every service monitoring may scale.
#[derive(Default)]
pub struct Scaling {
    services: Mutex<HashMap<ServiceId, Heat>>,
}

/// What scaling follows of one service.
#[derive(Default)]
struct Heat {
    /// CPU figures between this service's checks.
    meter: CpuMeter,
    /// The instances hot now, since when.
    streaks: HashMap<InstanceId, HotStreak>,
    /// The service log already says the current streaks hit the maximum.
    noted_at_max: bool,
}

/// What a check of a service's usage calls for.
#[derive(Debug, PartialEq)]
enum Verdict {
    Calm,
    /// Queue a scale-out to `target` instances, with the evidence.
    ScaleOut {
        target: u32,
        lines: Vec<String>,
    },
    /// Hot for the window, but at the maximum: this line for the service log.
    AtMax(String),
}

impl Scaling {
    /// Forgets the services `keep` says no to: their windows start afresh
    /// when monitoring looks at them again.
    pub fn retain(&self, keep: impl Fn(ServiceId) -> bool) {
        self.lock().retain(|svc, _| keep(*svc));
    }

    /// Follows the usage of `svc`'s running instances, read at `at`.
    fn observe(&self, svc: &Service, usage: Vec<(InstanceId, ProcUsage)>, at: Millis) -> Verdict {
        let spec = &svc.spec.monitoring;
        let mut services = self.lock();
        let heat = services.entry(svc.id).or_default();
        heat.meter.retain(|id| usage.iter().any(|(i, _)| *i == id));
        let mut streaks = HashMap::new();
        for (id, usage) in usage {
            let reading = heat.meter.reading(id, usage, at);
            if let Some(streak) = track(heat.streaks.remove(&id), &reading, spec) {
                streaks.insert(id, streak);
            }
        }
        heat.streaks = streaks;
        if heat.streaks.is_empty() {
            heat.noted_at_max = false;
        }
        // The instance hot the longest speaks for the service.
        let Some((instance, streak)) = heat
            .streaks
            .iter()
            .filter(|(_, s)| s.covers(spec.scale_window_ms))
            .min_by_key(|(id, s)| (s.since, id.0))
        else {
            return Verdict::Calm;
        };
        let mut lines = evidence(*instance, streak, spec);
        let (current, max) = (svc.spec.instances, spec.max_instances.unwrap_or_default());
        match scale_out_target(spec, current) {
            Some(target) => {
                lines.push(format!("scaling out: from {current} to {target} instances (maximum {max})"));
                services.remove(&svc.id);
                Verdict::ScaleOut { target, lines }
            }
            None if heat.noted_at_max => Verdict::Calm,
            None => {
                heat.noted_at_max = true;
                let why = if current == max {
                    format!("the service already runs its maximum of {max} instances")
                } else {
                    format!("the service wants {current} instances, not below its maximum of {max}")
                };
                Verdict::AtMax(format!("{}; {why}: not scaled", lines[0]))
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ServiceId, Heat>> {
        self.services.lock().expect("scaling state")
    }
}

/// Reads the usage of `svc`'s running instances and scales it out when
/// one has been hot for its window. Does nothing for a service that does
/// not ask to be scaled.
pub async fn check(engine: &Arc<Engine>, svc: &Service, instances: &[Instance]) {
    if !svc.spec.monitoring.scales() {
        engine.scaling.retain(|id| id != svc.id);
        return;
    }
    let running: Vec<InstanceId> =
        instances.iter().filter(|i| i.status == InstanceStatus::Running).map(|i| i.id).collect();
    let executor = engine.executor.clone();
    let read = move || running.into_iter().filter_map(|id| Some((id, executor.usage(id)?))).collect();
    let Ok(usage) = tokio::task::spawn_blocking(read).await else { return };
    match engine.scaling.observe(svc, usage, now_millis()) {
        Verdict::Calm => {}
        Verdict::AtMax(line) => record_service_line(engine, svc.id, line).await,
        Verdict::ScaleOut { target, lines } => scale_out(engine, svc, target, lines).await,
    }
}

/// Queues the platform's `SCALE` of `svc` to `target` instances, unless
/// the service changed since monitoring looked.
async fn scale_out(engine: &Arc<Engine>, svc: &Service, target: u32, lines: Vec<String>) {
    let new = NewOperation {
        service_id: svc.id,
        op_type: OperationType::Scale,
        commit: None,
        trigger: Trigger::platform(PlatformReason::Scaling),
        target_instances: Some(target),
        redeploy_of: None,
        idempotency_key: None,
    };
    let lines = lines.into_iter().map(NewLine::system).collect();
    let principal = Principal::platform(svc.organization_id);
    match engine.submit_scale_out(&principal, new, lines, svc.spec.instances).await {
        Ok(op) => tracing::info!(service = %svc.id, operation = %op.id, target, "scaling out"),
        Err(DomainError::Conflict(why)) => tracing::debug!(service = %svc.id, why, "scale-out skipped"),
        Err(error) => tracing::warn!(%error, service = %svc.id, "monitoring could not queue a scale-out"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ServiceSpec;
    use crate::domain::monitor::MonitorSpec;

    fn service(instances: u32) -> Service {
        let monitoring = MonitorSpec {
            interval_ms: 100,
            cpu_threshold_percent: Some(50),
            scale_window_ms: 200,
            max_instances: Some(2),
            ..MonitorSpec::default()
        };
        let spec = ServiceSpec { instances, monitoring, ..ServiceSpec::default() };
        Service { spec, ..crate::domain::fixtures::service(None) }
    }

    /// One check of instance 7 at `at`, `busy_ms` of CPU since the start.
    fn look(scaling: &Scaling, svc: &Service, at: Millis, busy_ms: u64) -> Verdict {
        let ticks = busy_ms * super::super::local::usage::ticks_per_second() / 1_000;
        scaling.observe(svc, vec![(InstanceId(7), ProcUsage { cpu_ticks: ticks, rss_bytes: 1 })], at)
    }

    #[test]
    fn a_hot_instance_scales_the_service_out_once_per_window_and_up_to_the_maximum() {
        let scaling = Scaling::default();
        let one = service(1);
        // Busy all the time from 0 ms: hot from the second look (100 ms).
        let verdicts: Vec<Verdict> = (0..4).map(|n| look(&scaling, &one, n * 100, n as u64 * 100)).collect();
        assert_eq!(verdicts[..3], [Verdict::Calm, Verdict::Calm, Verdict::Calm]);
        let Verdict::ScaleOut { target, lines } = &verdicts[3] else { panic!("{verdicts:?}") };
        assert_eq!(*target, 2);
        assert!(
            lines[0].contains("instance inst_7 stayed above its usage threshold for 200 ms"),
            "{lines:?}"
        );
        assert_eq!(lines.last().unwrap(), "scaling out: from 1 to 2 instances (maximum 2)");
        // The streak was forgotten: the next look starts a new window.
        assert_eq!(look(&scaling, &one, 400, 400), Verdict::Calm);

        let two = service(2);
        let verdicts: Vec<Verdict> = (5..12).map(|n| look(&scaling, &two, n * 100, n as u64 * 100)).collect();
        let notes: Vec<&Verdict> = verdicts.iter().filter(|v| **v != Verdict::Calm).collect();
        assert_eq!(notes.len(), 1, "the maximum is noted once per streak: {verdicts:?}");
        let Verdict::AtMax(line) = notes[0] else { panic!("{notes:?}") };
        assert!(line.ends_with("the service already runs its maximum of 2 instances: not scaled"), "{line}");
    }
}
