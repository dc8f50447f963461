//! Inputs that create and edit services, and their validation into domain
//! types.

use super::monitoring::MonitoringInput;
use async_graphql::{ID, InputObject, MaybeUndefined};

use super::enums::ServiceKind;
use crate::domain::resource::{
    DEFAULT_BRANCH, NewService, parse_branch, parse_duration_ms, parse_instances, parse_port,
};
use crate::domain::stuck::parse_operation_timeout_ms;
use crate::domain::worker;
use crate::domain::{
    self, DomainError, HealthCheck, Name, OrganizationId, ServiceId, ServicePatch, ServiceSpec, WebhookSecret,
};
use crate::store::{Tx, resources};

/// How a new instance is judged healthy; a missing field keeps its
/// current value (on creation: its default).
#[derive(InputObject, Clone, Default)]
pub struct HealthCheckInput {
    /// With a port: how long, in milliseconds, a TCP connection may take
    /// to succeed (0 to 3600000; default 10000).
    pub timeout_ms: Option<i32>,
    /// Without a port: how long, in milliseconds, the process must stay
    /// alive (0 to 3600000; default 1000).
    pub grace_ms: Option<i32>,
}

/// A validated [`HealthCheckInput`]: the fields to change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HealthCheckChange {
    pub timeout_ms: Option<u64>,
    pub grace_ms: Option<u64>,
}

impl HealthCheckInput {
    pub fn validate(&self) -> Result<HealthCheckChange, DomainError> {
        let ms = |field, raw: Option<i32>| raw.map(|v| parse_duration_ms(field, v.into())).transpose();
        Ok(HealthCheckChange {
            timeout_ms: ms("timeoutMs", self.timeout_ms)?,
            grace_ms: ms("graceMs", self.grace_ms)?,
        })
    }
}

impl HealthCheckChange {
    /// `base` with the given fields changed.
    pub fn apply(&self, base: &HealthCheck) -> HealthCheck {
        HealthCheck {
            timeout_ms: self.timeout_ms.unwrap_or(base.timeout_ms),
            grace_ms: self.grace_ms.unwrap_or(base.grace_ms),
        }
    }
}

/// Input of `createService`.
#[derive(InputObject)]
pub struct CreateServiceInput {
    /// The environment to create the service in.
    pub environment_id: ID,
    /// 1 to 63 letters, digits, `-`, `_` or `.`, starting with a letter or
    /// digit; unique among the live services of the environment.
    pub name: String,
    /// What the service is.
    pub kind: ServiceKind,
    /// Run by the build step; omitted or empty: nothing to build.
    pub build_command: Option<String>,
    /// Run by the release step of each deploy; omitted or empty: none.
    pub release_command: Option<String>,
    /// Starts one instance; omitted or empty: nothing to run.
    pub start_command: Option<String>,
    /// First port handed to instances (0: any free port); omitted: the
    /// service serves no port.
    pub port: Option<i32>,
    /// How a new instance is judged healthy; omitted: the defaults.
    pub health_check: Option<HealthCheckInput>,
    /// Desired number of instances (0 to 64; a `DATABASE` at most 1).
    #[graphql(default = 1)]
    pub instances: i32,
    /// Milliseconds between SIGTERM and SIGKILL when an instance stops
    /// (0 to 3600000; default 5000).
    pub stop_grace_ms: Option<i32>,
    /// How monitoring watches its instances; omitted: the defaults.
    pub monitoring: Option<MonitoringInput>,
    /// The git branch whose pushes deploy the service (default `main`).
    pub branch: Option<String>,
    /// The secret GitHub signs push deliveries with (8 to 256 characters);
    /// omitted: pushes are refused until one is set. It can never be read
    /// back: `Service.webhookSecretSet` tells whether one is set.
    #[graphql(secret)]
    pub webhook_secret: Option<String>,
    /// Milliseconds any operation on the service may run, counted from its
    /// start, before it is cancelled (1 to 86400000); omitted: the default
    /// of each operation type (`DEPLOY` and `REDEPLOY` 30 minutes, the
    /// others 10 minutes).
    pub operation_timeout_ms: Option<i32>,
    /// Where its operations run: `local` (this server, the default) or the
    /// name of a worker pool whose workers claim them (1 to 63 letters,
    /// digits, `-`, `_` or `.`).
    pub executor: Option<String>,
}

