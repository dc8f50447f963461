//! Organizations, environments and services, with their validated inputs.

use serde::{Deserialize, Serialize};

use super::pin::CommitPin;
use super::webhook::WebhookSecret;
use super::{DomainError, EnvironmentId, Millis, OrganizationId, ServiceId};

/// A validated resource name: 1 to 63 characters of letters, digits, `-`,
/// `_` and `.`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Name(String);

impl Name {
    pub const MAX_LEN: usize = 63;

    pub fn parse(field: &'static str, raw: &str) -> Result<Self, DomainError> {
        if raw.is_empty() {
            return Err(DomainError::bad_input(field, "must not be empty"));
        }
        if raw.len() > Self::MAX_LEN {
            return Err(DomainError::bad_input(
                field,
                format!("must be at most {} characters", Self::MAX_LEN),
            ));
        }
        let first_ok = raw.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
        let rest_ok = raw.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !first_ok || !rest_ok {
            return Err(DomainError::bad_input(
                field,
                format!(
                    "`{raw}` may hold only letters, digits, `-`, `_` and `.`, and must start with a letter or digit"
                ),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Owns environments; has members.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Organization {
    pub id: OrganizationId,
    pub name: String,
    pub created_at: Millis,
}

/// A person acting within an organization, as operations (their author)
/// and audit records name them. The member's role and history live in
/// [`super::access::MemberRecord`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: u64,
    pub name: String,
}

/// An isolated set of services, such as `production` or `staging`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Environment {
    pub id: EnvironmentId,
    pub organization_id: OrganizationId,
    pub name: Name,
    pub created_at: Millis,
    /// Days the logs of its operations and services are kept.
    #[serde(default = "default_log_retention_days")]
    pub log_retention_days: u32,
}

impl Environment {
    /// Lines stored before this time are past retention at `now`.
    pub fn log_cutoff(&self, now: Millis) -> Millis {
        now.saturating_sub(i64::from(self.log_retention_days) * DAY_MS)
    }
}

/// What `updateEnvironment` changes; `None` keeps the value.
#[derive(Debug, Clone, Default)]
pub struct EnvironmentPatch {
    pub name: Option<Name>,
    pub log_retention_days: Option<u32>,
}

const DAY_MS: i64 = 86_400_000;
/// Log retention of an environment unless set otherwise.
pub const DEFAULT_LOG_RETENTION_DAYS: u32 = 30;
/// Longest log retention: ten years.
pub const MAX_LOG_RETENTION_DAYS: u32 = 3_650;

fn default_log_retention_days() -> u32 {
    DEFAULT_LOG_RETENTION_DAYS
}

/// Checks a log retention period in days given by a client.
pub fn parse_log_retention_days(raw: i64) -> Result<u32, DomainError> {
    u32::try_from(raw).ok().filter(|d| (1..=MAX_LOG_RETENTION_DAYS).contains(d)).ok_or_else(|| {
        DomainError::bad_input(
            "logRetentionDays",
            format!("must be between 1 and {MAX_LOG_RETENTION_DAYS} days, got {raw}"),
        )
    })
}

/// What a service is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServiceKind {
    /// A long-running program, replaced without downtime.
    Application,
    /// A program that owns a data directory only one instance may hold.
    Database,
    /// A program that runs to completion.
    Job,
}

/// How an instance is judged healthy after it starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// With a port: how long a TCP connection may take to succeed.
    pub timeout_ms: u64,
    /// Without a port: how long the process must stay alive.
    pub grace_ms: u64,
}

impl Default for HealthCheck {
    fn default() -> Self {
        Self { timeout_ms: 10_000, grace_ms: 1_000 }
    }
}

/// How the local executor builds and runs a service. Every command is run by
/// `sh -c` in the service's work directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    pub build_command: Option<String>,
    pub release_command: Option<String>,
    pub start_command: Option<String>,
    /// First port handed to instances; `Some(0)` lets the executor pick free
    /// ports; `None` means the service serves no port.
    pub port: Option<u16>,
    pub health_check: HealthCheck,
    /// Desired number of instances.
    pub instances: u32,
    /// Time between SIGTERM and SIGKILL when an instance is stopped.
    pub stop_grace_ms: u64,
    /// How monitoring watches its running instances.
    #[serde(default)]
    pub monitoring: super::monitor::MonitorSpec,
    /// How long any operation on the service may run before it is
    /// cancelled; `None`: the default of each operation type (see
    /// [`super::stuck::default_timeout_ms`]). Rows stored before the field
    /// existed read as `None`.
    #[serde(default)]
    pub operation_timeout_ms: Option<u64>,
    /// Where its operations run: [`super::worker::LOCAL`] (this server)
    /// or the name of a worker pool. Rows stored before workers existed
    /// read as local.
    #[serde(default = "local_executor")]
    pub executor: String,
}

