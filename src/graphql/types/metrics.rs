//! `ServiceMetrics`: a service's usage over a period, cut into buckets a
//! frontend plots: the service's series (its instances added up) and one
//! series per instance.

use async_graphql::{Context, ID, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use crate::domain::ServiceId;
use crate::domain::usage::{MetricsRange, Point, Series, Stat};
use crate::graphql::error::GqlResult;
use crate::graphql::scope::{datetime, id, millis, scope};
use crate::store::metrics;

/// Reads the metrics of `svc` over `[from, to)` by `resolution` seconds,
/// checked first.
pub async fn of_service(
    ctx: &Context<'_>,
    svc: ServiceId,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    resolution: i32,
) -> Result<ServiceMetrics> {
    let range = MetricsRange::parse(millis(from), millis(to), resolution.into()).gql()?;
    let series = scope(ctx)?.read(move |r, _| metrics::series(r, svc, range)).await?;
    Ok(ServiceMetrics { range, series })
}

/// A service's metrics as a GraphQL object.
pub struct ServiceMetrics {
    range: MetricsRange,
    series: Series,
}

/// What a service's instances used over a period `[from, to)`, in buckets
/// of `resolution` seconds (the first starts at `from`, the last is cut at
/// `to`): the average and the highest CPU, memory and disk of the samples
/// in each. Monitoring samples every running instance of a monitored
/// service (not jobs, not with `intervalMs: 0`) every
/// `--metrics-interval-ms` (10 s by default); samples are kept
/// `--metrics-retention-hours` (24 by default).
#[Object]
impl ServiceMetrics {
    /// Start of the period (included).
    async fn from(&self) -> DateTime<Utc> {
        datetime(self.range.from)
    }

    /// End of the period (excluded).
    async fn to(&self) -> DateTime<Utc> {
        datetime(self.range.to)
    }

    /// Seconds per bucket.
    async fn resolution(&self) -> i64 {
        self.range.resolution_ms / 1_000
    }

    /// Every bucket of the period, in order, the instances added up at
    /// each sampling time: CPU and memory summed, disk (the data directory
    /// they share) counted once. A bucket without a sample (nothing ran)
    /// has `samples: 0` and null figures.
    async fn service(&self) -> Vec<MetricsPoint> {
        self.series.service.iter().map(MetricsPoint::from).collect()
    }

    /// One series per instance sampled in the period, by instance id; each
    /// has only the buckets the instance has samples in.
    async fn instances(&self) -> Vec<InstanceMetrics> {
        self.series
            .instances
            .iter()
            .map(|(instance, points)| InstanceMetrics {
                instance_id: id(instance),
                points: points.iter().map(MetricsPoint::from).collect(),
            })
            .collect()
    }
}

/// The series of one instance.
#[derive(SimpleObject)]
pub struct InstanceMetrics {
    /// The instance (`inst_<n>`); it may be gone since.
    instance_id: ID,
    /// The buckets it has samples in, in order.
    points: Vec<MetricsPoint>,
}

/// One bucket of a series.
#[derive(SimpleObject)]
pub struct MetricsPoint {
    /// When the bucket starts.
    at: DateTime<Utc>,
    /// Samples in the bucket (in the service's series: sampling times); 0
    /// for a gap.
    samples: u32,
    /// CPU of the processes, in percent of one core (100: one core kept
    /// busy); null when the bucket has no sample.
    cpu_percent: Option<UsageStat>,
    /// Resident memory of the processes, in bytes; null when the bucket has
    /// no sample.
    memory_bytes: Option<UsageStat>,
    /// Bytes under the service's data directory; null when the bucket has
    /// no sample.
    disk_bytes: Option<UsageStat>,
}

impl From<&Point> for MetricsPoint {
    fn from(point: &Point) -> Self {
        Self {
            at: datetime(point.start),
            samples: point.samples,
            cpu_percent: point.usage.map(|u| u.cpu_percent.into()),
            memory_bytes: point.usage.map(|u| u.memory_bytes.into()),
            disk_bytes: point.usage.map(|u| u.disk_bytes.into()),
        }
    }
}

/// The average and the highest value of one figure over the samples of a
/// bucket. Floats, because byte counts pass what a GraphQL `Int` holds.
#[derive(SimpleObject)]
pub struct UsageStat {
    /// The average of the samples.
    avg: f64,
    /// The highest sample.
    max: f64,
}

impl From<Stat> for UsageStat {
    fn from(stat: Stat) -> Self {
        Self { avg: stat.avg, max: stat.max }
    }
}
