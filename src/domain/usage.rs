//! Usage metrics: samples of what each instance uses, and how the samples
//! of a period are cut into buckets that a frontend plots.
//!
//! - Buckets are `resolution` long; the first starts at `from`, the last is
//!   cut at `to`: bucket `i` is `[from + i·r, min(from + (i+1)·r, to))`. At
//!   most [`MAX_POINTS`] of them.
//! - The service series has every bucket, in order; a bucket without a
//!   sample (nothing ran, or monitoring was off) has no figures: a gap in
//!   the chart.
//! - The service's figures at one sampling time add up its instances' CPU
//!   and memory; disk is the service's data directory, which its instances
//!   share, so it is counted once.
//! - An instance series has only the buckets it has samples in: instances
//!   come and go.
//! - Each figure of a bucket is the average and the highest of the samples
//!   in it.

use std::collections::BTreeMap;

use super::{DomainError, InstanceId, Millis};

/// Most buckets one request may ask for.
pub const MAX_POINTS: i64 = 1_000;
/// Longest bucket: a day.
pub const MAX_RESOLUTION_SECS: i64 = 86_400;

/// What one instance used at one sampling time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub instance: InstanceId,
    pub at: Millis,
    /// Percent of one core since the previous sample (100: one core busy).
    pub cpu_percent: f64,
    /// Resident memory of the instance's processes.
    pub memory_bytes: u64,
    /// Bytes under the service's data directory.
    pub disk_bytes: u64,
}

/// CPU in percent of one core between two readings of `(clock ticks, time)`
/// of the same processes; `None` when no time passed. Ticks that went down
/// (a process left the tree with its time) count as none.
pub fn cpu_percent(before: (u64, Millis), now: (u64, Millis), ticks_per_second: u64) -> Option<f64> {
    let elapsed_ms = now.1 - before.1;
    if elapsed_ms <= 0 || ticks_per_second == 0 {
        return None;
    }
    let busy_ms = now.0.saturating_sub(before.0) as f64 * 1_000.0 / ticks_per_second as f64;
    Some(busy_ms / elapsed_ms as f64 * 100.0)
}

/// A period cut into buckets: `[from, to)` by `resolution_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsRange {
    pub from: Millis,
    pub to: Millis,
    pub resolution_ms: i64,
}

impl MetricsRange {
    /// Checks a period and a resolution (in seconds) given by a client.
    pub fn parse(from: Millis, to: Millis, resolution_secs: i64) -> Result<Self, DomainError> {
        if from >= to {
            return Err(DomainError::bad_input("to", "must be later than `from`"));
        }
        if !(1..=MAX_RESOLUTION_SECS).contains(&resolution_secs) {
            return Err(DomainError::bad_input(
                "resolution",
                format!("must be 1 to {MAX_RESOLUTION_SECS} seconds, got {resolution_secs}"),
            ));
        }
        let range = Self { from, to, resolution_ms: resolution_secs * 1_000 };
        let points = range.span_in(range.resolution_ms);
        if points > MAX_POINTS {
            let least = range.span_in(MAX_POINTS * 1_000);
            return Err(DomainError::bad_input(
                "resolution",
                format!(
                    "{points} buckets of {resolution_secs} s from `from` to `to`, more than {MAX_POINTS}: \
                     use a resolution of at least {least} s, or a shorter period"
                ),
            ));
        }
        Ok(range)
    }

    /// How many pieces of `step` ms cover the period (the last may be cut).
    fn span_in(&self, step: i64) -> i64 {
        let span = self.to.saturating_sub(self.from);
        span / step + i64::from(span % step != 0)
    }

    /// How many buckets the period has.
    pub fn buckets(&self) -> usize {
        usize::try_from(self.span_in(self.resolution_ms)).unwrap_or(0)
    }

    /// The bucket `at` falls in; `None` outside the period.
    pub fn bucket_of(&self, at: Millis) -> Option<usize> {
        (self.from..self.to).contains(&at).then(|| ((at - self.from) / self.resolution_ms) as usize)
    }

    /// When bucket `index` starts.
    pub fn bucket_start(&self, index: usize) -> Millis {
        self.from + index as i64 * self.resolution_ms
    }
}

