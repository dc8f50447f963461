//! Operations, their queue per service and their event feed.

use std::ops::ControlFlow;

use super::access::{Reader, Result, Tx};
use super::events::{Event, OperationEvent, OperationEventKind};
use super::logs::{self, Log};
use super::paging::{Page, PageArgs, paginate};
use super::resources::{environment, live_service};
use super::statuses;
use super::tables::*;
use crate::domain::plan::plan;
use crate::domain::{
    DomainError, NewLine, NewOperation, Operation, OperationFilter, OperationId, OperationStatus,
    OperationType, OrganizationId, Principal, RollbackOutcome, Service, ServiceId, ServiceKind, Step,
    StepStatus, now_millis,
};

/// Queues an operation, or returns the one an idempotency key already made.
/// A roll back pins the commit it rolls away from, and a push of another
/// commit lifts the pin (see `domain::pin`), in the same transaction.
pub fn queue(tx: &mut Tx<'_>, principal: &Principal, new: &NewOperation) -> Result<Operation> {
    let org = principal.organization_id;
    let r = tx.reader();
    if let Some(key) = &new.idempotency_key
        && let Some(first) = super::idempotency::replay(r, org, key, now_millis())?
    {
        return Ok(first);
    }
    let svc = live_service(r, org, new.service_id)?;
    // Nothing can be queued behind a delete, so one can only be the last.
    if let Some(delete) = queue_end(r, svc.id, true)?.filter(|o| o.op_type == OperationType::Delete) {
        return Err(DomainError::Conflict(format!(
            "service {} is being deleted by operation {}",
            svc.id, delete.id
        )));
    }
    let env = environment(r, org, svc.environment_id)?;
    let id = OperationId(tx.next_id("operation")?);
    let op = new_row(id, &svc, env.name.as_str(), new)?;
    insert_operation(tx, &op)?;
    if let Some(key) = &new.idempotency_key {
        super::idempotency::remember(tx, org, key, &op)?;
    }
    let mut lines = vec![NewLine::system(queued_line(&op))];
    lines.extend(super::pins::change_on_queue(tx, svc, &op)?.map(NewLine::system));
    logs::append(tx, Log::Operation(id), &lines)?;
    record_event(tx, &op, OperationEventKind::Queued, None)?;
    Ok(op)
}

/// The row of a new operation `id` on `svc`, as `new` asks.
fn new_row(id: OperationId, svc: &Service, environment_name: &str, new: &NewOperation) -> Result<Operation> {
    Ok(Operation {
        id,
        organization_id: svc.organization_id,
        environment_id: svc.environment_id,
        service_id: svc.id,
        op_type: new.op_type,
        status: OperationStatus::Queued,
        commit: commit_of(svc, new)?,
        previous_commit: svc.current_commit.clone(),
        trigger: new.trigger.clone(),
        service_name: svc.name.as_str().to_owned(),
        environment_name: environment_name.to_owned(),
        service_kind: svc.kind,
        queued_at: now_millis(),
        started_at: None,
        finished_at: None,
        steps: plan(new.op_type, svc.kind, scales_down(svc, new)?).into_iter().map(Step::planned).collect(),
        rollback: RollbackOutcome::NotNeeded,
        target_instances: new.target_instances,
        redeploy_of: new.redeploy_of,
        idempotency_key: new.idempotency_key.as_ref().map(|k| k.key.clone()),
        lease: None,
    })
}

/// The commit a new operation records: the one a deploy deploys, else the
/// one the service runs (which a redeploy needs).
fn commit_of(svc: &Service, new: &NewOperation) -> Result<Option<String>> {
    match new.op_type {
        OperationType::Deploy => Ok(Some(
            new.commit
                .clone()
                .ok_or_else(|| DomainError::bad_input("commit", "a deploy needs the commit to deploy"))?,
        )),
        OperationType::Redeploy => Ok(Some(svc.current_commit.clone().ok_or_else(|| {
            DomainError::Conflict(format!(
                "service {} has never been deployed: deploy a commit first",
                svc.id
            ))
        })?)),
        _ => Ok(svc.current_commit.clone()),
    }
}

