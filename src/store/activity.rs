//! Reads of the activity record: operations named by a selector, and the
//! operations of an environment over a period (reports), read through the
//! time index in queue-time order.

use std::ops::ControlFlow;

use super::access::{Reader, Result};
use super::operations::operation_by_id;
use super::resources::service;
use super::tables::*;
use crate::domain::report::{Summary, SummaryBuilder};
use crate::domain::{
    DomainError, EnvironmentId, Millis, Operation, OperationId, OperationSelector, OrganizationId, ServiceId,
};

/// The operation of `svc` that `selector` names, if there is one.
pub fn select(r: Reader<'_>, svc: ServiceId, selector: OperationSelector) -> Result<Option<Operation>> {
    let mut scan = selector.scan();
    let mut found = None;
    r.scan_index(OPERATIONS_BY_SERVICE, svc.0, 0..=u64::MAX, true, |id| {
        let op = operation_by_id(r, OperationId(id))?;
        if scan.offer(&op) {
            found = Some(op);
            return Ok(ControlFlow::Break(()));
        }
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(found)
}

/// The operation of service `svc` of `org` that `selector` names;
/// `NOT_FOUND` when the service has none.
pub fn selected(
    r: Reader<'_>,
    org: OrganizationId,
    svc: ServiceId,
    selector: OperationSelector,
) -> Result<Operation> {
    service(r, org, svc)?;
    select(r, svc, selector)?.ok_or_else(|| DomainError::NotFound {
        kind: "Operation",
        id: format!("{} of service {svc}", selector.describe()),
    })
}

/// A period `[from, to)` in milliseconds.
pub type Period = (Millis, Millis);

/// A position in the time index: `(queued_at, OperationId)`.
pub type TimeKey = (Millis, u64);

/// Calls `f` with every operation of `env` queued in `period` after
/// `after`, in queue-time order, until `f` breaks.
pub fn for_each_in_period(
    r: Reader<'_>,
    env: EnvironmentId,
    period: Period,
    after: Option<TimeKey>,
    mut f: impl FnMut(TimeKey, Operation) -> Result<ControlFlow<()>>,
) -> Result<()> {
    r.scan_time_index(env.0, period, after, |at, id| f((at, id), operation_by_id(r, OperationId(id))?))
}

/// Up to `first` operations of `env` queued in `period` after `after`, with
/// their positions, and whether more follow.
pub fn period_page(
    r: Reader<'_>,
    env: EnvironmentId,
    period: Period,
    after: Option<TimeKey>,
    first: usize,
) -> Result<(Vec<(TimeKey, Operation)>, bool)> {
    let mut rows = Vec::with_capacity(first.min(100) + 1);
    for_each_in_period(r, env, period, after, |key, op| {
        rows.push((key, op));
        Ok(if rows.len() > first { ControlFlow::Break(()) } else { ControlFlow::Continue(()) })
    })?;
    let more = rows.len() > first;
    rows.truncate(first);
    Ok((rows, more))
}

/// The summary of every operation of `env` queued in `period`.
pub fn period_summary(r: Reader<'_>, env: EnvironmentId, period: Period) -> Result<Summary> {
    let mut builder = SummaryBuilder::new(period.0, period.1);
    for_each_in_period(r, env, period, None, |_, op| {
        builder.add(&op);
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(builder.finish())
}