/// The average and the highest value of a figure in a bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    pub avg: f64,
    pub max: f64,
}

/// The figures of a bucket that has samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    pub cpu_percent: Stat,
    pub memory_bytes: Stat,
    pub disk_bytes: Stat,
}

/// One bucket of a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// When the bucket starts.
    pub start: Millis,
    /// Samples (for the service: sampling times) in the bucket.
    pub samples: u32,
    /// `None` when the bucket has no sample.
    pub usage: Option<Usage>,
}

/// The metrics of a service over a period.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Series {
    /// Every bucket, its instances added up.
    pub service: Vec<Point>,
    /// Each instance's buckets that have samples, by instance id.
    pub instances: Vec<(InstanceId, Vec<Point>)>,
}

/// CPU, memory and disk of a sample, in that order.
type Figures = [f64; 3];

/// Sums and highs of the samples of one bucket.
#[derive(Debug, Clone, Copy, Default)]
struct Acc {
    samples: u32,
    sum: Figures,
    max: Figures,
}

impl Acc {
    fn add(&mut self, figures: Figures) {
        for (i, v) in figures.into_iter().enumerate() {
            self.sum[i] += v;
            self.max[i] = if self.samples == 0 { v } else { self.max[i].max(v) };
        }
        self.samples += 1;
    }

    fn point(&self, start: Millis) -> Point {
        let stat = |i: usize| Stat { avg: self.sum[i] / f64::from(self.samples), max: self.max[i] };
        let usage = (self.samples > 0).then(|| Usage {
            cpu_percent: stat(0),
            memory_bytes: stat(1),
            disk_bytes: stat(2),
        });
        Point { start, samples: self.samples, usage }
    }
}

/// Cuts samples into buckets as they are read, in one pass: feed it the
/// samples of one service in time order ([`Bucketizer::add`]), then take
/// the [`Series`].
pub struct Bucketizer {
    range: MetricsRange,
    service: Vec<Acc>,
    instances: BTreeMap<InstanceId, BTreeMap<usize, Acc>>,
    /// The sampling time being added up, and its totals so far.
    current: Option<(Millis, Figures)>,
}

impl Bucketizer {
    pub fn new(range: MetricsRange) -> Self {
        Self {
            range,
            service: vec![Acc::default(); range.buckets()],
            instances: BTreeMap::new(),
            current: None,
        }
    }

    /// Adds a sample; one outside the period is ignored. Samples of one
    /// sampling time must come together (time order does that).
    pub fn add(&mut self, sample: &Sample) {
        let Some(bucket) = self.range.bucket_of(sample.at) else { return };
        let figures = [sample.cpu_percent, sample.memory_bytes as f64, sample.disk_bytes as f64];
        self.instances.entry(sample.instance).or_default().entry(bucket).or_default().add(figures);
        match &mut self.current {
            Some((at, total)) if *at == sample.at => {
                total[0] += figures[0];
                total[1] += figures[1];
                total[2] = total[2].max(figures[2]);
            }
            _ => {
                self.close_time();
                self.current = Some((sample.at, figures));
            }
        }
    }

    /// Adds the totals of the sampling time being added up to its bucket.
    fn close_time(&mut self) {
        if let Some((at, total)) = self.current.take()
            && let Some(bucket) = self.range.bucket_of(at)
        {
            self.service[bucket].add(total);
        }
    }