/// Whether a `SCALE` lowers the instance count (checked against the kind).
fn scales_down(svc: &Service, new: &NewOperation) -> Result<bool> {
    match (new.op_type, new.target_instances) {
        (OperationType::Scale, Some(n)) => {
            if svc.kind == ServiceKind::Database && n > 1 {
                return Err(DomainError::bad_input(
                    "instances",
                    "a DATABASE owns a data directory that only one instance may hold: at most 1",
                ));
            }
            Ok(n < svc.spec.instances)
        }
        (OperationType::Scale, None) => {
            Err(DomainError::bad_input("instances", "a scale needs an instance count"))
        }
        _ => Ok(false),
    }
}

/// Writes a new operation row and every index of it. Also how benchmarks
/// seed large histories: whatever `op` holds is stored as it is.
pub fn insert_operation(tx: &mut Tx<'_>, op: &Operation) -> Result<()> {
    let id = op.id.0;
    tx.put(OPERATIONS, id, op)?;
    tx.index(OPERATIONS_BY_ORG, (op.organization_id.0, id))?;
    tx.index(OPERATIONS_BY_ENVIRONMENT, (op.environment_id.0, id))?;
    tx.index_time((op.environment_id.0, op.queued_at, id))?;
    tx.index(OPERATIONS_BY_SERVICE, (op.service_id.0, id))?;
    tx.index(OPERATIONS_BY_STATUS, (op.status.code(), id))?;
    if !op.status.is_final() {
        tx.index(ACTIVE_OPERATIONS_BY_SERVICE, (op.service_id.0, id))?;
    }
    Ok(())
}

/// The first line of an operation's log: what was queued, for whom.
fn queued_line(op: &Operation) -> String {
    let source = op.trigger.source.as_str();
    let by = match (&op.trigger.author, op.trigger.reason) {
        (Some(author), _) => format!("{} via {source}", author.name),
        (None, Some(reason)) => format!("the platform ({})", reason.as_str()),
        (None, None) => format!("the platform via {source}"),
    };
    let what = match &op.commit {
        Some(commit) => format!("{} of commit {commit}", op.op_type.as_str()),
        None => op.op_type.as_str().to_owned(),
    };
    format!("queued {what}, asked by {by}")
}

/// The operation, if it belongs to `org`.
pub fn operation(r: Reader<'_>, org: OrganizationId, id: OperationId) -> Result<Operation> {
    r.get::<Operation>(OPERATIONS, id.0)?
        .filter(|o| o.organization_id == org)
        .ok_or_else(|| DomainError::not_found("Operation", id))
}

/// The operation by id alone, for the engine.
pub fn operation_by_id(r: Reader<'_>, id: OperationId) -> Result<Operation> {
    r.get::<Operation>(OPERATIONS, id.0)?.ok_or_else(|| DomainError::not_found("Operation", id))
}

/// Operations of `org` matching `filter`, newest first, read through the
/// most selective index the filter allows.
pub fn operations_page(
    r: Reader<'_>,
    org: OrganizationId,
    filter: &OperationFilter,
    args: &PageArgs,
) -> Result<Page<Operation>> {
    let (index, prefix) = if let Some(svc) = filter.service_id {
        (OPERATIONS_BY_SERVICE, svc.0)
    } else if let Some(env) = filter.environment_id {
        (OPERATIONS_BY_ENVIRONMENT, env.0)
    } else {
        (OPERATIONS_BY_ORG, org.0)
    };
    paginate(args, true, |range, rev, visit| {
        r.scan_index(index, prefix, range, rev, |id| match r.get::<Operation>(OPERATIONS, id)? {
            Some(op) if op.organization_id == org && filter.matches(&op) => visit(id, op),
            _ => Ok(ControlFlow::Continue(())),
        })
    })
}

/// The last operation of a service (for its deployment status).
pub fn last_of_service(r: Reader<'_>, svc: ServiceId) -> Result<Option<Operation>> {
    let mut last = None;
    r.scan_index(OPERATIONS_BY_SERVICE, svc.0, 0..=u64::MAX, true, |id| {
        last = r.get(OPERATIONS, id)?;
        Ok(ControlFlow::Break(()))
    })?;
    Ok(last)
}