fn local_executor() -> String {
    super::worker::LOCAL.to_owned()
}

impl ServiceSpec {
    /// Whether this server runs its operations (not a worker pool).
    pub fn is_local(&self) -> bool {
        self.executor == super::worker::LOCAL
    }
}

impl Default for ServiceSpec {
    fn default() -> Self {
        Self {
            build_command: None,
            release_command: None,
            start_command: None,
            port: None,
            health_check: HealthCheck::default(),
            instances: 1,
            stop_grace_ms: 5_000,
            monitoring: super::monitor::MonitorSpec::default(),
            operation_timeout_ms: None,
            executor: local_executor(),
        }
    }
}

/// Upper bounds that keep one service from exhausting the machine.
pub const MAX_INSTANCES: i64 = 64;
/// Upper bound on every duration in a spec: one hour.
pub const MAX_DURATION_MS: i64 = 3_600_000;

/// Checks an instance count given by a client.
pub fn parse_instances(raw: i64) -> Result<u32, DomainError> {
    if !(0..=MAX_INSTANCES).contains(&raw) {
        return Err(DomainError::bad_input(
            "instances",
            format!("must be between 0 and {MAX_INSTANCES}, got {raw}"),
        ));
    }
    Ok(raw as u32)
}

/// Checks a duration in milliseconds given by a client: 0 to an hour.
pub fn parse_duration_ms(field: &'static str, raw: i64) -> Result<u64, DomainError> {
    parse_ms_within(field, raw, 0..=MAX_DURATION_MS)
}

/// Checks a duration in milliseconds given by a client against `range`
/// (which holds no negative number).
pub fn parse_ms_within(
    field: &'static str,
    raw: i64,
    range: std::ops::RangeInclusive<i64>,
) -> Result<u64, DomainError> {
    if !range.contains(&raw) {
        return Err(DomainError::bad_input(
            field,
            format!("must be between {} and {} milliseconds, got {raw}", range.start(), range.end()),
        ));
    }
    Ok(raw as u64)
}

/// Checks a port given by a client (0 means "any free port").
pub fn parse_port(raw: i64) -> Result<u16, DomainError> {
    u16::try_from(raw)
        .map_err(|_| DomainError::bad_input("port", format!("must be between 0 and 65535, got {raw}")))
}

/// Checks a commit reference: 1 to 200 printable characters without spaces.
pub fn parse_commit(raw: &str) -> Result<String, DomainError> {
    if raw.is_empty() || raw.len() > 200 || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(DomainError::bad_input("commit", "must be 1 to 200 characters without spaces"));
    }
    Ok(raw.to_owned())
}

/// Checks a git branch name: 1 to 255 characters, no spaces or control
/// characters, no `..`, not starting with `-` or `/` (a subset of
/// `git check-ref-format` that keeps every name GitHub can push).
pub fn parse_branch(raw: &str) -> Result<String, DomainError> {
    let bad_char = raw.chars().any(|c| c.is_whitespace() || c.is_control() || "~^:?*[\\".contains(c));
    if raw.is_empty()
        || raw.len() > 255
        || bad_char
        || raw.contains("..")
        || raw.starts_with(['-', '/'])
        || raw.ends_with(['/', '.'])
    {
        return Err(DomainError::bad_input(
            "branch",
            format!("`{raw}` is not a git branch name (1 to 255 characters, no spaces, `..`, `~^:?*[\\`)"),
        ));
    }
    Ok(raw.to_owned())
}

/// The branch a new service deploys from when none is given.
pub const DEFAULT_BRANCH: &str = "main";

fn default_branch() -> String {
    DEFAULT_BRANCH.to_owned()
}

