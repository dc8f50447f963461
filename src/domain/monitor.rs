//! Monitoring rules: what a service asks to be watched for, what a check
//! can find, and when the platform tries again after a redeploy that did
//! not hold. When usage makes it scale out is in [`super::scaling`].

use serde::{Deserialize, Serialize};

use super::operation::PlatformReason;
use super::{DomainError, InstanceId, Millis};

/// How monitoring watches a service's running instances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MonitorSpec {
    /// Milliseconds between two checks of an instance; 0 turns monitoring
    /// (and self-healing) off for the service.
    pub interval_ms: u64,
    /// What a running instance must answer besides a TCP connection.
    pub probe: Option<Probe>,
    /// How long the probe may take.
    pub probe_timeout_ms: u64,
    /// Most megabytes the service's data directory may use.
    pub disk_quota_mb: Option<u64>,
    /// Platform redeploys in a row (each failing again before the service
    /// stayed healthy for `stable_ms`) before monitoring gives up.
    pub max_redeploys: u32,
    /// Wait before the second redeploy in a row; doubles each time.
    pub backoff_ms: u64,
    /// How long a service must stay healthy after a redeploy for the next
    /// failure to start a new series.
    pub stable_ms: u64,
    /// CPU of an instance's processes, in percent of one core, above which
    /// the instance is hot (see [`super::scaling`]); `None`: not watched.
    pub cpu_threshold_percent: Option<u32>,
    /// Resident memory of an instance's processes, in MiB, above which the
    /// instance is hot; `None`: not watched.
    pub memory_threshold_mb: Option<u64>,
    /// How long an instance must stay hot before the platform scales the
    /// service out.
    pub scale_window_ms: u64,
    /// Most instances a platform scale-out may reach; `None`: the service
    /// keeps the count it has (no scaling).
    pub max_instances: Option<u32>,
}

impl Default for MonitorSpec {
    fn default() -> Self {
        Self {
            interval_ms: 5_000,
            probe: None,
            probe_timeout_ms: 2_000,
            disk_quota_mb: None,
            max_redeploys: 5,
            backoff_ms: 10_000,
            stable_ms: 60_000,
            cpu_threshold_percent: None,
            memory_threshold_mb: None,
            scale_window_ms: 60_000,
            max_instances: None,
        }
    }
}

/// A health probe of a running instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Probe {
    /// `GET http://127.0.0.1:<port><path>` must answer (any status).
    Http(String),
    /// `sh -c <command>` in the work directory must exit with 0.
    Command(String),
}

/// Longest probe path or command.
const MAX_PROBE: usize = 2_000;

impl Probe {
    /// Checks a probe given by a client: exactly one of a path or a command.
    pub fn parse(path: Option<&str>, command: Option<&str>) -> Result<Option<Self>, DomainError> {
        match (path, command) {
            (None, None) => Ok(None),
            (Some(_), Some(_)) => {
                Err(DomainError::bad_input("probe", "give an HTTP path or a command, not both"))
            }
            (Some(path), None)
                if path.starts_with('/')
                    && path.len() <= MAX_PROBE
                    && !path.contains(char::is_whitespace) =>
            {
                Ok(Some(Self::Http(path.to_owned())))
            }
            (Some(path), None) => Err(DomainError::bad_input(
                "probe.httpPath",
                format!("`{path}` must start with `/`, without spaces, at most {MAX_PROBE} characters"),
            )),
            (None, Some(command)) if !command.trim().is_empty() && command.len() <= MAX_PROBE => {
                Ok(Some(Self::Command(command.to_owned())))
            }
            (None, Some(_)) => {
                Err(DomainError::bad_input("probe.command", format!("must be 1 to {MAX_PROBE} characters")))
            }
        }
    }
}

/// What a check of a service found wrong, with the evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The instance's process is gone.
    Exited { instance: InstanceId, code: Option<i32> },
    /// No TCP connection could be opened to the instance's port.
    Unreachable { instance: InstanceId, port: u16, error: String },
    /// The port connects, but the probe did not answer in time (or failed).
    Timeout { instance: InstanceId, probe: String, detail: String },
    /// The data directory uses more than its quota.
    DiskFull { used_mb: u64, quota_mb: u64 },
    /// A monitoring agent of a service run elsewhere reported a failure
    /// of one of its instances.
    Reported { agent: String, instance: String, reason: PlatformReason, detail: String },
}