/// The last operation in an environment.
pub fn last_of_environment(r: Reader<'_>, env: crate::domain::EnvironmentId) -> Result<Option<Operation>> {
    let mut last = None;
    r.scan_index(OPERATIONS_BY_ENVIRONMENT, env.0, 0..=u64::MAX, true, |id| {
        last = r.get(OPERATIONS, id)?;
        Ok(ControlFlow::Break(()))
    })?;
    Ok(last)
}

/// The oldest non-final operation of a service (the head of its queue), or
/// with `last` the newest one.
pub fn queue_end(r: Reader<'_>, svc: ServiceId, last: bool) -> Result<Option<Operation>> {
    let mut found = None;
    r.scan_index(ACTIVE_OPERATIONS_BY_SERVICE, svc.0, 0..=u64::MAX, last, |id| {
        found = Some(operation_by_id(r, OperationId(id))?);
        Ok(ControlFlow::Break(()))
    })?;
    Ok(found)
}

/// Every non-final operation, oldest first (for start-up recovery).
pub fn all_active(r: Reader<'_>) -> Result<Vec<Operation>> {
    let mut ids = Vec::new();
    for status in OperationStatus::ALL.into_iter().filter(|s| !s.is_final()) {
        r.scan_index(OPERATIONS_BY_STATUS, status.code(), 0..=u64::MAX, false, |id| {
            ids.push(id);
            Ok(ControlFlow::Continue(()))
        })?;
    }
    ids.sort_unstable();
    ids.into_iter().map(|id| operation_by_id(r, OperationId(id))).collect()
}

/// How many operations (of every organization) have each status, from the
/// status index. Reads every entry: O(operations), for `/metrics` scrapes
/// only.
pub fn count_by_status(r: Reader<'_>) -> Result<Vec<(OperationStatus, u64)>> {
    let mut counts = Vec::with_capacity(OperationStatus::ALL.len());
    for status in OperationStatus::ALL {
        let mut n = 0;
        r.scan_index(OPERATIONS_BY_STATUS, status.code(), 0..=u64::MAX, false, |_| {
            n += 1;
            Ok(ControlFlow::Continue(()))
        })?;
        counts.push((status, n));
    }
    Ok(counts)
}

/// Changes an operation with `change`, keeping its indexes and the event
/// feed in step. A status change must be allowed by the status machine,
/// and a final operation never changes again: `INVALID_TRANSITION`, before
/// anything is written.
pub fn update(
    tx: &mut Tx<'_>,
    id: OperationId,
    change: impl FnOnce(&mut Operation) -> Result<()>,
) -> Result<Operation> {
    let mut op = operation_by_id(tx.reader(), id)?;
    let before = op.status;
    let steps_before: Vec<StepStatus> = op.steps.iter().map(|s| s.status).collect();
    change(&mut op)?;
    if before.is_final() {
        return Err(DomainError::InvalidTransition(format!(
            "operation {id} is already final ({}) and never changes again",
            before.as_str()
        )));
    }
    if op.status != before {
        before.transition(op.status)?;
        tx.unindex(OPERATIONS_BY_STATUS, (before.code(), id.0))?;
        tx.index(OPERATIONS_BY_STATUS, (op.status.code(), id.0))?;
        if op.status.is_final() {
            tx.unindex(ACTIVE_OPERATIONS_BY_SERVICE, (op.service_id.0, id.0))?;
        }
    }
    tx.put(OPERATIONS, id.0, &op)?;
    let changed_step = op
        .steps
        .iter()
        .zip(&steps_before)
        .rev()
        .find(|(step, old)| step.status != **old)
        .map(|(step, _)| (step.kind, step.status));
    if op.status != before {
        record_event(tx, &op, OperationEventKind::StatusChanged, changed_step)?;
    } else if changed_step.is_some() {
        record_event(tx, &op, OperationEventKind::StepChanged, changed_step)?;
    }
    Ok(op)
}

