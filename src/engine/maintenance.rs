//! Maintenance campaigns: an administrator redeploys every matching service
//! (trigger `PLATFORM`, source `MONITORING`, reason `MAINTENANCE`, a `SYSTEM`
//! line naming the campaign in each operation's log), at most
//! `concurrency` at a time.
//!
//! - A campaign matches the live services of the caller's organization
//!   that pass its filter. Those never deployed have nothing to redeploy:
//!   they are counted as skipped. A campaign that matches nothing
//!   completes at once with a total of 0.
//! - At most `concurrency` of a campaign's operations are non-final at any
//!   time: its driver queues the next one only after it saw one of its
//!   operations end (the store's event feed, like [`Healing::run`]).
//! - Campaigns are kept in memory: they do not survive a restart. An
//!   interrupted campaign's operations are ended by start-up recovery like
//!   any other; the ones it had not queued yet are not queued. Their ids
//!   come from the store's sequence, so an id is never reused after a
//!   restart.
//!
//! [`Healing::run`]: super::healing::Healing::run

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::Engine;
use crate::domain::{
    DomainError, EnvironmentId, MaintenanceId, Millis, NewLine, NewOperation, OperationId, OperationStatus,
    OperationType, OrganizationId, PlatformReason, Principal, Service, ServiceId, ServiceKind, Trigger,
    now_millis,
};
use crate::store::{Event, operations, resources};

type Result<T> = std::result::Result<T, DomainError>;

/// Which services a campaign redeploys: those that pass every part given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CampaignFilter {
    /// Only the services of this environment.
    pub environment: Option<EnvironmentId>,
    /// Only these services.
    pub services: Option<Vec<ServiceId>>,
    /// Only services of these kinds.
    pub kinds: Option<Vec<ServiceKind>>,
}

impl CampaignFilter {
    /// Whether `svc` is one the campaign redeploys (or skips, when it was
    /// never deployed).
    pub fn matches(&self, svc: &Service) -> bool {
        !svc.is_deleted()
            && self.environment.is_none_or(|e| svc.environment_id == e)
            && self.services.as_ref().is_none_or(|ids| ids.contains(&svc.id))
            && self.kinds.as_ref().is_none_or(|kinds| kinds.contains(&svc.kind))
    }
}

/// A campaign a client asks to start, validated.
#[derive(Debug, Clone)]
pub struct NewCampaign {
    pub filter: CampaignFilter,
    /// Why: 1 to 500 characters, written to every operation's log.
    pub description: String,
    /// Most operations of the campaign not final at once: 1 to 64.
    pub concurrency: u32,
}

/// Whether a campaign still has operations to queue or in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CampaignStatus {
    Running,
    Completed,
}

/// Where a campaign stands: watchable by clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Campaign {
    pub id: MaintenanceId,
    /// Only members of this organization see it.
    pub organization_id: OrganizationId,
    pub description: String,
    pub concurrency: u32,
    /// Who started it.
    pub started_by: String,
    pub status: CampaignStatus,
    /// Services it redeploys (the matching services that have a commit).
    pub total: usize,
    /// Of those, the ones not queued yet.
    pub queued: usize,
    /// Its operations queued or running now (never more than `concurrency`).
    pub running: usize,
    /// Its operations that ended `DEPLOYMENT_OK`.
    pub succeeded: usize,
    /// Its operations that ended otherwise, or could not be queued.
    pub failed: usize,
    /// Matching services never deployed: nothing to redeploy.
    pub skipped: usize,
    pub started_at: Millis,
    /// Set when it completed.
    pub finished_at: Option<Millis>,
}

impl Campaign {
    /// The `SYSTEM` line written to each of its operations' logs.
    fn log_line(&self) -> String {
        format!("maintenance campaign {} started by {}: {}", self.id, self.started_by, self.description)
    }
}

/// The campaigns of this process, by id.
#[derive(Default)]
pub struct Maintenance {
    /// Every campaign started since the process started; each sender holds
    /// the campaign's current state and wakes its watchers.
    campaigns: Mutex<BTreeMap<MaintenanceId, watch::Sender<Campaign>>>,
}

