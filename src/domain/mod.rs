//! Pure types and rules of the operations record. Nothing here performs I/O or
//! knows about redb, axum or async-graphql; everything is unit-testable.

pub mod access;
pub mod error;
pub mod export;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod ids;
pub mod instance;
pub mod log;
pub mod monitor;
pub mod operation;
pub mod pin;
pub mod plan;
pub mod report;
pub mod resource;
pub mod running;
pub mod scaling;
pub mod selector;
pub mod status;
pub mod status_page;
pub mod stuck;
pub mod usage;
pub mod webhook;
pub mod worker;

pub use access::{Action, Grant, Principal, Role, TokenKind};
pub use error::{DomainError, ErrorCode};
pub use ids::{
    EnvironmentId, InstanceId, MaintenanceId, MemberId, OperationId, OrganizationId, ServiceId, TokenId,
};
pub use instance::{Instance, InstanceStatus};
pub use log::{LogFilter, LogLine, LogStream, NewLine};
pub use operation::{
    IdempotencyKey, NewOperation, Operation, OperationFilter, OperationType, Outcome, PlatformReason,
    RollbackOutcome, Step, StepKind, StepStatus, Trigger, TriggerKind, TriggerSource,
};
pub use pin::CommitPin;
pub use resource::{
    Environment, EnvironmentPatch, HealthCheck, Member, Name, Organization, Service, ServiceKind,
    ServicePatch, ServiceSpec,
};
pub use running::RunningStatusValue;
pub use selector::OperationSelector;
pub use status::OperationStatus;
pub use webhook::WebhookSecret;

/// Milliseconds since the Unix epoch: the one time representation of stored rows.
pub type Millis = i64;

/// The current time in [`Millis`].
pub fn now_millis() -> Millis {
    chrono::Utc::now().timestamp_millis()
}
