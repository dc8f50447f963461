//! The summary of an activity report: counts, rates and durations over the
//! operations queued in a period, computed in one pass.

use std::collections::HashMap;

use super::{
    DomainError, Millis, Operation, OperationStatus, OperationType, Outcome, PlatformReason, ServiceId,
    TriggerKind, TriggerSource,
};

const DAY_MS: f64 = 86_400_000.0;

/// Checks a report period `[from, to)`: `to` must come after `from`.
pub fn period(from: Millis, to: Millis) -> Result<(Millis, Millis), DomainError> {
    if from >= to {
        return Err(DomainError::bad_input("to", "must be later than `from`"));
    }
    Ok((from, to))
}

/// How many operations had each value of one property, most frequent
/// first (ties by name); values no operation had are left out.
pub type Counts<K> = Vec<(K, u64)>;

/// What an activity report says about its period.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub total: u64,
    pub by_type: Counts<OperationType>,
    /// By status: final ones, and the current one of those still running.
    pub by_status: Counts<OperationStatus>,
    pub by_trigger_kind: Counts<TriggerKind>,
    /// Platform operations only.
    pub by_reason: Counts<PlatformReason>,
    pub by_source: Counts<TriggerSource>,
    /// `DEPLOYMENT_OK` among final operations; `None` when none is final.
    pub success_rate: Option<f64>,
    /// Nearest-rank median of the durations of final operations.
    pub median_duration_ms: Option<i64>,
    /// Nearest-rank 95th percentile of the same durations.
    pub p95_duration_ms: Option<i64>,
    /// `DEPLOY` and `REDEPLOY` operations that ended `DEPLOYMENT_OK`.
    pub successful_deploys: u64,
    /// Successful deploys per day of the period.
    pub deploys_per_day: f64,
    /// Failed deploys among finished ones (cancelled ones left out);
    /// `None` when no deploy finished.
    pub change_failure_rate: Option<f64>,
    /// Failed deploys followed by a successful one on the same service
    /// within the period.
    pub recoveries: u64,
    /// Mean time from a failed deploy's end to the end of the next
    /// successful deploy of the same service; `None` without a recovery.
    pub mean_time_to_recovery_ms: Option<i64>,
}

/// Counts one property's values in first-seen order (a handful of values:
/// a list beats a map).
struct Tally<K>(Vec<(K, u64)>);

impl<K: PartialEq + Copy> Tally<K> {
    fn add(&mut self, key: K) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => self.0.push((key, 1)),
        }
    }

    fn sorted(mut self, name: impl Fn(K) -> &'static str) -> Counts<K> {
        self.0.sort_by(|(a, n), (b, m)| m.cmp(n).then_with(|| name(*a).cmp(name(*b))));
        self.0
    }
}

/// Builds a [`Summary`]: offer it the period's operations in queue order.
pub struct SummaryBuilder {
    period_ms: Millis,
    total: u64,
    types: Tally<OperationType>,
    statuses: Tally<OperationStatus>,
    kinds: Tally<TriggerKind>,
    reasons: Tally<PlatformReason>,
    sources: Tally<TriggerSource>,
    finals: u64,
    succeeded: u64,
    durations: Vec<i64>,
    deploys_ok: u64,
    deploys_failed: u64,
    /// Per service, when its oldest unrecovered failed deploy ended.
    failing_since: HashMap<ServiceId, Millis>,
    recoveries: u64,
    recovery_ms: i64,
}

impl SummaryBuilder {
    /// A builder for the period `[from, to)`.
    pub fn new(from: Millis, to: Millis) -> Self {
        Self {
            period_ms: (to - from).max(1),
            total: 0,
            types: Tally(Vec::new()),
            statuses: Tally(Vec::new()),
            kinds: Tally(Vec::new()),
            reasons: Tally(Vec::new()),
            sources: Tally(Vec::new()),
            finals: 0,
            succeeded: 0,
            durations: Vec::new(),
            deploys_ok: 0,
            deploys_failed: 0,
            failing_since: HashMap::new(),
            recoveries: 0,
            recovery_ms: 0,
        }
    }