impl Maintenance {
    /// The campaign with this id, if `org` can see it.
    pub fn get(&self, org: OrganizationId, id: MaintenanceId) -> Option<Campaign> {
        self.watch(org, id).map(|rx| rx.borrow().clone())
    }

    /// Follows the campaign with this id, if `org` can see it.
    pub fn watch(&self, org: OrganizationId, id: MaintenanceId) -> Option<watch::Receiver<Campaign>> {
        let campaigns = self.lock();
        let tx = campaigns.get(&id)?;
        (tx.borrow().organization_id == org).then(|| tx.subscribe())
    }

    /// The campaigns `org` can see, newest first.
    pub fn list(&self, org: OrganizationId) -> Vec<Campaign> {
        let campaigns = self.lock();
        campaigns.values().rev().map(|tx| tx.borrow().clone()).filter(|c| c.organization_id == org).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<MaintenanceId, watch::Sender<Campaign>>> {
        self.campaigns.lock().expect("maintenance campaigns")
    }
}

impl Engine {
    /// Starts a maintenance campaign for `principal`'s organization and
    /// answers with its state at the start. An environment or a service
    /// named by the filter that the caller cannot see is `NOT_FOUND`.
    pub async fn start_maintenance(
        self: &Arc<Self>,
        principal: &Principal,
        new: NewCampaign,
        audit: Option<crate::store::auth::Audit>,
    ) -> Result<Campaign> {
        let org = principal.organization_id;
        let filter = new.filter.clone();
        let (id, mut matching) = self
            .store
            .write(move |tx| {
                let r = tx.reader();
                if let Some(env) = filter.environment {
                    resources::environment(r, org, env)?;
                }
                for &svc in filter.services.iter().flatten() {
                    resources::service(r, org, svc)?;
                }
                let matching: Vec<Service> = resources::all_services(r)?
                    .into_iter()
                    .filter(|s| s.organization_id == org && filter.matches(s))
                    .collect();
                let id = MaintenanceId(tx.next_id("maintenance")?);
                if let Some(audit) = &audit {
                    audit.record_on(tx, id)?;
                }
                Ok((id, matching))
            })
            .await?;
        matching.sort_by_key(|s| s.id);
        let (pending, never_deployed): (VecDeque<Service>, VecDeque<Service>) =
            matching.into_iter().partition(|s| s.current_commit.is_some());
        let started_at = now_millis();
        let nothing_to_do = pending.is_empty();
        let campaign = Campaign {
            id,
            organization_id: org,
            description: new.description,
            concurrency: new.concurrency.max(1),
            started_by: principal.member.name.clone(),
            status: if nothing_to_do { CampaignStatus::Completed } else { CampaignStatus::Running },
            total: pending.len(),
            queued: pending.len(),
            running: 0,
            succeeded: 0,
            failed: 0,
            skipped: never_deployed.len(),
            started_at,
            finished_at: nothing_to_do.then_some(started_at),
        };
        let (tx, _) = watch::channel(campaign.clone());
        if nothing_to_do {
            self.maintenance.lock().insert(id, tx);
            return Ok(campaign);
        }
        let driver = Driver { engine: self.clone(), state: tx.clone(), pending, in_flight: HashSet::new() };
        self.maintenance.lock().insert(id, tx);
        // Subscribed before the first operation is queued: no end is missed.
        let events = self.store.events().subscribe();
        self.tasks.spawn(driver.run(events));
        Ok(campaign)
    }
}

/// Runs one campaign: keeps up to `concurrency` of its operations in
/// flight until every service was redeployed, or the server shuts down.
struct Driver {
    engine: Arc<Engine>,
    state: watch::Sender<Campaign>,
    /// Services not queued yet, in id order.
    pending: VecDeque<Service>,
    /// Its operations not seen final yet.
    in_flight: HashSet<OperationId>,
}

impl Driver {
    async fn run(mut self, mut events: tokio::sync::broadcast::Receiver<Event>) {
        let shutdown = self.engine.shutdown.clone();
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            self.fill().await;
            if self.pending.is_empty() && self.in_flight.is_empty() {
                self.state.send_modify(|c| {
                    c.status = CampaignStatus::Completed;
                    c.finished_at = Some(now_millis());
                });
                return;
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                event = events.recv() => match event {
                    Ok(Event::Operation(e)) if e.status.is_final() => self.ended(e.operation_id, e.status),
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => self.recheck().await,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    }

    /// Queues pending redeploys while the campaign has free slots.
    async fn fill(&mut self) {
        let (concurrency, line) = {
            let c = self.state.borrow();
            (c.concurrency as usize, c.log_line())
        };
        while self.in_flight.len() < concurrency && !self.engine.shutdown.is_cancelled() {
            let Some(svc) = self.pending.pop_front() else { return };
            let principal = Principal::platform(svc.organization_id);
            let new = NewOperation {
                service_id: svc.id,
                op_type: OperationType::Redeploy,
                commit: None,
                trigger: Trigger::platform(PlatformReason::Maintenance),
                target_instances: None,
                redeploy_of: None,
                idempotency_key: None,
            };
            let queued =
                self.engine.submit_with_lines(&principal, new, vec![NewLine::system(line.clone())]).await;
            match queued {
                Ok(op) => {
                    self.in_flight.insert(op.id);
                    self.state.send_modify(|c| {
                        c.queued -= 1;
                        c.running += 1;
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, service = %svc.id, "maintenance could not queue a redeploy");
                    self.state.send_modify(|c| {
                        c.queued -= 1;
                        c.failed += 1;
                    });
                }
            }
        }
    }

    /// One of the campaign's operations (or another one) ended.
    fn ended(&mut self, op: OperationId, status: OperationStatus) {
        if !self.in_flight.remove(&op) {
            return;
        }
        self.state.send_modify(|c| {
            c.running -= 1;
            if status == OperationStatus::DeploymentOk {
                c.succeeded += 1;
            } else {
                c.failed += 1;
            }
        });
    }

    /// After missed events: ends the in-flight operations that are final.
    async fn recheck(&mut self) {
        let ids: Vec<OperationId> = self.in_flight.iter().copied().collect();
        for id in ids {
            let op = self.engine.store.read(move |r| operations::operation_by_id(r, id)).await;
            match op {
                Ok(op) if op.status.is_final() => self.ended(id, op.status),
                Ok(_) => {}
                Err(error) => {
                    tracing::error!(%error, operation = %id, "maintenance could not read an operation")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(id: u64, env: u64, kind: ServiceKind, deleted: bool) -> Service {
        let mut svc = crate::domain::fixtures::service(Some("c1"));
        svc.id = ServiceId(id);
        svc.environment_id = EnvironmentId(env);
        svc.kind = kind;
        svc.deleted_at = deleted.then_some(1);
        svc
    }

    #[test]
    fn a_filter_matches_the_live_services_that_pass_every_part_given() {
        let api = service(1, 1, ServiceKind::Application, false);
        let db = service(2, 1, ServiceKind::Database, false);
        let other = service(3, 2, ServiceKind::Application, false);
        let gone = service(4, 1, ServiceKind::Application, true);
        let all = [&api, &db, &other, &gone];
        let picked =
            |f: &CampaignFilter| all.iter().filter(|s| f.matches(s)).map(|s| s.id.0).collect::<Vec<_>>();

        assert_eq!(picked(&CampaignFilter::default()), [1, 2, 3]);
        let env = CampaignFilter { environment: Some(EnvironmentId(1)), ..Default::default() };
        assert_eq!(picked(&env), [1, 2]);
        let kinds = CampaignFilter { kinds: Some(vec![ServiceKind::Database]), ..Default::default() };
        assert_eq!(picked(&kinds), [2]);
        let ids = CampaignFilter {
            environment: Some(EnvironmentId(1)),
            services: Some(vec![ServiceId(1), ServiceId(3), ServiceId(4)]),
            kinds: None,
        };
        assert_eq!(picked(&ids), [1]);
    }
}
