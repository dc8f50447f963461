//! The worker protocol: outside deployment machinery claims the operations
//! of its pool, reports their steps and completes them, with a `WORKER`
//! token. Every call is safe to retry after a lost reply: a claim returns
//! what the worker already holds, a step report or completion that already
//! took effect answers with the operation as it is. A call under a lease
//! the worker no longer holds (it expired, or another claim took it) is
//! refused with `CONFLICT` and changes nothing.

use async_graphql::{Context, Enum, ID, InputObject, Object, Result, Subscription};
use chrono::{DateTime, Utc};
use futures_util::stream::{self, Stream, StreamExt};

use super::error::gql;
use super::guard::{guard, guard_mutation};
use super::scope::{datetime, scope};
use super::types::enums::RollbackOutcome;
use super::types::operation::OperationNode;
use super::types::service::ServiceNode;
use crate::domain::worker::{self, LeaseId, WorkOutcome};
use crate::domain::{self, Action, DomainError, OperationStatus, now_millis};
use crate::store::{resources, workers};

/// A worker's lease on an operation: the answer to every call of the
/// protocol.
pub struct LeaseObject(pub domain::Operation);

impl LeaseObject {
    fn lease(&self) -> Result<&worker::Lease> {
        self.0
            .lease
            .as_ref()
            .ok_or_else(|| gql(DomainError::internal("a leased operation without its lease")))
    }
}

/// A worker's hold on one operation of its pool, renewed by every call
/// about it.
#[Object(name = "Lease")]
impl LeaseObject {
    /// Names this claim (`lease_<operation>_<attempt>`): pass it to every
    /// later call about the operation.
    async fn id(&self) -> Result<ID> {
        Ok(ID(self.lease()?.id(self.0.id).to_string()))
    }

    /// The worker that holds it.
    async fn worker_id(&self) -> Result<&str> {
        Ok(&self.lease()?.worker_id)
    }

    /// The pool it was claimed from.
    async fn pool(&self) -> Result<&str> {
        Ok(&self.lease()?.pool)
    }

    /// When it lapses unless the worker calls again: then the worker is
    /// declared lost.
    async fn expires_at(&self) -> Result<DateTime<Utc>> {
        Ok(datetime(self.lease()?.expires_at))
    }

    /// Someone cancelled the operation: stop the current step, roll back
    /// what was done, then `completeOperation(outcome: CANCELLED)` (when
    /// the operation is already final, cancelled before its first step,
    /// just drop it).
    async fn cancel_requested(&self) -> bool {
        matches!(self.0.status, OperationStatus::Cancelling | OperationStatus::Cancelled)
    }

    /// The operation: its type, commit, `previousCommit` (what a rollback
    /// returns to), planned steps (numbered from 0 in `startStep` and
    /// `finishStep`) and status.
    async fn operation(&self) -> OperationNode {
        OperationNode(self.0.clone())
    }

    /// The service to run it for, with its spec: commands, port, health
    /// check and instance count. Null once the service is deleted.
    async fn service(&self, ctx: &Context<'_>) -> Result<Option<ServiceNode>> {
        let svc = self.0.service_id;
        let svc = scope(ctx)?.find(move |r, org| resources::service(r, org, svc)).await?;
        Ok(svc.map(ServiceNode))
    }
}

/// Input of `claimOperation`.
#[derive(InputObject)]
pub struct ClaimOperationInput {
    /// The pool to claim from: the `executor` its services name.
    pub pool: String,
    /// The worker's own id (1 to 63 letters, digits, `-`, `_` or `.`),
    /// unique among the pool's workers. A worker holds one operation at a
    /// time.
    pub worker_id: String,
}

/// Input of `renewLease`.
#[derive(InputObject)]
pub struct RenewLeaseInput {
    /// The lease (`Lease.id`).
    pub lease_id: ID,
}

/// Input of `startStep`.
#[derive(InputObject)]
pub struct StartStepInput {
    /// The lease (`Lease.id`).
    pub lease_id: ID,
    /// The step's position in `Operation.steps`, from 0; the steps before
    /// it must have succeeded.
    pub step: i32,
}

/// How a step ended, as its worker reports it.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepReport {
    /// It did what it should.
    Succeeded,
    /// It failed: say why in `message`.
    Failed,
    /// It was stopped by a cancel.
    Cancelled,
    /// A step that had run was undone by the rollback.
    RolledBack,
    /// A step that had run could not be undone.
    RollbackFailed,
}

