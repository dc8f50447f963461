//! `StatusEvent`: one change of a running or deployment status in an
//! environment, a row of the `statusChanges` feed.

use async_graphql::{Enum, ID, Object};
use chrono::{DateTime, Utc};

use super::enums::{OperationStatus, RunningStatusValue};
use crate::graphql::scope::{datetime, id};
use crate::store::statuses::{StatusChange, StatusEvent};

/// A status event as a GraphQL object.
pub struct StatusEventNode(pub StatusEvent);

/// Which status changed.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusKind {
    /// A running status (`runningStatus` holds it).
    Running,
    /// A deployment status: the status of the last operation
    /// (`deploymentStatus` holds it).
    Deployment,
}

/// What a status belongs to.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusSubject {
    /// One instance of a service (`subjectId` is the instance).
    Instance,
    /// A service, from its instances.
    Service,
    /// The environment, from its live services.
    Environment,
}

/// A running or deployment status that changed.
#[Object(name = "StatusEvent")]
impl StatusEventNode {
    /// Position in the environment's feed: subscribe again with
    /// `after: cursor` to resume without a gap or a repeat.
    async fn cursor(&self) -> String {
        self.0.seq.to_string()
    }

    /// When it changed.
    async fn at(&self) -> DateTime<Utc> {
        datetime(self.0.at)
    }

    /// Which status changed.
    async fn kind(&self) -> StatusKind {
        match self.0.change {
            StatusChange::Running { .. } => StatusKind::Running,
            StatusChange::Deployment { .. } => StatusKind::Deployment,
        }
    }

    /// Whose status changed: an instance, a service or the environment.
    async fn subject(&self) -> StatusSubject {
        match (self.0.instance_id, self.0.service_id) {
            (Some(_), _) => StatusSubject::Instance,
            (None, Some(_)) => StatusSubject::Service,
            (None, None) => StatusSubject::Environment,
        }
    }

    /// The id of the instance, service or environment whose status changed.
    async fn subject_id(&self) -> ID {
        match (self.0.instance_id, self.0.service_id) {
            (Some(inst), _) => id(inst),
            (None, Some(svc)) => id(svc),
            (None, None) => id(self.0.environment_id),
        }
    }

    /// The environment it happened in.
    async fn environment_id(&self) -> ID {
        id(self.0.environment_id)
    }

    /// The service concerned; null for the environment's own status.
    async fn service_id(&self) -> Option<ID> {
        self.0.service_id.map(id)
    }

    /// The new running status; null for a deployment status change.
    async fn running_status(&self) -> Option<RunningStatusValue> {
        match self.0.change {
            StatusChange::Running { value, .. } => Some(value.into()),
            StatusChange::Deployment { .. } => None,
        }
    }

    /// The running status before; null for a deployment status change and
    /// for a new instance.
    async fn previous_running_status(&self) -> Option<RunningStatusValue> {
        match self.0.change {
            StatusChange::Running { previous, .. } => previous.map(Into::into),
            StatusChange::Deployment { .. } => None,
        }
    }

    /// The new deployment status (that of the last operation); null for a
    /// running status change.
    async fn deployment_status(&self) -> Option<OperationStatus> {
        match self.0.change {
            StatusChange::Deployment { value, .. } => Some(value.into()),
            StatusChange::Running { .. } => None,
        }
    }

    /// The operation whose status is the deployment status; null for a
    /// running status change.
    async fn operation_id(&self) -> Option<ID> {
        match self.0.change {
            StatusChange::Deployment { operation_id, .. } => Some(id(operation_id)),
            StatusChange::Running { .. } => None,
        }
    }
}
