//! GitHub deliveries: what a push queues, and the record of every delivery
//! on its service.

use super::access::{Reader, Result, Tx};
use super::operations::queue;
use super::paging::{Page, PageArgs, paginate};
use super::resources::service_by_id;
use super::tables::WEBHOOK_DELIVERIES;
use crate::domain::webhook::{Delivery, DeliveryOutcome, PushDecision, PushEvent};
use crate::domain::{
    IdempotencyKey, Member, NewOperation, OperationType, Principal, ServiceId, Trigger, TriggerSource,
    now_millis,
};

/// Deliveries kept per service: the newest ones. Refused deliveries can
/// come from anyone who knows the URL, so the record must not grow
/// without bound.
pub const KEPT_DELIVERIES: u64 = 100;

/// The headers of a delivery worth keeping.
#[derive(Debug, Clone, Default)]
pub struct DeliveryMeta {
    /// `X-GitHub-Delivery`: the same on GitHub's retries of one delivery.
    pub delivery_id: Option<String>,
    /// `X-GitHub-Event`.
    pub event: Option<String>,
}

/// Records what became of a delivery to `svc`; drops the oldest beyond
/// [`KEPT_DELIVERIES`].
pub fn record(
    tx: &mut Tx<'_>,
    svc: ServiceId,
    meta: &DeliveryMeta,
    outcome: DeliveryOutcome,
    message: String,
    operation_id: Option<crate::domain::OperationId>,
) -> Result<Delivery> {
    let seq = tx.reader().last_seq(WEBHOOK_DELIVERIES, svc.0)? + 1;
    let delivery = Delivery {
        seq,
        at: now_millis(),
        delivery_id: meta.delivery_id.clone(),
        event: meta.event.clone(),
        outcome,
        message,
        operation_id,
    };
    tx.put_row(WEBHOOK_DELIVERIES, (svc.0, seq), &delivery)?;
    if let Some(old) = seq.checked_sub(KEPT_DELIVERIES) {
        tx.delete_row(WEBHOOK_DELIVERIES, (svc.0, old))?;
    }
    Ok(delivery)
}

/// Acts on a push whose signature was checked: queues a `DEPLOY` of its
/// head commit by its pusher (source `GITHUB`), or records why not. A
/// retried delivery (same `X-GitHub-Delivery`) returns the operation the
/// first one queued.
pub fn accept_push(
    tx: &mut Tx<'_>,
    svc: ServiceId,
    push: &PushEvent,
    meta: &DeliveryMeta,
) -> Result<Delivery> {
    let service = service_by_id(tx.reader(), svc)?;
    let (outcome, message, op) = match push.decide(&service)? {
        PushDecision::Deploy(commit) => {
            let author = Member { id: 0, name: push.pusher.name.clone() };
            let new = NewOperation {
                service_id: svc,
                op_type: OperationType::Deploy,
                commit: Some(commit),
                trigger: Trigger::user(author.clone(), TriggerSource::Github)?,
                target_instances: None,
                redeploy_of: None,
                idempotency_key: meta
                    .delivery_id
                    .as_ref()
                    .map(|id| IdempotencyKey::new(&format!("github-delivery:{id}"), &[&svc.to_string()]))
                    .transpose()?,
            };
            let principal = Principal { member: author, ..Principal::platform(service.organization_id) };
            let op = queue(tx, &principal, &new)?;
            let message = format!("queued {} of commit {}", op.id, op.commit.as_deref().unwrap_or_default());
            (DeliveryOutcome::Deployed, message, Some(op.id))
        }
        PushDecision::Ignore(reason) => (DeliveryOutcome::Ignored, reason, None),
        PushDecision::Skip(reason) => (DeliveryOutcome::Skipped, reason, None),
    };
    record(tx, svc, meta, outcome, message, op)
}

/// A page of a service's deliveries, newest first.
pub fn deliveries_page(r: Reader<'_>, svc: ServiceId, args: &PageArgs) -> Result<Page<Delivery>> {
    paginate(args, true, |range, rev, visit| {
        r.scan_rows(WEBHOOK_DELIVERIES, svc.0, range, rev, |seq, d: Delivery| visit(seq, d))
    })
}
