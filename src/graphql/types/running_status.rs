//! `RunningStatus`: the running status of a service (from its instances) or
//! of an environment (from its services), with when and why.

use async_graphql::{ID, SimpleObject};
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
    /// A human explanation, such as `1 of 3 instances in ERROR: inst_4`.
    pub reason: Option<String>,
    /// The children that make the value what it is: the instances (of a
    /// service) or services (of an environment) with that value, or in
    /// error for a `WARNING`.
    pub contributors: Vec<StatusContributor>,
}

/// A child that makes its parent's running status what it is.
#[derive(SimpleObject, Debug, Clone, PartialEq)]
pub struct StatusContributor {
    /// The instance's or service's id.
    pub id: ID,
    /// The service's name, or the instance's id.
    pub name: String,
    /// Its own running status.
    pub value: RunningStatusValue,
    /// Since when it has had it; null when unknown.
    pub since: Option<DateTime<Utc>>,
}

/// The running status of one child.
#[derive(Debug, Clone)]
pub struct Child {
    pub id: String,
    pub name: String,
    pub value: domain::RunningStatusValue,
    pub since: Option<Millis>,
}

/// The nouns a reason counts children with: singular and plural.
pub type Noun = (&'static str, &'static str);

pub const INSTANCES: Noun = ("instance", "instances");
pub const SERVICES: Noun = ("service", "services");

/// Names listed in a reason at most; more are counted only.
const NAMED: usize = 3;

/// The status of a parent from its children's.
pub fn summarize(children: &[Child], noun: Noun) -> RunningStatus {
    use domain::RunningStatusValue as V;
    let value = aggregate(&children.iter().map(|c| c.value).collect::<Vec<_>>());
    // The children that make the value: those in error for a warning, the
    // running and completed ones for running (running can also come from
    // completed beside stopped), otherwise those with the parent's value.
    let makes = |v: V| match value {
        V::Warning => matches!(v, V::Error | V::Warning),
        V::Running => matches!(v, V::Running | V::Completed),
        _ => v == value,
    };
    let making: Vec<&Child> = children.iter().filter(|c| makes(c.value)).collect();
    let since = making.iter().filter_map(|c| c.since).max();
    let total = children.len();
    let reason = if total == 0 {
        format!("no {}", noun.1)
    } else {
        let word = if total == 1 { noun.0 } else { noun.1 };
        let what = match value {
            V::Warning => "in ERROR or WARNING".to_owned(),
            V::Error => "in ERROR".to_owned(),
            other => RunningStatusValue::from(other).to_string(),
        };
        let mut reason = format!("{} of {total} {word} {what}", making.len());
        if making.len() < total && making.len() <= NAMED {
            let names: Vec<&str> = making.iter().map(|c| c.name.as_str()).collect();
            reason.push_str(&format!(": {}", names.join(", ")));
        }
        reason
    };
    let contributors = making
        .iter()
        .map(|c| StatusContributor {
            id: ID(c.id.clone()),
            name: c.name.clone(),
            value: c.value.into(),
            since: c.since.map(datetime),
        })
        .collect();
    RunningStatus { value: value.into(), since: since.map(datetime), reason: Some(reason), contributors }
}

/// A service's status as a child of its environment.
pub fn service_child(r: Reader<'_>, svc: &domain::Service) -> Result<Child, DomainError> {
    let instances = instance_children(r, svc.id)?;
    let value = aggregate(&instances.iter().map(|c| c.value).collect::<Vec<_>>());
    let since = instances.iter().filter(|c| c.value == value).filter_map(|c| c.since).max();
    Ok(Child { id: svc.id.to_string(), name: svc.name.as_str().to_owned(), value, since })
}

/// The running status of a service, from its instances.
pub fn of_service(r: Reader<'_>, svc: ServiceId) -> Result<RunningStatus, DomainError> {
    Ok(summarize(&instance_children(r, svc)?, INSTANCES))
}