    pub fn finish(mut self) -> Series {
        self.close_time();
        let range = self.range;
        Series {
            service: self
                .service
                .iter()
                .enumerate()
                .map(|(i, acc)| acc.point(range.bucket_start(i)))
                .collect(),
            instances: self
                .instances
                .into_iter()
                .map(|(id, buckets)| {
                    (id, buckets.into_iter().map(|(i, acc)| acc.point(range.bucket_start(i))).collect())
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(instance: u64, at: Millis, cpu: f64, memory: u64, disk: u64) -> Sample {
        Sample {
            instance: InstanceId(instance),
            at,
            cpu_percent: cpu,
            memory_bytes: memory,
            disk_bytes: disk,
        }
    }

    #[test]
    fn cpu_is_busy_time_over_elapsed_time() {
        assert_eq!(cpu_percent((100, 1_000), (150, 2_000), 100), Some(50.0));
        assert_eq!(cpu_percent((100, 1_000), (300, 2_000), 100), Some(200.0), "two cores");
        assert_eq!(cpu_percent((100, 1_000), (90, 2_000), 100), Some(0.0), "a process left");
        assert_eq!(cpu_percent((100, 1_000), (150, 1_000), 100), None);
    }

    #[test]
    fn periods_and_resolutions_are_checked() {
        let range = MetricsRange::parse(1_000, 4_500, 1).unwrap();
        assert_eq!((range.buckets(), range.resolution_ms), (4, 1_000), "the last bucket is cut at `to`");
        assert_eq!(range.bucket_of(4_000), Some(3));
        assert_eq!((range.bucket_of(4_500), range.bucket_of(999)), (None, None));
        assert_eq!(MetricsRange::parse(0, 1_000_000, 1).unwrap().buckets(), 1_000, "exactly the most");
        let cases = [
            ((5, 5, 1), "to"),
            ((6, 5, 1), "to"),
            ((0, 10, 0), "resolution"),
            ((0, 10, MAX_RESOLUTION_SECS + 1), "resolution"),
            ((0, 1_000_001, 1), "resolution"),
        ];
        for ((from, to, resolution), field) in cases {
            let error = MetricsRange::parse(from, to, resolution).unwrap_err();
            assert!(
                matches!(&error, DomainError::BadUserInput { field: f, .. } if *f == field),
                "{from}..{to} by {resolution}: {error}"
            );
        }
        let too_many = MetricsRange::parse(0, 3_600_000, 1).unwrap_err().to_string();
        assert!(too_many.contains("3600 buckets") && too_many.contains("at least 4 s"), "{too_many}");
    }

    #[test]
    fn samples_fall_in_their_buckets_and_instances_add_up_for_the_service() {
        let range = MetricsRange::parse(1_000, 4_500, 1).unwrap();
        let mut buckets = Bucketizer::new(range);
        for s in [
            sample(1, 999, 99.0, 1, 1),
            sample(1, 1_000, 10.0, 100, 50),
            sample(2, 1_000, 20.0, 200, 50),
            sample(1, 1_500, 30.0, 300, 60),
            sample(2, 1_500, 40.0, 400, 60),
            sample(1, 3_200, 5.0, 10, 70),
            sample(1, 4_500, 99.0, 1, 1),
        ] {
            buckets.add(&s);
        }
        let series = buckets.finish();
        let starts: Vec<Millis> = series.service.iter().map(|p| p.start).collect();
        assert_eq!(starts, [1_000, 2_000, 3_000, 4_000], "every bucket, from `from`");
        let first = series.service[0];
        assert_eq!(first.samples, 2, "two sampling times");
        let usage = first.usage.unwrap();
        assert_eq!(usage.cpu_percent, Stat { avg: 50.0, max: 70.0 }, "totals 30 and 70");
        assert_eq!(usage.memory_bytes, Stat { avg: 500.0, max: 700.0 });
        assert_eq!(usage.disk_bytes, Stat { avg: 55.0, max: 60.0 }, "the shared directory counts once");
        assert_eq!((series.service[1].samples, series.service[1].usage), (0, None), "a gap");
        assert_eq!(series.service[2].usage.unwrap().cpu_percent, Stat { avg: 5.0, max: 5.0 });

        let ids: Vec<u64> = series.instances.iter().map(|(id, _)| id.0).collect();
        assert_eq!(ids, [1, 2]);
        let one = &series.instances[0].1;
        assert_eq!(one.iter().map(|p| (p.start, p.samples)).collect::<Vec<_>>(), [(1_000, 2), (3_000, 1)]);
        assert_eq!(one[0].usage.unwrap().cpu_percent, Stat { avg: 20.0, max: 30.0 });
        assert_eq!(series.instances[1].1[0].usage.unwrap().memory_bytes, Stat { avg: 300.0, max: 400.0 });
    }
}
