//! Worker leases as stored: claims, renewals, step reports, completions
//! and the operations whose worker was lost. Each runs inside the caller's
//! write transaction, so a call and its audit record commit together, and
//! two concurrent claims are serialised by redb's single writer: no
//! operation is ever held by two workers.

use std::ops::ControlFlow;

use super::logs::{self, Log};
use super::operations::{self, operation, operation_by_id, queue_end};
use super::tables::{ENVIRONMENTS_BY_ORG, OPERATIONS_BY_STATUS, SERVICES_BY_ENVIRONMENT};
use super::{Reader, Tx, resources};
use crate::domain::operation::finished_line;
use crate::domain::worker::{self, Lease, LeaseEnd, LeaseId, WorkOutcome};
use crate::domain::{
    DomainError, Millis, NewLine, Operation, OperationStatus, OrganizationId, RollbackOutcome, ServiceId,
    StepStatus,
};

type Result<T> = std::result::Result<T, DomainError>;

/// The live services of `org` whose executor is `pool`.
fn pool_services(r: Reader<'_>, org: OrganizationId, pool: &str) -> Result<Vec<ServiceId>> {
    let mut environments = Vec::new();
    r.scan_index(ENVIRONMENTS_BY_ORG, org.0, 0..=u64::MAX, false, |env| {
        environments.push(env);
        Ok(ControlFlow::Continue(()))
    })?;
    let mut services = Vec::new();
    for env in environments {
        r.scan_index(SERVICES_BY_ENVIRONMENT, env, 0..=u64::MAX, false, |id| {
            let svc = resources::service_by_id(r, ServiceId(id))?;
            if !svc.is_deleted() && svc.spec.executor == pool {
                services.push(svc.id);
            }
            Ok(ControlFlow::Continue(()))
        })?;
    }
    Ok(services)
}

/// Calls `f` with every non-final operation, oldest first within each
/// status, until it breaks.
fn for_each_active(r: Reader<'_>, mut f: impl FnMut(Operation) -> Result<ControlFlow<()>>) -> Result<()> {
    for status in OperationStatus::ALL.into_iter().filter(|s| !s.is_final()) {
        let mut stop = false;
        r.scan_index(OPERATIONS_BY_STATUS, status.code(), 0..=u64::MAX, false, |id| {
            let flow = f(operation_by_id(r, crate::domain::OperationId(id))?)?;
            stop = flow.is_break();
            Ok(flow)
        })?;
        if stop {
            break;
        }
    }
    Ok(())
}

/// Leases the oldest claimable operation of `pool` in `org` to `worker`
/// for `lease_ms`: the head of its service's queue (operations of one
/// service run one at a time, in order), not held by another worker. A
/// worker holds one operation at a time, so a retried claim (its reply was
/// lost) gets the operation it already holds. `None`: nothing to do.
///
/// Reads the organization's services and the head of each queue of the
/// pool: O(services), whatever the length of the queues.
pub fn claim(
    tx: &mut Tx<'_>,
    org: OrganizationId,
    pool: &str,
    worker_id: &str,
    lease_ms: u64,
    now: Millis,
) -> Result<Option<Operation>> {
    let r = tx.reader();
    let mut candidate: Option<Operation> = None;
    for svc in pool_services(r, org, pool)? {
        // An operation held or claimable is always the head of its
        // service's queue: only heads need reading.
        let Some(head) = queue_end(r, svc, false)? else { continue };
        if let Some(lease) = head.lease.as_ref().filter(|l| l.is_held(now)) {
            if lease.worker_id == worker_id {
                return Ok(Some(head));
            }
            continue;
        }
        if worker::claimable(&head, now) && candidate.as_ref().is_none_or(|c| head.id < c.id) {
            candidate = Some(head);
        }
    }
    let Some(op) = candidate else { return Ok(None) };
    let attempt = op.lease.as_ref().map_or(1, |l| l.attempt + 1);
    let lease = Lease {
        attempt,
        pool: pool.to_owned(),
        worker_id: worker_id.to_owned(),
        claimed_at: now,
        expires_at: now + lease_ms as Millis,
        ended: None,
    };
    let mut lines = Vec::new();
    // Its previous worker went silent and the lease clock has not said so
    // yet: this claim does.
    if let Some(previous) = op.lease.as_ref().filter(|l| l.ended.is_none()) {
        lines.push(NewLine::system(lost_line(&op, previous)));
    }
    lines.push(NewLine::system(format!(
        "claimed by worker `{worker_id}` of pool `{pool}` ({}; renewed by any call within {lease_ms} ms)",
        lease.id(op.id)
    )));
    let op = operations::update(tx, op.id, |op| {
        op.lease = Some(lease);
        Ok(())
    })?;
    logs::append(tx, Log::Operation(op.id), &lines)?;
    Ok(Some(op))
}

