//! Stuck operations: how long an operation may run before the engine
//! cancels it, and how an operation ended by force tells what it left.
//!
//! An operation's timeout counts from the moment it starts running (time
//! spent queued does not count). Past it, the engine cancels it the normal
//! way; an operation that still has not ended a grace later — like one
//! cancelled with `force: true` — is ended by force: its task is stopped
//! where it is, the processes it started are killed, and it is recorded as
//! `CANCELLED` with what it left.

use super::{
    DomainError, Instance, Operation, OperationId, OperationStatus, OperationType, RollbackOutcome,
    ServiceSpec, Step, StepKind, StepStatus,
};

const MINUTE_MS: u64 = 60_000;

/// Longest operation timeout a service may set: one day.
pub const MAX_OPERATION_TIMEOUT_MS: i64 = 86_400_000;

/// How long an operation of `op_type` may run when its service sets no
/// timeout: deploys build, so they get the longest.
pub fn default_timeout_ms(op_type: OperationType) -> u64 {
    match op_type {
        OperationType::Deploy | OperationType::Redeploy => 30 * MINUTE_MS,
        OperationType::Restart
        | OperationType::Scale
        | OperationType::Start
        | OperationType::Stop
        | OperationType::Delete => 10 * MINUTE_MS,
    }
}

/// The timeout of an operation of `op_type` on a service with `spec`: the
/// service's own when it sets one, else the default of the type.
pub fn timeout_ms(op_type: OperationType, spec: &ServiceSpec) -> u64 {
    spec.operation_timeout_ms.unwrap_or_else(|| default_timeout_ms(op_type))
}

/// Checks an operation timeout given by a client: 1 ms to one day.
pub fn parse_operation_timeout_ms(raw: i64) -> Result<u64, DomainError> {
    super::resource::parse_ms_within("operationTimeoutMs", raw, 1..=MAX_OPERATION_TIMEOUT_MS)
}

/// The `SYSTEM` line written when `op` runs past its timeout.
pub fn timeout_line(op: &Operation, timeout_ms: u64, grace_ms: u64) -> String {
    if op.status == OperationStatus::Cancelling {
        return format!(
            "timed out after {timeout_ms} ms while cancelling: the rollback has {grace_ms} ms more before it is abandoned"
        );
    }
    match running_step(op) {
        Some(kind) => format!("timed out after {timeout_ms} ms in step {}: cancelling", kind.title()),
        None => format!("timed out after {timeout_ms} ms: cancelling"),
    }
}

/// The step of `op` still marked running, if any.
fn running_step(op: &Operation) -> Option<StepKind> {
    op.steps.iter().find(|s| s.status == StepStatus::Running).map(|s| s.kind)
}

/// Where a forced end found the operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abandoned {
    /// Its task was still running `grace_ms` after the cancel; `undoing`
    /// is the index of the step whose rollback it was in, if it had
    /// reached the rollback.
    AfterGrace { grace_ms: u64, undoing: Option<usize> },
    /// No task was running it any more (a previous failure left it).
    NoTask,
}

/// The first `SYSTEM` line of a forced end: what was abandoned.
pub fn forced_end_line(op: &Operation, abandoned: Abandoned) -> String {
    let Abandoned::AfterGrace { grace_ms, undoing } = abandoned else {
        return "forced end: no task was running the operation any more".into();
    };
    let undoing = undoing.and_then(|i| op.steps.get(i)).map(|s| s.kind);
    let what = match (running_step(op), undoing) {
        (Some(step), _) => format!("step {}, which did not stop", step.title()),
        (None, Some(step)) => format!("the rollback of {}", step.title()),
        (None, None) => "it where it was".into(),
    };
    format!("forced end: still running {grace_ms} ms after the cancel; abandoned {what}")
}

/// The `SYSTEM` line that says what a forced end left of the service:
/// every instance it did not kill, as it is.
pub fn left_line(instances: &[Instance]) -> String {
    if instances.is_empty() {
        return "left as it was: the service has no instances".into();
    }
    let each: Vec<String> = instances
        .iter()
        .map(|i| {
            let commit = i.commit.as_deref().unwrap_or("none");
            let serving = if i.current { ", serving" } else { "" };
            format!("{} (commit {commit}, {}{serving})", i.id, i.status.as_str())
        })
        .collect();
    format!("left as it was: {}", each.join("; "))
}

