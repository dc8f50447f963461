//! Rows for the unit tests of the pure rules.

use super::plan::plan;
use super::{
    EnvironmentId, Member, Millis, Name, Operation, OperationId, OperationStatus, OperationType,
    OrganizationId, RollbackOutcome, Service, ServiceId, ServiceKind, ServiceSpec, Step, Trigger,
    TriggerSource,
};

/// An operation on `svc_1` asked for by `ada` through the API, queued at
/// `id` seconds, with the steps of its plan.
pub fn op(id: u64, op_type: OperationType, status: OperationStatus) -> Operation {
    let member = Member { id: 1, name: "ada".into() };
    Operation {
        id: OperationId(id),
        organization_id: OrganizationId(1),
        environment_id: EnvironmentId(1),
        service_id: ServiceId(1),
        op_type,
        status,
        commit: None,
        previous_commit: None,
        trigger: Trigger::user(member, TriggerSource::Api).expect("a user trigger"),
        service_name: "api".into(),
        environment_name: "prod".into(),
        service_kind: ServiceKind::Application,
        queued_at: id as Millis * 1_000,
        started_at: None,
        finished_at: None,
        steps: plan(op_type, ServiceKind::Application, false).into_iter().map(Step::planned).collect(),
        rollback: RollbackOutcome::NotNeeded,
        target_instances: None,
        redeploy_of: None,
        idempotency_key: None,
        lease: None,
    }
}

impl Operation {
    pub fn with_commit(mut self, commit: &str) -> Self {
        self.commit = Some(commit.to_owned());
        self
    }

    pub fn on(mut self, svc: u64) -> Self {
        self.service_id = ServiceId(svc);
        self
    }

    /// Started `started` ms and finished `finished` ms after it was queued.
    pub fn timed(mut self, started: Millis, finished: Millis) -> Self {
        self.started_at = Some(self.queued_at + started);
        self.finished_at = Some(self.queued_at + finished);
        self
    }
}

/// `svc_1`, named `api`, running `commit`.
pub fn service(commit: Option<&str>) -> Service {
    Service {
        id: ServiceId(1),
        organization_id: OrganizationId(1),
        environment_id: EnvironmentId(1),
        name: Name::parse("name", "api").expect("a valid name"),
        kind: ServiceKind::Application,
        spec: ServiceSpec::default(),
        current_commit: commit.map(str::to_owned),
        created_at: 0,
        deleted_at: None,
        branch: "main".into(),
        webhook_secret: None,
        pin: None,
    }
}
