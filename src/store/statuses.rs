//! The status feed of an environment: every change of a running status
//! (of an instance, a service or the environment) and of a deployment
//! status (of a service or the environment), stored in the same write
//! transaction as the change that caused it, in one ordered sequence that
//! `statusChanges` replays from a cursor.
//!
//! Running statuses are derived: a service's from its instances, an
//! environment's from its live services (see [`aggregate`]). A write that
//! may change them is wrapped in a [`Watch`] that compares them before and
//! after.

use std::ops::ControlFlow;

use serde::{Deserialize, Serialize};

use super::access::{Reader, Result, Tx};
use super::events::Event;
use super::resources::{instances_of, services_of};
use super::tables::{OPERATIONS_BY_ENVIRONMENT, OPERATIONS_BY_SERVICE, STATUS_EVENTS};
use crate::domain::running::aggregate;
use crate::domain::{
    EnvironmentId, InstanceId, Millis, Operation, OperationId, OperationStatus, RunningStatusValue, Service,
    ServiceId, now_millis,
};

/// One change in the feed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusEvent {
    /// Position in the feed; clients resume after it.
    pub seq: u64,
    pub at: Millis,
    pub environment_id: EnvironmentId,
    /// Null for a change of the environment's own status.
    pub service_id: Option<ServiceId>,
    /// Set for a change of an instance's status.
    pub instance_id: Option<InstanceId>,
    pub change: StatusChange,
}

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StatusChange {
    Running {
        value: RunningStatusValue,
        previous: Option<RunningStatusValue>,
    },
    /// The status of the last operation, and which operation that is.
    Deployment {
        value: OperationStatus,
        operation_id: OperationId,
    },
}

/// The running statuses a write may change, taken before it.
pub struct Watch {
    environment_id: EnvironmentId,
    /// A service, its value before, and one of its instances with its
    /// value before (`None` when it did not exist).
    service: Option<(ServiceId, RunningStatusValue)>,
    instance: Option<(InstanceId, Option<RunningStatusValue>)>,
    environment: RunningStatusValue,
}

impl Watch {
    /// Watches an environment (a service is created or deleted in it).
    pub fn environment(r: Reader<'_>, env: EnvironmentId) -> Result<Self> {
        Ok(Self {
            environment_id: env,
            service: None,
            instance: None,
            environment: environment_value(r, env)?,
        })
    }

    /// Watches `svc`, its environment, and its instance `id` (with its
    /// value before the write; `None` for a new instance).
    pub fn instance(
        r: Reader<'_>,
        svc: &Service,
        id: InstanceId,
        before: Option<RunningStatusValue>,
    ) -> Result<Self> {
        Ok(Self {
            service: Some((svc.id, service_value(r, svc.id)?)),
            instance: Some((id, before)),
            ..Self::environment(r, svc.environment_id)?
        })
    }

    /// Records what changed since the watch began.
    pub fn record(self, tx: &mut Tx<'_>, instance_now: Option<RunningStatusValue>) -> Result<()> {
        let env = self.environment_id;
        if let (Some((svc, _)), Some((inst, before))) = (self.service, self.instance)
            && let Some(now) = instance_now.filter(|now| Some(*now) != before)
        {
            let change = StatusChange::Running { value: now, previous: before };
            record(tx, env, Some(svc), Some(inst), change)?;
        }
        if let Some((svc, before)) = self.service {
            let now = service_value(tx.reader(), svc)?;
            if now != before {
                record(
                    tx,
                    env,
                    Some(svc),
                    None,
                    StatusChange::Running { value: now, previous: Some(before) },
                )?;
            }
        }
        let now = environment_value(tx.reader(), env)?;
        if now != self.environment {
            let change = StatusChange::Running { value: now, previous: Some(self.environment) };
            record(tx, env, None, None, change)?;
        }
        Ok(())
    }
}

/// Records the deployment statuses `op` changed: those of its service and
/// environment when it is their last operation.
pub fn operation_changed(tx: &mut Tx<'_>, op: &Operation) -> Result<()> {
    let change = StatusChange::Deployment { value: op.status, operation_id: op.id };
    let r = tx.reader();
    if last_key(r, OPERATIONS_BY_SERVICE, op.service_id.0)? == Some(op.id.0) {
        record(tx, op.environment_id, Some(op.service_id), None, change)?;
    }
    if last_key(r, OPERATIONS_BY_ENVIRONMENT, op.environment_id.0)? == Some(op.id.0) {
        record(tx, op.environment_id, None, None, change)?;
    }
    Ok(())
}

/// Events of an environment after `after`, oldest first, at most `limit`.
pub fn events_after(r: Reader<'_>, env: EnvironmentId, after: u64, limit: usize) -> Result<Vec<StatusEvent>> {
    let mut out = Vec::new();
    r.scan_rows(STATUS_EVENTS, env.0, after.saturating_add(1)..=u64::MAX, false, |_, e| {
        out.push(e);
        Ok(if out.len() >= limit { ControlFlow::Break(()) } else { ControlFlow::Continue(()) })
    })?;
    Ok(out)
}

/// The cursor of the newest status event of an environment (0 when none).
pub fn last_event(r: Reader<'_>, env: EnvironmentId) -> Result<u64> {
    r.last_seq(STATUS_EVENTS, env.0)
}

/// A service's running status: from its instances.
pub fn service_value(r: Reader<'_>, svc: ServiceId) -> Result<RunningStatusValue> {
    let values: Vec<RunningStatusValue> =
        instances_of(r, svc)?.iter().map(|i| i.status.running_value()).collect();
    Ok(aggregate(&values))
}

/// An environment's running status: from its live services.
pub fn environment_value(r: Reader<'_>, env: EnvironmentId) -> Result<RunningStatusValue> {
    let values =
        services_of(r, env)?.iter().map(|svc| service_value(r, svc.id)).collect::<Result<Vec<_>>>()?;
    Ok(aggregate(&values))
}

fn record(
    tx: &mut Tx<'_>,
    env: EnvironmentId,
    service_id: Option<ServiceId>,
    instance_id: Option<InstanceId>,
    change: StatusChange,
) -> Result<()> {
    let seq = tx.next_id("status_event")?;
    let event = StatusEvent { seq, at: now_millis(), environment_id: env, service_id, instance_id, change };
    tx.put_row(STATUS_EVENTS, (env.0, seq), &event)?;
    tx.emit(Event::Status(event));
    Ok(())
}

fn last_key(
    r: Reader<'_>,
    def: redb::TableDefinition<'static, (u64, u64), ()>,
    prefix: u64,
) -> Result<Option<u64>> {
    let mut last = None;
    r.scan_index(def, prefix, 0..=u64::MAX, true, |id| {
        last = Some(id);
        Ok(ControlFlow::Break(()))
    })?;
    Ok(last)
}
