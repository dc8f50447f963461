//! Roll back that sticks: when a person rolls a service back to an older
//! commit, the commit they rolled away from is pinned, so a later push of
//! that same commit does not deploy it again. A push of any other commit
//! lifts the pin (a fix has arrived), and so does `unpinCommit`.

use serde::{Deserialize, Serialize};

use super::{Member, Millis, Operation, OperationId, OperationType, Service, TriggerKind, TriggerSource};

/// A commit that pushes must not deploy, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitPin {
    /// The commit that pushes skip.
    pub commit: String,
    /// Why, as the console shows it.
    pub reason: String,
    /// The roll back that set the pin.
    pub operation_id: OperationId,
    /// Who rolled back.
    pub pinned_by: Option<Member>,
    pub pinned_at: Millis,
}

/// What queueing an operation does to its service's pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinChange {
    Keep,
    Set(CommitPin),
    Clear,
}

/// The pin change of queueing `op` on `svc` (before `op` changes the
/// service). `rolled_back_to` is the operation whose commit a "redeploy
/// this commit" deploys again, and `current` the successful deploy that put
/// the service's running commit in place.
///
/// - A person's "redeploy this commit" of an operation older than `current`,
///   to another commit than the one running: a roll back, which pins the
///   running commit.
/// - A push (`GIT` or `GITHUB`) of another commit than the pinned one: the
///   newer commit has arrived; the pin is lifted.
pub fn on_queue(
    svc: &Service,
    op: &Operation,
    rolled_back_to: Option<&Operation>,
    current: Option<&Operation>,
) -> PinChange {
    if op.op_type != OperationType::Deploy {
        return PinChange::Keep;
    }
    let by_person = matches!(op.trigger.kind, TriggerKind::User | TriggerKind::Support);
    if let (Some(to), Some(current), Some(running), true) =
        (rolled_back_to, current, &svc.current_commit, by_person)
        && to.id < current.id
        && op.commit.as_ref() != Some(running)
    {
        let who = op.trigger.author.as_ref().map_or("someone", |a| a.name.as_str());
        return PinChange::Set(CommitPin {
            commit: running.clone(),
            reason: format!(
                "{who} rolled back from {running} to {} (operation {}): pushes of {running} do not deploy \
                 until a newer commit is pushed or the pin is lifted",
                to.commit.as_deref().unwrap_or("?"),
                op.id
            ),
            operation_id: op.id,
            pinned_by: op.trigger.author.clone(),
            pinned_at: op.queued_at,
        });
    }
    let pushed = matches!(op.trigger.source, TriggerSource::Git | TriggerSource::Github);
    match &svc.pin {
        Some(pin) if pushed && op.commit.as_ref() != Some(&pin.commit) => PinChange::Clear,
        _ => PinChange::Keep,
    }
}

/// Why a push of `commit` must not deploy `svc`; `None` when it may.
pub fn push_refusal(svc: &Service, commit: &str) -> Option<String> {
    let pin = svc.pin.as_ref().filter(|p| p.commit == commit)?;
    Some(format!("commit {commit} is pinned: {}", pin.reason))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fixtures::{op, service};
    use crate::domain::{OperationStatus, Trigger};

    fn redeploy_of(of: &Operation, id: u64) -> Operation {
        let mut new = op(id, OperationType::Deploy, OperationStatus::Queued);
        new.commit.clone_from(&of.commit);
        new.redeploy_of = Some(of.id);
        new
    }

    #[test]
    fn rolling_back_to_an_older_commit_pins_the_running_one() {
        let old = op(1, OperationType::Deploy, OperationStatus::DeploymentOk).with_commit("c1");
        let current = op(2, OperationType::Deploy, OperationStatus::DeploymentOk).with_commit("c2");
        let svc = service(Some("c2"));
        let rollback = redeploy_of(&old, 3);
        let PinChange::Set(pin) = on_queue(&svc, &rollback, Some(&old), Some(&current)) else {
            panic!("expected a pin")
        };
        assert_eq!(pin.commit, "c2");
        assert_eq!(pin.operation_id, OperationId(3));
        assert!(pin.reason.contains("rolled back from c2 to c1"), "{}", pin.reason);
    }

    #[test]
    fn redeploying_the_running_commit_or_a_newer_one_pins_nothing() {
        let current = op(2, OperationType::Deploy, OperationStatus::DeploymentOk).with_commit("c2");
        let svc = service(Some("c2"));
        assert_eq!(
            on_queue(&svc, &redeploy_of(&current, 3), Some(&current), Some(&current)),
            PinChange::Keep
        );
        let newer = op(4, OperationType::Deploy, OperationStatus::DeploymentError).with_commit("c3");
        assert_eq!(on_queue(&svc, &redeploy_of(&newer, 5), Some(&newer), Some(&current)), PinChange::Keep);
    }

    #[test]
    fn a_push_of_another_commit_lifts_the_pin_and_of_the_pinned_one_is_refused() {
        let old = op(1, OperationType::Deploy, OperationStatus::DeploymentOk).with_commit("c1");
        let current = op(2, OperationType::Deploy, OperationStatus::DeploymentOk).with_commit("c2");
        let mut svc = service(Some("c1"));
        let PinChange::Set(pin) =
            on_queue(&service(Some("c2")), &redeploy_of(&old, 3), Some(&old), Some(&current))
        else {
            panic!("expected a pin")
        };
        svc.pin = Some(pin);
        assert!(push_refusal(&svc, "c2").unwrap().starts_with("commit c2 is pinned: "));
        assert_eq!(push_refusal(&svc, "c3"), None);

        let member = Member { id: 0, name: "octocat".into() };
        let mut push = op(4, OperationType::Deploy, OperationStatus::Queued).with_commit("c3");
        push.trigger = Trigger::user(member.clone(), TriggerSource::Github).unwrap();
        assert_eq!(on_queue(&svc, &push, None, Some(&current)), PinChange::Clear);
        // A person deploying by hand keeps the pin: only pushes lift it.
        push.trigger = Trigger::user(member, TriggerSource::Console).unwrap();
        assert_eq!(on_queue(&svc, &push, None, Some(&current)), PinChange::Keep);
    }
}
