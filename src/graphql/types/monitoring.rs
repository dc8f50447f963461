//! `Monitoring`: how a service's instances are watched, its input, and
//! `Healing`: where self-healing of a service stands.

use async_graphql::{InputObject, Object};

use crate::domain::DomainError;
use crate::domain::monitor::{MonitorSpec, Probe};
use crate::domain::resource::parse_duration_ms;

/// Most platform redeploys in a row a service may ask for.
const MAX_REDEPLOYS: i64 = 100;

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
    /// Most megabytes the data directory may use; 0 removes the quota.
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
        let disk_quota_mb = match self.disk_quota_mb {
            None => base.disk_quota_mb,
            Some(0) => None,
            Some(mb) if mb > 0 => Some(mb as u64),
            Some(mb) => {
                return Err(DomainError::bad_input("diskQuotaMb", format!("must be 0 or more, got {mb}")));
            }
        };
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
        })
    }
}

/// How monitoring watches a service as a GraphQL object.
pub struct MonitoringObject(pub MonitorSpec);

/// How monitoring watches a service's running instances: a TCP connection
/// to each instance's port, its probe, its process, and the disk its data
/// directory uses. What it finds wrong makes the platform redeploy the
/// service (trigger `PLATFORM`, source `MONITORING`).
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
        assert_eq!((spec.probe, spec.disk_quota_mb), (None, None));
        for (bad, field) in [
            (MonitoringInput { interval_ms: Some(-1), ..Default::default() }, "intervalMs"),
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
