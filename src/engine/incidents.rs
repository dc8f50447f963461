//! Incidents that open themselves: when monitoring makes the platform
//! redeploy more than a share of an organization's monitored services
//! within a window (a host lost its power, the network split), an incident
//! opens on the status page — as a draft, since it names the
//! organization's services — and follows the recovery: an update each time
//! one more affected service runs again, and resolution (with its summary)
//! when every one is back. A person edits and publishes it.
//!
//! Fed by the recovery queue ([`super::healing`]): each platform redeploy
//! queued, and each one that ended. The state lives in memory, like the
//! queue; after a restart an open incident stays open for a person to
//! resolve.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::Engine;
use super::monitor::is_monitored;
use crate::domain::status_page::{
    AffectedService, AutoIncidentRule, IncidentId, IncidentStatus, human_duration,
};
use crate::domain::{Millis, OrganizationId, Service, ServiceId, now_millis};
use crate::store::resources;
use crate::store::status_page::incidents;

/// The automatic incidents of every organization.
pub struct AutoIncidents {
    rule: AutoIncidentRule,
    /// Held across the store writes, so two redeploys of one organization
    /// never open two incidents.
    state: tokio::sync::Mutex<HashMap<OrganizationId, OrgState>>,
}

#[derive(Default)]
struct OrgState {
    /// Platform redeploys queued within the window: when, and of what.
    recent: VecDeque<(Millis, ServiceId)>,
    /// Whether the last platform redeploy of a recent service succeeded.
    back: HashMap<ServiceId, bool>,
    /// The incident following this organization's recovery, if one is open.
    open: Option<(IncidentId, Vec<AffectedService>)>,
}

impl AutoIncidents {
    pub fn new(rule: AutoIncidentRule) -> Self {
        Self { rule, state: tokio::sync::Mutex::default() }
    }

    /// The platform queued a redeploy of `svc`.
    pub async fn redeploy_queued(&self, engine: &Arc<Engine>, svc: &Service) {
        let now = now_millis();
        let mut state = self.state.lock().await;
        let org = state.entry(svc.organization_id).or_default();
        org.recent.push_back((now, svc.id));
        org.back.insert(svc.id, false);
        let since = now.saturating_sub(i64::try_from(self.rule.window_ms).unwrap_or(i64::MAX));
        while org.recent.front().is_some_and(|(at, _)| *at < since) {
            org.recent.pop_front();
        }
        let recent: Vec<ServiceId> = org.recent.iter().map(|(_, id)| *id).collect();
        org.back.retain(|id, _| recent.contains(id));
        if let Some((id, services)) = &mut org.open {
            match services.iter_mut().find(|s| s.service_id == svc.id) {
                Some(s) => s.recovered = false,
                None => services.push(affected(svc, false)),
            }
            let (id, services) = (*id, services.clone());
            self.progress(engine, org, id, services).await;
            return;
        }
        let mut distinct = recent;
        distinct.sort();
        distinct.dedup();
        let org_id = svc.organization_id;
        let read = engine.store.read(move |r| {
            let all = resources::all_services(r)?;
            let monitored = all.iter().filter(|s| s.organization_id == org_id && serving(s)).count();
            let affected: Vec<Service> = all.into_iter().filter(|s| distinct.contains(&s.id)).collect();
            Ok((monitored, affected))
        });
        let (monitored, affected_services) = match read.await {
            Ok(found) => found,
            Err(error) => return tracing::error!(%error, "reading services for an automatic incident failed"),
        };
        if !self.rule.opens(affected_services.len(), monitored) {
            return;
        }
        let services: Vec<AffectedService> = affected_services
            .iter()
            .map(|s| affected(s, org.back.get(&s.id).copied().unwrap_or(false)))
            .collect();
        let window = human_duration(i64::try_from(self.rule.window_ms).unwrap_or(i64::MAX));
        let opened = {
            let services = services.clone();
            engine
                .store
                .write(move |tx| incidents::open_automatic(tx, org_id, services.clone(), monitored, &window))
                .await
        };
        match opened {
            Ok(incident) => {
                tracing::warn!(incident = %incident.id, organization = %org_id, services = services.len(),
                    "mass redeploy: opened an automatic incident (draft)");
                org.open = Some((incident.id, services));
            }
            Err(error) => tracing::error!(%error, "opening an automatic incident failed"),
        }
    }

    /// A platform redeploy of `svc` ended; `succeeded`: it runs again.
    pub async fn redeploy_ended(&self, engine: &Arc<Engine>, svc: ServiceId, succeeded: bool) {
        let mut state = self.state.lock().await;
        let Some(org) = state.values_mut().find(|o| o.back.contains_key(&svc)) else { return };
        org.back.insert(svc, succeeded);
        let Some((id, services)) = &mut org.open else { return };
        let Some(service) = services.iter_mut().find(|s| s.service_id == svc) else { return };
        if !succeeded || service.recovered {
            return;
        }
        service.recovered = true;
        let (id, services) = (*id, services.clone());
        self.progress(engine, org, id, services).await;
    }

    /// Writes where recovery stands; forgets the incident once resolved.
    async fn progress(
        &self,
        engine: &Arc<Engine>,
        org: &mut OrgState,
        id: IncidentId,
        services: Vec<AffectedService>,
    ) {
        let written =
            engine.store.write(move |tx| incidents::automatic_progress(tx, id, services.clone())).await;
        match written {
            Ok(incident) if incident.status == IncidentStatus::Resolved => {
                // The episode is over: its redeploys do not count towards
                // the next one.
                org.open = None;
                org.recent.clear();
                org.back.clear();
            }
            Ok(_) => {}
            Err(error) => tracing::error!(%error, incident = %id, "updating an automatic incident failed"),
        }
    }
}

/// Whether `svc` counts among the services monitoring keeps running:
/// monitored, deployed, and with something to run.
fn serving(svc: &Service) -> bool {
    is_monitored(svc)
        && svc.current_commit.is_some()
        && svc.spec.start_command.is_some()
        && svc.spec.instances > 0
}

fn affected(svc: &Service, recovered: bool) -> AffectedService {
    AffectedService { service_id: svc.id, name: svc.name.as_str().to_owned(), kind: svc.kind, recovered }
}
