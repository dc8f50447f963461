//! `Step`: one step of an operation, and `StepChange` for the event feed.

use async_graphql::{Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::enums::{StepKind, StepStatus};
use crate::domain;
use crate::graphql::scope::datetime;

/// A step as a GraphQL object.
pub struct StepObject(pub domain::Step);

/// One step of an operation, in the order the operation runs them.
/// Fields resolve one after another (`serial`): nearly all are plain reads
/// of the row, and a loop is much cheaper than a set of futures per field.
#[Object(name = "Step", serial)]
impl StepObject {
    /// The human name of the step, such as `health check`.
    async fn name(&self) -> &'static str {
        self.0.kind.title()
    }

    /// What the step does.
    async fn kind(&self) -> StepKind {
        self.0.kind.into()
    }

    /// Where the step is.
    async fn status(&self) -> StepStatus {
        self.0.status.into()
    }

    /// When it started; null when it has not.
    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.0.started_at.map(datetime)
    }

    /// When it ended; null while it is pending or running.
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at.map(datetime)
    }

    /// Why it failed, or what its rollback did; null when there is nothing
    /// to say.
    async fn message(&self) -> Option<&str> {
        self.0.message.as_deref()
    }
}

/// A step's new status, as reported by an operation event.
#[derive(SimpleObject, Debug, Clone, Copy)]
pub struct StepChange {
    /// Which step changed.
    pub kind: StepKind,
    /// Its new status.
    pub status: StepStatus,
}

impl From<(domain::StepKind, domain::StepStatus)> for StepChange {
    fn from((kind, status): (domain::StepKind, domain::StepStatus)) -> Self {
        Self { kind: kind.into(), status: status.into() }
    }
}
