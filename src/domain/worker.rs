//! Outside deployment machinery: the executor a service names, the leases
//! workers hold on the operations they run, and the rules every worker
//! call is checked against.
//!
//! A claim leaves the operation `QUEUED`: nothing has run yet, so a worker
//! lost before its first step gives the operation back to the pool
//! untouched. The first `startStep` moves it to the step's phase, exactly
//! as the local executor does.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{DomainError, Millis, Name, Operation, OperationId, OperationStatus, StepStatus};

/// The executor of services run by opsgraph itself.
pub const LOCAL: &str = "local";

/// Checks the executor a service names: `local` or a worker pool's name
/// (1 to 63 letters, digits, `-`, `_` or `.`).
pub fn executor(raw: &str) -> Result<String, DomainError> {
    Ok(Name::parse("executor", raw)?.as_str().to_owned())
}

/// Checks a worker's id (the same form as a name).
pub fn worker_id(raw: &str) -> Result<String, DomainError> {
    Ok(Name::parse("workerId", raw)?.as_str().to_owned())
}

/// A worker's hold on an operation, stored with the operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// 1 for the operation's first claim, 2 for the next…
    pub attempt: u32,
    pub pool: String,
    pub worker_id: String,
    pub claimed_at: Millis,
    pub expires_at: Millis,
    /// `None` while the worker holds it.
    pub ended: Option<LeaseEnd>,
}

/// How a lease ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LeaseEnd {
    /// The worker completed the operation.
    Completed,
    /// The worker stopped renewing it in time.
    Lost,
}

impl Lease {
    /// Whether the worker still holds it at `now`.
    pub fn is_held(&self, now: Millis) -> bool {
        self.ended.is_none() && now < self.expires_at
    }

    pub fn id(&self, operation: OperationId) -> LeaseId {
        LeaseId { operation, attempt: self.attempt }
    }
}

/// Names one claim of one operation: `lease_<operation>_<attempt>`. A new
/// claim of the same operation has a new id, so a lost worker's late call
/// can never act on its successor's lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseId {
    pub operation: OperationId,
    pub attempt: u32,
}

impl fmt::Display for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lease_{}_{}", self.operation.0, self.attempt)
    }
}

impl FromStr for LeaseId {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad =
            || DomainError::bad_input("leaseId", format!("`{s}` is not a lease id (expected lease_<n>_<n>)"));
        let rest = s.strip_prefix("lease_").ok_or_else(bad)?;
        let (op, attempt) = rest.split_once('_').ok_or_else(bad)?;
        Ok(Self {
            operation: OperationId(op.parse().map_err(|_| bad())?),
            attempt: attempt.parse().map_err(|_| bad())?,
        })
    }
}

/// Whether `op` may be claimed now: queued, and not held by a worker.
pub fn claimable(op: &Operation, now: Millis) -> bool {
    op.status == OperationStatus::Queued && op.lease.as_ref().is_none_or(|l| !l.is_held(now))
}

/// The lease a call with `id` acts under, or `CONFLICT` saying why the
/// caller no longer holds it (a later claim, an expiry, a completion). A
/// lease past its expiry is refused even before the server noticed: the
/// worker must not act on what is being given to another.
pub fn held(op: &Operation, id: LeaseId, now: Millis) -> Result<&Lease, DomainError> {
    let lease = op.lease.as_ref().filter(|l| l.attempt == id.attempt).ok_or_else(|| {
        DomainError::Conflict(format!("{id} is not held: the operation was claimed again since"))
    })?;
    match lease.ended {
        Some(LeaseEnd::Lost) => Err(DomainError::Conflict(format!(
            "{id} expired: worker `{}` was declared lost and may no longer act on the operation",
            lease.worker_id
        ))),
        Some(LeaseEnd::Completed) => {
            Err(DomainError::Conflict(format!("{id} ended: the operation was completed")))
        }
        None if now >= lease.expires_at => Err(DomainError::Conflict(format!(
            "{id} expired at {}: it was not renewed in time",
            lease.expires_at
        ))),
        None => Ok(lease),
    }
}

/// How a worker says an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkOutcome {
    /// Every step succeeded.
    Succeeded,
    /// A step failed (the worker rolled back what it could).
    Failed,
    /// The operation was being cancelled, and the worker stopped.
    Cancelled,
}

/// The final status `op` takes when its worker reports `outcome`, or why
/// it cannot.
pub fn final_status(op: &Operation, outcome: WorkOutcome) -> Result<OperationStatus, DomainError> {
    let cancelling = op.status == OperationStatus::Cancelling;
    match outcome {
        WorkOutcome::Succeeded if cancelling => Err(DomainError::InvalidTransition(
            "the operation is being cancelled: roll back and complete it as CANCELLED".into(),
        )),
        WorkOutcome::Succeeded => match op.steps.iter().find(|s| s.status != StepStatus::Succeeded) {
            Some(step) => Err(DomainError::InvalidTransition(format!(
                "step {} is {:?}, not succeeded: a succeeded operation has every step succeeded",
                step.kind.title(),
                step.status
            ))),
            None => Ok(OperationStatus::DeploymentOk),
        },
        WorkOutcome::Cancelled if cancelling => Ok(OperationStatus::Cancelled),
        WorkOutcome::Cancelled => Err(DomainError::InvalidTransition(
            "no cancel was requested: complete it as SUCCEEDED or FAILED".into(),
        )),
        WorkOutcome::Failed if cancelling => Ok(OperationStatus::Cancelled),
        WorkOutcome::Failed if op.status == OperationStatus::Queued => Err(DomainError::InvalidTransition(
            "no step has started: start the first step and report it FAILED, with why".into(),
        )),
        WorkOutcome::Failed => Ok(op.status.failed()),
    }
}

