//! Runs operations: one queue per service (operations on one service run
//! one at a time, in queue order; different services run in parallel), the
//! step runner with its rollback, cancellation, timeouts and forced ends
//! (`stuck`), start-up recovery, and monitoring (`monitor`) with its
//! recovery queue of platform redeploys (`healing`), its scale-outs on
//! usage (`scaling`), its usage samples (`metrics`) and the incidents it
//! opens on the status page by itself (`incidents`).
//!
//! Imports `domain` and `store`; never the GraphQL or HTTP layers.

pub mod agents;
pub mod healing;
pub mod incidents;
pub mod local;
pub mod maintenance;
pub mod metrics;
pub mod monitor;
mod recovery;
mod runner;
pub mod scaling;
mod stuck;
pub mod workers;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::domain::webhook::{Delivery, PushEvent};
use crate::domain::{
    DomainError, NewLine, NewOperation, Operation, OperationId, OperationStatus, Principal, RollbackOutcome,
    ServiceId, StepStatus,
};
use crate::store::auth::Audit;
use crate::store::hooks::{self, DeliveryMeta};
use crate::store::logs::{self, Log};
use crate::store::{Reader, Store, operations, resources};

pub use local::LocalExecutor;
use stuck::Control;

type Result<T> = std::result::Result<T, DomainError>;

/// The operation engine; shared behind an `Arc`.
pub struct Engine {
    store: Store,
    executor: Arc<LocalExecutor>,
    /// Services whose queue a worker task is draining; `true` asks the
    /// worker to look again before it exits (an operation was queued while
    /// it was finishing).
    workers: Mutex<HashMap<ServiceId, bool>>,
    /// How each running operation is cancelled, forced and watched.
    running: Mutex<HashMap<OperationId, Arc<Control>>>,
    /// What an operation cancelled with `force`, or past its timeout, gets
    /// to end on its own before it is ended by force.
    force_grace: Duration,
    /// Cancelled when the server shuts down: running operations stop where
    /// they are and are left for start-up recovery.
    shutdown: CancellationToken,
    /// Set once start-up recovery has ended what a previous run left;
    /// queues are only woken after that.
    recovered: AtomicBool,
    /// The queue workers; shutdown waits for them before it stops the
    /// instance processes.
    tasks: TaskTracker,
    /// The recovery queue of platform redeploys.
    pub healing: healing::Healing,
    /// The maintenance campaigns started since the process started (kept
    /// in memory only: they do not survive a restart).
    pub maintenance: maintenance::Maintenance,
    /// The hot streaks monitoring follows to scale services out.
    pub scaling: scaling::Scaling,
    /// The incidents the platform opens by itself on a mass redeploy.
    pub incidents: incidents::AutoIncidents,
    /// Outside workers: leases and their commands.
    pub pools: workers::Pools,
}

impl Engine {
    pub fn new(
        store: Store,
        executor: Arc<LocalExecutor>,
        shutdown: CancellationToken,
        recovery_limit: usize,
        force_grace: Duration,
        auto_incidents: crate::domain::status_page::AutoIncidentRule,
        lease_ms: u64,
    ) -> Arc<Self> {
        Arc::new(Self {
            pools: workers::Pools::new(lease_ms),
            incidents: incidents::AutoIncidents::new(auto_incidents),
            healing: healing::Healing::new(recovery_limit),
            maintenance: maintenance::Maintenance::default(),
            scaling: scaling::Scaling::default(),
            store,
            executor,
            workers: Mutex::default(),
            running: Mutex::default(),
            force_grace,
            shutdown,
            recovered: AtomicBool::new(false),
            tasks: TaskTracker::new(),
        })
    }

    /// Waits (up to `limit`) for the queue workers to return after the
    /// shutdown token was cancelled.
    pub async fn wait_stopped(&self, limit: std::time::Duration) -> bool {
        self.tasks.close();
        tokio::time::timeout(limit, self.tasks.wait()).await.is_ok()
    }

