//! The activity timeline: `Query.activity`, its filter and connection.
//! Each block of the timeline is an `Operation` (outcome, date, trigger,
//! commit, duration, `canRedeploy`).

use async_graphql::{ID, InputObject};
use chrono::{DateTime, Utc};

use super::enums::{OperationOutcome, OperationType, PlatformReason, TriggerKind, TriggerSource, all};
use crate::domain::{DomainError, EnvironmentId, OperationFilter, ServiceId};
use crate::graphql::scope::millis;

/// A page of an activity timeline, newest first.
pub use crate::graphql::connection::ActivityConnection;

/// Which blocks an activity timeline shows; every field narrows it, and an
/// omitted or empty list lets every value through.
#[derive(InputObject, Default)]
pub struct ActivityFilter {
    /// Only operations of these types.
    pub types: Option<Vec<OperationType>>,
    /// Only operations with these outcomes.
    pub outcomes: Option<Vec<OperationOutcome>>,
    /// Only operations asked for by these kinds of trigger.
    pub trigger_kinds: Option<Vec<TriggerKind>>,
    /// Only platform operations started for these reasons.
    pub reasons: Option<Vec<PlatformReason>>,
    /// Only operations asked for through these sources.
    pub sources: Option<Vec<TriggerSource>>,
    /// Only operations whose author has one of these names (exactly).
    pub authors: Option<Vec<String>>,
    /// Only operations queued at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Only operations queued before this time.
    pub to: Option<DateTime<Utc>>,
}

impl ActivityFilter {
    /// The domain filter of the timeline of the environment or the service
    /// given (exactly one of them).
    pub fn validate(
        self,
        environment: Option<&ID>,
        service: Option<&ID>,
    ) -> Result<OperationFilter, DomainError> {
        let (environment_id, service_id) = match (environment, service) {
            (Some(env), None) => (Some(env.parse::<EnvironmentId>()?), None),
            (None, Some(svc)) => (None, Some(svc.parse::<ServiceId>()?)),
            _ => {
                return Err(DomainError::bad_input(
                    "environmentId",
                    "give exactly one of `environmentId` and `serviceId`",
                ));
            }
        };
        Ok(OperationFilter {
            environment_id,
            service_id,
            types: all(self.types),
            outcomes: all(self.outcomes),
            trigger_kinds: all(self.trigger_kinds),
            reasons: all(self.reasons),
            sources: all(self.sources),
            authors: self.authors.unwrap_or_default(),
            queued_from: self.from.map(millis),
            queued_to: self.to.map(millis),
            ..OperationFilter::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeline_is_of_an_environment_or_of_a_service() {
        let env = ID::from("env_1");
        let svc = ID::from("svc_2");
        let filter = ActivityFilter::default().validate(Some(&env), None).unwrap();
        assert_eq!(filter.environment_id, Some(EnvironmentId(1)));
        let filter = ActivityFilter::default().validate(None, Some(&svc)).unwrap();
        assert_eq!(filter.service_id, Some(ServiceId(2)));
        for (e, s) in [(None, None), (Some(&env), Some(&svc))] {
            let err = ActivityFilter::default().validate(e, s).unwrap_err();
            assert_eq!(err.code().as_str(), "BAD_USER_INPUT");
        }
    }
}
