//! When "redeploy this commit" is offered on an operation: one rule, shared
//! by `Operation.canRedeploy` and the `redeploy(operationId:)` mutation, so
//! the mutation accepts exactly what the timeline offers.

use crate::domain::{
    DomainError, Operation, OperationId, OperationStatus, OperationType, OrganizationId, ServiceId, StepKind,
    StepStatus,
};
use crate::graphql::scope::found;
use crate::store::{Reader, operations, resources};

/// Why "redeploy this commit" is not offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedeployRefusal {
    /// The service was deleted since.
    ServiceDeleted,
    /// Only deploys and redeploys deploy a commit of their own.
    NotADeploy(OperationType),
    /// The operation recorded no commit.
    NoCommit,
    /// The operation never got past its build (queued, cancelled before it
    /// started, building, or failed to build).
    NotBuilt,
}

impl RedeployRefusal {
    /// The refusal for `op`, whose service is live when `service_live`;
    /// `None` when the commit can be redeployed.
    pub fn of(op: &Operation, service_live: bool) -> Option<Self> {
        if !service_live {
            Some(Self::ServiceDeleted)
        } else if !matches!(op.op_type, OperationType::Deploy | OperationType::Redeploy) {
            Some(Self::NotADeploy(op.op_type))
        } else if op.commit.is_none() {
            Some(Self::NoCommit)
        } else if !got_past_build(op) {
            Some(Self::NotBuilt)
        } else {
            None
        }
    }

    /// The reason as the console shows it.
    pub fn message(self) -> String {
        match self {
            Self::ServiceDeleted => "the service has been deleted".to_owned(),
            Self::NotADeploy(t) => format!(
                "only DEPLOY and REDEPLOY operations deploy a commit that can be redeployed; this one is a {}",
                super::enums::OperationType::from(t)
            ),
            Self::NoCommit => "the operation has no commit".to_owned(),
            Self::NotBuilt => "the operation never built its commit successfully".to_owned(),
        }
    }

    /// The refusal as the error of the `redeploy` mutation.
    pub fn into_error(self) -> DomainError {
        match self {
            Self::ServiceDeleted | Self::NotBuilt => DomainError::Conflict(format!(
                "cannot redeploy the commit of this operation: {}",
                self.message()
            )),
            Self::NotADeploy(_) | Self::NoCommit => DomainError::bad_input("operationId", self.message()),
        }
    }
}

/// Whether the service exists and is not deleted.
pub fn service_live(r: Reader<'_>, org: OrganizationId, svc: ServiceId) -> Result<bool, DomainError> {
    Ok(found(resources::service(r, org, svc))?.is_some_and(|s| !s.is_deleted()))
}

/// The operation `id`, if "redeploy this commit" is offered on it; the
/// refusal as an error otherwise.
pub fn redeployable(r: Reader<'_>, org: OrganizationId, id: OperationId) -> Result<Operation, DomainError> {
    let op = operations::operation(r, org, id)?;
    match RedeployRefusal::of(&op, service_live(r, org, op.service_id)?) {
        Some(refusal) => Err(refusal.into_error()),
        None => Ok(op),
    }
}

/// Whether the build step succeeded (even if a rollback undid what came
/// after it).
fn got_past_build(op: &Operation) -> bool {
    match op.steps.iter().find(|s| s.kind == StepKind::Build) {
        Some(build) => matches!(
            build.status,
            StepStatus::Succeeded | StepStatus::RolledBack | StepStatus::RollbackFailed
        ),
        // No build planned: past it once it started and did not fail there.
        None => {
            op.started_at.is_some()
                && !matches!(
                    op.status,
                    OperationStatus::Queued | OperationStatus::Building | OperationStatus::BuildingError
                )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy(build: StepStatus, status: OperationStatus) -> Operation {
        Operation::sample(status, &[(StepKind::Build, build), (StepKind::Switch, StepStatus::Pending)])
    }

    #[test]
    fn a_built_deploy_can_be_redeployed_even_if_its_deployment_failed() {
        for status in [OperationStatus::DeploymentOk, OperationStatus::DeploymentError] {
            assert_eq!(RedeployRefusal::of(&deploy(StepStatus::Succeeded, status), true), None);
        }
        let rolled_back = deploy(StepStatus::RolledBack, OperationStatus::Cancelled);
        assert_eq!(RedeployRefusal::of(&rolled_back, true), None);
    }

    #[test]
    fn a_deploy_that_never_built_cannot_be_redeployed() {
        let cases = [
            (StepStatus::Failed, OperationStatus::BuildingError),
            (StepStatus::Pending, OperationStatus::Queued),
            (StepStatus::Skipped, OperationStatus::Cancelled),
            (StepStatus::Running, OperationStatus::Building),
        ];
        for (build, status) in cases {
            let refusal = RedeployRefusal::of(&deploy(build, status), true);
            assert_eq!(refusal, Some(RedeployRefusal::NotBuilt), "{status:?}");
        }
    }

    #[test]
    fn deleted_services_commitless_and_non_deploy_operations_are_refused() {
        let op = deploy(StepStatus::Succeeded, OperationStatus::DeploymentOk);
        assert_eq!(RedeployRefusal::of(&op, false), Some(RedeployRefusal::ServiceDeleted));
        let mut restart = op.clone();
        restart.op_type = OperationType::Restart;
        assert_eq!(
            RedeployRefusal::of(&restart, true),
            Some(RedeployRefusal::NotADeploy(OperationType::Restart))
        );
        let mut commitless = op;
        commitless.commit = None;
        assert_eq!(RedeployRefusal::of(&commitless, true), Some(RedeployRefusal::NoCommit));
    }

    #[test]
    fn refusals_map_to_user_facing_codes() {
        assert_eq!(RedeployRefusal::ServiceDeleted.into_error().code().as_str(), "CONFLICT");
        assert_eq!(RedeployRefusal::NoCommit.into_error().code().as_str(), "BAD_USER_INPUT");
        assert!(RedeployRefusal::NotADeploy(OperationType::Stop).message().contains("STOP"));
    }
}
