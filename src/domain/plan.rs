//! Which steps an operation runs, in which order.
//!
//! Plans keep the running service up whenever that is possible: new
//! instances start and pass their health check before old ones stop. A
//! database's data directory can only be held by one instance, so its plan
//! prepares everything first and only then stops the old instance, hands the
//! directory over and starts the new one: the downtime is that hand-over.

use super::{OperationType, ServiceKind, StepKind};

/// The ordered steps of an operation of `op_type` on a service of `kind`.
/// `scale_down` tells a `SCALE` that lowers the instance count.
pub fn plan(op_type: OperationType, kind: ServiceKind, scale_down: bool) -> Vec<StepKind> {
    use StepKind::*;
    let replace: &[StepKind] = match kind {
        ServiceKind::Database => {
            &[PrepareInstance, StopOldInstances, HandOverData, StartInstances, HealthCheck, Switch]
        }
        _ => &[StartInstances, HealthCheck, Switch, StopOldInstances],
    };
    match op_type {
        OperationType::Deploy | OperationType::Redeploy => [&[Build, Release][..], replace].concat(),
        // Starting replaces the stopped instances with new ones.
        OperationType::Restart | OperationType::Start => replace.to_vec(),
        OperationType::Scale if scale_down => vec![StopInstances],
        OperationType::Scale => vec![StartInstances, HealthCheck, Switch],
        OperationType::Stop => vec![StopInstances],
        OperationType::Delete => vec![StopInstances, RemoveService],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use StepKind::*;

    #[test]
    fn an_application_deploy_starts_new_instances_before_stopping_old_ones() {
        let steps = plan(OperationType::Deploy, ServiceKind::Application, false);
        assert_eq!(steps, [Build, Release, StartInstances, HealthCheck, Switch, StopOldInstances]);
    }

    #[test]
    fn a_database_deploy_prepares_everything_before_stopping_the_old_instance() {
        let steps = plan(OperationType::Deploy, ServiceKind::Database, false);
        let stop = steps.iter().position(|s| *s == StopOldInstances).unwrap();
        for before in [Build, Release, PrepareInstance] {
            assert!(steps.iter().position(|s| *s == before).unwrap() < stop);
        }
        assert_eq!(steps[stop + 1..], [HandOverData, StartInstances, HealthCheck, Switch]);
    }

    #[test]
    fn only_deploys_build() {
        for t in [
            OperationType::Restart,
            OperationType::Scale,
            OperationType::Stop,
            OperationType::Start,
            OperationType::Delete,
        ] {
            assert!(!plan(t, ServiceKind::Application, false).contains(&Build), "{t:?}");
        }
        assert!(plan(OperationType::Redeploy, ServiceKind::Job, false).contains(&Build));
    }

    #[test]
    fn scaling_down_only_stops_instances() {
        assert_eq!(plan(OperationType::Scale, ServiceKind::Application, true), [StopInstances]);
        assert_eq!(
            plan(OperationType::Scale, ServiceKind::Application, false),
            [StartInstances, HealthCheck, Switch]
        );
    }
}
