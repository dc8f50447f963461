//! Pure types and rules of the operations record. Nothing here performs I/O or
//! knows about redb, axum or async-graphql; everything is unit-testable.

pub mod error;
pub mod ids;
pub mod instance;
pub mod log;
pub mod operation;
pub mod plan;
pub mod resource;
pub mod running;
pub mod status;
pub mod stuck;

pub use error::{DomainError, ErrorCode};
pub use ids::{EnvironmentId, InstanceId, OperationId, OrganizationId, ServiceId};
pub use instance::{Instance, InstanceStatus};
pub use log::{LogFilter, LogLine, LogStream, NewLine};
pub use operation::{
    NewOperation, Operation, OperationFilter, OperationType, PlatformReason, RollbackOutcome, Step, StepKind,
    StepStatus, Trigger, TriggerKind, TriggerSource,
};
pub use resource::{
    Environment, EnvironmentPatch, HealthCheck, Member, Name, Organization, Principal, Service, ServiceKind,
    ServicePatch, ServiceSpec,
};
pub use running::RunningStatusValue;
pub use status::OperationStatus;

/// Milliseconds since the Unix epoch: the one time representation of stored rows.
pub type Millis = i64;

/// The current time in [`Millis`].
pub fn now_millis() -> Millis {
    chrono::Utc::now().timestamp_millis()
}
