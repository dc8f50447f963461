//! Operations: every change to a service, with its trigger, steps and outcome.

use serde::{Deserialize, Serialize};

use super::{
    DomainError, EnvironmentId, Member, Millis, OperationId, OperationStatus, OrganizationId, ServiceId,
    ServiceKind,
};

/// What an operation does to its service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OperationType {
    Deploy,
    Redeploy,
    Restart,
    Scale,
    Stop,
    Start,
    Delete,
}

impl OperationType {
    /// The name clients see (`DEPLOY`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deploy => "DEPLOY",
            Self::Redeploy => "REDEPLOY",
            Self::Restart => "RESTART",
            Self::Scale => "SCALE",
            Self::Stop => "STOP",
            Self::Start => "START",
            Self::Delete => "DELETE",
        }
    }
}

/// Who or what asked for an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TriggerKind {
    User,
    Support,
    Platform,
}

impl TriggerKind {
    /// The name clients see (`PLATFORM`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "USER",
            Self::Support => "SUPPORT",
            Self::Platform => "PLATFORM",
        }
    }
}

/// Through which channel the operation was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TriggerSource {
    Console,
    Cli,
    Api,
    Git,
    Github,
    Monitoring,
}

impl TriggerSource {
    /// The name clients see (`API`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Console => "CONSOLE",
            Self::Cli => "CLI",
            Self::Api => "API",
            Self::Git => "GIT",
            Self::Github => "GITHUB",
            Self::Monitoring => "MONITORING",
        }
    }
}

/// Why the platform itself started an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PlatformReason {
    Unreachable,
    Timeout,
    Scaling,
    Maintenance,
    DiskFull,
}

impl PlatformReason {
    /// The name clients see (`DISK_FULL`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unreachable => "UNREACHABLE",
            Self::Timeout => "TIMEOUT",
            Self::Scaling => "SCALING",
            Self::Maintenance => "MAINTENANCE",
            Self::DiskFull => "DISK_FULL",
        }
    }
}

/// The trigger of an operation. Invariant (checked by [`Trigger::user`] and
/// [`Trigger::platform`]): a platform trigger has a reason and no author; a
/// user or support trigger has an author and no reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trigger {
    pub kind: TriggerKind,
    pub source: TriggerSource,
    pub author: Option<Member>,
    pub reason: Option<PlatformReason>,
}

impl Trigger {
    /// A person asked, through `source`.
    pub fn user(author: Member, source: TriggerSource) -> Result<Self, DomainError> {
        if source == TriggerSource::Monitoring {
            return Err(DomainError::bad_input(
                "source",
                "MONITORING is reserved for operations the platform starts itself",
            ));
        }
        Ok(Self { kind: TriggerKind::User, source, author: Some(author), reason: None })
    }

    /// The platform asked, for `reason`.
    pub fn platform(reason: PlatformReason) -> Self {
        Self {
            kind: TriggerKind::Platform,
            source: TriggerSource::Monitoring,
            author: None,
            reason: Some(reason),
        }
    }
}

/// How undoing a failed or cancelled operation went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RollbackOutcome {
    /// Nothing had changed, or the operation succeeded.
    NotNeeded,
    /// Everything is back as it was.
    Succeeded,
    /// Some change could not be undone; the log says which.
    Failed,
}

impl RollbackOutcome {
    /// The name clients see (`SUCCEEDED`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotNeeded => "NOT_NEEDED",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
        }
    }
}

/// The kinds of steps the engine knows how to run and undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StepKind {
    Build,
    Release,
    PrepareInstance,
    StartInstances,
    HealthCheck,
    Switch,
    StopOldInstances,
    HandOverData,
    StopInstances,
    RemoveService,
}

impl StepKind {
    /// The human name shown in logs and the console.
    pub fn title(self) -> &'static str {
        match self {
            Self::Build => "build",
            Self::Release => "release",
            Self::PrepareInstance => "prepare new instance",
            Self::StartInstances => "start new instances",
            Self::HealthCheck => "health check",
            Self::Switch => "switch to new instances",
            Self::StopOldInstances => "stop old instances",
            Self::HandOverData => "hand over data directory",
            Self::StopInstances => "stop instances",
            Self::RemoveService => "remove service",
        }
    }

    /// The operation status while this step runs.
    pub fn phase(self) -> OperationStatus {
        match self {
            Self::Build => OperationStatus::Building,
            _ => OperationStatus::Deploying,
        }
    }
}

/// Status of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StepStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
    /// Never ran because an earlier step failed or the operation was cancelled.
    Skipped,
    /// Was running when the operation was cancelled.
    Cancelled,
    /// Had succeeded, then was undone by the rollback.
    RolledBack,
    /// Had succeeded; undoing it failed or was impossible.
    RollbackFailed,
}