impl From<StepReport> for domain::StepStatus {
    fn from(report: StepReport) -> Self {
        match report {
            StepReport::Succeeded => Self::Succeeded,
            StepReport::Failed => Self::Failed,
            StepReport::Cancelled => Self::Cancelled,
            StepReport::RolledBack => Self::RolledBack,
            StepReport::RollbackFailed => Self::RollbackFailed,
        }
    }
}

/// Input of `finishStep`.
#[derive(InputObject)]
pub struct FinishStepInput {
    /// The lease (`Lease.id`).
    pub lease_id: ID,
    /// The step's position in `Operation.steps`, from 0.
    pub step: i32,
    /// How it ended (`SUCCEEDED`, `FAILED`, `CANCELLED` for a running
    /// step; `ROLLED_BACK`, `ROLLBACK_FAILED` for one the rollback undid).
    pub status: StepReport,
    /// What it did or why it failed, up to 10,000 characters.
    pub message: Option<String>,
}

/// How an operation ended, as its worker reports it.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerOutcome {
    /// Every step succeeded: `DEPLOYMENT_OK`.
    Succeeded,
    /// A step failed: the error status of the phase it failed in.
    Failed,
    /// The operation was cancelled and the worker stopped: `CANCELLED`.
    Cancelled,
}

impl From<WorkerOutcome> for WorkOutcome {
    fn from(outcome: WorkerOutcome) -> Self {
        match outcome {
            WorkerOutcome::Succeeded => Self::Succeeded,
            WorkerOutcome::Failed => Self::Failed,
            WorkerOutcome::Cancelled => Self::Cancelled,
        }
    }
}

/// Input of `completeOperation`.
#[derive(InputObject)]
pub struct CompleteOperationInput {
    /// The lease (`Lease.id`).
    pub lease_id: ID,
    /// How it ended.
    pub outcome: WorkerOutcome,
    /// How undoing the steps went (`NOT_NEEDED` when nothing was undone).
    #[graphql(default_with = "RollbackOutcome::NotNeeded")]
    pub rollback: RollbackOutcome,
}

fn lease_id(id: &ID) -> Result<LeaseId, DomainError> {
    id.parse()
}

fn step_index(step: i32) -> Result<usize, DomainError> {
    usize::try_from(step).map_err(|_| DomainError::bad_input("step", "must be 0 or more"))
}

fn step_message(message: Option<String>) -> Result<Option<String>, DomainError> {
    match message {
        Some(m) if m.chars().count() > 10_000 => {
            Err(DomainError::bad_input("message", "must be at most 10,000 characters"))
        }
        other => Ok(other),
    }
}

/// The calls of workers.
#[derive(Default)]
pub struct WorkerMutation;

#[Object]
impl WorkerMutation {
    /// Leases the next operation of `pool` to the worker: the oldest queued
    /// one whose service has nothing before it (one operation per service
    /// at a time, in order). Null when there is none: poll again later. A
    /// worker that already holds an operation gets it again (a retry after
    /// a lost reply). `WORKER` tokens only.
    async fn claim_operation(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The pool and the worker.")] input: ClaimOperationInput,
    ) -> Result<Option<LeaseObject>> {
        let m = guard_mutation(ctx, Action::Work, None).await?;
        let result = async {
            let pool = worker::executor(&input.pool)?;
            let worker_id = worker::worker_id(&input.worker_id)?;
            m.scope.engine().claim(m.scope.org(), pool, worker_id, m.audit.clone()).await
        };
        Ok(m.finish(result.await).await?.map(LeaseObject))
    }

    /// Keeps a lease for another lease period. Its answer says whether the
    /// operation is being cancelled. `CONFLICT` once the lease is lost.
    async fn renew_lease(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The lease.")] input: RenewLeaseInput,
    ) -> Result<LeaseObject> {
        let m = guard_mutation(ctx, Action::Work, Some(input.lease_id.to_string())).await?;
        let result = async {
            let lease = lease_id(&input.lease_id)?;
            m.scope.engine().renew_lease(m.scope.org(), lease, m.audit.clone()).await
        };
        Ok(LeaseObject(m.finish(result.await).await?))
    }

