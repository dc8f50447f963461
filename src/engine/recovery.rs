//! Start-up recovery: what a previous process left behind is ended,
//! recorded and cleaned up before the server reports ready.

use std::collections::BTreeSet;
use std::sync::Arc;

use anyhow::Context;

use super::Engine;
use crate::domain::{
    Instance, InstanceStatus, NewLine, NewOperation, Operation, OperationStatus, OperationType,
    PlatformReason, Principal, RollbackOutcome, ServiceId, Step, StepKind, StepStatus, Trigger, now_millis,
};
use crate::store::logs::{self, Log};
use crate::store::{operations, resources};

/// The line written to every operation a restart interrupted.
pub const INTERRUPTED: &str = "interrupted: the opsgraph server stopped while this operation was running";

pub async fn recover(engine: &Arc<Engine>) -> anyhow::Result<()> {
    let store = engine.store.clone();
    let (active, instances) = store
        .read(|r| Ok((operations::all_active(r)?, resources::all_instances(r)?)))
        .await
        .context("reading what the previous run left")?;

    // Processes of a previous run outlive it only if it was killed; they
    // are recognised by their mark and stopped, so none is left behind.
    let orphans = engine.executor.kill_orphans();
    if orphans > 0 {
        tracing::warn!(orphans, "stopped processes left behind by the previous run");
    }
    let interrupted: Vec<Operation> =
        active.iter().filter(|o| o.status != OperationStatus::Queued && o.lease.is_none()).cloned().collect();
    // Services to bring back: those serving when the previous run ended,
    // and those whose interrupted operation had already stopped the old
    // instances (a database between stop and start) — unless the operation
    // was meant to stop or delete the service.
    let mut was_serving: BTreeSet<ServiceId> =
        instances.iter().filter(|i| i.current && i.status.is_live()).map(|i| i.service_id).collect();
    for op in &interrupted {
        match op.op_type {
            OperationType::Stop | OperationType::Delete => {
                was_serving.remove(&op.service_id);
            }
            _ if touched(op, StepKind::StopOldInstances) => {
                was_serving.insert(op.service_id);
            }
            _ => {}
        }
    }
    let count = interrupted.len();
    store
        .write(move |tx| {
            for inst in &instances {
                settle_instance(tx, inst, &interrupted)?;
            }
            for op in &interrupted {
                end_interrupted(tx, op)?;
            }
            Ok(())
        })
        .await
        .context("recording interrupted operations")?;
    if count > 0 {
        tracing::warn!(count, "ended operations interrupted by the previous shutdown");
    }

    // Services that were serving come back: the platform starts them again.
    for svc in was_serving {
        let org = store.read(move |r| resources::service_by_id(r, svc)).await?;
        if org.is_deleted() {
            continue;
        }
        let principal = Principal::platform(org.organization_id);
        let new = NewOperation {
            service_id: svc,
            op_type: OperationType::Start,
            commit: None,
            trigger: Trigger::platform(PlatformReason::Maintenance),
            target_instances: None,
            redeploy_of: None,
            idempotency_key: None,
        };
        if let Err(error) = engine.submit(&principal, new, None).await {
            tracing::warn!(%error, service = %svc, "could not queue the start of a service after restart");
        }
    }
    // From here on, kicks run queues; then wake every queue that holds
    // work, including what was queued while recovery ran.
    engine.recovered.store(true, std::sync::atomic::Ordering::SeqCst);
    let queued: BTreeSet<ServiceId> = store
        .read(|r| Ok(operations::all_active(r)?.into_iter().map(|o| o.service_id).collect()))
        .await
        .context("reading the queues")?;
    for svc in queued {
        engine.kick(svc);
    }
    Ok(())
}

/// A live instance of the previous run is stopped now; one that an
/// interrupted operation had started but not yet switched to is discarded.
fn settle_instance(
    tx: &mut crate::store::Tx<'_>,
    inst: &Instance,
    interrupted: &[Operation],
) -> crate::store::TxResult<()> {
    let started_by_interrupted = interrupted.iter().any(|o| o.id == inst.operation_id);
    if started_by_interrupted && !inst.current {
        return resources::remove_instance(tx, inst);
    }
    if inst.status.is_live() {
        let mut inst = inst.clone();
        inst.status = InstanceStatus::Stopped;
        inst.status_since = now_millis();
        inst.pid = None;
        resources::put_instance(tx, &inst)?;
        let line = format!("instance {} stopped: the opsgraph server restarted", inst.id);
        logs::append(tx, Log::Service(inst.service_id), &[NewLine::system(line).of_instance(inst.id)])?;
    }
    Ok(())
}

/// Whether a step had started (it may have done part of its work) or
/// completed.
fn step_touched(step: &Step) -> bool {
    matches!(step.status, StepStatus::Running | StepStatus::Succeeded)
}

/// Whether the step `kind` of `op` was touched.
fn touched(op: &Operation, kind: StepKind) -> bool {
    op.steps.iter().any(|s| s.kind == kind && step_touched(s))
}

/// Ends an operation a restart interrupted, with a final error status, the
/// interrupted line and its rollback outcome: the new instances it started
/// are discarded, so nothing changed — unless it had already stopped,
/// switched or removed instances, which recovery cannot undo.
fn end_interrupted(tx: &mut crate::store::Tx<'_>, op: &Operation) -> crate::store::TxResult<()> {
    // Building, releasing and checking health leave nothing to discard.
    let any_started = op.steps.iter().any(|s| {
        step_touched(s) && !matches!(s.kind, StepKind::Build | StepKind::Release | StepKind::HealthCheck)
    });
    let changed_instances = [
        StepKind::StopOldInstances,
        StepKind::HandOverData,
        StepKind::Switch,
        StepKind::StopInstances,
        StepKind::RemoveService,
    ]
    .into_iter()
    .any(|kind| touched(op, kind));
    let rollback = if !any_started {
        RollbackOutcome::NotNeeded
    } else if changed_instances {
        RollbackOutcome::Failed
    } else {
        RollbackOutcome::Succeeded
    };
    let status = op.status.failed();
    operations::update(tx, op.id, |op| {
        op.conclude(status, rollback, StepStatus::Cancelled);
        Ok(())
    })?;
    let detail = match rollback {
        RollbackOutcome::NotNeeded => "no step had completed: nothing to undo".to_owned(),
        RollbackOutcome::Succeeded => {
            "the new instances it started were discarded; the service keeps its previous instances".to_owned()
        }
        RollbackOutcome::Failed => {
            "it had already stopped, switched or removed instances; that could not be undone".to_owned()
        }
    };
    let lines = [
        NewLine::system(INTERRUPTED),
        NewLine::system(format!("finished: {} (rollback {}: {detail})", status.as_str(), rollback.as_str())),
    ];
    logs::append(tx, Log::Operation(op.id), &lines)?;
    Ok(())
}