impl StepStatus {
    /// How a log line says it: "step build: succeeded".
    pub fn word(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "started",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
            Self::Cancelled => "cancelled",
            Self::RolledBack => "rolled back",
            Self::RollbackFailed => "could not be rolled back",
        }
    }
}

/// One step of an operation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    pub kind: StepKind,
    pub status: StepStatus,
    pub started_at: Option<Millis>,
    pub finished_at: Option<Millis>,
    /// Why it failed, or what its rollback did.
    pub message: Option<String>,
}

impl Step {
    pub fn planned(kind: StepKind) -> Self {
        Self { kind, status: StepStatus::Pending, started_at: None, finished_at: None, message: None }
    }
}

/// An operation as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Operation {
    pub id: OperationId,
    pub organization_id: OrganizationId,
    pub environment_id: EnvironmentId,
    pub service_id: ServiceId,
    #[serde(rename = "type")]
    pub op_type: OperationType,
    pub status: OperationStatus,
    /// For deploys: the commit deployed; otherwise the commit the service
    /// ran when the operation was queued.
    pub commit: Option<String>,
    /// The service's commit when the operation was queued: what a rollback
    /// returns to.
    pub previous_commit: Option<String>,
    pub trigger: Trigger,
    /// Snapshots, so the record reads right after renames and deletions.
    pub service_name: String,
    pub environment_name: String,
    pub service_kind: ServiceKind,
    pub queued_at: Millis,
    pub started_at: Option<Millis>,
    pub finished_at: Option<Millis>,
    pub steps: Vec<Step>,
    pub rollback: RollbackOutcome,
    /// For `SCALE`: the instance count asked for.
    pub target_instances: Option<u32>,
    /// For "redeploy this commit": the operation whose commit is deployed.
    pub redeploy_of: Option<OperationId>,
    pub idempotency_key: Option<String>,
    /// The worker lease of an operation of a worker pool's service: who
    /// holds it (or held it last). Rows stored before workers existed read
    /// as `None`.
    #[serde(default)]
    pub lease: Option<super::worker::Lease>,
}

/// What a mutation asks for; the store fills in ids, names and times.
#[derive(Debug, Clone)]
pub struct NewOperation {
    pub service_id: ServiceId,
    pub op_type: OperationType,
    /// `None`: the service's current commit.
    pub commit: Option<String>,
    pub trigger: Trigger,
    pub target_instances: Option<u32>,
    pub redeploy_of: Option<OperationId>,
    pub idempotency_key: Option<IdempotencyKey>,
}

/// A client's idempotency key with the fingerprint of the request it came
/// with: the same key with the same fingerprint is the same request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    pub key: String,
    /// SHA-256 (hex) of the request's fields as the client gave them.
    pub fingerprint: String,
}

impl IdempotencyKey {
    /// Longest key accepted.
    pub const MAX_LEN: usize = 200;

    /// Checks `raw` and fingerprints the request from `fields` (every input
    /// field but the key, as given).
    pub fn new(raw: &str, fields: &[&str]) -> Result<Self, DomainError> {
        if raw.is_empty() || raw.len() > Self::MAX_LEN || raw.chars().any(char::is_control) {
            return Err(DomainError::bad_input(
                "idempotencyKey",
                format!("must be 1 to {} characters without control characters", Self::MAX_LEN),
            ));
        }
        use sha2::Digest as _;
        let mut hasher = sha2::Sha256::new();
        for field in fields {
            // Length-prefixed, so that no two field lists hash alike.
            hasher.update((field.len() as u64).to_le_bytes());
            hasher.update(field.as_bytes());
        }
        Ok(Self { key: raw.to_owned(), fingerprint: hex::encode(hasher.finalize()) })
    }
}

impl Operation {
    /// Duration in milliseconds once both ends are known.
    pub fn duration_ms(&self) -> Option<i64> {
        Some(self.finished_at? - self.started_at.unwrap_or(self.queued_at))
    }

    /// Records the end: the final `status`, the rollback outcome and the
    /// finish time; steps that never ran become `SKIPPED`, and a step still
    /// marked running becomes `interrupted`.
    /// Step `index` now has `status` (and `message`, if given), with its
    /// start or end time.
    pub fn set_step(&mut self, index: usize, status: StepStatus, message: Option<String>) {
        let step = &mut self.steps[index];
        let now = super::now_millis();
        if status == StepStatus::Running {
            step.started_at = Some(now);
        } else if step.finished_at.is_none()
            || matches!(status, StepStatus::RolledBack | StepStatus::RollbackFailed)
        {
            step.finished_at = Some(now);
        }
        step.status = status;
        if message.is_some() {
            step.message = message;
        }
    }

