//! Naming an operation of a service without its id: `CURRENT`, `PREVIOUS`,
//! `LATEST_FAILED`, `OFFSET(n)`.

use super::{DomainError, Operation, OperationStatus, Outcome};

/// Which operation of a service a selector names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationSelector {
    /// What is running now: the newest `DEPLOY` or `REDEPLOY` that ended
    /// `DEPLOYMENT_OK` (it put the service's current commit in place).
    Current,
    /// What ran before it: the successful `DEPLOY` or `REDEPLOY` before
    /// `Current`.
    Previous,
    /// The newest operation of any type that failed (`BUILDING_ERROR` or
    /// `DEPLOYMENT_ERROR`; a cancel is not a failure).
    LatestFailed,
    /// `n` operations back, of any type and status: `Offset(0)` is the
    /// newest.
    Offset(u32),
}

/// Most operations `Offset` reaches back: a bound on one lookup's scan.
pub const MAX_OFFSET: i64 = 10_000;

impl OperationSelector {
    /// Checks the offset a client gave.
    pub fn offset(raw: i64) -> Result<Self, DomainError> {
        if !(0..=MAX_OFFSET).contains(&raw) {
            return Err(DomainError::bad_input(
                "offset",
                format!("must be between 0 and {MAX_OFFSET}, got {raw}"),
            ));
        }
        Ok(Self::Offset(raw as u32))
    }

    /// Parses the path form of the HTTP routes: `current`, `previous`,
    /// `latest-failed` or `offset-<n>` (any case, `_` for `-`).
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let lower = raw.to_ascii_lowercase().replace('_', "-");
        match lower.as_str() {
            "current" => Ok(Self::Current),
            "previous" => Ok(Self::Previous),
            "latest-failed" => Ok(Self::LatestFailed),
            _ => match lower.strip_prefix("offset-").map(str::parse::<i64>) {
                Some(Ok(n)) => Self::offset(n),
                _ => Err(DomainError::bad_input(
                    "selector",
                    format!("`{raw}` is not a selector: use current, previous, latest-failed or offset-<n>"),
                )),
            },
        }
    }

    /// A scan state: offer it a service's operations newest first, and it
    /// says which one is selected.
    pub fn scan(self) -> SelectorScan {
        SelectorScan { selector: self, seen: 0 }
    }

    /// What the selector names, for messages.
    pub fn describe(self) -> String {
        match self {
            Self::Current => "a current deploy".to_owned(),
            Self::Previous => "a previous deploy".to_owned(),
            Self::LatestFailed => "a failed operation".to_owned(),
            Self::Offset(n) => format!("an operation {n} back"),
        }
    }
}

/// Finds the selected operation in one pass over a newest-first list.
pub struct SelectorScan {
    selector: OperationSelector,
    /// Successful deploys seen (`Current`, `Previous`) or operations seen
    /// (`Offset`).
    seen: u32,
}

impl SelectorScan {
    /// Whether `op`, the next older operation, is the one selected.
    pub fn offer(&mut self, op: &Operation) -> bool {
        let release = op.is_deploy() && op.status == OperationStatus::DeploymentOk;
        let (counts, wanted) = match self.selector {
            OperationSelector::Current => (release, 0),
            OperationSelector::Previous => (release, 1),
            OperationSelector::LatestFailed => return op.outcome() == Outcome::Failed,
            OperationSelector::Offset(n) => (true, n),
        };
        if !counts {
            return false;
        }
        self.seen += 1;
        self.seen > wanted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::OperationType::*;
    use crate::domain::fixtures::op;

    /// A history, newest first: a failed deploy, a restart, two successful
    /// deploys around a cancelled one, and a first deploy that failed.
    fn history() -> Vec<Operation> {
        vec![
            op(7, Deploy, OperationStatus::DeploymentError),
            op(6, Restart, OperationStatus::DeploymentOk),
            op(5, Redeploy, OperationStatus::DeploymentOk),
            op(4, Deploy, OperationStatus::Cancelled),
            op(3, Deploy, OperationStatus::DeploymentOk),
            op(2, Deploy, OperationStatus::BuildingError),
        ]
    }

    fn pick(selector: OperationSelector) -> Option<u64> {
        let mut scan = selector.scan();
        history().into_iter().find(|o| scan.offer(o)).map(|o| o.id.0)
    }

    #[test]
    fn selectors_resolve_around_failures_and_cancels() {
        assert_eq!(pick(OperationSelector::Current), Some(5));
        assert_eq!(pick(OperationSelector::Previous), Some(3));
        assert_eq!(pick(OperationSelector::LatestFailed), Some(7));
        assert_eq!(pick(OperationSelector::Offset(0)), Some(7));
        assert_eq!(pick(OperationSelector::Offset(3)), Some(4));
        assert_eq!(pick(OperationSelector::Offset(6)), None);
    }

    #[test]
    fn the_path_form_parses_and_bad_ones_are_bad_user_input() {
        assert_eq!(OperationSelector::parse("CURRENT").unwrap(), OperationSelector::Current);
        assert_eq!(OperationSelector::parse("latest_failed").unwrap(), OperationSelector::LatestFailed);
        assert_eq!(OperationSelector::parse("offset-2").unwrap(), OperationSelector::Offset(2));
        for bad in ["", "next", "offset--1", "offset-x", "offset-10001"] {
            let err = OperationSelector::parse(bad).unwrap_err();
            assert_eq!(err.code().as_str(), "BAD_USER_INPUT", "{bad:?}");
        }
    }
}
