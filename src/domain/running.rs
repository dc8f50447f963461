//! Running statuses of instances, services and environments, and the one
//! aggregation rule that derives a parent's status from its children.

use serde::{Deserialize, Serialize};

/// Running status of an instance, a service or an environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunningStatusValue {
    Stopped,
    Starting,
    Stopping,
    Running,
    Error,
    Warning,
    Completed,
}

impl RunningStatusValue {
    pub const ALL: [RunningStatusValue; 7] = [
        Self::Stopped,
        Self::Starting,
        Self::Stopping,
        Self::Running,
        Self::Error,
        Self::Warning,
        Self::Completed,
    ];
}

/// The status of a parent from its children's, by the precedence rule: all
/// `ERROR` -> `ERROR`; any `ERROR` (or `WARNING`) -> `WARNING`; any `STARTING`;
/// any `STOPPING`; all `STOPPED` (or none) -> `STOPPED`; all `COMPLETED` ->
/// `COMPLETED`; otherwise `RUNNING`.
///
/// A child in `WARNING` (a service with some instances in error) counts as
/// "some error but not all" for its environment.
pub fn aggregate(children: &[RunningStatusValue]) -> RunningStatusValue {
    use RunningStatusValue::*;
    let all = |v| children.iter().all(|c| *c == v);
    let any = |v| children.contains(&v);
    if children.is_empty() {
        Stopped
    } else if all(Error) {
        Error
    } else if any(Error) || any(Warning) {
        Warning
    } else if any(Starting) {
        Starting
    } else if any(Stopping) {
        Stopping
    } else if all(Stopped) {
        Stopped
    } else if all(Completed) {
        Completed
    } else {
        Running
    }
}

#[cfg(test)]
mod tests {
    use super::RunningStatusValue::*;
    use super::*;

    #[test]
    fn no_children_is_stopped() {
        assert_eq!(aggregate(&[]), Stopped);
    }

    #[test]
    fn precedence_follows_the_product_rule() {
        assert_eq!(aggregate(&[Error, Error]), Error);
        assert_eq!(aggregate(&[Error, Running]), Warning);
        assert_eq!(aggregate(&[Error, Starting]), Warning);
        assert_eq!(aggregate(&[Warning, Running]), Warning);
        assert_eq!(aggregate(&[Starting, Stopping]), Starting);
        assert_eq!(aggregate(&[Stopping, Running]), Stopping);
        assert_eq!(aggregate(&[Stopped, Stopped]), Stopped);
        assert_eq!(aggregate(&[Completed, Completed]), Completed);
        assert_eq!(aggregate(&[Running, Stopped]), Running);
        assert_eq!(aggregate(&[Running, Completed]), Running);
        assert_eq!(aggregate(&[Completed, Stopped]), Running);
    }

    #[test]
    fn every_combination_of_up_to_three_children_follows_the_rule() {
        let values = RunningStatusValue::ALL;
        let mut combos: Vec<Vec<RunningStatusValue>> = vec![vec![]];
        for _ in 0..3 {
            let longer: Vec<_> = combos
                .iter()
                .filter(|c| c.len() == combos.last().map_or(0, |l| l.len()))
                .flat_map(|c| values.iter().map(move |v| [c.clone(), vec![*v]].concat()))
                .collect();
            combos.extend(longer);
        }
        assert_eq!(combos.len(), 1 + 7 + 49 + 343);
        for children in combos {
            let got = aggregate(&children);
            let n = |v| children.iter().filter(|c| **c == v).count();
            let expected = if !children.is_empty() && n(Error) == children.len() {
                Error
            } else if n(Error) + n(Warning) > 0 {
                Warning
            } else if n(Starting) > 0 {
                Starting
            } else if n(Stopping) > 0 {
                Stopping
            } else if n(Stopped) == children.len() {
                Stopped
            } else if n(Completed) == children.len() {
                Completed
            } else {
                Running
            };
            assert_eq!(got, expected, "{children:?}");
        }
    }
}