/// A worker's call about the operation it holds: who calls, under which
/// lease, when, and how long a renewal lasts.
#[derive(Debug, Clone, Copy)]
pub struct Call {
    pub org: OrganizationId,
    pub lease: LeaseId,
    pub now: Millis,
    pub lease_ms: u64,
}

impl Call {
    fn renewed_until(&self) -> Millis {
        self.now + self.lease_ms as Millis
    }
}

/// The operation `id` names, in `org`, with the lease the call acts
/// under checked.
fn leased(r: Reader<'_>, org: OrganizationId, id: LeaseId, now: Millis) -> Result<Operation> {
    let op = operation(r, org, id.operation)?;
    worker::held(&op, id, now)?;
    Ok(op)
}

/// `INVALID_TRANSITION` once the operation is final: nothing is left for
/// its worker to report.
fn unfinished(op: &Operation) -> Result<()> {
    if op.status.is_final() {
        return Err(DomainError::InvalidTransition(format!(
            "operation {} is already final ({})",
            op.id,
            op.status.as_str()
        )));
    }
    Ok(())
}

/// The id of the worker that holds (or held) `op`'s lease.
fn holder(op: &Operation) -> String {
    op.lease.as_ref().map(|l| l.worker_id.clone()).unwrap_or_default()
}

/// Extends the lease by `lease_ms` from `now`. A final operation (it was
/// cancelled while queued) is returned as it is: the worker reads that it
/// has nothing left to do.
pub fn renew(tx: &mut Tx<'_>, call: Call) -> Result<Operation> {
    let op = leased(tx.reader(), call.org, call.lease, call.now)?;
    if op.status.is_final() {
        return Ok(op);
    }
    operations::update(tx, op.id, |op| {
        if let Some(lease) = &mut op.lease {
            lease.expires_at = call.renewed_until();
        }
        Ok(())
    })
}

/// Records that step `index` now has `status`, renewing the lease. The
/// first step to start moves the operation to its phase; a retried report
/// changes nothing.
pub fn report_step(
    tx: &mut Tx<'_>,
    call: Call,
    index: usize,
    status: StepStatus,
    message: Option<String>,
) -> Result<Operation> {
    let now = call.now;
    let op = leased(tx.reader(), call.org, call.lease, now)?;
    unfinished(&op)?;
    if !worker::step_report(&op, index, status)? {
        return Ok(op);
    }
    let kind = op.steps[index].kind;
    let worker_id = holder(&op);
    let mut line = match (status, &message) {
        (StepStatus::RolledBack | StepStatus::RollbackFailed, Some(text)) => {
            format!("rollback of {}: {} ({text})", kind.title(), status.word())
        }
        (StepStatus::RolledBack | StepStatus::RollbackFailed, None) => {
            format!("rollback of {}: {}", kind.title(), status.word())
        }
        (_, Some(text)) => format!("step {}: {} ({text})", kind.title(), status.word()),
        (_, None) => format!("step {}: {}", kind.title(), status.word()),
    };
    line.push_str(&format!(" [worker `{worker_id}`]"));
    let phase = kind.phase();
    let op = operations::update(tx, op.id, |op| {
        if status == StepStatus::Running && op.status != phase {
            if op.status == OperationStatus::Queued {
                op.started_at = Some(now);
            }
            op.status = phase;
        }
        op.set_step(index, status, message);
        if let Some(lease) = &mut op.lease {
            lease.expires_at = call.renewed_until();
        }
        Ok(())
    })?;
    logs::append(tx, Log::Operation(op.id), &[NewLine::system(line)])?;
    Ok(op)
}

