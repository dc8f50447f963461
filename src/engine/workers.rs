//! Worker pools: the operations of a service whose executor names a pool
//! are not run here but claimed by outside workers over the API. This
//! module turns their calls into stored changes (with their audit record
//! in the same transaction), tells workers about cancels, and runs the
//! lease clock that declares silent workers lost.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::Engine;
use crate::domain::worker::{LeaseId, WorkOutcome};
use crate::domain::{
    DomainError, Operation, OperationStatus, OrganizationId, RollbackOutcome, StepStatus, now_millis,
};
use crate::store::auth::Audit;
use crate::store::workers::{self, Call};

type Result<T> = std::result::Result<T, DomainError>;

/// What the pools share: the lease period and the feed of worker
/// commands.
pub struct Pools {
    lease_ms: u64,
    commands: broadcast::Sender<Operation>,
}

impl Pools {
    pub fn new(lease_ms: u64) -> Self {
        Self { lease_ms: lease_ms.max(1), commands: broadcast::channel(1024).0 }
    }

    /// How long a claim or any later call of its worker keeps a lease.
    pub fn lease_ms(&self) -> u64 {
        self.lease_ms
    }

    /// Operations held by a worker that were just cancelled (each tells
    /// its worker to stop and roll back). A lagging receiver loses none
    /// that matter: `workerCommands` also reads the held operations being
    /// cancelled when it starts.
    pub fn commands(&self) -> broadcast::Receiver<Operation> {
        self.commands.subscribe()
    }

    /// Tells the worker holding `op` (if one does) that it was cancelled.
    pub(super) fn cancelled(&self, op: &Operation) {
        if op.lease.as_ref().is_some_and(|l| l.is_held(now_millis())) {
            let _ = self.commands.send(op.clone());
        }
    }
}

impl Engine {
    /// Leases the next operation of `pool` to `worker_id` (see
    /// [`workers::claim`]); `None` when there is none.
    pub async fn claim(
        &self,
        org: OrganizationId,
        pool: String,
        worker_id: String,
        audit: Audit,
    ) -> Result<Option<Operation>> {
        let lease_ms = self.pools.lease_ms;
        self.store
            .write(move |tx| {
                let op = workers::claim(tx, org, &pool, &worker_id, lease_ms, now_millis())?;
                match &op {
                    Some(op) => audit.record_on(tx, op.id)?,
                    None => audit.record(tx)?,
                }
                Ok(op)
            })
            .await
    }

    /// Extends a lease.
    pub async fn renew_lease(&self, org: OrganizationId, lease: LeaseId, audit: Audit) -> Result<Operation> {
        let lease_ms = self.pools.lease_ms;
        self.store
            .write(move |tx| {
                let op = workers::renew(tx, Call { org, lease, now: now_millis(), lease_ms })?;
                audit.record(tx)?;
                Ok(op)
            })
            .await
    }

    /// Records a worker's report on step `index`.
    pub async fn report_step(
        &self,
        org: OrganizationId,
        lease: LeaseId,
        index: usize,
        status: StepStatus,
        message: Option<String>,
        audit: Audit,
    ) -> Result<Operation> {
        let lease_ms = self.pools.lease_ms;
        self.store
            .write(move |tx| {
                let call = Call { org, lease, now: now_millis(), lease_ms };
                let op = workers::report_step(tx, call, index, status, message.clone())?;
                audit.record(tx)?;
                Ok(op)
            })
            .await
    }

    /// Ends an operation as its worker reports, applying a success's
    /// lasting effect on the service in the same transaction.
    pub async fn complete(
        &self,
        org: OrganizationId,
        lease: LeaseId,
        outcome: WorkOutcome,
        rollback: RollbackOutcome,
        audit: Audit,
    ) -> Result<Operation> {
        self.store
            .write(move |tx| {
                let (op, ended_now) = workers::complete(tx, org, lease, outcome, rollback, now_millis())?;
                if ended_now && op.status == OperationStatus::DeploymentOk {
                    super::runner::apply_effect(tx, &op)?;
                }
                audit.record(tx)?;
                Ok(op)
            })
            .await
    }
}

/// Declares lost every worker whose lease ran out, until shutdown: checks
/// four times per lease period (at most once a second, at least every
/// 50 ms).
pub async fn run_lease_clock(engine: Arc<Engine>, shutdown: CancellationToken) {
    let every = Duration::from_millis((engine.pools.lease_ms / 4).clamp(50, 1_000));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        if let Err(error) = expire(&engine).await {
            tracing::error!(%error, "expiring worker leases failed");
        }
    }
}

async fn expire(engine: &Engine) -> Result<()> {
    let now = now_millis();
    let expired = engine.store.read(move |r| workers::expired(r, now)).await?;
    for found in expired {
        let ended = engine.store.write(move |tx| workers::end_lost(tx, &found, now)).await?;
        if let Some(op) = ended {
            let lease = op.lease.as_ref().map(|l| l.worker_id.as_str()).unwrap_or_default();
            tracing::warn!(operation = %op.id, worker = lease, status = op.status.as_str(), "worker lost");
        }
    }
    Ok(())
}
