//! Instances: one running copy of a service.

use serde::{Deserialize, Serialize};

use super::{InstanceId, Millis, OperationId, RunningStatusValue, ServiceId};

/// Running status of one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InstanceStatus {
    Starting,
    Running,
    Stopping,
    Stopped,
    Error,
    /// A job whose process exited 0.
    Completed,
}

impl InstanceStatus {
    /// The name clients see (`RUNNING`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "STARTING",
            Self::Running => "RUNNING",
            Self::Stopping => "STOPPING",
            Self::Stopped => "STOPPED",
            Self::Error => "ERROR",
            Self::Completed => "COMPLETED",
        }
    }

    pub fn running_value(self) -> RunningStatusValue {
        match self {
            Self::Starting => RunningStatusValue::Starting,
            Self::Running => RunningStatusValue::Running,
            Self::Stopping => RunningStatusValue::Stopping,
            Self::Stopped => RunningStatusValue::Stopped,
            Self::Error => RunningStatusValue::Error,
            Self::Completed => RunningStatusValue::Completed,
        }
    }

    /// Whether a process may still be attached to the instance.
    pub fn is_live(self) -> bool {
        matches!(self, Self::Starting | Self::Running | Self::Stopping)
    }
}

/// One running copy of a service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Instance {
    pub id: InstanceId,
    pub service_id: ServiceId,
    /// The operation that started it.
    pub operation_id: OperationId,
    pub commit: Option<String>,
    pub port: Option<u16>,
    pub pid: Option<u32>,
    pub status: InstanceStatus,
    pub status_since: Millis,
    /// Whether the service serves with it; new instances become current at
    /// the switch step of a deploy.
    pub current: bool,
    pub exit_code: Option<i32>,
    pub created_at: Millis,
}
