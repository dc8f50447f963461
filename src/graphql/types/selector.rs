//! `OperationSelectorInput`: naming an operation of a service without its
//! id.

use async_graphql::{Enum, InputObject};

use crate::domain::{DomainError, OperationSelector};

/// Which operation of a service a selector names.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationSelectorKind {
    /// What is running now: the newest `DEPLOY` or `REDEPLOY` that ended
    /// `DEPLOYMENT_OK`.
    Current,
    /// What ran before it: the successful `DEPLOY` or `REDEPLOY` before the
    /// current one.
    Previous,
    /// The newest operation of any type that ended `BUILDING_ERROR` or
    /// `DEPLOYMENT_ERROR`.
    LatestFailed,
    /// `offset` operations back, of any type and status (0: the newest).
    Offset,
}

/// Names an operation of a service by its place in the service's history.
#[derive(InputObject, Debug, Clone, Copy)]
pub struct OperationSelectorInput {
    /// Which operation.
    pub kind: OperationSelectorKind,
    /// With `OFFSET`: how many operations back (0 to 10000); not allowed
    /// with the other kinds.
    pub offset: Option<i32>,
}

impl OperationSelectorInput {
    pub fn validate(self) -> Result<OperationSelector, DomainError> {
        let selector = match (self.kind, self.offset) {
            (OperationSelectorKind::Offset, Some(n)) => return OperationSelector::offset(n.into()),
            (OperationSelectorKind::Offset, None) => {
                return Err(DomainError::bad_input("offset", "OFFSET needs an `offset`"));
            }
            (_, Some(_)) => return Err(DomainError::bad_input("offset", "only OFFSET takes an `offset`")),
            (OperationSelectorKind::Current, None) => OperationSelector::Current,
            (OperationSelectorKind::Previous, None) => OperationSelector::Previous,
            (OperationSelectorKind::LatestFailed, None) => OperationSelector::LatestFailed,
        };
        Ok(selector)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offset_goes_with_offset_only() {
        let input = |kind, offset| OperationSelectorInput { kind, offset };
        assert_eq!(
            input(OperationSelectorKind::Offset, Some(2)).validate().unwrap(),
            OperationSelector::Offset(2)
        );
        assert_eq!(
            input(OperationSelectorKind::Current, None).validate().unwrap(),
            OperationSelector::Current
        );
        for bad in [
            input(OperationSelectorKind::Offset, None),
            input(OperationSelectorKind::Offset, Some(-1)),
            input(OperationSelectorKind::Previous, Some(1)),
        ] {
            assert_eq!(bad.validate().unwrap_err().code().as_str(), "BAD_USER_INPUT", "{bad:?}");
        }
    }
}
