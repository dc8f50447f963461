//! The one status machine of every operation, as a pure function.
//!
//! ```text
//! QUEUED -> BUILDING -> DEPLOYING -> DEPLOYMENT_OK
//!              |            |
//!              v            v
//!       BUILDING_ERROR  DEPLOYMENT_ERROR
//! any non-final state -> CANCELLING -> CANCELLED
//! QUEUED -> CANCELLED   (cancelled before it started: nothing to undo)
//! ```
//!
//! Types without a build go from `QUEUED` straight to `DEPLOYING`.

use serde::{Deserialize, Serialize};

use super::DomainError;

/// Status of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OperationStatus {
    Queued,
    Building,
    BuildingError,
    Deploying,
    DeploymentError,
    Cancelling,
    Cancelled,
    DeploymentOk,
}

impl OperationStatus {
    /// Every status, in a stable order (used by tests and indexes).
    pub const ALL: [OperationStatus; 8] = [
        Self::Queued,
        Self::Building,
        Self::BuildingError,
        Self::Deploying,
        Self::DeploymentError,
        Self::Cancelling,
        Self::Cancelled,
        Self::DeploymentOk,
    ];

    /// A final operation never changes again.
    pub fn is_final(self) -> bool {
        matches!(self, Self::BuildingError | Self::DeploymentError | Self::Cancelled | Self::DeploymentOk)
    }

    /// Stable one-byte code, used as the leading part of the status index key.
    pub fn code(self) -> u8 {
        Self::ALL.iter().position(|s| *s == self).unwrap_or(0) as u8
    }

    /// The name clients see (`DEPLOYMENT_OK`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "QUEUED",
            Self::Building => "BUILDING",
            Self::BuildingError => "BUILDING_ERROR",
            Self::Deploying => "DEPLOYING",
            Self::DeploymentError => "DEPLOYMENT_ERROR",
            Self::Cancelling => "CANCELLING",
            Self::Cancelled => "CANCELLED",
            Self::DeploymentOk => "DEPLOYMENT_OK",
        }
    }

    /// Whether the machine allows going from `self` to `to`.
    pub fn can_become(self, to: OperationStatus) -> bool {
        use OperationStatus::*;
        matches!(
            (self, to),
            (Queued, Building | Deploying | Cancelling | Cancelled)
                | (Building, Deploying | BuildingError | Cancelling)
                | (Deploying, DeploymentOk | DeploymentError | Cancelling)
                | (Cancelling, Cancelled)
        )
    }

    /// The transition as a checked step: `Ok(to)` or `INVALID_TRANSITION`
    /// naming both ends.
    pub fn transition(self, to: OperationStatus) -> Result<OperationStatus, DomainError> {
        if self.can_become(to) {
            Ok(to)
        } else if self.is_final() {
            Err(DomainError::InvalidTransition(format!(
                "the operation is already final ({}) and can no longer change to {}",
                self.as_str(),
                to.as_str()
            )))
        } else {
            Err(DomainError::InvalidTransition(format!(
                "an operation cannot go from {} to {}",
                self.as_str(),
                to.as_str()
            )))
        }
    }

    /// The error status an operation ends in when it fails while in `self`.
    pub fn failed(self) -> OperationStatus {
        match self {
            Self::Building => Self::BuildingError,
            Self::Cancelling => Self::Cancelled,
            _ => Self::DeploymentError,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::OperationStatus::*;
    use super::*;

    /// The full table of allowed transitions; everything else is refused.
    const ALLOWED: [(OperationStatus, OperationStatus); 11] = [
        (Queued, Building),
        (Queued, Deploying),
        (Queued, Cancelling),
        (Queued, Cancelled),
        (Building, Deploying),
        (Building, BuildingError),
        (Building, Cancelling),
        (Deploying, DeploymentOk),
        (Deploying, DeploymentError),
        (Deploying, Cancelling),
        (Cancelling, Cancelled),
    ];

    #[test]
    fn every_allowed_transition_is_accepted() {
        for (from, to) in ALLOWED {
            assert_eq!(from.transition(to).unwrap(), to, "{from:?} -> {to:?}");
        }
    }

    #[test]
    fn every_other_transition_is_refused_with_invalid_transition() {
        let mut refused = 0;
        for from in OperationStatus::ALL {
            for to in OperationStatus::ALL {
                if ALLOWED.contains(&(from, to)) {
                    continue;
                }
                let err = from.transition(to).unwrap_err();
                assert_eq!(err.code().as_str(), "INVALID_TRANSITION", "{from:?} -> {to:?}");
                assert!(err.to_string().contains(to.as_str()), "{err}");
                refused += 1;
            }
        }
        assert_eq!(refused, 64 - ALLOWED.len());
    }

    #[test]
    fn final_states_never_change_again() {
        for from in OperationStatus::ALL.into_iter().filter(|s| s.is_final()) {
            for to in OperationStatus::ALL {
                let err = from.transition(to).unwrap_err();
                assert!(err.to_string().contains("already final"), "{err}");
            }
        }
    }

    #[test]
    fn every_non_final_state_can_be_cancelled() {
        for from in OperationStatus::ALL.into_iter().filter(|s| !s.is_final()) {
            assert!(from.can_become(Cancelling) || from == Cancelling, "{from:?} cannot be cancelled");
        }
    }

    #[test]
    fn failures_end_in_the_error_of_their_phase() {
        assert_eq!(Building.failed(), BuildingError);
        assert_eq!(Deploying.failed(), DeploymentError);
        assert_eq!(Cancelling.failed(), Cancelled);
        for from in [Building, Deploying, Cancelling] {
            assert!(from.can_become(from.failed()));
        }
    }

    #[test]
    fn status_codes_are_distinct() {
        let mut codes: Vec<u8> = OperationStatus::ALL.iter().map(|s| s.code()).collect();
        codes.dedup();
        assert_eq!(codes.len(), 8);
    }
}
