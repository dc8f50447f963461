//! Stuck operations: the watchdog beside each running operation (its
//! timeout, and the grace after a forced cancel) and the forced end.
//!
//! At its timeout the watchdog cancels the operation the normal way, with a
//! `SYSTEM` line saying so. After that, or after `cancelOperation(force:
//! true)`, the operation has the force grace to end on its own. If it has
//! not, `runner::run` drops its runner where it is — a command it was
//! running dies with its process group (`GroupGuard`) — and [`force_end`]
//! kills the instances the operation started and does not serve, finishes
//! the stops it had begun, and records the final status with what was left,
//! in one transaction. The service's queue then moves on. What the dropped
//! runner's helpers write late (a killed command's last output lines) finds
//! the operation final and is dropped (`logs::append_while_open`).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Engine, Result, cancel_in_place};
use crate::domain::stuck::{self, Abandoned};
use crate::domain::{
    DomainError, InstanceId, InstanceStatus, NewLine, Operation, OperationId, OperationStatus, StepStatus,
    now_millis, operation::finished_line,
};
use crate::store::logs::{self, Log};
use crate::store::{Tx, operations, resources};

/// Beyond the force grace, the most a forced end may take: killing the
/// processes (bounded by the executor) and one write.
const FORCE_END_BOUND: Duration = Duration::from_secs(15);

/// How one running operation is cancelled, forced and watched.
pub(super) struct Control {
    /// Stops the current step (the normal cancel); a child of the engine's
    /// shutdown token.
    pub cancel: CancellationToken,
    /// Set by a forced cancel: the watchdog starts the force grace.
    pub force: CancellationToken,
    /// Cancelled once the operation's task has returned: the operation is
    /// final, or left for start-up recovery by a shutdown.
    pub done: CancellationToken,
    /// Index of the step whose rollback is running, so a forced end can
    /// say what it abandoned.
    undoing: Mutex<Option<usize>>,
}

impl Control {
    pub fn new(cancel: CancellationToken) -> Self {
        Self {
            cancel,
            force: CancellationToken::new(),
            done: CancellationToken::new(),
            undoing: Mutex::new(None),
        }
    }

    /// Notes that the rollback of step `index` starts.
    pub fn undoing(&self, index: usize) {
        *self.undoing.lock().expect("undoing") = Some(index);
    }

    /// Where a forced end after a grace of `grace_ms` finds the operation.
    pub fn abandoned(&self, grace_ms: u64) -> Abandoned {
        Abandoned::AfterGrace { grace_ms, undoing: *self.undoing.lock().expect("undoing") }
    }
}

/// Resolves when operation `id` must be ended by force: the force grace
/// after its timeout or after a forced cancel. Never resolves once the
/// server shuts down: the operation is then left for start-up recovery.
pub(super) async fn watchdog(engine: &Arc<Engine>, id: OperationId, timeout_ms: u64, control: &Control) {
    let escalate = async {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(timeout_ms)) => {
                match time_out(engine, id, timeout_ms).await {
                    // It ended just before: nothing to force.
                    Ok(false) => std::future::pending::<()>().await,
                    Ok(true) => {}
                    Err(error) => tracing::error!(%error, operation = %id, "recording a timeout failed"),
                }
                control.cancel.cancel();
            }
            () = control.force.cancelled() => {}
        }
        tokio::time::sleep(engine.force_grace).await;
    };
    tokio::select! {
        () = escalate => {}
        () = engine.shutdown.cancelled() => std::future::pending().await,
    }
}

/// Cancels operation `id`, past its timeout, the normal way, with a
/// `SYSTEM` line saying so. `false` when it was final already.
async fn time_out(engine: &Engine, id: OperationId, timeout_ms: u64) -> Result<bool> {
    let grace_ms = engine.grace_ms();
    engine
        .store
        .write(move |tx| {
            let op = operations::operation_by_id(tx.reader(), id)?;
            if op.status.is_final() {
                return Ok(false);
            }
            let line = stuck::timeout_line(&op, timeout_ms, grace_ms);
            operations::update(tx, id, cancel_in_place)?;
            logs::append(tx, Log::Operation(id), &[NewLine::system(line)])?;
            Ok(true)
        })
        .await
}