impl Finding {
    /// The platform reason the redeploy it causes is recorded with.
    pub fn reason(&self) -> PlatformReason {
        match self {
            Self::Exited { .. } | Self::Unreachable { .. } => PlatformReason::Unreachable,
            Self::Timeout { .. } => PlatformReason::Timeout,
            Self::DiskFull { .. } => PlatformReason::DiskFull,
            Self::Reported { reason, .. } => *reason,
        }
    }

    /// One line for the operation's log: which instance, which probe, what
    /// was seen.
    pub fn evidence(&self) -> String {
        match self {
            Self::Exited { instance, code: Some(code) } => {
                format!("monitoring: instance {instance} exited with status {code}")
            }
            Self::Exited { instance, code: None } => {
                format!("monitoring: instance {instance} was killed by a signal")
            }
            Self::Unreachable { instance, port, error } => {
                format!("monitoring: could not connect to instance {instance} on port {port}: {error}")
            }
            Self::Timeout { instance, probe, detail } => {
                format!("monitoring: instance {instance} did not answer the probe {probe}: {detail}")
            }
            Self::DiskFull { used_mb, quota_mb } => {
                format!("monitoring: the data directory uses {used_mb} MB, over its quota of {quota_mb} MB")
            }
            Self::Reported { agent, instance, reason, detail } => {
                format!("monitoring agent `{agent}`: instance {instance}: {} ({detail})", reason.as_str())
            }
        }
    }
}

/// When the next redeploy of a series may start: right away for the first,
/// then after `backoff_ms`, doubling each time; `None` once `max_redeploys`
/// were made (monitoring gives up).
pub fn next_redeploy_at(spec: &MonitorSpec, done: u32, last_at: Millis) -> Option<Millis> {
    if done >= spec.max_redeploys {
        return None;
    }
    if done == 0 {
        return Some(last_at);
    }
    let factor = 1u64.checked_shl(done - 1).unwrap_or(u64::MAX);
    let wait = spec.backoff_ms.saturating_mul(factor).min(i64::MAX as u64) as i64;
    Some(last_at.saturating_add(wait))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redeploys_back_off_exponentially_and_stop_at_the_limit() {
        let spec = MonitorSpec { backoff_ms: 100, max_redeploys: 4, ..Default::default() };
        let at: Vec<Option<Millis>> = (0..5).map(|done| next_redeploy_at(&spec, done, 1_000)).collect();
        assert_eq!(at, [Some(1_000), Some(1_100), Some(1_200), Some(1_400), None]);
        let huge = MonitorSpec { backoff_ms: u64::MAX, max_redeploys: 100, ..Default::default() };
        assert!(next_redeploy_at(&huge, 80, 0).is_some(), "no overflow");
    }

    #[test]
    fn findings_carry_their_reason_and_evidence() {
        let exited = Finding::Exited { instance: InstanceId(4), code: None };
        assert_eq!(exited.reason(), PlatformReason::Unreachable);
        assert_eq!(exited.evidence(), "monitoring: instance inst_4 was killed by a signal");
        let slow = Finding::Timeout {
            instance: InstanceId(5),
            probe: "GET /health".into(),
            detail: "no answer in 200 ms".into(),
        };
        assert_eq!(slow.reason(), PlatformReason::Timeout);
        assert!(slow.evidence().contains("GET /health"));
        assert_eq!(Finding::DiskFull { used_mb: 12, quota_mb: 10 }.reason(), PlatformReason::DiskFull);
    }

    #[test]
    fn probes_are_checked() {
        assert_eq!(Probe::parse(Some("/health"), None).unwrap(), Some(Probe::Http("/health".into())));
        assert_eq!(
            Probe::parse(None, Some("test -f ready")).unwrap(),
            Some(Probe::Command("test -f ready".into()))
        );
        assert_eq!(Probe::parse(None, None).unwrap(), None);
        for (path, command) in [(Some("health"), None), (Some("/a"), Some("x")), (None, Some(" "))] {
            assert_eq!(Probe::parse(path, command).unwrap_err().code().as_str(), "BAD_USER_INPUT");
        }
    }
}