fn record_event(
    tx: &mut Tx<'_>,
    op: &Operation,
    kind: OperationEventKind,
    step: Option<(crate::domain::StepKind, StepStatus)>,
) -> Result<()> {
    let seq = tx.next_id("operation_event")?;
    let event = OperationEvent {
        seq,
        at: now_millis(),
        environment_id: op.environment_id,
        service_id: op.service_id,
        operation_id: op.id,
        kind,
        status: op.status,
        step,
    };
    tx.put_row(OPERATION_EVENTS, (op.environment_id.0, seq), &event)?;
    tx.emit(Event::Operation(event));
    if kind != OperationEventKind::StepChanged {
        statuses::operation_changed(tx, op)?;
    }
    Ok(())
}

/// The cursor of the newest event of an environment (0 when none).
pub fn last_event(r: Reader<'_>, env: crate::domain::EnvironmentId) -> Result<u64> {
    r.last_seq(OPERATION_EVENTS, env.0)
}

/// Events of an environment after `after`, oldest first, at most `limit`.
pub fn events_after(
    r: Reader<'_>,
    env: crate::domain::EnvironmentId,
    after: u64,
    limit: usize,
) -> Result<Vec<OperationEvent>> {
    let mut out = Vec::new();
    r.scan_rows(OPERATION_EVENTS, env.0, after.saturating_add(1)..=u64::MAX, false, |_, e| {
        out.push(e);
        Ok(if out.len() >= limit { ControlFlow::Break(()) } else { ControlFlow::Continue(()) })
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::resource::NewService;
    use crate::domain::{Member, Name, ServiceSpec, Trigger, TriggerSource};
    use crate::store::{Store, resources};

    /// A store holding one final operation.
    async fn store_with_a_final_operation() -> (tempfile::TempDir, Store, OperationId) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.redb")).unwrap();
        let id = store
            .write(|tx| {
                let org = resources::ensure_first_organization(tx, "default")?;
                let env = resources::create_environment(tx, org.id, Name::parse("name", "prod")?, 30)?;
                let new = NewService {
                    environment_id: env.id,
                    name: Name::parse("name", "api")?,
                    kind: ServiceKind::Job,
                    spec: ServiceSpec::default(),
                    branch: "main".into(),
                    webhook_secret: None,
                };
                let svc = resources::create_service(tx, org.id, &new)?;
                let member = Member { id: 1, name: "ada".into() };
                let principal = Principal { member: member.clone(), ..Principal::platform(org.id) };
                let new = NewOperation {
                    service_id: svc.id,
                    op_type: OperationType::Restart,
                    commit: None,
                    trigger: Trigger::user(member, TriggerSource::Api)?,
                    target_instances: None,
                    redeploy_of: None,
                    idempotency_key: None,
                };
                let op = queue(tx, &principal, &new)?;
                update(tx, op.id, |op| {
                    op.status = OperationStatus::Cancelled;
                    Ok(())
                })?;
                Ok(op.id)
            })
            .await
            .unwrap();
        (dir, store, id)
    }

    #[tokio::test]
    async fn a_final_operation_refuses_every_change_and_drops_late_engine_lines() {
        let (_dir, store, id) = store_with_a_final_operation().await;
        let before = store.read(move |r| logs::head(r, Log::Operation(id))).await.unwrap();
        let err = store
            .write(move |tx| {
                update(tx, id, |op| {
                    op.steps[0].status = StepStatus::Running;
                    Ok(())
                })
            })
            .await
            .unwrap_err();
        assert_eq!(err.code().as_str(), "INVALID_TRANSITION");
        assert!(err.to_string().contains("never changes again"), "{err}");
        let late = vec![NewLine::system("late output")];
        let stored = store.write(move |tx| logs::append_while_open(tx, id, &late)).await.unwrap();
        assert!(!stored);
        let (op, head) = store
            .read(move |r| Ok((operation_by_id(r, id)?, logs::head(r, Log::Operation(id))?)))
            .await
            .unwrap();
        assert_eq!(head, before, "no line was added");
        assert!(op.steps.iter().all(|s| s.status == StepStatus::Pending), "the steps did not change");
    }
}
