//! Monitoring agents: the instances of a service run by a worker pool live
//! on other machines, where an agent watches them and reports instance
//! statuses and probe results with a `MONITORING` token. A failure goes
//! through the same self-healing as a local finding: a platform redeploy
//! through the recovery queue, with back-off, and a give-up after the
//! service's limit.

use std::sync::Arc;

use super::Engine;
use super::healing::record_service_line;
use super::monitor::is_monitored;
use crate::domain::monitor::Finding;
use crate::domain::{DomainError, OrganizationId, ServiceId};
use crate::store::auth::Audit;
use crate::store::resources;

type Result<T> = std::result::Result<T, DomainError>;

/// What the platform made of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing wrong was reported.
    Healthy,
    /// A platform redeploy was queued (it starts after its back-off and
    /// when the recovery queue has a slot).
    RedeployQueued,
    /// A platform redeploy of the service is already queued or running,
    /// or monitoring gave up on it: the report is noted, nothing more.
    AlreadyRecovering,
    /// This report made monitoring give up on the service: why.
    GaveUp(String),
    /// Monitoring is off for the service (interval 0, or a job).
    NotMonitored,
}

impl Engine {
    /// Acts on an agent's report about `svc`: `finding` is what it saw
    /// wrong, `None` when all is well. The attempt is recorded in the
    /// audit log.
    pub async fn agent_report(
        self: &Arc<Self>,
        org: OrganizationId,
        svc: ServiceId,
        finding: Option<Finding>,
        audit: Audit,
    ) -> Result<Verdict> {
        let service = self.store.read(move |r| resources::live_service(r, org, svc)).await?;
        if service.spec.is_local() {
            return Err(DomainError::Conflict(format!(
                "service {svc} runs on this server, which monitors it itself; agents report on services of worker pools"
            )));
        }
        let verdict = match finding {
            None => Verdict::Healthy,
            Some(_) if !is_monitored(&service) => Verdict::NotMonitored,
            Some(_) if !self.healing.watches(svc) => Verdict::AlreadyRecovering,
            Some(finding) => match self.healing.report(service, finding) {
                Some(why) => {
                    record_service_line(self, svc, why.clone()).await;
                    Verdict::GaveUp(why)
                }
                None => Verdict::RedeployQueued,
            },
        };
        self.store.write(move |tx| audit.record_on(tx, svc)).await?;
        Ok(verdict)
    }
}
