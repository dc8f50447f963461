//! Runs one operation step by step, rolls back on failure or cancel, and
//! records every step and status change with a `SYSTEM` log line.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::Engine;
use super::local::{Run, Undo};
use super::stuck::{Control, force_end, watchdog};
use crate::domain::operation::finished_line;
use crate::domain::{
    DomainError, NewLine, Operation, OperationId, OperationStatus, OperationType, RollbackOutcome, Service,
    StepStatus, now_millis, stuck,
};
use crate::store::logs::{self, Log};
use crate::store::{operations, resources};

type Result<T> = std::result::Result<T, DomainError>;

/// How the steps ended.
enum Ending {
    Succeeded,
    Failed,
    Cancelled,
    /// The server is shutting down: leave the operation as it is for
    /// start-up recovery.
    Abandoned,
}

/// Runs `op` (queued) to a final status.
pub async fn run(engine: &Arc<Engine>, op: Operation) {
    let id = op.id;
    let control = Arc::new(Control::new(engine.shutdown.child_token()));
    engine.running.lock().expect("running map").insert(id, control.clone());
    if let Err(error) = run_watched(engine, op, &control).await {
        tracing::error!(%error, operation = %id, "running an operation failed");
    }
    engine.running.lock().expect("running map").remove(&id);
    control.done.cancel();
}

/// Runs `op` beside its watchdog. When the watchdog fires first (the
/// grace after a timeout or a forced cancel ran out), the runner is
/// dropped where it is and the operation is ended by force.
async fn run_watched(engine: &Arc<Engine>, op: Operation, control: &Control) -> Result<()> {
    let svc_id = op.service_id;
    let svc = engine.store.read(move |r| resources::service_by_id(r, svc_id)).await?;
    // Read when the operation starts: a later change of the service's
    // timeout applies to its next operations.
    let timeout_ms = stuck::timeout_ms(op.op_type, &svc.spec);
    let id = op.id;
    tokio::select! {
        ended = run_registered(engine, op, svc, timeout_ms, control) => ended,
        () = watchdog(engine, id, timeout_ms, control) => {
            force_end(engine, id, control.abandoned(engine.grace_ms())).await
        }
    }
}

async fn run_registered(
    engine: &Arc<Engine>,
    op: Operation,
    svc: Service,
    timeout_ms: u64,
    control: &Control,
) -> Result<()> {
    let first_phase = op.steps.first().map_or(OperationStatus::Deploying, |s| s.kind.phase());
    let line = format!(
        "started: {} steps planned; status {}; times out after {timeout_ms} ms",
        op.steps.len(),
        first_phase.as_str()
    );
    let started = change(engine, op.id, line, move |op| {
        if op.status != OperationStatus::Queued {
            return Err(DomainError::Conflict("no longer queued".into()));
        }
        op.status = first_phase;
        op.started_at = Some(now_millis());
        Ok(())
    })
    .await;
    let op = match started {
        Ok(op) => op,
        // Cancelled while it waited: already final, nothing to run.
        Err(DomainError::Conflict(_)) => return Ok(()),
        Err(e) => return Err(e),
    };
    let svc_id = op.service_id;
    let instances = engine.store.read(move |r| resources::instances_of(r, svc_id)).await?;
    let old = instances.into_iter().filter(|i| i.current).collect();
    let mut run = Run { op, svc, old, new: Vec::new(), stopped: Vec::new(), downtime_from: None };
    let (ending, touched) = run_steps(engine, &mut run, &control.cancel).await?;
    match ending {
        Ending::Abandoned => Ok(()),
        Ending::Succeeded => {
            match finish(engine, &run, OperationStatus::DeploymentOk, RollbackOutcome::NotNeeded).await {
                // A cancel that lands after the last step: undo it all.
                Err(DomainError::InvalidTransition(_)) => {
                    undo_and_finish(engine, &mut run, touched, true, control).await
                }
                other => other,
            }
        }
        Ending::Failed => undo_and_finish(engine, &mut run, touched, false, control).await,
        Ending::Cancelled => undo_and_finish(engine, &mut run, touched, true, control).await,
    }
}

/// Runs the planned steps; returns how they ended and the steps that did
/// something, in order: the completed ones and the one that failed or was
/// cancelled (it may have done part of its work, so it is undone too).
async fn run_steps(
    engine: &Arc<Engine>,
    run: &mut Run,
    token: &CancellationToken,
) -> Result<(Ending, Vec<usize>)> {
    let mut touched = Vec::new();
    for index in 0..run.op.steps.len() {
        let kind = run.op.steps[index].kind;
        if token.is_cancelled() {
            return Ok((interrupted(engine), touched));
        }
        let phase = kind.phase();
        let line = if run.op.status == phase {
            format!("step {}: started", kind.title())
        } else {
            format!("step {}: started; status {}", kind.title(), phase.as_str())
        };
        run.op = change(engine, run.op.id, line, move |op| {
            if op.status == OperationStatus::Cancelling {
                return Ok(());
            }
            if op.status != phase {
                op.status = phase;
            }
            op.set_step(index, StepStatus::Running, None);
            Ok(())
        })
        .await?;
        if run.op.status == OperationStatus::Cancelling {
            return Ok((Ending::Cancelled, touched));
        }
        let outcome = tokio::select! {
            outcome = engine.executor.run_step(run, kind) => Some(outcome),
            () = token.cancelled() => None,
        };
        let (status, text, ending) = match outcome {
            Some(Ok(summary)) => (StepStatus::Succeeded, summary, None),
            Some(Err(reason)) => (StepStatus::Failed, reason, Some(Ending::Failed)),
            None => match interrupted(engine) {
                Ending::Abandoned => return Ok((Ending::Abandoned, touched)),
                ending => (StepStatus::Cancelled, "stopped by the cancel".to_owned(), Some(ending)),
            },
        };
        let line = format!("step {}: {} ({text})", kind.title(), status.word());
        run.op = change(engine, run.op.id, line, move |op| {
            op.set_step(index, status, Some(text.clone()));
            Ok(())
        })
        .await?;
        touched.push(index);
        if let Some(ending) = ending {
            return Ok((ending, touched));
        }
    }
    Ok((Ending::Succeeded, touched))
}