    /// Starts a step (and the operation, at its first step), with a
    /// `SYSTEM` line in its log; renews the lease. Refused with
    /// `INVALID_TRANSITION` while the operation is being cancelled.
    async fn start_step(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The lease and the step.")] input: StartStepInput,
    ) -> Result<LeaseObject> {
        let m = guard_mutation(ctx, Action::Work, Some(input.lease_id.to_string())).await?;
        let result = async {
            let lease = lease_id(&input.lease_id)?;
            let index = step_index(input.step)?;
            let running = domain::StepStatus::Running;
            m.scope.engine().report_step(m.scope.org(), lease, index, running, None, m.audit.clone()).await
        };
        Ok(LeaseObject(m.finish(result.await).await?))
    }

    /// Reports how a step ended, or how the rollback undid it, with a
    /// `SYSTEM` line in its log; renews the lease.
    async fn finish_step(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The lease, the step and how it ended.")] input: FinishStepInput,
    ) -> Result<LeaseObject> {
        let m = guard_mutation(ctx, Action::Work, Some(input.lease_id.to_string())).await?;
        let result = async {
            let lease = lease_id(&input.lease_id)?;
            let index = step_index(input.step)?;
            let message = step_message(input.message)?;
            let status = input.status.into();
            m.scope.engine().report_step(m.scope.org(), lease, index, status, message, m.audit.clone()).await
        };
        Ok(LeaseObject(m.finish(result.await).await?))
    }

    /// Ends the operation: `SUCCEEDED` once every step succeeded (the
    /// service then runs its commit), `FAILED` after a failed step,
    /// `CANCELLED` after a cancel. Steps never started are skipped; the
    /// lease ends.
    async fn complete_operation(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The lease and how the operation ended.")] input: CompleteOperationInput,
    ) -> Result<LeaseObject> {
        let m = guard_mutation(ctx, Action::Work, Some(input.lease_id.to_string())).await?;
        let result = async {
            let lease = lease_id(&input.lease_id)?;
            let (outcome, rollback) = (input.outcome.into(), input.rollback.into());
            m.scope.engine().complete(m.scope.org(), lease, outcome, rollback, m.audit.clone()).await
        };
        Ok(LeaseObject(m.finish(result.await).await?))
    }
}

/// What a worker is told to do.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerCommandKind {
    /// Stop the operation, roll back, and complete it as `CANCELLED`.
    Cancel,
}

/// A command for a worker about an operation it holds.
pub struct WorkerCommand(domain::Operation);

/// A command for a worker about an operation it holds.
#[Object]
impl WorkerCommand {
    /// What to do.
    async fn kind(&self) -> WorkerCommandKind {
        WorkerCommandKind::Cancel
    }

    /// The lease of the operation it is about.
    async fn lease(&self) -> LeaseObject {
        LeaseObject(self.0.clone())
    }
}

/// Commands for workers.
#[derive(Default)]
pub struct WorkerSubscription;

#[Subscription]
impl WorkerSubscription {
    /// Tells a worker when an operation it holds is cancelled: first for
    /// each it holds that is being cancelled now, then as cancels arrive.
    /// Never completes. The same news is in every call's answer
    /// (`Lease.cancelRequested`), for workers that only poll. `WORKER`
    /// tokens only.
    async fn worker_commands(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The worker's id, as in `claimOperation`.")] worker_id: String,
    ) -> Result<impl Stream<Item = WorkerCommand> + use<>> {
        let s = guard(ctx, Action::Work)?;
        let worker_id = worker::worker_id(&worker_id).map_err(gql)?;
        let org = s.org();
        // Subscribed before reading, so that no cancel falls in between (a
        // repeat is harmless: cancelling twice is cancelling).
        let live = tokio_stream::wrappers::BroadcastStream::new(s.engine().pools.commands());
        let id = worker_id.clone();
        let now = s
            .store()
            .read(move |r| workers::cancelling_held(r, org, &id, now_millis()))
            .await
            .map_err(gql)?;
        let live = live.filter_map(move |op| {
            let op = op.ok().filter(|op| {
                op.organization_id == org && op.lease.as_ref().is_some_and(|l| l.worker_id == worker_id)
            });
            async move { op }
        });
        Ok(stream::iter(now).chain(live).map(WorkerCommand))
    }
}
