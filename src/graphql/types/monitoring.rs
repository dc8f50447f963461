//! `Monitoring`: how a service's instances are watched, its input, and
//! `Healing`: where self-healing of a service stands.

use async_graphql::{InputObject, Object};

use crate::domain::DomainError;
use crate::domain::monitor::{MonitorSpec, Probe};
use crate::domain::resource::{MAX_INSTANCES, parse_duration_ms};

/// Most platform redeploys in a row a service may ask for.
const MAX_REDEPLOYS: i64 = 100;
/// Highest CPU threshold: a hundred cores kept busy.
const MAX_CPU_PERCENT: i64 = 10_000;
/// Highest memory threshold and disk quota: a tebibyte.
const MAX_MB: i64 = 1 << 20;

/// Changes to how monitoring watches a service; omitted fields keep their
/// values (the defaults, for a new service).
#[derive(InputObject, Clone, Default)]
pub struct MonitoringInput {
    /// Milliseconds between two checks of an instance (0 turns monitoring
    /// and self-healing off; default 5000).
    pub interval_ms: Option<i64>,
    /// An HTTP path (`/health`) a running instance must answer on its
    /// port; `""` removes the probe.
    pub probe_http_path: Option<String>,
    /// A command (`sh -c`, in the work directory) that must exit with 0;
    /// `""` removes the probe.
    pub probe_command: Option<String>,
    /// Milliseconds the probe may take (default 2000).
    pub probe_timeout_ms: Option<i64>,
    /// Most megabytes the data directory may use (1 to 1048576); 0 removes
    /// the quota.
    pub disk_quota_mb: Option<i64>,
    /// Platform redeploys in a row before monitoring gives up (1 to 100;
    /// default 5).
    pub max_redeploys: Option<i64>,
    /// Milliseconds before the second redeploy in a row, doubling after
    /// each (default 10000).
    pub backoff_ms: Option<i64>,
    /// Milliseconds a service must stay healthy after a redeploy for a new
    /// failure to start a new series (default 60000).
    pub stable_ms: Option<i64>,
    /// CPU of an instance's processes (the instance's process and its
    /// children), in percent of one core, above which the instance is hot
    /// (1 to 10000); 0 removes the threshold (the default: none).
    pub cpu_threshold_percent: Option<i64>,
    /// Resident memory of an instance's processes, in megabytes, above
    /// which the instance is hot (1 to 1048576); 0 removes the threshold
    /// (the default: none).
    pub memory_threshold_mb: Option<i64>,
    /// Milliseconds an instance must stay hot before the platform scales
    /// the service out (0 to 3600000; default 60000).
    pub scale_window_ms: Option<i64>,
    /// Most instances the platform's scale-outs may reach (1 to 64; a
    /// `DATABASE` at most 1); 0 removes it (the default: none, the service
    /// keeps its count). Bounds only the platform: `scale` may go further.
    pub max_instances: Option<i64>,
}

impl MonitoringInput {
    /// `base` with these changes, checked.
    pub fn apply(&self, base: &MonitorSpec) -> Result<MonitorSpec, DomainError> {
        let ms = |field: &'static str, value: Option<i64>, current: u64| {
            value.map_or(Ok(current), |v| parse_duration_ms(field, v))
        };
        let probe = match (self.probe_http_path.as_deref(), self.probe_command.as_deref()) {
            (None, None) => base.probe.clone(),
            (Some(""), None) | (None, Some("")) => None,
            (path, command) => Probe::parse(path, command)?,
        };
        let disk_quota_mb = limit("diskQuotaMb", self.disk_quota_mb, base.disk_quota_mb, MAX_MB)?;
        let max_redeploys = match self.max_redeploys {
            None => base.max_redeploys,
            Some(n) if (1..=MAX_REDEPLOYS).contains(&n) => n as u32,
            Some(n) => {
                return Err(DomainError::bad_input(
                    "maxRedeploys",
                    format!("must be between 1 and {MAX_REDEPLOYS}, got {n}"),
                ));
            }
        };
        Ok(MonitorSpec {
            interval_ms: ms("intervalMs", self.interval_ms, base.interval_ms)?,
            probe,
            probe_timeout_ms: ms("probeTimeoutMs", self.probe_timeout_ms, base.probe_timeout_ms)?,
            disk_quota_mb,
            max_redeploys,
            backoff_ms: ms("backoffMs", self.backoff_ms, base.backoff_ms)?,
            stable_ms: ms("stableMs", self.stable_ms, base.stable_ms)?,
            cpu_threshold_percent: limit(
                "cpuThresholdPercent",
                self.cpu_threshold_percent,
                base.cpu_threshold_percent,
                MAX_CPU_PERCENT,
            )?,
            memory_threshold_mb: limit(
                "memoryThresholdMb",
                self.memory_threshold_mb,
                base.memory_threshold_mb,
                MAX_MB,
            )?,
            scale_window_ms: ms("scaleWindowMs", self.scale_window_ms, base.scale_window_ms)?,
            max_instances: limit("maxInstances", self.max_instances, base.max_instances, MAX_INSTANCES)?,
        })
    }
}

/// An optional limit given by a client: omitted keeps `current`, 0 removes
/// it, 1 to `max` sets it.
fn limit<T: TryFrom<i64>>(
    field: &'static str,
    value: Option<i64>,
    current: Option<T>,
    max: i64,
) -> Result<Option<T>, DomainError> {
    match value {
        None => Ok(current),
        Some(0) => Ok(None),
        Some(n) if (1..=max).contains(&n) => Ok(T::try_from(n).ok()),
        Some(n) => Err(DomainError::bad_input(field, format!("must be 0 (none) or 1 to {max}, got {n}"))),
    }
}

