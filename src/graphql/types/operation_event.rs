//! `OperationEvent`: one row of an environment's operation feed.

use async_graphql::{Context, Object, Result};
use chrono::{DateTime, Utc};

use super::enums::{OperationEventKind, OperationStatus};
use super::operation::OperationNode;
use super::step::StepChange;
use crate::graphql::scope::{datetime, scope};
use crate::store::{self, operations};

/// An operation event as a GraphQL object.
pub struct OperationEventNode(pub store::OperationEvent);

/// Something that happened to an operation of the environment.
#[Object(name = "OperationEvent")]
impl OperationEventNode {
    /// Position in the environment's feed: subscribe again with
    /// `after: cursor` to resume without a gap or a repeat.
    async fn cursor(&self) -> String {
        self.0.seq.to_string()
    }

    /// When it happened.
    async fn at(&self) -> DateTime<Utc> {
        datetime(self.0.at)
    }

    /// What happened.
    async fn kind(&self) -> OperationEventKind {
        self.0.kind.into()
    }

    /// The operation's status right after the event.
    async fn status(&self) -> OperationStatus {
        self.0.status.into()
    }

    /// For step changes, which step and its new status; null for events
    /// that changed no step.
    async fn step(&self) -> Option<StepChange> {
        self.0.step.map(StepChange::from)
    }

    /// The operation as it is now (it may have moved on since the event).
    async fn operation(&self, ctx: &Context<'_>) -> Result<OperationNode> {
        let id = self.0.operation_id;
        let op = scope(ctx)?.read(move |r, org| operations::operation(r, org, id)).await?;
        Ok(OperationNode(op))
    }
}
