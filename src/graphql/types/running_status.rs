//! `RunningStatus`: the running status of a service (from its instances) or
//! of an environment (from its services), with when and why.

use async_graphql::SimpleObject;
use chrono::{DateTime, Utc};

use super::enums::RunningStatusValue;
use crate::domain::running::aggregate;
use crate::domain::{self, DomainError, EnvironmentId, Millis, ServiceId};
use crate::graphql::scope::datetime;
use crate::store::{Reader, resources};

/// The running status of a service or an environment.
#[derive(SimpleObject, Debug, Clone, PartialEq)]
pub struct RunningStatus {
    /// The status, by the precedence rule: all `ERROR` gives `ERROR`; any
    /// `ERROR` gives `WARNING`; then any `STARTING`, any `STOPPING`; all
    /// `STOPPED` (or none) gives `STOPPED`; all `COMPLETED` gives
    /// `COMPLETED`; otherwise `RUNNING`.
    pub value: RunningStatusValue,
    /// The last time one of the children that make this value changed
    /// status. Null when unknown (no instances).
    pub since: Option<DateTime<Utc>>,
    /// A human explanation, such as `2 of 3 instances RUNNING`. Null when
    /// there is nothing to explain.
    pub reason: Option<String>,
}

/// The running status of one child: its value, and since when.
pub type Child = (domain::RunningStatusValue, Option<Millis>);

/// The nouns a reason counts children with: singular and plural.
pub type Noun = (&'static str, &'static str);

pub const INSTANCES: Noun = ("instance", "instances");
pub const SERVICES: Noun = ("service", "services");

/// The status of a parent from its children's.
pub fn summarize(children: &[Child], noun: Noun) -> RunningStatus {
    use domain::RunningStatusValue as V;
    let value = aggregate(&children.iter().map(|(v, _)| *v).collect::<Vec<_>>());
    // The children that make the value: those in error for a warning,
    // otherwise those with the parent's value.
    let makes = |v: V| match value {
        V::Warning => matches!(v, V::Error | V::Warning),
        _ => v == value,
    };
    let making: Vec<&Child> = children.iter().filter(|(v, _)| makes(*v)).collect();
    let since = making.iter().filter_map(|(_, since)| *since).max();
    let total = children.len();
    let reason = if total == 0 {
        format!("no {}", noun.1)
    } else {
        let word = if total == 1 { noun.0 } else { noun.1 };
        let what = match value {
            V::Warning => "in ERROR or WARNING".to_owned(),
            other => RunningStatusValue::from(other).to_string(),
        };
        format!("{} of {total} {word} {what}", making.len())
    };
    RunningStatus { value: value.into(), since: since.map(datetime), reason: Some(reason) }
}

/// A service's status as a child of its environment.
pub fn service_child(r: Reader<'_>, svc: ServiceId) -> Result<Child, DomainError> {
    let instances = instance_children(r, svc)?;
    let value = aggregate(&instances.iter().map(|(v, _)| *v).collect::<Vec<_>>());
    let since = instances.iter().filter(|(v, _)| *v == value).filter_map(|(_, s)| *s).max();
    Ok((value, since))
}

/// The running status of a service, from its instances.
pub fn of_service(r: Reader<'_>, svc: ServiceId) -> Result<RunningStatus, DomainError> {
    Ok(summarize(&instance_children(r, svc)?, INSTANCES))
}

/// The running status of an environment, from its live services.
pub fn of_environment(r: Reader<'_>, env: EnvironmentId) -> Result<RunningStatus, DomainError> {
    let children = resources::services_of(r, env)?
        .iter()
        .map(|svc| service_child(r, svc.id))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(summarize(&children, SERVICES))
}

fn instance_children(r: Reader<'_>, svc: ServiceId) -> Result<Vec<Child>, DomainError> {
    let instances = resources::instances_of(r, svc)?;
    Ok(instances.iter().map(|i| (i.status.running_value(), Some(i.status_since))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::RunningStatusValue::*;

    #[test]
    fn no_children_is_stopped_since_an_unknown_time() {
        let status = summarize(&[], INSTANCES);
        assert_eq!(status.value, RunningStatusValue::Stopped);
        assert_eq!(status.since, None);
        assert_eq!(status.reason.as_deref(), Some("no instances"));
    }

    #[test]
    fn the_reason_counts_the_children_that_make_the_value() {
        let status = summarize(&[(Running, Some(10)), (Running, Some(30)), (Stopped, Some(50))], INSTANCES);
        assert_eq!(status.value, RunningStatusValue::Running);
        assert_eq!(status.reason.as_deref(), Some("2 of 3 instances RUNNING"));
        assert_eq!(status.since, Some(datetime(30)));
    }

    #[test]
    fn a_warning_counts_the_children_in_error() {
        let status = summarize(&[(Error, Some(5)), (Running, Some(9))], SERVICES);
        assert_eq!(status.value, RunningStatusValue::Warning);
        assert_eq!(status.reason.as_deref(), Some("1 of 2 services in ERROR or WARNING"));
        assert_eq!(status.since, Some(datetime(5)));
    }

    #[test]
    fn one_child_is_counted_in_the_singular() {
        let status = summarize(&[(Starting, Some(1))], INSTANCES);
        assert_eq!(status.reason.as_deref(), Some("1 of 1 instance STARTING"));
    }
}