/// The running status of an environment, from its live services.
pub fn of_environment(r: Reader<'_>, env: EnvironmentId) -> Result<RunningStatus, DomainError> {
    let children = resources::services_of(r, env)?
        .iter()
        .map(|svc| service_child(r, svc))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(summarize(&children, SERVICES))
}

fn instance_children(r: Reader<'_>, svc: ServiceId) -> Result<Vec<Child>, DomainError> {
    let instances = resources::instances_of(r, svc)?;
    Ok(instances
        .iter()
        .map(|i| Child {
            id: i.id.to_string(),
            name: i.id.to_string(),
            value: i.status.running_value(),
            since: Some(i.status_since),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::RunningStatusValue::*;

    fn child(name: &str, value: domain::RunningStatusValue, since: Millis) -> Child {
        Child { id: name.to_owned(), name: name.to_owned(), value, since: Some(since) }
    }

    #[test]
    fn no_children_is_stopped_since_an_unknown_time() {
        let status = summarize(&[], INSTANCES);
        assert_eq!(status.value, RunningStatusValue::Stopped);
        assert_eq!(status.since, None);
        assert_eq!(status.reason.as_deref(), Some("no instances"));
        assert!(status.contributors.is_empty());
    }

    #[test]
    fn the_reason_counts_and_names_the_children_that_make_the_value() {
        let status = summarize(
            &[child("a", Running, 10), child("b", Running, 30), child("c", Stopped, 50)],
            INSTANCES,
        );
        assert_eq!(status.value, RunningStatusValue::Running);
        assert_eq!(status.reason.as_deref(), Some("2 of 3 instances RUNNING: a, b"));
        assert_eq!(status.since, Some(datetime(30)));
        let names: Vec<&str> = status.contributors.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn a_warning_is_made_by_the_children_in_error() {
        let status = summarize(&[child("api", Error, 5), child("web", Running, 9)], SERVICES);
        assert_eq!(status.value, RunningStatusValue::Warning);
        assert_eq!(status.reason.as_deref(), Some("1 of 2 services in ERROR or WARNING: api"));
        assert_eq!(status.since, Some(datetime(5)));
        assert_eq!(status.contributors.len(), 1);
        assert_eq!(status.contributors[0].value, RunningStatusValue::Error);
    }

    #[test]
    fn one_child_is_counted_in_the_singular_and_all_are_not_named() {
        let status = summarize(&[child("i", Starting, 1)], INSTANCES);
        assert_eq!(status.reason.as_deref(), Some("1 of 1 instance STARTING"));
    }

    #[test]
    fn every_combination_of_up_to_three_children_has_contributors_with_a_matching_value() {
        let all = domain::RunningStatusValue::ALL;
        let mut combos: Vec<Vec<domain::RunningStatusValue>> = vec![vec![]];
        for _ in 0..3 {
            let longer: Vec<_> = combos
                .iter()
                .filter(|c| c.len() == combos.last().unwrap().len())
                .flat_map(|c| all.iter().map(move |v| [c.clone(), vec![*v]].concat()))
                .collect();
            combos.extend(longer);
        }
        for values in combos {
            let children: Vec<Child> =
                values.iter().enumerate().map(|(n, v)| child(&n.to_string(), *v, n as i64)).collect();
            let status = summarize(&children, INSTANCES);
            assert_eq!(status.value, aggregate(&values).into(), "{values:?}");
            for c in &status.contributors {
                let v = domain::RunningStatusValue::from(c.value);
                let fits = match aggregate(&values) {
                    domain::RunningStatusValue::Warning => matches!(v, Error | Warning),
                    domain::RunningStatusValue::Running => matches!(v, Running | Completed),
                    parent => v == parent,
                };
                assert!(fits, "{values:?}: contributor {c:?}");
            }
            assert_eq!(status.contributors.is_empty(), values.is_empty(), "{values:?}");
        }
    }
}