/// How monitoring watches a service as a GraphQL object.
pub struct MonitoringObject(pub MonitorSpec);

/// How monitoring watches a service's running instances: a TCP connection
/// to each instance's port, its probe, its process, and the disk its data
/// directory uses. What it finds wrong makes the platform redeploy the
/// service (trigger `PLATFORM`, source `MONITORING`). An instance whose CPU
/// or memory stays above a threshold for the scale window makes the
/// platform scale the service out by one instance, up to `maxInstances`.
#[Object(name = "Monitoring")]
impl MonitoringObject {
    /// Milliseconds between two checks of an instance; 0: monitoring is off.
    async fn interval_ms(&self) -> u64 {
        self.0.interval_ms
    }

    /// The HTTP path a running instance must answer; null when none.
    async fn probe_http_path(&self) -> Option<&str> {
        match &self.0.probe {
            Some(Probe::Http(path)) => Some(path),
            _ => None,
        }
    }

    /// The command that must exit with 0; null when none.
    async fn probe_command(&self) -> Option<&str> {
        match &self.0.probe {
            Some(Probe::Command(command)) => Some(command),
            _ => None,
        }
    }

    /// Milliseconds the probe may take.
    async fn probe_timeout_ms(&self) -> u64 {
        self.0.probe_timeout_ms
    }

    /// Most megabytes the data directory may use; null when unlimited.
    async fn disk_quota_mb(&self) -> Option<u64> {
        self.0.disk_quota_mb
    }

    /// Platform redeploys in a row before monitoring gives up.
    async fn max_redeploys(&self) -> u32 {
        self.0.max_redeploys
    }

    /// Milliseconds before the second redeploy in a row, doubling after each.
    async fn backoff_ms(&self) -> u64 {
        self.0.backoff_ms
    }

    /// Milliseconds a service must stay healthy after a redeploy for a new
    /// failure to start a new series.
    async fn stable_ms(&self) -> u64 {
        self.0.stable_ms
    }

    /// CPU of an instance's processes, in percent of one core, above which
    /// it is hot; null when CPU is not watched.
    async fn cpu_threshold_percent(&self) -> Option<u32> {
        self.0.cpu_threshold_percent
    }

    /// Resident memory of an instance's processes, in megabytes, above
    /// which it is hot; null when memory is not watched.
    async fn memory_threshold_mb(&self) -> Option<u64> {
        self.0.memory_threshold_mb
    }

    /// Milliseconds an instance must stay hot before the platform scales
    /// the service out by one instance (a `SCALE` with reason `SCALING`).
    async fn scale_window_ms(&self) -> u64 {
        self.0.scale_window_ms
    }

    /// Most instances the platform's scale-outs may reach; null when the
    /// platform never scales the service (it keeps its count).
    async fn max_instances(&self) -> Option<u32> {
        self.0.max_instances
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_apply_over_the_base_and_bad_values_are_named() {
        let base = MonitorSpec::default();
        let input = MonitoringInput {
            interval_ms: Some(100),
            probe_http_path: Some("/health".into()),
            disk_quota_mb: Some(5),
            ..Default::default()
        };
        let spec = input.apply(&base).unwrap();
        assert_eq!((spec.interval_ms, spec.disk_quota_mb), (100, Some(5)));
        assert_eq!(spec.probe, Some(Probe::Http("/health".into())));
        assert_eq!(spec.max_redeploys, base.max_redeploys, "omitted fields keep their values");
        let cleared = MonitoringInput {
            probe_http_path: Some(String::new()),
            disk_quota_mb: Some(0),
            ..Default::default()
        };
        let spec = cleared.apply(&spec).unwrap();
        assert_eq!((&spec.probe, spec.disk_quota_mb), (&None, None));
        assert!(!spec.scales(), "no scaling by default");
        let scaling = MonitoringInput {
            cpu_threshold_percent: Some(80),
            memory_threshold_mb: Some(512),
            scale_window_ms: Some(30_000),
            max_instances: Some(4),
            ..Default::default()
        };
        let spec = scaling.apply(&spec).unwrap();
        assert_eq!(
            (spec.cpu_threshold_percent, spec.memory_threshold_mb, spec.scale_window_ms, spec.max_instances),
            (Some(80), Some(512), 30_000, Some(4))
        );
        let off = MonitoringInput { max_instances: Some(0), ..Default::default() }.apply(&spec).unwrap();
        assert_eq!((off.max_instances, off.cpu_threshold_percent), (None, Some(80)));
        for (bad, field) in [
            (MonitoringInput { interval_ms: Some(-1), ..Default::default() }, "intervalMs"),
            (
                MonitoringInput { cpu_threshold_percent: Some(-5), ..Default::default() },
                "cpuThresholdPercent",
            ),
            (
                MonitoringInput { memory_threshold_mb: Some(MAX_MB + 1), ..Default::default() },
                "memoryThresholdMb",
            ),
            (MonitoringInput { scale_window_ms: Some(-1), ..Default::default() }, "scaleWindowMs"),
            (MonitoringInput { max_instances: Some(65), ..Default::default() }, "maxInstances"),
            (MonitoringInput { max_redeploys: Some(0), ..Default::default() }, "maxRedeploys"),
            (MonitoringInput { disk_quota_mb: Some(-2), ..Default::default() }, "diskQuotaMb"),
            (
                MonitoringInput { probe_http_path: Some("health".into()), ..Default::default() },
                "probe.httpPath",
            ),
        ] {
            let error = bad.apply(&base).unwrap_err();
            assert!(matches!(&error, DomainError::BadUserInput { field: f, .. } if *f == field), "{error}");
        }
    }
}