fn interrupted(engine: &Engine) -> Ending {
    if engine.shutdown.is_cancelled() { Ending::Abandoned } else { Ending::Cancelled }
}

/// Undoes the completed steps in reverse order, then records the final
/// status with the rollback outcome.
async fn undo_and_finish(
    engine: &Arc<Engine>,
    run: &mut Run,
    touched: Vec<usize>,
    cancelled: bool,
    control: &Control,
) -> Result<()> {
    if !touched.is_empty() {
        log(engine, run.op.id, format!("rolling back {} step(s)", touched.len())).await?;
    }
    let mut outcome = RollbackOutcome::NotNeeded;
    for index in touched.into_iter().rev() {
        let kind = run.op.steps[index].kind;
        // The step that failed or was cancelled keeps that status; the
        // rollback of what it did is in the log.
        let interrupted = matches!(run.op.steps[index].status, StepStatus::Failed | StepStatus::Cancelled);
        control.undoing(index);
        let (status, text) = match engine.executor.undo_step(run, kind).await {
            Undo::Nothing => continue,
            Undo::Irreversible(text) => {
                log(engine, run.op.id, format!("rollback of {}: {text}", kind.title())).await?;
                continue;
            }
            Undo::Undone(text) => {
                if outcome != RollbackOutcome::Failed {
                    outcome = RollbackOutcome::Succeeded;
                }
                (StepStatus::RolledBack, text)
            }
            Undo::Failed(text) => {
                outcome = RollbackOutcome::Failed;
                (StepStatus::RollbackFailed, text)
            }
        };
        let line = format!("rollback of {}: {} ({text})", kind.title(), status.word());
        if interrupted {
            log(engine, run.op.id, line).await?;
            continue;
        }
        run.op = change(engine, run.op.id, line, move |op| {
            op.set_step(index, status, Some(text.clone()));
            Ok(())
        })
        .await?;
    }
    let status = if cancelled {
        OperationStatus::Cancelled
    } else {
        let current = run.op.status;
        if current == OperationStatus::Cancelling { OperationStatus::Cancelled } else { current.failed() }
    };
    finish(engine, run, status, outcome).await
}

/// Writes the final status, skips the steps that never ran, and applies the
/// operation's lasting effect on its service — in one transaction.
async fn finish(
    engine: &Arc<Engine>,
    run: &Run,
    status: OperationStatus,
    rollback: RollbackOutcome,
) -> Result<()> {
    let line = finished_line(status, rollback);
    let id = run.op.id;
    engine
        .store
        .write(move |tx| {
            let op = operations::update(tx, id, |op| {
                // A cancel may land while the last step or the rollback ran.
                let status = match (op.status, status) {
                    (OperationStatus::Cancelling, OperationStatus::DeploymentOk) => {
                        return Err(DomainError::InvalidTransition("cancelled after the last step".into()));
                    }
                    (OperationStatus::Cancelling, _) => OperationStatus::Cancelled,
                    _ => status,
                };
                op.conclude(status, rollback, StepStatus::Skipped);
                Ok(())
            })?;
            if op.status == OperationStatus::DeploymentOk {
                apply_effect(tx, &op)?;
            }
            logs::append(tx, Log::Operation(id), &[NewLine::system(line.clone())])?;
            Ok(())
        })
        .await
}

/// What a successful operation changes on its service for good.
pub(super) fn apply_effect(tx: &mut crate::store::Tx<'_>, op: &Operation) -> Result<()> {
    let mut svc = resources::service_by_id(tx.reader(), op.service_id)?;
    match op.op_type {
        OperationType::Deploy | OperationType::Redeploy => svc.current_commit.clone_from(&op.commit),
        OperationType::Scale => svc.spec.instances = op.target_instances.unwrap_or(svc.spec.instances),
        OperationType::Delete => svc.deleted_at = Some(now_millis()),
        OperationType::Restart | OperationType::Stop | OperationType::Start => return Ok(()),
    }
    resources::put_service(tx, &svc)
}

/// Changes the operation and writes `line` to its log in one transaction.
async fn change(
    engine: &Arc<Engine>,
    id: OperationId,
    line: String,
    mut change: impl FnMut(&mut Operation) -> Result<()> + Send + 'static,
) -> Result<Operation> {
    engine
        .store
        .write(move |tx| {
            let op = operations::update(tx, id, &mut change)?;
            logs::append(tx, Log::Operation(id), &[NewLine::system(line.clone())])?;
            Ok(op)
        })
        .await
}

async fn log(engine: &Arc<Engine>, id: OperationId, line: String) -> Result<()> {
    engine
        .store
        .write(move |tx| logs::append(tx, Log::Operation(id), &[NewLine::system(line.clone())]).map(drop))
        .await
}
