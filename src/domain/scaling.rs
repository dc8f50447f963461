//! Scaling out: when an instance's usage has stayed above its service's
//! threshold for a whole window, and how many instances the platform then
//! asks for.
//!
//! - An instance is *hot* in a reading when the CPU of its processes
//!   (percent of one core: 100 is one core kept busy) is above
//!   `cpu_threshold_percent`, or their resident memory above
//!   `memory_threshold_mb`.
//! - A *streak* is a run of hot readings of one instance, each at most
//!   [`max_gap_ms`] after the one before: a reading that is not hot, or a
//!   gap (monitoring did not look, say while an operation ran), ends it.
//!   The window counts from the first hot reading, so an instance may have
//!   been hot a little longer than the evidence says, never shorter.
//! - A streak that covers `scale_window_ms` makes the platform scale the
//!   service out by one instance ([`scale_out_target`]), never past
//!   `max_instances`; with no maximum the service keeps its count.

use super::monitor::MonitorSpec;
use super::{InstanceId, Millis};

const MIB: u64 = 1024 * 1024;

/// What one look at an instance's processes found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub at: Millis,
    /// Percent of one core since the previous reading; `None` for the first
    /// reading of an instance (a CPU figure needs two).
    pub cpu_percent: Option<f64>,
    /// Resident memory of the instance's processes.
    pub memory_bytes: u64,
}

/// A run of hot readings of one instance, with the range of what was seen
/// (the evidence of a scale-out).
#[derive(Debug, Clone, PartialEq)]
pub struct HotStreak {
    /// The first hot reading.
    pub since: Millis,
    /// The latest hot reading.
    pub last_at: Millis,
    pub readings: u32,
    /// Lowest and highest CPU percent seen; `None` while no reading had a
    /// CPU figure.
    pub cpu: Option<(f64, f64)>,
    /// Lowest and highest resident memory seen.
    pub memory: (u64, u64),
}

impl HotStreak {
    /// Milliseconds from the first hot reading to the latest.
    pub fn duration_ms(&self) -> i64 {
        self.last_at - self.since
    }

    /// Whether the streak has lasted the whole window.
    pub fn covers(&self, window_ms: u64) -> bool {
        self.duration_ms() >= i64::try_from(window_ms).unwrap_or(i64::MAX)
    }
}

impl MonitorSpec {
    /// Whether monitoring may scale the service out: a threshold and a
    /// maximum are set.
    pub fn scales(&self) -> bool {
        (self.cpu_threshold_percent.is_some() || self.memory_threshold_mb.is_some())
            && self.max_instances.is_some()
    }

    /// Whether `reading` is above a threshold.
    pub fn is_hot(&self, reading: &Reading) -> bool {
        let cpu = self
            .cpu_threshold_percent
            .zip(reading.cpu_percent)
            .is_some_and(|(limit, seen)| seen > f64::from(limit));
        let memory = self.memory_threshold_mb.is_some_and(|mb| reading.memory_bytes > mb.saturating_mul(MIB));
        cpu || memory
    }
}

/// Longest wait between two readings of one streak: three check intervals
/// and a probe timeout (a check that probes slowly is late, not absent).
pub fn max_gap_ms(spec: &MonitorSpec) -> i64 {
    let gap = spec.interval_ms.saturating_mul(3).saturating_add(spec.probe_timeout_ms);
    i64::try_from(gap).unwrap_or(i64::MAX)
}

/// The streak after `reading`: continued, started afresh (after a gap), or
/// ended (`None`) by a reading that is not hot.
pub fn track(streak: Option<HotStreak>, reading: &Reading, spec: &MonitorSpec) -> Option<HotStreak> {
    if !spec.is_hot(reading) {
        return None;
    }
    let widen = |(lo, hi): (f64, f64), v: f64| (lo.min(v), hi.max(v));
    match streak.filter(|s| reading.at - s.last_at <= max_gap_ms(spec)) {
        Some(mut s) => {
            s.last_at = reading.at;
            s.readings += 1;
            if let Some(cpu) = reading.cpu_percent {
                s.cpu = Some(s.cpu.map_or((cpu, cpu), |range| widen(range, cpu)));
            }
            s.memory = (s.memory.0.min(reading.memory_bytes), s.memory.1.max(reading.memory_bytes));
            Some(s)
        }
        None => Some(HotStreak {
            since: reading.at,
            last_at: reading.at,
            readings: 1,
            cpu: reading.cpu_percent.map(|c| (c, c)),
            memory: (reading.memory_bytes, reading.memory_bytes),
        }),
    }
}

/// The instance count a scale-out of a service that wants `current`
/// instances asks for: one more, when that stays within `max_instances`;
/// `None` at (or past) the maximum, or without one.
pub fn scale_out_target(spec: &MonitorSpec, current: u32) -> Option<u32> {
    spec.max_instances.filter(|max| current < *max).map(|_| current + 1)
}