/// One deployable thing in an environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Service {
    pub id: ServiceId,
    pub organization_id: OrganizationId,
    pub environment_id: EnvironmentId,
    pub name: Name,
    pub kind: ServiceKind,
    pub spec: ServiceSpec,
    /// The commit its current instances run; `None` before the first deploy.
    pub current_commit: Option<String>,
    pub created_at: Millis,
    /// Set when a `DELETE` operation completed; the row stays for history.
    pub deleted_at: Option<Millis>,
    /// Pushes to this branch deploy the service; others are ignored.
    #[serde(default = "default_branch")]
    pub branch: String,
    /// Signs GitHub push events; `None`: every push is refused.
    #[serde(default)]
    pub webhook_secret: Option<WebhookSecret>,
    /// A commit a person rolled back from: pushes of it do not deploy.
    #[serde(default)]
    pub pin: Option<CommitPin>,
}

/// A service a client asks to create, validated.
#[derive(Debug, Clone)]
pub struct NewService {
    pub environment_id: EnvironmentId,
    pub name: Name,
    pub kind: ServiceKind,
    pub spec: ServiceSpec,
    pub branch: String,
    pub webhook_secret: Option<WebhookSecret>,
}

/// A change to a service asked for by a client; `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct ServicePatch {
    pub name: Option<Name>,
    pub build_command: Option<Option<String>>,
    pub release_command: Option<Option<String>>,
    pub start_command: Option<Option<String>>,
    pub port: Option<Option<u16>>,
    pub health_check: Option<HealthCheck>,
    pub stop_grace_ms: Option<u64>,
    pub monitoring: Option<super::monitor::MonitorSpec>,
    pub branch: Option<String>,
    /// `Some(None)` removes the secret.
    pub webhook_secret: Option<Option<WebhookSecret>>,
    /// `Some(None)` goes back to the defaults of each operation type.
    pub operation_timeout_ms: Option<Option<u64>>,
    pub executor: Option<String>,
}

impl ServicePatch {
    /// Applies the patch to `spec` (the name is applied by the store, which
    /// checks it is free).
    pub fn apply(&self, spec: &mut ServiceSpec) {
        let set = |target: &mut Option<String>, value: &Option<Option<String>>| {
            if let Some(v) = value {
                target.clone_from(v);
            }
        };
        set(&mut spec.build_command, &self.build_command);
        set(&mut spec.release_command, &self.release_command);
        set(&mut spec.start_command, &self.start_command);
        if let Some(port) = self.port {
            spec.port = port;
        }
        if let Some(hc) = &self.health_check {
            spec.health_check = hc.clone();
        }
        if let Some(grace) = self.stop_grace_ms {
            spec.stop_grace_ms = grace;
        }
        if let Some(monitoring) = &self.monitoring {
            spec.monitoring = monitoring.clone();
        }
        if let Some(timeout) = self.operation_timeout_ms {
            spec.operation_timeout_ms = timeout;
        }
        if let Some(executor) = &self.executor {
            spec.executor.clone_from(executor);
        }
    }
}

impl Service {
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        assert!(Name::parse("name", "api-v2.prod_1").is_ok());
        for bad in ["", " api", "-api", "api svc", "ä", &"x".repeat(64)] {
            let err = Name::parse("name", bad).unwrap_err();
            assert_eq!(err.code().as_str(), "BAD_USER_INPUT", "{bad:?}");
        }
    }

    #[test]
    fn branches_are_validated() {
        for good in ["main", "release/2.x", "feature-ä"] {
            assert_eq!(parse_branch(good).unwrap(), good);
        }
        for bad in ["", "a b", "-x", "/x", "x/", "a..b", "x~1", "a:b", "x.", &"b".repeat(256)] {
            assert_eq!(parse_branch(bad).unwrap_err().code().as_str(), "BAD_USER_INPUT", "{bad:?}");
        }
    }

    #[test]
    fn negative_or_huge_instance_counts_are_refused() {
        assert_eq!(parse_instances(3).unwrap(), 3);
        assert!(parse_instances(-1).unwrap_err().to_string().contains("got -1"));
        assert!(parse_instances(MAX_INSTANCES + 1).is_err());
    }

    #[test]
    fn ports_durations_and_commits_are_validated() {
        assert_eq!(parse_port(8080).unwrap(), 8080);
        assert!(parse_port(70000).is_err());
        assert!(parse_duration_ms("graceMs", -5).is_err());
        assert!(parse_commit("abc123").is_ok());
        assert!(parse_commit("").is_err());
        assert!(parse_commit("a b").is_err());
    }
}