impl CreateServiceInput {
    pub fn validate(&self) -> Result<NewService, DomainError> {
        let defaults = ServiceSpec::default();
        let health_check = self.health_check.clone().unwrap_or_default().validate()?;
        let spec = ServiceSpec {
            build_command: command(self.build_command.as_deref()),
            release_command: command(self.release_command.as_deref()),
            start_command: command(self.start_command.as_deref()),
            port: self.port.map(|p| parse_port(p.into())).transpose()?,
            health_check: health_check.apply(&defaults.health_check),
            instances: parse_instances(self.instances.into())?,
            stop_grace_ms: match self.stop_grace_ms {
                Some(ms) => parse_duration_ms("stopGraceMs", ms.into())?,
                None => defaults.stop_grace_ms,
            },
            monitoring: self.monitoring.clone().unwrap_or_default().apply(&defaults.monitoring)?,
            operation_timeout_ms: self
                .operation_timeout_ms
                .map(|ms| parse_operation_timeout_ms(ms.into()))
                .transpose()?,
            executor: match &self.executor {
                Some(raw) => worker::executor(raw)?,
                None => defaults.executor,
            },
        };
        Ok(NewService {
            environment_id: self.environment_id.parse()?,
            name: Name::parse("name", &self.name)?,
            kind: self.kind.into(),
            spec,
            branch: parse_branch(self.branch.as_deref().unwrap_or(DEFAULT_BRANCH))?,
            webhook_secret: self.webhook_secret.as_deref().map(WebhookSecret::parse).transpose()?,
        })
    }
}

/// Input of `updateService`: every field is optional; an omitted field
/// keeps its value.
#[derive(InputObject)]
pub struct UpdateServiceInput {
    /// The service to change; a deleted service cannot change.
    pub service_id: ID,
    /// A new name, unique among the live services of its environment.
    pub name: Option<String>,
    /// A new build command; an empty string removes it.
    pub build_command: Option<String>,
    /// A new release command; an empty string removes it.
    pub release_command: Option<String>,
    /// A new start command; an empty string removes it.
    pub start_command: Option<String>,
    /// A new first port (0: any free port); `null` makes the service serve
    /// no port.
    pub port: MaybeUndefined<i32>,
    /// Changes to the health check; omitted fields keep their values.
    pub health_check: Option<HealthCheckInput>,
    /// New milliseconds between SIGTERM and SIGKILL (0 to 3600000).
    pub stop_grace_ms: Option<i32>,
    /// Changes to how monitoring watches it; omitted fields keep their
    /// values.
    pub monitoring: Option<MonitoringInput>,
    /// A new branch whose pushes deploy the service.
    pub branch: Option<String>,
    /// A new webhook secret (8 to 256 characters); `null` removes it, and
    /// pushes are then refused.
    #[graphql(secret)]
    pub webhook_secret: MaybeUndefined<String>,
    /// A new operation timeout in milliseconds (1 to 86400000); `null`
    /// goes back to the default of each operation type. Operations already
    /// running keep the timeout they started with.
    pub operation_timeout_ms: MaybeUndefined<i32>,
    /// A new executor: `local` or a worker pool's name. Refused with
    /// `CONFLICT` while the service has operations queued or running.
    pub executor: Option<String>,
}

/// A validated [`UpdateServiceInput`]. The health check is applied to the
/// stored one inside the write, so a partial change keeps the other field.
#[derive(Clone)]
pub struct ServiceUpdate {
    pub service_id: ServiceId,
    pub patch: ServicePatch,
    pub health_check: Option<HealthCheckChange>,
    pub monitoring: Option<MonitoringInput>,
}

