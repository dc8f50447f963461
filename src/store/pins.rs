//! Pins of services: set and lifted as operations are queued (the rules
//! are `domain::pin`), and lifted by hand.

use super::access::{Result, Tx};
use super::activity::select;
use super::operations::operation_by_id;
use super::resources::{live_service, put_service};
use crate::domain::pin::{self, PinChange};
use crate::domain::{Operation, OperationSelector, OrganizationId, Service, ServiceId};

/// Applies what queueing `op` does to the pin of `svc` (read before `op`
/// was inserted); returns the log line that says so, if anything changed.
pub(super) fn change_on_queue(tx: &mut Tx<'_>, mut svc: Service, op: &Operation) -> Result<Option<String>> {
    let r = tx.reader();
    let rolled_back_to = op.redeploy_of.map(|of| operation_by_id(r, of)).transpose()?;
    let current = select(r, svc.id, OperationSelector::Current)?;
    let line = match pin::on_queue(&svc, op, rolled_back_to.as_ref(), current.as_ref()) {
        PinChange::Keep => return Ok(None),
        PinChange::Set(pin) => {
            let line = format!("pinned commit {}: {}", pin.commit, pin.reason);
            svc.pin = Some(pin);
            line
        }
        PinChange::Clear => {
            let old = svc.pin.take().map(|p| p.commit).unwrap_or_default();
            format!("pin of commit {old} lifted: a newer commit was pushed")
        }
    };
    put_service(tx, &svc)?;
    Ok(Some(line))
}

/// Lifts the pin of a live service of `org` (nothing to do without one).
pub fn unpin_commit(tx: &mut Tx<'_>, org: OrganizationId, id: ServiceId) -> Result<Service> {
    let mut svc = live_service(tx.reader(), org, id)?;
    if svc.pin.take().is_some() {
        put_service(tx, &svc)?;
    }
    Ok(svc)
}