/// Whether a forced end of operation `op` discards `inst`: an instance
/// the operation started that does not serve.
pub fn discards(inst: &Instance, op: OperationId) -> bool {
    inst.operation_id == op && !inst.current
}

/// The `SYSTEM` line for an instance a forced end discarded.
pub fn discarded_line(inst: &Instance) -> String {
    if inst.status.is_live() {
        format!("killed and removed {}{}: started by this operation, not serving", inst.id, pid(inst))
    } else {
        format!("removed {}: started by this operation, not serving", inst.id)
    }
}

/// The `SYSTEM` line for an instance the operation was stopping, which a
/// forced end killed.
pub fn stopped_line(inst: &Instance) -> String {
    format!("killed {}{}: it was being stopped; it stays stopped", inst.id, pid(inst))
}

fn pid(inst: &Instance) -> String {
    inst.pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
}

/// Whether `step` may have changed something a rollback has to undo: it
/// ran (completed, failed, was cancelled part-way, or is still marked
/// running) and it is of a kind that changes instances or files.
fn left_changes(step: &Step) -> bool {
    let ran = matches!(
        step.status,
        StepStatus::Running
            | StepStatus::Succeeded
            | StepStatus::Failed
            | StepStatus::Cancelled
            | StepStatus::RollbackFailed
    );
    ran && !matches!(step.kind, StepKind::Build | StepKind::Release | StepKind::HealthCheck)
}