/// Ends the operation as its worker reports. A retried completion of the
/// same lease answers with the operation as it ended. Returns whether this
/// call ended it (the caller then applies a success's lasting effect).
pub fn complete(
    tx: &mut Tx<'_>,
    org: OrganizationId,
    id: LeaseId,
    outcome: WorkOutcome,
    rollback: RollbackOutcome,
    now: Millis,
) -> Result<(Operation, bool)> {
    let op = operation(tx.reader(), org, id.operation)?;
    let completed_by_this =
        op.lease.as_ref().is_some_and(|l| l.attempt == id.attempt && l.ended == Some(LeaseEnd::Completed));
    if completed_by_this {
        return Ok((op, false));
    }
    worker::held(&op, id, now)?;
    unfinished(&op)?;
    let status = worker::final_status(&op, outcome)?;
    let interrupted =
        if status == OperationStatus::Cancelled { StepStatus::Cancelled } else { StepStatus::Failed };
    let worker_id = holder(&op);
    let op = operations::update(tx, op.id, |op| {
        if op.started_at.is_none() {
            op.started_at = Some(now);
        }
        op.conclude(status, rollback, interrupted);
        if let Some(lease) = &mut op.lease {
            lease.ended = Some(LeaseEnd::Completed);
        }
        Ok(())
    })?;
    let line = format!("{} [worker `{worker_id}`]", finished_line(op.status, rollback));
    logs::append(tx, Log::Operation(op.id), &[NewLine::system(line)])?;
    Ok((op, true))
}

/// Every non-final operation whose lease ran out by `now` without ending.
pub fn expired(r: Reader<'_>, now: Millis) -> Result<Vec<Operation>> {
    let mut found = Vec::new();
    for_each_active(r, |op| {
        if op.lease.as_ref().is_some_and(|l| l.ended.is_none() && l.expires_at <= now) {
            found.push(op);
        }
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(found)
}

/// Declares the worker holding `op`'s expired lease lost. An operation no
/// step of which started is queued again, for another worker; one that
/// had started ends in its phase's error status with rollback `FAILED`
/// (what the worker did is unknown). `None` when it changed since it was
/// found (renewed, completed).
pub fn end_lost(tx: &mut Tx<'_>, found: &Operation, now: Millis) -> Result<Option<Operation>> {
    let op = operation_by_id(tx.reader(), found.id)?;
    let Some(lease) = op.lease.clone().filter(|l| l.ended.is_none() && l.expires_at <= now) else {
        return Ok(None);
    };
    if op.status.is_final() {
        return Ok(None);
    }
    let started = op.status != OperationStatus::Queued;
    let line = lost_line(&op, &lease);
    let op = operations::update(tx, op.id, |op| {
        if started {
            op.conclude(op.status.failed(), RollbackOutcome::Failed, StepStatus::Failed);
        }
        if let Some(lease) = &mut op.lease {
            lease.ended = Some(LeaseEnd::Lost);
        }
        Ok(())
    })?;
    let mut lines = vec![NewLine::system(line)];
    if started {
        lines.push(NewLine::system(finished_line(op.status, op.rollback)));
    }
    logs::append(tx, Log::Operation(op.id), &lines)?;
    Ok(Some(op))
}

/// The `SYSTEM` line of a worker declared lost while holding `op`.
fn lost_line(op: &Operation, lease: &Lease) -> String {
    let id = lease.id(op.id);
    if op.status == OperationStatus::Queued {
        return format!(
            "worker `{}` was lost before its first step: {id} was not renewed in time; queued again for pool `{}`",
            lease.worker_id, lease.pool
        );
    }
    let step = op.steps.iter().find(|s| s.status == StepStatus::Running).map_or("none", |s| s.kind.title());
    format!(
        "worker `{}` was lost: {id} was not renewed in time (running step: {step}); the operation ends here and \
         whatever the worker did stays as it left it (rollback unknown)",
        lease.worker_id
    )
}

/// The operations `worker_id` of `org` holds now that are being cancelled.
pub fn cancelling_held(
    r: Reader<'_>,
    org: OrganizationId,
    worker_id: &str,
    now: Millis,
) -> Result<Vec<Operation>> {
    let mut found = Vec::new();
    r.scan_index(OPERATIONS_BY_STATUS, OperationStatus::Cancelling.code(), 0..=u64::MAX, false, |id| {
        let op = operation_by_id(r, crate::domain::OperationId(id))?;
        let mine = op.lease.as_ref().is_some_and(|l| l.is_held(now) && l.worker_id == worker_id);
        if op.organization_id == org && mine {
            found.push(op);
        }
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(found)
}