    pub fn conclude(&mut self, status: OperationStatus, rollback: RollbackOutcome, interrupted: StepStatus) {
        self.status = status;
        self.rollback = rollback;
        self.finished_at = Some(super::now_millis());
        for step in &mut self.steps {
            step.status = match step.status {
                StepStatus::Pending => StepStatus::Skipped,
                StepStatus::Running => interrupted,
                other => other,
            };
        }
    }

    /// How it ended, in the words of the activity timeline.
    pub fn outcome(&self) -> Outcome {
        Outcome::of(self.status)
    }

    /// Whether it deploys a commit of its own (`DEPLOY` or `REDEPLOY`).
    pub fn is_deploy(&self) -> bool {
        matches!(self.op_type, OperationType::Deploy | OperationType::Redeploy)
    }
}

/// How an operation ended, or that it has not yet: the status folded into
/// the four answers a timeline shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    /// Not final yet.
    InProgress,
    /// `DEPLOYMENT_OK`.
    Succeeded,
    /// `BUILDING_ERROR` or `DEPLOYMENT_ERROR`.
    Failed,
    /// `CANCELLED`.
    Cancelled,
}

impl Outcome {
    pub fn of(status: OperationStatus) -> Self {
        match status {
            OperationStatus::DeploymentOk => Self::Succeeded,
            OperationStatus::BuildingError | OperationStatus::DeploymentError => Self::Failed,
            OperationStatus::Cancelled => Self::Cancelled,
            _ => Self::InProgress,
        }
    }
}

#[cfg(test)]
impl Operation {
    /// A fixture for unit tests: a started `DEPLOY` of commit `c1` in
    /// `status`, with the given steps.
    pub(crate) fn sample(status: OperationStatus, steps: &[(StepKind, StepStatus)]) -> Self {
        use super::{EnvironmentId, OrganizationId};
        Self {
            id: OperationId(1),
            organization_id: OrganizationId(1),
            environment_id: EnvironmentId(1),
            service_id: ServiceId(1),
            op_type: OperationType::Deploy,
            status,
            commit: Some("c1".into()),
            previous_commit: None,
            trigger: Trigger::platform(PlatformReason::Maintenance),
            service_name: "api".into(),
            environment_name: "prod".into(),
            service_kind: ServiceKind::Application,
            queued_at: 1,
            started_at: Some(2),
            finished_at: None,
            steps: steps.iter().map(|&(kind, status)| Step { status, ..Step::planned(kind) }).collect(),
            rollback: RollbackOutcome::NotNeeded,
            target_instances: None,
            redeploy_of: None,
            idempotency_key: None,
            lease: None,
        }
    }
}

/// The last `SYSTEM` line of an operation that ended in `status`.
pub fn finished_line(status: OperationStatus, rollback: RollbackOutcome) -> String {
    match rollback {
        RollbackOutcome::NotNeeded => format!("finished: {}", status.as_str()),
        other => format!("finished: {} (rollback {})", status.as_str(), other.as_str()),
    }
}

/// Which operations a listing returns; every field narrows it.
#[derive(Debug, Clone, Default)]
pub struct OperationFilter {
    pub environment_id: Option<super::EnvironmentId>,
    pub service_id: Option<ServiceId>,
    pub types: Vec<OperationType>,
    pub statuses: Vec<OperationStatus>,
    pub sources: Vec<TriggerSource>,
    pub outcomes: Vec<Outcome>,
    pub trigger_kinds: Vec<TriggerKind>,
    /// Platform reasons; an operation without a reason never matches a
    /// non-empty list.
    pub reasons: Vec<PlatformReason>,
    /// Author names, compared exactly; an operation without an author never
    /// matches a non-empty list.
    pub authors: Vec<String>,
    /// Queued at or after this time.
    pub queued_from: Option<Millis>,
    /// Queued before this time.
    pub queued_to: Option<Millis>,
}

impl OperationFilter {
    pub fn matches(&self, op: &Operation) -> bool {
        fn within<T: PartialEq>(list: &[T], value: &T) -> bool {
            list.is_empty() || list.contains(value)
        }
        self.environment_id.is_none_or(|e| e == op.environment_id)
            && self.service_id.is_none_or(|s| s == op.service_id)
            && within(&self.types, &op.op_type)
            && within(&self.statuses, &op.status)
            && within(&self.sources, &op.trigger.source)
            && within(&self.outcomes, &op.outcome())
            && within(&self.trigger_kinds, &op.trigger.kind)
            && (self.reasons.is_empty() || op.trigger.reason.is_some_and(|r| self.reasons.contains(&r)))
            && (self.authors.is_empty()
                || op.trigger.author.as_ref().is_some_and(|a| self.authors.contains(&a.name)))
            && self.queued_from.is_none_or(|from| op.queued_at >= from)
            && self.queued_to.is_none_or(|to| op.queued_at < to)
    }
}