    /// Counts `op`; operations must come in queue order, so that a
    /// service's failures come before their recovery.
    pub fn add(&mut self, op: &Operation) {
        self.total += 1;
        self.types.add(op.op_type);
        self.statuses.add(op.status);
        self.kinds.add(op.trigger.kind);
        if let Some(reason) = op.trigger.reason {
            self.reasons.add(reason);
        }
        self.sources.add(op.trigger.source);
        let outcome = op.outcome();
        if outcome == Outcome::InProgress {
            return;
        }
        self.finals += 1;
        self.durations.extend(op.duration_ms());
        if outcome == Outcome::Succeeded {
            self.succeeded += 1;
        }
        if op.is_deploy() {
            self.add_deploy(op, outcome);
        }
    }

    fn add_deploy(&mut self, op: &Operation, outcome: Outcome) {
        let ended = op.finished_at.unwrap_or(op.queued_at);
        match outcome {
            Outcome::Failed => {
                self.deploys_failed += 1;
                self.failing_since.entry(op.service_id).or_insert(ended);
            }
            Outcome::Succeeded => {
                self.deploys_ok += 1;
                if let Some(since) = self.failing_since.remove(&op.service_id) {
                    self.recoveries += 1;
                    self.recovery_ms += ended - since;
                }
            }
            Outcome::Cancelled | Outcome::InProgress => {}
        }
    }

    pub fn finish(mut self) -> Summary {
        self.durations.sort_unstable();
        let ratio = |n: u64, of: u64| (of > 0).then(|| n as f64 / of as f64);
        let finished_deploys = self.deploys_ok + self.deploys_failed;
        Summary {
            total: self.total,
            by_type: self.types.sorted(OperationType::as_str),
            by_status: self.statuses.sorted(OperationStatus::as_str),
            by_trigger_kind: self.kinds.sorted(TriggerKind::as_str),
            by_reason: self.reasons.sorted(PlatformReason::as_str),
            by_source: self.sources.sorted(TriggerSource::as_str),
            success_rate: ratio(self.succeeded, self.finals),
            median_duration_ms: nearest_rank(&self.durations, 50),
            p95_duration_ms: nearest_rank(&self.durations, 95),
            successful_deploys: self.deploys_ok,
            deploys_per_day: self.deploys_ok as f64 / (self.period_ms as f64 / DAY_MS),
            change_failure_rate: ratio(self.deploys_failed, finished_deploys),
            recoveries: self.recoveries,
            mean_time_to_recovery_ms: (self.recoveries > 0)
                .then(|| self.recovery_ms / self.recoveries as i64),
        }
    }
}

