//! Monitoring agents: `reportInstances` and `reportProbe`, with a
//! `MONITORING` token, for the services of worker pools. Their failures
//! decide platform redeploys by the same rules as this server's own
//! monitoring (see `engine::agents`).

use async_graphql::{Context, Enum, ID, InputObject, Object, Result, SimpleObject};

use super::guard::guard_mutation;
use super::types::enums::PlatformReason;
use crate::domain::monitor::Finding;
use crate::domain::{self, Action, DomainError, ServiceId};
use crate::engine::agents::Verdict;

/// An instance's state as an agent sees it.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportedInstanceStatus {
    /// Its process runs.
    Running,
    /// Its process is gone or failing: the service is redeployed.
    Error,
    /// Stopped on purpose.
    Stopped,
}

/// One instance in `reportInstances`.
#[derive(InputObject)]
pub struct ReportedInstanceInput {
    /// The agent's name for it (1 to 200 characters), shown in the
    /// evidence of a redeploy.
    pub name: String,
    /// Its state.
    pub status: ReportedInstanceStatus,
    /// What the agent saw (an exit status, say), up to 1,000 characters.
    pub detail: Option<String>,
}

/// Input of `reportInstances`.
#[derive(InputObject)]
pub struct ReportInstancesInput {
    /// The service (`svc_<n>`), run by a worker pool.
    pub service_id: ID,
    /// Its instances, as the agent sees them now (at most 64).
    pub instances: Vec<ReportedInstanceInput>,
}

/// Which probe an agent ran.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    /// A TCP connection to the instance's port; a failure means
    /// `UNREACHABLE`.
    Tcp,
    /// The service's health probe; a failure means `TIMEOUT`.
    Health,
    /// The disk used under its data directory against its quota; a
    /// failure means `DISK_FULL`.
    Disk,
}

/// Input of `reportProbe`.
#[derive(InputObject)]
pub struct ReportProbeInput {
    /// The service (`svc_<n>`), run by a worker pool.
    pub service_id: ID,
    /// The agent's name for the instance probed (1 to 200 characters).
    pub instance: String,
    /// Which probe ran.
    pub probe: ProbeKind,
    /// Whether the probe passed.
    pub ok: bool,
    /// What the probe saw, up to 1,000 characters.
    pub detail: Option<String>,
}

/// What the platform did with a report.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportAction {
    /// Nothing was wrong.
    None,
    /// A platform redeploy was queued (trigger `PLATFORM`, source
    /// `MONITORING`, the evidence in its log).
    RedeployQueued,
    /// A redeploy is already queued or running, or monitoring gave up on
    /// the service earlier: nothing more.
    AlreadyRecovering,
    /// Monitoring gave up on the service after too many redeploys in a
    /// row; it stays as it is until a person acts.
    GaveUp,
    /// Monitoring is off for the service.
    NotMonitored,
}

/// The answer to a report.
#[derive(SimpleObject)]
pub struct MonitoringReport {
    /// What the platform did.
    pub action: ReportAction,
    /// The reason of the redeploy it causes, when something was wrong.
    pub reason: Option<PlatformReason>,
    /// Why monitoring gave up, when it did.
    pub gave_up_reason: Option<String>,
}

/// Checks a piece of text an agent sends.
fn text(field: &'static str, value: &str, min: usize, max: usize) -> Result<String, DomainError> {
    let n = value.chars().count();
    if n < min || n > max {
        return Err(DomainError::bad_input(field, format!("must be {min} to {max} characters")));
    }
    Ok(value.to_owned())
}

/// Reports from monitoring agents.
#[derive(Default)]
pub struct MonitoringMutation;

#[Object]
impl MonitoringMutation {
    /// Reports the instances of a worker pool's service as an agent sees
    /// them. The first one in `ERROR` makes the platform redeploy the
    /// service (reason `UNREACHABLE`), with the same back-off, recovery
    /// queue and give-up as instances this server runs. `MONITORING`
    /// tokens only; `CONFLICT` for a service this server runs itself.
    async fn report_instances(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The service and its instances.")] input: ReportInstancesInput,
    ) -> Result<MonitoringReport> {
        let m = guard_mutation(ctx, Action::ReportProbes, Some(input.service_id.to_string())).await?;
        let agent = m.scope.principal.member.name.clone();
        let result = async {
            let svc: ServiceId = input.service_id.parse()?;
            if input.instances.len() > 64 {
                return Err(DomainError::bad_input("instances", "at most 64 per report"));
            }
            let mut finding = None;
            for instance in &input.instances {
                let name = text("name", &instance.name, 1, 200)?;
                let detail = text("detail", instance.detail.as_deref().unwrap_or("in error"), 0, 1_000)?;
                if instance.status == ReportedInstanceStatus::Error && finding.is_none() {
                    let reason = domain::PlatformReason::Unreachable;
                    finding =
                        Some(Finding::Reported { agent: agent.clone(), instance: name, reason, detail });
                }
            }
            let reason = finding.as_ref().map(Finding::reason);
            let verdict = m.scope.engine().agent_report(m.scope.org(), svc, finding, m.audit.clone()).await?;
            Ok(report(verdict, reason))
        };
        m.finish(result.await).await
    }

    /// Reports the result of a probe of an instance of a worker pool's
    /// service. A failed probe makes the platform redeploy the service, by
    /// the same rules as this server's own monitoring: `TCP` as
    /// `UNREACHABLE`, `HEALTH` as `TIMEOUT`, `DISK` as `DISK_FULL`.
    /// `MONITORING` tokens only.
    async fn report_probe(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The probe and what it saw.")] input: ReportProbeInput,
    ) -> Result<MonitoringReport> {
        let m = guard_mutation(ctx, Action::ReportProbes, Some(input.service_id.to_string())).await?;
        let agent = m.scope.principal.member.name.clone();
        let result = async {
            let svc: ServiceId = input.service_id.parse()?;
            let instance = text("instance", &input.instance, 1, 200)?;
            let detail = text("detail", input.detail.as_deref().unwrap_or("failed"), 0, 1_000)?;
            let reason = match input.probe {
                ProbeKind::Tcp => domain::PlatformReason::Unreachable,
                ProbeKind::Health => domain::PlatformReason::Timeout,
                ProbeKind::Disk => domain::PlatformReason::DiskFull,
            };
            let finding = (!input.ok).then_some(Finding::Reported { agent, instance, reason, detail });
            let reason = finding.as_ref().map(Finding::reason);
            let verdict = m.scope.engine().agent_report(m.scope.org(), svc, finding, m.audit.clone()).await?;
            Ok(report(verdict, reason))
        };
        m.finish(result.await).await
    }
}

fn report(verdict: Verdict, reason: Option<domain::PlatformReason>) -> MonitoringReport {
    let (action, gave_up_reason) = match verdict {
        Verdict::Healthy => (ReportAction::None, None),
        Verdict::RedeployQueued => (ReportAction::RedeployQueued, None),
        Verdict::AlreadyRecovering => (ReportAction::AlreadyRecovering, None),
        Verdict::GaveUp(why) => (ReportAction::GaveUp, Some(why)),
        Verdict::NotMonitored => (ReportAction::NotMonitored, None),
    };
    MonitoringReport { action, reason: reason.map(Into::into), gave_up_reason }
}