/// The evidence of a streak of `instance`, as log lines: how long it was
/// hot, and what was seen against each threshold that is set.
pub fn evidence(instance: InstanceId, streak: &HotStreak, spec: &MonitorSpec) -> Vec<String> {
    let mut lines = vec![format!(
        "monitoring: instance {instance} stayed above its usage threshold for {} ms, the whole window of {} ms ({} readings)",
        streak.duration_ms(),
        spec.scale_window_ms,
        streak.readings
    )];
    if let Some(limit) = spec.cpu_threshold_percent {
        let seen = match streak.cpu {
            Some((lo, hi)) => format!("{lo:.1}% to {hi:.1}% of one core"),
            None => "no figure yet".to_owned(),
        };
        lines.push(format!("monitoring: CPU of instance {instance}: {seen} (threshold {limit}%)"));
    }
    if let Some(limit) = spec.memory_threshold_mb {
        let mb = |bytes: u64| bytes as f64 / MIB as f64;
        let (lo, hi) = streak.memory;
        lines.push(format!(
            "monitoring: memory of instance {instance}: {:.1} MB to {:.1} MB (threshold {limit} MB)",
            mb(lo),
            mb(hi)
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> MonitorSpec {
        MonitorSpec {
            interval_ms: 100,
            probe_timeout_ms: 50,
            cpu_threshold_percent: Some(50),
            memory_threshold_mb: Some(10),
            scale_window_ms: 300,
            max_instances: Some(3),
            ..MonitorSpec::default()
        }
    }

    fn reading(at: Millis, cpu: Option<f64>, memory_mb: u64) -> Reading {
        Reading { at, cpu_percent: cpu, memory_bytes: memory_mb * MIB }
    }

    /// Feeds readings in turn; returns the streak after each.
    fn run(spec: &MonitorSpec, readings: &[Reading]) -> Vec<Option<HotStreak>> {
        let mut streak = None;
        readings
            .iter()
            .map(|r| {
                streak = track(streak.take(), r, spec);
                streak.clone()
            })
            .collect()
    }

    #[test]
    fn a_reading_is_hot_above_either_threshold_and_only_above() {
        let spec = spec();
        let cases = [
            (None, 1, false),
            (Some(50.0), 10, false),
            (Some(50.1), 0, true),
            (None, 11, true),
            (Some(0.0), 11, true),
        ];
        for (cpu, mb, hot) in cases {
            assert_eq!(spec.is_hot(&reading(0, cpu, mb)), hot, "cpu {cpu:?}, {mb} MB");
        }
        let memory_only = MonitorSpec { cpu_threshold_percent: None, ..spec };
        assert!(!memory_only.is_hot(&reading(0, Some(400.0), 1)));
    }

    #[test]
    fn a_streak_covers_the_window_only_when_hot_throughout() {
        let spec = spec();
        let hot = |at| reading(at, Some(90.0), 1);
        let streaks = run(&spec, &[hot(1_000), hot(1_100), hot(1_200), hot(1_300)]);
        let last = streaks.last().unwrap().clone().unwrap();
        assert_eq!((last.since, last.readings, last.duration_ms()), (1_000, 4, 300));
        assert!(last.covers(300) && !streaks[2].as_ref().unwrap().covers(300));
        // A cool reading in the middle starts the window again.
        let broken = run(&spec, &[hot(0), hot(100), reading(200, Some(10.0), 1), hot(300), hot(400)]);
        assert_eq!(broken[2], None);
        assert_eq!(broken[4].as_ref().unwrap().since, 300);
        assert!(!broken[4].as_ref().unwrap().covers(300));
    }

    #[test]
    fn a_gap_between_readings_starts_a_new_streak() {
        let spec = spec();
        let gap = max_gap_ms(&spec);
        assert_eq!(gap, 350);
        let hot = |at| reading(at, Some(90.0), 1);
        let kept = run(&spec, &[hot(0), hot(gap)]);
        assert_eq!(kept[1].as_ref().unwrap().since, 0);
        let restarted = run(&spec, &[hot(0), hot(gap + 1)]);
        assert_eq!(restarted[1].as_ref().unwrap().since, gap + 1);
    }

    #[test]
    fn a_streak_keeps_the_range_of_what_was_seen() {
        let spec = spec();
        let streaks =
            run(&spec, &[reading(0, None, 12), reading(100, Some(70.0), 11), reading(300, Some(95.5), 20)]);
        let last = streaks[2].clone().unwrap();
        assert_eq!(last.cpu, Some((70.0, 95.5)));
        assert_eq!(last.memory, (11 * MIB, 20 * MIB));
        let lines = evidence(InstanceId(4), &last, &spec);
        assert_eq!(
            lines,
            [
                "monitoring: instance inst_4 stayed above its usage threshold for 300 ms, the whole window of 300 ms (3 readings)",
                "monitoring: CPU of instance inst_4: 70.0% to 95.5% of one core (threshold 50%)",
                "monitoring: memory of instance inst_4: 11.0 MB to 20.0 MB (threshold 10 MB)",
            ]
        );
    }

    #[test]
    fn scale_outs_add_one_instance_up_to_the_maximum() {
        let spec = spec();
        let targets: Vec<Option<u32>> = (0..5).map(|n| scale_out_target(&spec, n)).collect();
        assert_eq!(targets, [Some(1), Some(2), Some(3), None, None]);
        let no_max = MonitorSpec { max_instances: None, ..spec.clone() };
        assert_eq!(scale_out_target(&no_max, 1), None);
        assert!(spec.scales() && !no_max.scales());
        let no_threshold = MonitorSpec { cpu_threshold_percent: None, memory_threshold_mb: None, ..spec };
        assert!(!no_threshold.scales());
    }
}