/// The nearest-rank `percent`th percentile of `sorted`: the smallest value
/// at or below which `percent`% of the values lie.
fn nearest_rank(sorted: &[i64], percent: usize) -> Option<i64> {
    let rank = (sorted.len() * percent).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fixtures::op;
    use crate::domain::{OperationStatus::*, OperationType::*, Trigger};

    /// Two services over one day (the period is `[0, 86_400_000)`); times
    /// are in seconds after the operation's queueing (queued at `id` s):
    ///
    /// | id | svc | type | status | trigger | duration |
    /// | 1 | 1 | DEPLOY | DEPLOYMENT_OK | user API | 10 s |
    /// | 2 | 1 | DEPLOY | BUILDING_ERROR | user API | 4 s |
    /// | 3 | 2 | DEPLOY | DEPLOYMENT_ERROR | user API | 20 s |
    /// | 4 | 1 | RESTART | DEPLOYMENT_OK | platform TIMEOUT | 2 s |
    /// | 5 | 1 | DEPLOY | DEPLOYMENT_OK | user API | 30 s |
    /// | 6 | 2 | DEPLOY | CANCELLED | user API | 1 s |
    /// | 7 | 2 | REDEPLOY | DEPLOYMENT_OK | user API | 40 s |
    /// | 8 | 2 | START | QUEUED | platform MAINTENANCE | — |
    fn fixture() -> Vec<Operation> {
        let row = |id, svc, t, s, secs: i64| op(id, t, s).on(svc).timed(0, secs * 1_000);
        let platform = |mut o: Operation, reason| {
            o.trigger = Trigger::platform(reason);
            o
        };
        vec![
            row(1, 1, Deploy, DeploymentOk, 10),
            row(2, 1, Deploy, BuildingError, 4),
            row(3, 2, Deploy, DeploymentError, 20),
            platform(row(4, 1, Restart, DeploymentOk, 2), PlatformReason::Timeout),
            row(5, 1, Deploy, DeploymentOk, 30),
            row(6, 2, Deploy, Cancelled, 1),
            row(7, 2, Redeploy, DeploymentOk, 40),
            platform(op(8, Start, Queued).on(2), PlatformReason::Maintenance),
        ]
    }

    #[test]
    fn the_summary_of_the_fixture_matches_the_figures_computed_by_hand() {
        let mut builder = SummaryBuilder::new(0, 86_400_000);
        for op in fixture() {
            builder.add(&op);
        }
        let s = builder.finish();
        assert_eq!(s.total, 8);
        assert_eq!(s.by_type, [(Deploy, 5), (Redeploy, 1), (Restart, 1), (Start, 1)]);
        assert_eq!(
            s.by_status,
            [(DeploymentOk, 4), (BuildingError, 1), (Cancelled, 1), (DeploymentError, 1), (Queued, 1)]
        );
        assert_eq!(s.by_trigger_kind, [(TriggerKind::User, 6), (TriggerKind::Platform, 2)]);
        assert_eq!(s.by_reason, [(PlatformReason::Maintenance, 1), (PlatformReason::Timeout, 1)]);
        assert_eq!(s.by_source, [(TriggerSource::Api, 6), (TriggerSource::Monitoring, 2)]);
        // 4 of the 7 final operations succeeded.
        assert_eq!(s.success_rate, Some(4.0 / 7.0));
        // Durations sorted: 1 2 4 10 20 30 40 s; rank ceil(3.5) = 4 and ceil(6.65) = 7.
        assert_eq!(s.median_duration_ms, Some(10_000));
        assert_eq!(s.p95_duration_ms, Some(40_000));
        // Deploys: 1, 5 and 7 succeeded, 2 and 3 failed, 6 was cancelled.
        assert_eq!(s.successful_deploys, 3);
        assert_eq!(s.deploys_per_day, 3.0);
        assert_eq!(s.change_failure_rate, Some(2.0 / 5.0));
        // svc 1: op 2 ended at 6 s, op 5 at 35 s: 29 s. svc 2: op 3 ended at
        // 23 s, op 7 at 47 s: 24 s. Mean: 26.5 s.
        assert_eq!(s.recoveries, 2);
        assert_eq!(s.mean_time_to_recovery_ms, Some(26_500));
    }

    #[test]
    fn an_empty_period_has_no_rates_or_durations() {
        let s = SummaryBuilder::new(0, 1_000).finish();
        assert_eq!(s.total, 0);
        assert_eq!((s.success_rate, s.median_duration_ms, s.change_failure_rate), (None, None, None));
        assert_eq!(s.mean_time_to_recovery_ms, None);
        assert_eq!(s.deploys_per_day, 0.0);
    }

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(nearest_rank(&[], 50), None);
        assert_eq!(nearest_rank(&[7], 95), Some(7));
        assert_eq!(nearest_rank(&[1, 2, 3, 4], 50), Some(2));
        assert_eq!(nearest_rank(&(1..=100).collect::<Vec<_>>(), 95), Some(95));
    }
}