    /// How many operations are running steps now.
    pub fn running_count(&self) -> usize {
        self.running.lock().expect("running map").len()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Ends what a previous process left running, stops its orphaned
    /// instances and starts the queues again. Run once, before `/readyz`
    /// turns ready.
    pub async fn recover(self: &Arc<Self>) -> anyhow::Result<()> {
        recovery::recover(self).await
    }

    /// Queues an operation and wakes its service's queue. The two happen in
    /// a task of their own, so a client that goes away after the commit
    /// cannot leave the operation queued with nobody to run it.
    ///
    /// `audit`, for a client's request, is recorded in the transaction that
    /// queues the operation (with the operation as its target).
    pub async fn submit(
        self: &Arc<Self>,
        principal: &Principal,
        new: NewOperation,
        audit: Option<Audit>,
    ) -> Result<Operation> {
        if new.trigger.kind != crate::domain::TriggerKind::Platform {
            // A person acts on the service: monitoring may try again.
            self.healing.reset(new.service_id);
        }
        self.queue_guarded(principal, new, Vec::new(), audit, |_| Ok(())).await
    }

    /// [`Engine::submit`], with `lines` written to the new operation's log
    /// in the same transaction (why the platform queued it).
    pub async fn submit_with_lines(
        self: &Arc<Self>,
        principal: &Principal,
        new: NewOperation,
        lines: Vec<NewLine>,
    ) -> Result<Operation> {
        if new.trigger.kind != crate::domain::TriggerKind::Platform {
            // A person acts on the service: monitoring may try again.
            self.healing.reset(new.service_id);
        }
        self.queue_guarded(principal, new, lines, None, |_| Ok(())).await
    }

    /// The platform's scale-out of a service that wanted `from` instances
    /// when monitoring looked: queued like [`Engine::submit_with_lines`],
    /// but only if, in the same transaction, the service still wants `from`
    /// instances and has no operation queued or running; `CONFLICT`
    /// otherwise (a person or another operation got there first).
    pub(crate) async fn submit_scale_out(
        self: &Arc<Self>,
        principal: &Principal,
        new: NewOperation,
        lines: Vec<NewLine>,
        from: u32,
    ) -> Result<Operation> {
        let svc = new.service_id;
        let unchanged = move |r: Reader<'_>| {
            let busy = operations::queue_end(r, svc, false)?.is_some();
            if busy || resources::service_by_id(r, svc)?.spec.instances != from {
                return Err(DomainError::Conflict(format!("service {svc} changed since monitoring looked")));
            }
            Ok(())
        };
        self.queue_guarded(principal, new, lines, None, unchanged).await
    }