impl UpdateServiceInput {
    pub fn validate(&self) -> Result<ServiceUpdate, DomainError> {
        let port = match &self.port {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(p) => Some(Some(parse_port((*p).into())?)),
        };
        let operation_timeout_ms = match self.operation_timeout_ms {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(ms) => Some(Some(parse_operation_timeout_ms(ms.into())?)),
        };
        let patch = ServicePatch {
            name: self.name.as_deref().map(|n| Name::parse("name", n)).transpose()?,
            build_command: self.build_command.as_deref().map(|c| command(Some(c))),
            release_command: self.release_command.as_deref().map(|c| command(Some(c))),
            start_command: self.start_command.as_deref().map(|c| command(Some(c))),
            port,
            health_check: None,
            monitoring: None,
            stop_grace_ms: self
                .stop_grace_ms
                .map(|ms| parse_duration_ms("stopGraceMs", ms.into()))
                .transpose()?,
            branch: self.branch.as_deref().map(parse_branch).transpose()?,
            webhook_secret: match &self.webhook_secret {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(raw) => Some(Some(WebhookSecret::parse(raw)?)),
            },
            operation_timeout_ms,
            executor: self.executor.as_deref().map(worker::executor).transpose()?,
        };
        Ok(ServiceUpdate {
            service_id: self.service_id.parse()?,
            patch,
            health_check: self.health_check.as_ref().map(HealthCheckInput::validate).transpose()?,
            monitoring: self.monitoring.clone(),
        })
    }
}

impl ServiceUpdate {
    /// Applies the update in one write transaction.
    pub fn apply(&self, tx: &mut Tx<'_>, org: OrganizationId) -> Result<domain::Service, DomainError> {
        let mut patch = self.patch.clone();
        if self.health_check.is_some() || self.monitoring.is_some() {
            let current = resources::live_service(tx.reader(), org, self.service_id)?;
            if let Some(change) = &self.health_check {
                patch.health_check = Some(change.apply(&current.spec.health_check));
            }
            if let Some(change) = &self.monitoring {
                patch.monitoring = Some(change.apply(&current.spec.monitoring)?);
            }
        }
        resources::update_service(tx, org, self.service_id, &patch)
    }
}

/// Input of `unpinCommit`.
#[derive(InputObject)]
pub struct UnpinCommitInput {
    /// The service whose pin to lift.
    pub service_id: ID,
}

/// A command as stored: an empty (or blank) one is no command.
fn command(raw: Option<&str>) -> Option<String> {
    raw.filter(|c| !c.trim().is_empty()).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_health_check_keeps_the_other_field() {
        let change = HealthCheckInput { timeout_ms: Some(500), grace_ms: None }.validate().unwrap();
        let base = HealthCheck { timeout_ms: 1, grace_ms: 2 };
        assert_eq!(change.apply(&base), HealthCheck { timeout_ms: 500, grace_ms: 2 });
    }

    #[test]
    fn empty_commands_clear_and_omitted_ones_keep() {
        let input = UpdateServiceInput {
            service_id: ID::from("svc_1"),
            name: None,
            build_command: Some(String::new()),
            release_command: None,
            start_command: Some("./run".into()),
            port: MaybeUndefined::Null,
            health_check: None,
            stop_grace_ms: None,
            monitoring: None,
            branch: None,
            webhook_secret: MaybeUndefined::Null,
            operation_timeout_ms: MaybeUndefined::Null,
            executor: None,
        };
        let update = input.validate().unwrap();
        assert_eq!(update.patch.webhook_secret, Some(None));
        assert_eq!(update.patch.build_command, Some(None));
        assert_eq!(update.patch.release_command, None);
        assert_eq!(update.patch.start_command, Some(Some("./run".into())));
        assert_eq!(update.patch.port, Some(None));
        assert_eq!(update.patch.operation_timeout_ms, Some(None), "null goes back to the defaults");
    }

    #[test]
    fn out_of_range_numbers_are_bad_user_input() {
        let err = HealthCheckInput { timeout_ms: Some(-1), grace_ms: None }.validate().err().unwrap();
        assert_eq!(err.code().as_str(), "BAD_USER_INPUT");
        assert!(err.to_string().contains("timeoutMs"), "{err}");
    }
}