/// The rollback outcome of an operation ended by force, whose rollback
/// was abandoned or never ran: `NOT_NEEDED` when no step had changed
/// anything to undo, else `FAILED` (the log says what was left).
pub fn abandoned_rollback(steps: &[Step]) -> RollbackOutcome {
    if steps.iter().any(left_changes) { RollbackOutcome::Failed } else { RollbackOutcome::NotNeeded }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ServiceId;

    fn op(status: OperationStatus, steps: &[(StepKind, StepStatus)]) -> Operation {
        Operation::sample(status, steps)
    }

    #[test]
    fn deploys_get_thirty_minutes_and_every_other_type_ten() {
        use OperationType::*;
        for (t, minutes) in
            [(Deploy, 30), (Redeploy, 30), (Restart, 10), (Scale, 10), (Start, 10), (Stop, 10), (Delete, 10)]
        {
            assert_eq!(timeout_ms(t, &ServiceSpec::default()), minutes * MINUTE_MS, "{t:?}");
        }
    }

    #[test]
    fn a_service_timeout_replaces_the_default_of_every_type() {
        let spec = ServiceSpec { operation_timeout_ms: Some(300), ..ServiceSpec::default() };
        for t in [OperationType::Deploy, OperationType::Stop, OperationType::Delete] {
            assert_eq!(timeout_ms(t, &spec), 300);
        }
    }

    #[test]
    fn a_spec_stored_before_timeouts_existed_reads_with_the_defaults() {
        let mut stored = serde_json::to_value(ServiceSpec::default()).unwrap();
        stored.as_object_mut().unwrap().remove("operation_timeout_ms");
        let spec: ServiceSpec = serde_json::from_value(stored).unwrap();
        assert_eq!(spec.operation_timeout_ms, None);
    }

    #[test]
    fn timeouts_outside_one_ms_to_one_day_are_bad_user_input() {
        assert_eq!(parse_operation_timeout_ms(1).unwrap(), 1);
        assert_eq!(parse_operation_timeout_ms(MAX_OPERATION_TIMEOUT_MS).unwrap(), 86_400_000);
        for bad in [0, -5, MAX_OPERATION_TIMEOUT_MS + 1] {
            let err = parse_operation_timeout_ms(bad).unwrap_err();
            assert_eq!(err.code().as_str(), "BAD_USER_INPUT", "{bad}");
            assert!(err.to_string().contains("operationTimeoutMs"), "{err}");
        }
    }

    #[test]
    fn the_timeout_line_names_the_running_step_or_the_rollback() {
        use StepKind::*;
        let building =
            op(OperationStatus::Building, &[(Build, StepStatus::Running), (Release, StepStatus::Pending)]);
        assert_eq!(
            timeout_line(&building, 600_000, 5_000),
            "timed out after 600000 ms in step build: cancelling"
        );
        let between = op(OperationStatus::Deploying, &[(Build, StepStatus::Succeeded)]);
        assert_eq!(timeout_line(&between, 300, 5_000), "timed out after 300 ms: cancelling");
        let cancelling = op(OperationStatus::Cancelling, &[(StartInstances, StepStatus::Cancelled)]);
        assert_eq!(
            timeout_line(&cancelling, 300, 5_000),
            "timed out after 300 ms while cancelling: the rollback has 5000 ms more before it is abandoned"
        );
    }

    #[test]
    fn a_forced_end_says_what_it_abandoned() {
        use StepKind::*;
        let in_step = op(OperationStatus::Cancelling, &[(HealthCheck, StepStatus::Running)]);
        let in_rollback = op(
            OperationStatus::Cancelling,
            &[(StartInstances, StepStatus::Succeeded), (HealthCheck, StepStatus::Cancelled)],
        );
        let after = |undoing| Abandoned::AfterGrace { grace_ms: 500, undoing };
        assert_eq!(
            forced_end_line(&in_step, after(None)),
            "forced end: still running 500 ms after the cancel; abandoned step health check, which did not stop"
        );
        assert_eq!(
            forced_end_line(&in_rollback, after(Some(0))),
            "forced end: still running 500 ms after the cancel; abandoned the rollback of start new instances"
        );
        assert!(forced_end_line(&in_rollback, Abandoned::NoTask).contains("no task"));
    }

    #[test]
    fn an_abandoned_rollback_failed_only_when_a_step_had_changed_something() {
        use StepKind::*;
        let steps = |list: &[(StepKind, StepStatus)]| op(OperationStatus::Cancelling, list).steps;
        let built = steps(&[(Build, StepStatus::Succeeded), (Release, StepStatus::Succeeded)]);
        assert_eq!(abandoned_rollback(&built), RollbackOutcome::NotNeeded);
        let checking =
            steps(&[(StartInstances, StepStatus::Succeeded), (HealthCheck, StepStatus::Cancelled)]);
        assert_eq!(abandoned_rollback(&checking), RollbackOutcome::Failed);
        let undone = steps(&[(StartInstances, StepStatus::RolledBack), (Switch, StepStatus::Skipped)]);
        assert_eq!(abandoned_rollback(&undone), RollbackOutcome::NotNeeded);
        let stopping = steps(&[(StopInstances, StepStatus::Cancelled)]);
        assert_eq!(abandoned_rollback(&stopping), RollbackOutcome::Failed);
    }

    #[test]
    fn a_forced_end_lists_what_it_discarded_and_what_it_left() {
        use crate::domain::{InstanceId, InstanceStatus};
        assert_eq!(left_line(&[]), "left as it was: the service has no instances");
        let inst = |id, op, status, current| Instance {
            id: InstanceId(id),
            service_id: ServiceId(1),
            operation_id: OperationId(op),
            commit: Some("c1".into()),
            port: None,
            pid: Some(40 + id as u32),
            status,
            status_since: 0,
            current,
            exit_code: None,
            created_at: 0,
        };
        let serving = inst(1, 1, InstanceStatus::Running, true);
        let new = inst(2, 2, InstanceStatus::Starting, false);
        let old = inst(3, 1, InstanceStatus::Stopped, false);
        assert!(!discards(&serving, OperationId(2)) && discards(&new, OperationId(2)));
        assert!(!discards(&old, OperationId(2)));
        assert_eq!(
            discarded_line(&new),
            "killed and removed inst_2 (pid 42): started by this operation, not serving"
        );
        assert_eq!(stopped_line(&serving), "killed inst_1 (pid 41): it was being stopped; it stays stopped");
        assert_eq!(
            left_line(&[serving, old]),
            "left as it was: inst_1 (commit c1, RUNNING, serving); inst_3 (commit c1, STOPPED)"
        );
    }
}