/// Checks a worker's report that step `index` of `op` now has `status`.
/// `Ok(false)` when the step already has it (a retried call: nothing to
/// do), `Ok(true)` when it changes.
pub fn step_report(op: &Operation, index: usize, status: StepStatus) -> Result<bool, DomainError> {
    let step = op.steps.get(index).ok_or_else(|| {
        DomainError::bad_input(
            "step",
            format!("the operation has {} steps (0 to {})", op.steps.len(), op.steps.len().saturating_sub(1)),
        )
    })?;
    if step.status == status {
        return Ok(false);
    }
    let allowed = match status {
        StepStatus::Running => {
            if op.status == OperationStatus::Cancelling {
                return Err(DomainError::InvalidTransition(
                    "the operation is being cancelled: start no step, roll back and complete it as CANCELLED"
                        .into(),
                ));
            }
            if let Some(before) = op.steps[..index].iter().find(|s| s.status != StepStatus::Succeeded) {
                return Err(DomainError::Conflict(format!(
                    "step {} must succeed before step {index} starts",
                    before.kind.title()
                )));
            }
            step.status == StepStatus::Pending
        }
        StepStatus::Succeeded | StepStatus::Failed | StepStatus::Cancelled => {
            step.status == StepStatus::Running
        }
        StepStatus::RolledBack | StepStatus::RollbackFailed => {
            matches!(step.status, StepStatus::Succeeded | StepStatus::Failed | StepStatus::Cancelled)
        }
        StepStatus::Pending | StepStatus::Skipped => false,
    };
    if allowed {
        Ok(true)
    } else {
        Err(DomainError::InvalidTransition(format!(
            "step {} is {}: it cannot become {}",
            step.kind.title(),
            step.status.word(),
            status.word()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fixtures;

    #[test]
    fn lease_ids_round_trip_and_bad_ones_name_the_form() {
        let id = LeaseId { operation: OperationId(12), attempt: 3 };
        assert_eq!(id.to_string(), "lease_12_3");
        assert_eq!("lease_12_3".parse::<LeaseId>().unwrap(), id);
        for bad in ["", "lease_12", "op_12_3", "lease_x_1", "lease_1_y"] {
            let error = bad.parse::<LeaseId>().unwrap_err();
            assert!(error.to_string().contains("lease_<n>_<n>"), "{bad}: {error}");
        }
    }

    #[test]
    fn a_late_call_is_refused_once_the_lease_was_lost_expired_or_taken_over() {
        let mut op = fixtures::op(1, crate::domain::OperationType::Deploy, OperationStatus::Queued);
        let lease = Lease {
            attempt: 1,
            pool: "k8s".into(),
            worker_id: "w1".into(),
            claimed_at: 0,
            expires_at: 100,
            ended: None,
        };
        op.lease = Some(lease.clone());
        let id = lease.id(op.id);
        assert!(held(&op, id, 99).is_ok());
        assert!(matches!(held(&op, id, 100), Err(DomainError::Conflict(_))));
        op.lease = Some(Lease { attempt: 2, ..lease.clone() });
        assert!(matches!(held(&op, id, 0), Err(DomainError::Conflict(_))));
        op.lease = Some(Lease { ended: Some(LeaseEnd::Lost), ..lease });
        let error = held(&op, id, 0).unwrap_err();
        assert!(error.to_string().contains("declared lost"), "{error}");
    }

    #[test]
    fn steps_run_in_order_and_a_retried_report_changes_nothing() {
        let mut op = fixtures::op(1, crate::domain::OperationType::Deploy, OperationStatus::Queued);
        assert!(op.steps.len() >= 2);
        assert!(matches!(step_report(&op, 1, StepStatus::Running), Err(DomainError::Conflict(_))));
        assert!(step_report(&op, 0, StepStatus::Running).unwrap());
        op.steps[0].status = StepStatus::Running;
        assert!(!step_report(&op, 0, StepStatus::Running).unwrap());
        assert!(step_report(&op, 0, StepStatus::RolledBack).is_err());
        assert!(step_report(&op, 0, StepStatus::Succeeded).unwrap());
        assert!(matches!(step_report(&op, 99, StepStatus::Running), Err(DomainError::BadUserInput { .. })));
        op.status = OperationStatus::Cancelling;
        op.steps[0].status = StepStatus::Succeeded;
        assert!(matches!(step_report(&op, 1, StepStatus::Running), Err(DomainError::InvalidTransition(_))));
    }

    #[test]
    fn outcomes_map_to_final_statuses() {
        let mut op = fixtures::op(1, crate::domain::OperationType::Deploy, OperationStatus::Queued);
        assert!(final_status(&op, WorkOutcome::Failed).is_err(), "no step started");
        assert!(final_status(&op, WorkOutcome::Succeeded).is_err(), "steps not run");
        assert!(final_status(&op, WorkOutcome::Cancelled).is_err(), "no cancel asked");
        for step in &mut op.steps {
            step.status = StepStatus::Succeeded;
        }
        op.status = OperationStatus::Deploying;
        assert_eq!(final_status(&op, WorkOutcome::Succeeded).unwrap(), OperationStatus::DeploymentOk);
        assert_eq!(final_status(&op, WorkOutcome::Failed).unwrap(), OperationStatus::DeploymentError);
        op.status = OperationStatus::Cancelling;
        assert!(final_status(&op, WorkOutcome::Succeeded).is_err());
        assert_eq!(final_status(&op, WorkOutcome::Cancelled).unwrap(), OperationStatus::Cancelled);
    }
}