    /// Queues `new` with `lines` once `guard` passes, all in one
    /// transaction, then wakes the service's queue; both in a task of their
    /// own, so a caller that goes away after the commit cannot leave the
    /// operation queued with nobody to run it.
    async fn queue_guarded(
        self: &Arc<Self>,
        principal: &Principal,
        new: NewOperation,
        lines: Vec<NewLine>,
        audit: Option<Audit>,
        guard: impl Fn(Reader<'_>) -> Result<()> + Send + 'static,
    ) -> Result<Operation> {
        let principal = principal.clone();
        let engine = self.clone();
        tokio::spawn(async move {
            let op = engine
                .store
                .write(move |tx| {
                    guard(tx.reader())?;
                    let op = operations::queue(tx, &principal, &new)?;
                    if !lines.is_empty() {
                        logs::append(tx, Log::Operation(op.id), &lines)?;
                    }
                    if let Some(audit) = &audit {
                        audit.record_on(tx, op.id)?;
                    }
                    Ok(op)
                })
                .await?;
            engine.kick(op.service_id);
            Ok(op)
        })
        .await
        .map_err(|e| DomainError::internal(format!("queueing task failed: {e}")))?
    }

    /// Acts on a GitHub push whose signature was checked: queues a `DEPLOY`
    /// of its head commit, or records why not (see `store::hooks`), and
    /// wakes the queue. Like [`Engine::submit`], in a task of its own.
    pub async fn accept_push(
        self: &Arc<Self>,
        svc: ServiceId,
        push: PushEvent,
        meta: DeliveryMeta,
    ) -> Result<Delivery> {
        let engine = self.clone();
        tokio::spawn(async move {
            let delivery = engine.store.write(move |tx| hooks::accept_push(tx, svc, &push, &meta)).await?;
            if delivery.operation_id.is_some() {
                engine.kick(svc);
            }
            Ok(delivery)
        })
        .await
        .map_err(|e| DomainError::internal(format!("push task failed: {e}")))?
    }

    /// Cancels an operation: a queued one ends at once as `CANCELLED`; a
    /// running one goes to `CANCELLING`, its current step is stopped and it
    /// is rolled back; a final one is refused with `INVALID_TRANSITION`.
    ///
    /// With `force`, a running operation also gets the force grace to end
    /// on its own; then it is ended by force (see `stuck`). The answer
    /// then waits for the final operation.
    pub async fn cancel(
        self: &Arc<Self>,
        principal: &Principal,
        id: OperationId,
        force: bool,
        audit: Option<Audit>,
    ) -> Result<Operation> {
        let org = principal.organization_id;
        let who = principal.member.name.clone();
        let grace_ms = self.grace_ms();
        let op = self
            .store
            .write(move |tx| {
                let before = operations::operation(tx.reader(), org, id)?.status;
                let op = operations::update(tx, id, cancel_in_place)?;
                let line = cancel_line(&who, before, op.status, force, grace_ms);
                logs::append(tx, Log::Operation(id), &[NewLine::system(line)])?;
                if let Some(audit) = &audit {
                    audit.record(tx)?;
                }
                Ok(op)
            })
            .await?;
        self.pools.cancelled(&op);
        if op.status != OperationStatus::Cancelling {
            return Ok(op);
        }
        let control = self.running.lock().expect("running map").get(&id).cloned();
        match control {
            Some(control) => {
                control.cancel.cancel();
                if !force {
                    return Ok(op);
                }
                control.force.cancel();
                stuck::wait_ended(self, &control).await;
            }
            None if force => stuck::end_orphan(self, &op).await?,
            None => return Ok(op),
        }
        self.store.read(move |r| operations::operation(r, org, id)).await
    }

    fn grace_ms(&self) -> u64 {
        u64::try_from(self.force_grace.as_millis()).unwrap_or(u64::MAX)
    }

    /// Makes sure a worker drains the queue of `svc`. Before recovery is
    /// done this does nothing: recovery wakes every queue when it ends.
    fn kick(self: &Arc<Self>, svc: ServiceId) {
        if !self.recovered.load(Ordering::SeqCst) {
            return;
        }
        let mut workers = self.workers.lock().expect("workers map");
        if let Some(again) = workers.get_mut(&svc) {
            *again = true;
            return;
        }
        workers.insert(svc, false);
        let engine = self.clone();
        self.tasks.spawn(async move { engine.drain(svc).await });
    }

    /// Runs the queued operations of `svc` one after another.
    async fn drain(self: Arc<Self>, svc: ServiceId) {
        loop {
            if self.shutdown.is_cancelled() {
                return;
            }
            let next = self
                .store
                .read(move |r| {
                    let head = operations::queue_end(r, svc, false)?;
                    let local = resources::service_by_id(r, svc)?.spec.is_local();
                    Ok(head.filter(|_| local))
                })
                .await;
            match next {
                Ok(Some(op)) if op.status == OperationStatus::Queued && op.lease.is_none() => {
                    runner::run(&self, op).await
                }
                Ok(Some(op)) => {
                    // A head that is running with no runner was left by a
                    // previous process (recovery ends it) or by a failed
                    // write: never spin on it.
                    tracing::warn!(operation = %op.id, status = op.status.as_str(), "queue head has no runner");
                    self.workers.lock().expect("workers map").remove(&svc);
                    return;
                }
                // Nothing to run here: the queue is empty, or a worker
                // pool runs the service's operations.
                Ok(None) => {
                    let mut workers = self.workers.lock().expect("workers map");
                    match workers.get_mut(&svc) {
                        Some(again) if *again => *again = false,
                        _ => {
                            workers.remove(&svc);
                            return;
                        }
                    }
                }
                Err(error) => {
                    tracing::error!(%error, service = %svc, "reading the queue failed");
                    self.workers.lock().expect("workers map").remove(&svc);
                    return;
                }
            }
        }
    }
}

/// The `SYSTEM` line of a cancel asked for by `who`, by the status it
/// found and the one it left.
fn cancel_line(
    who: &str,
    before: OperationStatus,
    after: OperationStatus,
    force: bool,
    grace_ms: u64,
) -> String {
    match (after, force) {
        (OperationStatus::Cancelled, _) => format!("cancelled by {who} before it started"),
        (_, false) => format!("cancel requested by {who}: stopping the current step"),
        (_, true) if before == OperationStatus::Cancelling => format!(
            "forced cancel requested by {who}: the rollback has {grace_ms} ms to finish before it is abandoned"
        ),
        (_, true) => format!(
            "forced cancel requested by {who}: stopping the current step; what has not ended in {grace_ms} ms is abandoned"
        ),
    }
}

/// The cancel transition applied to a stored operation.
fn cancel_in_place(op: &mut Operation) -> Result<()> {
    match op.status {
        OperationStatus::Queued => {
            op.conclude(OperationStatus::Cancelled, RollbackOutcome::NotNeeded, StepStatus::Skipped);
        }
        // Asking twice is answered with the operation as it is.
        OperationStatus::Cancelling => {}
        status => op.status = status.transition(OperationStatus::Cancelling)?,
    }
    Ok(())
}