/// Waits (bounded) until the task of a force-cancelled operation returned.
pub(super) async fn wait_ended(engine: &Engine, control: &Control) {
    let bound = engine.force_grace + FORCE_END_BOUND;
    if tokio::time::timeout(bound, control.done.cancelled()).await.is_err() {
        tracing::warn!("a force-cancelled operation did not end within its bound");
    }
}

/// Ends by force a non-final operation that no task runs (a failed write
/// left it so), then wakes its service's queue. Before start-up recovery,
/// or once shutting down, it is left to recovery.
pub(super) async fn end_orphan(engine: &Arc<Engine>, op: &Operation) -> Result<()> {
    if !engine.recovered.load(Ordering::SeqCst) || engine.shutdown.is_cancelled() {
        return Ok(());
    }
    let (engine, id, svc) = (engine.clone(), op.id, op.service_id);
    // A task of its own: a client that goes away cannot stop it half-way.
    let task = engine.tasks.clone().spawn(async move {
        let ended = force_end(&engine, id, Abandoned::NoTask).await;
        engine.kick(svc);
        ended
    });
    task.await.map_err(|e| DomainError::internal(format!("forced end task failed: {e}")))?
}

/// Ends operation `id` by force, its runner already dropped: kills what it
/// started and does not serve, and what it was stopping, then records the
/// final status and what was left in one transaction. An operation that
/// is final by then (its runner's last write landed first) is left alone.
pub(super) async fn force_end(engine: &Engine, id: OperationId, abandoned: Abandoned) -> Result<()> {
    let (op, instances) = engine
        .store
        .read(move |r| {
            let op = operations::operation_by_id(r, id)?;
            let instances = resources::instances_of(r, op.service_id)?;
            Ok((op, instances))
        })
        .await?;
    if op.status.is_final() {
        return Ok(());
    }
    let victims: Vec<InstanceId> = instances
        .iter()
        .filter(|i| stuck::discards(i, id) || i.status == InstanceStatus::Stopping)
        .map(|i| i.id)
        .collect();
    engine.executor.kill(&victims).await;
    engine.store.write(move |tx| record_forced_end(tx, id, abandoned)).await
}

/// The transaction of a forced end.
fn record_forced_end(tx: &mut Tx<'_>, id: OperationId, abandoned: Abandoned) -> Result<()> {
    let op = operations::operation_by_id(tx.reader(), id)?;
    if op.status.is_final() {
        return Ok(());
    }
    let mut lines = vec![stuck::forced_end_line(&op, abandoned)];
    let mut left = Vec::new();
    for mut inst in resources::instances_of(tx.reader(), op.service_id)? {
        if stuck::discards(&inst, id) {
            lines.push(stuck::discarded_line(&inst));
            resources::remove_instance(tx, &inst)?;
            continue;
        }
        if inst.status == InstanceStatus::Stopping {
            lines.push(stuck::stopped_line(&inst));
            inst.status = InstanceStatus::Stopped;
            inst.status_since = now_millis();
            inst.pid = None;
            resources::put_instance(tx, &inst)?;
        }
        left.push(inst);
    }
    lines.push(stuck::left_line(&left));
    let rollback = stuck::abandoned_rollback(&op.steps);
    if op.status != OperationStatus::Cancelling {
        operations::update(tx, id, cancel_in_place)?;
    }
    let op = operations::update(tx, id, |op| {
        op.conclude(OperationStatus::Cancelled, rollback, StepStatus::Cancelled);
        Ok(())
    })?;
    lines.push(finished_line(op.status, rollback));
    let lines: Vec<NewLine> = lines.into_iter().map(NewLine::system).collect();
    logs::append(tx, Log::Operation(id), &lines)?;
    Ok(())
}
