//! GraphQL enums, each mirroring a domain enum value for value. The
//! `remote` attribute generates `From` conversions both ways, so adding a
//! variant on one side without the other fails to compile.

use async_graphql::Enum;

/// A list of GraphQL enum values given by a client as domain values; an
/// omitted list is empty (a filter that lets every value through).
pub fn all<G, D: From<G>>(list: Option<Vec<G>>) -> Vec<D> {
    list.unwrap_or_default().into_iter().map(D::from).collect()
}

/// What an operation does to its service.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "crate::domain::OperationType", display)]
pub enum OperationType {
    /// Builds and deploys a new commit.
    Deploy,
    /// Builds and deploys the service's current commit again.
    Redeploy,
    /// Replaces the running instances without a build.
    Restart,
    /// Changes the number of instances.
    Scale,
    /// Stops every instance.
    Stop,
    /// Starts the service's instances again after a stop.
    Start,
    /// Stops every instance and deletes the service; its history stays.
    Delete,
}

/// Status of an operation. `BUILDING_ERROR`, `DEPLOYMENT_ERROR`,
/// `CANCELLED` and `DEPLOYMENT_OK` are final: the operation never changes
/// again.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "crate::domain::OperationStatus")]
pub enum OperationStatus {
    /// Waiting for the operations queued before it on the same service.
    Queued,
    /// Building the commit (deploys and redeploys only).
    Building,
    /// The build failed. Final.
    BuildingError,
    /// Changing the running instances.
    Deploying,
    /// A deploy step failed; the rollback outcome says what was undone. Final.
    DeploymentError,
    /// A cancel was asked for: the current step is stopped and rolled back.
    Cancelling,
    /// Cancelled; the rollback outcome says what was undone. Final.
    Cancelled,
    /// Done. Final.
    DeploymentOk,
}

/// Running status of an instance, a service or an environment.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "crate::domain::RunningStatusValue", display)]
pub enum RunningStatusValue {
    /// Every instance (or service) is stopped, or there is none.
    Stopped,
    /// At least one is starting.
    Starting,
    /// At least one is stopping.
    Stopping,
    /// Running, possibly beside stopped or completed ones.
    Running,
    /// Every one is in error.
    Error,
    /// Some, but not all, are in error.
    Warning,
    /// Jobs whose runs all completed.
    Completed,
}

/// Running status of one instance.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "crate::domain::InstanceStatus")]
pub enum InstanceStatus {
    /// Started, not yet healthy.
    Starting,
    /// Healthy and serving.
    Running,
    /// Asked to stop; waiting for the process to exit.
    Stopping,
    /// Not running.
    Stopped,
    /// Exited with an error or failed its health check.
    Error,
    /// A job whose process exited with code 0.
    Completed,
}

/// What a service is.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "crate::domain::ServiceKind")]
pub enum ServiceKind {
    /// A long-running program, replaced without downtime.
    Application,
    /// A program that owns a data directory only one instance may hold.
    Database,
    /// A program that runs to completion.
    Job,
}

/// Who or what asked for an operation.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "crate::domain::TriggerKind")]
pub enum TriggerKind {
    /// A member of the organization.
    User,
    /// Support, acting on a member's behalf.
    Support,
    /// The platform itself, for a reason.
    Platform,
}

/// Through which channel an operation was asked for.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "crate::domain::TriggerSource")]
pub enum TriggerSource {
    /// The web console.
    Console,
    /// The command-line client.
    Cli,
    /// A direct API call.
    Api,
    /// A git push.
    Git,
    /// A GitHub integration.
    Github,
    /// The platform's monitoring; reserved for platform triggers.
    Monitoring,
}

/// Why the platform itself started an operation.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "crate::domain::PlatformReason")]
pub enum PlatformReason {
    /// Monitoring could not connect to at least one instance.
    Unreachable,
    /// At least one instance did not answer its probe in time.
    Timeout,
    /// Usage stayed above a threshold: more or bigger instances.
    Scaling,
    /// The platform rolls out configuration, patches or runtime updates.
    Maintenance,
    /// The service ran out of disk, crashed and was restarted.
    DiskFull,
}

/// How undoing a failed or cancelled operation went.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "crate::domain::RollbackOutcome")]
pub enum RollbackOutcome {
    /// Nothing had changed, or the operation succeeded.
    NotNeeded,
    /// Everything is back as it was.
    Succeeded,
    /// Some change could not be undone; the log says which.
    Failed,
}

/// The kinds of steps an operation runs.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "crate::domain::StepKind")]
pub enum StepKind {
    /// Runs the build command for the commit.
    Build,
    /// Runs the release command (for example, migrations); cannot be undone.
    Release,
    /// Prepares a database's new instance before the old one stops.
    PrepareInstance,
    /// Starts the new instances.
    StartInstances,
    /// Waits until the new instances are healthy.
    HealthCheck,
    /// Makes the new instances current.
    Switch,
    /// Stops the instances that were replaced.
    StopOldInstances,
    /// Moves a database's data directory to its new instance.
    HandOverData,
    /// Stops instances (stop, scale down, delete).
    StopInstances,
    /// Marks the service deleted.
    RemoveService,
}

/// Status of one step.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "crate::domain::StepStatus")]
pub enum StepStatus {
    /// Not started yet.
    Pending,
    /// Running now.
    Running,
    /// Done.
    Succeeded,
    /// Failed; the operation rolls back.
    Failed,
    /// Never ran: an earlier step failed or the operation was cancelled.
    Skipped,
    /// Was running when the operation was cancelled.
    Cancelled,
    /// Had succeeded, then was undone by the rollback.
    RolledBack,
    /// Had succeeded; undoing it failed or was impossible.
    RollbackFailed,
}

/// Where a log line came from.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "crate::domain::LogStream")]
pub enum LogStream {
    /// The standard output of a command or instance.
    Stdout,
    /// The standard error of a command or instance.
    Stderr,
    /// Written by opsgraph itself: steps, status changes, decisions.
    System,
}

/// Kinds of operation events.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "crate::store::OperationEventKind")]
pub enum OperationEventKind {
    /// An operation was queued.
    Queued,
    /// An operation's status changed.
    StatusChanged,
    /// One of an operation's steps changed status; the operation's did not.
    StepChanged,
}

/// How an operation ended, or that it has not yet: its status folded into
/// the answers an activity timeline shows.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "crate::domain::Outcome")]
pub enum OperationOutcome {
    /// Not final yet.
    InProgress,
    /// Ended `DEPLOYMENT_OK`.
    Succeeded,
    /// Ended `BUILDING_ERROR` or `DEPLOYMENT_ERROR`.
    Failed,
    /// Ended `CANCELLED`.
    Cancelled,
}

/// What became of a GitHub delivery.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "crate::domain::webhook::DeliveryOutcome")]
pub enum WebhookDeliveryOutcome {
    /// A `DEPLOY` of the pushed commit was queued.
    Deployed,
    /// Accepted with nothing to do: another branch, another event, a
    /// deleted branch or service.
    Ignored,
    /// A push of a pinned commit: not deployed.
    Skipped,
    /// The signature was missing or wrong: refused with 401.
    Refused,
}
