//! `Operation`: one change to a service, with its filter and connection.

use async_graphql::{Context, ID, InputObject, Object, Result};
use chrono::{DateTime, Utc};

use super::enums::{OperationOutcome, OperationStatus, OperationType, RollbackOutcome, TriggerSource, all};
use super::environment::EnvironmentNode;
use super::log_line::{LogFilterInput, LogLineConnection, log_page};
use super::redeploy::{RedeployRefusal, service_live};
use super::service::ServiceNode;
use super::step::StepObject;
use super::trigger::TriggerObject;
use crate::domain::{self, DomainError};
use crate::graphql::scope::{Scope, datetime, id, millis, scope};
use crate::store::logs::Log;
use crate::store::{operations, resources};

/// An operation as a GraphQL object.
pub struct OperationNode(pub domain::Operation);

/// A page of operations.
pub use crate::graphql::connection::OperationConnection;

/// One change to a service: who asked for it, its steps, its log and how
/// it ended. The record stays readable after its service is deleted.
/// Fields resolve one after another (`serial`): nearly all are plain reads
/// of the row, and a loop is much cheaper than a set of futures per field.
#[Object(name = "Operation", serial)]
impl OperationNode {
    /// Global id (`op_<n>`).
    pub async fn id(&self) -> ID {
        id(self.0.id)
    }

    /// What the operation does.
    #[graphql(name = "type")]
    async fn op_type(&self) -> OperationType {
        self.0.op_type.into()
    }

    /// Where the operation is; final statuses never change again.
    async fn status(&self) -> OperationStatus {
        self.0.status.into()
    }

    /// How it ended (`IN_PROGRESS` until it is final): its status in the
    /// words of the activity timeline.
    async fn outcome(&self) -> OperationOutcome {
        self.0.outcome().into()
    }

    /// The service; null once the service is deleted (`serviceName` stays).
    async fn service(&self, ctx: &Context<'_>) -> Result<Option<ServiceNode>> {
        let svc = self.0.service_id;
        let svc = scope(ctx)?.find(move |r, org| resources::service(r, org, svc)).await?;
        Ok(svc.filter(|s| !s.is_deleted()).map(ServiceNode))
    }

    /// The service's name when the operation was queued.
    async fn service_name(&self) -> &str {
        &self.0.service_name
    }

    /// The environment's name when the operation was queued.
    async fn environment_name(&self) -> &str {
        &self.0.environment_name
    }

    /// The environment; null once it no longer exists.
    async fn environment(&self, ctx: &Context<'_>) -> Result<Option<EnvironmentNode>> {
        let env = self.0.environment_id;
        let env = scope(ctx)?.find(move |r, org| resources::environment(r, org, env)).await?;
        Ok(env.map(EnvironmentNode))
    }

    /// For deploys, the commit deployed; otherwise the commit the service
    /// ran when the operation was queued. Null when there was none.
    async fn commit(&self) -> Option<&str> {
        self.0.commit.as_deref()
    }

    /// The service's commit when the operation was queued (what a rollback
    /// returns to); null before the service's first deploy.
    async fn previous_commit(&self) -> Option<&str> {
        self.0.previous_commit.as_deref()
    }

    /// Who or what asked for the operation.
    async fn trigger(&self) -> TriggerObject {
        TriggerObject(self.0.trigger.clone())
    }

    /// When it was queued.
    async fn queued_at(&self) -> DateTime<Utc> {
        datetime(self.0.queued_at)
    }

    /// When it started; null while queued, and when cancelled before it
    /// started.
    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.0.started_at.map(datetime)
    }

    /// When it reached its final status; null until then.
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at.map(datetime)
    }

    /// Milliseconds from its start (or, if it never started, its queueing)
    /// to its end; null until it is final.
    async fn duration_ms(&self) -> Option<i64> {
        self.0.duration_ms()
    }

    /// Its steps, in the order they run.
    async fn steps(&self) -> Vec<StepObject> {
        self.0.steps.iter().cloned().map(StepObject).collect()
    }

    /// How undoing it went, when it failed or was cancelled.
    async fn rollback(&self) -> RollbackOutcome {
        self.0.rollback.into()
    }

    /// For `SCALE`: the instance count asked for; null for other types.
    async fn target_instances(&self) -> Option<u32> {
        self.0.target_instances
    }

    /// For "redeploy this commit": the operation whose commit it deploys;
    /// null otherwise.
    async fn redeploy_of(&self, ctx: &Context<'_>) -> Result<Option<OperationNode>> {
        let Some(of) = self.0.redeploy_of else { return Ok(None) };
        let op = scope(ctx)?.find(move |r, org| operations::operation(r, org, of)).await?;
        Ok(op.map(OperationNode))
    }

    /// Its log, in order.
    async fn logs(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The first `first` lines after `after` (at most 100).")] first: Option<i32>,
        #[graphql(desc = "Cursor (the `seq`) of the line the page starts after.")] after: Option<String>,
        #[graphql(desc = "The last `last` lines before `before` (at most 100).")] last: Option<i32>,
        #[graphql(desc = "Cursor (the `seq`) of the line the page ends before.")] before: Option<String>,
        #[graphql(desc = "Only the lines that match.")] filter: Option<LogFilterInput>,
    ) -> Result<LogLineConnection> {
        log_page(ctx, Log::Operation(self.0.id), (first, after, last, before), filter).await
    }

    /// Whether "redeploy this commit" is offered: a `DEPLOY` or `REDEPLOY`
    /// with a commit that got past its build and is not pinned, on a
    /// service that still exists.
    async fn can_redeploy(&self, ctx: &Context<'_>) -> Result<bool> {
        Ok(self.refusal(&scope(ctx)?).await?.is_none())
    }

    /// Why "redeploy this commit" is not offered; null when it is.
    async fn cannot_redeploy_reason(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        Ok(self.refusal(&scope(ctx)?).await?.map(RedeployRefusal::message))
    }
}

impl OperationNode {
    async fn refusal(&self, scope: &Scope<'_>) -> Result<Option<RedeployRefusal>> {
        let svc = self.0.service_id;
        let live = scope.read(move |r, org| service_live(r, org, svc)).await?;
        Ok(RedeployRefusal::of(&self.0, live.as_ref()))
    }
}

/// Which operations a listing returns; every field narrows it.
#[derive(InputObject, Default)]
#[graphql(name = "OperationFilter")]
pub struct OperationFilterInput {
    /// Only operations in this environment.
    pub environment_id: Option<ID>,
    /// Only operations on this service (deleted or not).
    pub service_id: Option<ID>,
    /// Only operations of these types; omitted or empty: every type.
    pub types: Option<Vec<OperationType>>,
    /// Only operations in these statuses; omitted or empty: every status.
    pub statuses: Option<Vec<OperationStatus>>,
    /// Only operations asked for through these sources; omitted or empty:
    /// every source.
    pub sources: Option<Vec<TriggerSource>>,
    /// Only operations queued at or after this time.
    pub queued_from: Option<DateTime<Utc>>,
    /// Only operations queued before this time.
    pub queued_to: Option<DateTime<Utc>>,
}

impl OperationFilterInput {
    pub fn validate(self) -> Result<domain::OperationFilter, DomainError> {
        Ok(domain::OperationFilter {
            environment_id: self.environment_id.map(|id| id.parse()).transpose()?,
            service_id: self.service_id.map(|id| id.parse()).transpose()?,
            types: all(self.types),
            statuses: all(self.statuses),
            sources: all(self.sources),
            queued_from: self.queued_from.map(millis),
            queued_to: self.queued_to.map(millis),
            ..domain::OperationFilter::default()
        })
    }
}
