//! Self-healing: what monitoring finds wrong becomes a platform redeploy
//! (trigger `PLATFORM`, source `MONITORING`, the finding's reason, its
//! evidence in the operation's log), through one recovery queue.
//!
//! - At most `limit` platform redeploys are in flight at once, so a mass
//!   failure (every instance dying together) recovers steadily.
//! - A service gets one redeploy in flight at a time; findings about it meanwhile
//!   are dropped.
//! - Redeploys in a row back off exponentially; a service that failed again
//!   after `max_redeploys` is given up on: left as it is, with the reason on
//!   `Service.healing`. A service that stays healthy for `stable_ms` after
//!   a redeploy starts a new series on its next failure.
//!
//! The state is kept in memory: after a restart, start-up recovery starts
//! again what was serving, and monitoring begins afresh.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::Engine;
use crate::domain::monitor::{Finding, next_redeploy_at};
use crate::domain::{
    Millis, NewLine, NewOperation, OperationId, OperationStatus, OperationType, Principal, Service,
    ServiceId, Trigger, now_millis,
};
use crate::store::logs::{self, Log};
use crate::store::{Event, operations};

/// Where the recovery queue stands: watchable by clients.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryProgress {
    /// Services waiting for a redeploy slot (or their back-off).
    pub queued: usize,
    /// Platform redeploys in flight.
    pub running: usize,
    /// Services that needed a redeploy in the current episode (since the
    /// last time every affected service was back).
    pub affected: usize,
    /// Of those, the services running again after their redeploy.
    pub recovered: usize,
}

/// Where self-healing of one service stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceHealing {
    /// Platform redeploys in the current series.
    pub redeploys: u32,
    /// When the last one was queued.
    pub last_redeploy_at: Option<Millis>,
    /// The last thing monitoring found wrong.
    pub last_finding: Option<String>,
    /// Waiting for a slot or its back-off until this time.
    pub queued_until: Option<Millis>,
    /// A platform redeploy of it is in flight.
    pub redeploying: Option<OperationId>,
    /// Set when monitoring gave up on it: why.
    pub gave_up: Option<String>,
}

#[derive(Default)]
struct State {
    services: HashMap<ServiceId, ServiceHealing>,
    queue: VecDeque<(Service, Finding)>,
    /// Taken from the queue, being submitted.
    starting: BTreeSet<ServiceId>,
    running: HashMap<OperationId, ServiceId>,
    affected: BTreeSet<ServiceId>,
    recovered: BTreeSet<ServiceId>,
}

/// The recovery queue.
pub struct Healing {
    limit: usize,
    state: Mutex<State>,
    wake: Notify,
    progress: watch::Sender<RecoveryProgress>,
}

impl Healing {
    pub fn new(limit: usize) -> Self {
        Self {
            limit: limit.max(1),
            state: Mutex::default(),
            wake: Notify::new(),
            progress: watch::channel(RecoveryProgress::default()).0,
        }
    }

    /// Follows the recovery queue.
    pub fn progress(&self) -> watch::Receiver<RecoveryProgress> {
        self.progress.subscribe()
    }

    /// Where self-healing of `svc` stands.
    pub fn of_service(&self, svc: ServiceId) -> ServiceHealing {
        self.lock().services.get(&svc).cloned().unwrap_or_default()
    }

    /// Whether monitoring should check `svc` now: not while a redeploy of
    /// it is queued or in flight, nor once it was given up on.
    pub fn watches(&self, svc: ServiceId) -> bool {
        let state = self.lock();
        let busy = state.starting.contains(&svc) || state.queue.iter().any(|(s, _)| s.id == svc);
        let health = state.services.get(&svc);
        !busy && health.is_none_or(|h| h.redeploying.is_none() && h.gave_up.is_none())
    }

    /// Monitoring found `finding` on `svc`: queue a redeploy, or give up.
    /// Returns the line to write to the service's log when it gives up.
    pub fn report(&self, svc: Service, finding: Finding) -> Option<String> {
        let now = now_millis();
        let mut state = self.lock();
        if state.affected.len() == state.recovered.len() && state.queue.is_empty() && state.running.is_empty()
        {
            // A new episode.
            state.affected.clear();
            state.recovered.clear();
        }
        state.affected.insert(svc.id);
        state.recovered.remove(&svc.id);
        let spec = svc.spec.monitoring.clone();
        let health = state.services.entry(svc.id).or_default();
        health.last_finding = Some(finding.evidence());
        if health.last_redeploy_at.is_some_and(|at| at + spec.stable_ms as i64 <= now) {
            health.redeploys = 0;
        }
        let give_up = match next_redeploy_at(&spec, health.redeploys, health.last_redeploy_at.unwrap_or(now))
        {
            Some(at) => {
                health.queued_until = Some(at.max(now));
                state.queue.push_back((svc, finding));
                None
            }
            None => {
                let why = format!(
                    "monitoring gave up after {} platform redeploys in a row; last: {}",
                    spec.max_redeploys,
                    finding.evidence()
                );
                health.gave_up = Some(why.clone());
                Some(why)
            }
        };
        self.publish(&state);
        drop(state);
        self.wake.notify_one();
        give_up
    }

    /// Monitoring may try again on `svc` (its spec changed, or a person
    /// deployed it): forget a give-up.
    pub fn reset(&self, svc: ServiceId) {
        self.lock().services.remove(&svc);
    }

    /// Runs the queue until shutdown: starts ready redeploys while slots are
    /// free, and frees slots as their operations end.
    pub async fn run(engine: Arc<Engine>, shutdown: CancellationToken) {
        let healing = &engine.healing;
        let mut events = engine.store.events().subscribe();
        loop {
            let wait = healing.start_ready(&engine).await;
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = healing.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
                event = events.recv() => match event {
                    Ok(Event::Operation(e)) if e.status.is_final() => {
                        let succeeded = e.status == OperationStatus::DeploymentOk;
                        if let Some(svc) = healing.ended(e.operation_id, succeeded) {
                            engine.incidents.redeploy_ended(&engine, svc, succeeded).await;
                        }
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => healing.recheck(&engine).await,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    }

    /// Starts the queued redeploys that are due while slots are free;
    /// returns how long until the next one is due.
    async fn start_ready(&self, engine: &Arc<Engine>) -> Duration {
        loop {
            let now = now_millis();
            let next = {
                let mut state = self.lock();
                if state.running.len() >= self.limit {
                    return Duration::from_secs(3600);
                }
                let due = state.queue.iter().position(|(s, _)| {
                    state.services.get(&s.id).and_then(|h| h.queued_until).is_none_or(|t| t <= now)
                });
                match due {
                    Some(index) => {
                        let next = state.queue.remove(index);
                        if let Some((svc, _)) = &next {
                            state.starting.insert(svc.id);
                        }
                        next
                    }
                    None => {
                        let soonest = state
                            .queue
                            .iter()
                            .filter_map(|(s, _)| state.services.get(&s.id)?.queued_until)
                            .min();
                        let wait = soonest.map_or(3_600_000, |t| (t - now).max(1));
                        return Duration::from_millis(wait as u64);
                    }
                }
            };
            if let Some((svc, finding)) = next {
                self.start(engine, svc, finding).await;
            }
        }
    }

    async fn start(&self, engine: &Arc<Engine>, svc: Service, finding: Finding) {
        let principal = Principal::platform(svc.organization_id);
        let new = NewOperation {
            service_id: svc.id,
            op_type: OperationType::Redeploy,
            commit: None,
            trigger: Trigger::platform(finding.reason()),
            target_instances: None,
            redeploy_of: None,
            idempotency_key: None,
        };
        let evidence = vec![NewLine::system(finding.evidence())];
        let queued = engine.submit_with_lines(&principal, new, evidence).await;
        // The state's lock is never held across an await.
        let queued = {
            let mut state = self.lock();
            state.starting.remove(&svc.id);
            let health = state.services.entry(svc.id).or_default();
            health.queued_until = None;
            let queued = match queued {
                Ok(op) => {
                    health.redeploys += 1;
                    health.last_redeploy_at = Some(now_millis());
                    health.redeploying = Some(op.id);
                    state.running.insert(op.id, svc.id);
                    true
                }
                Err(error) => {
                    tracing::warn!(%error, service = %svc.id, "monitoring could not queue a redeploy");
                    health.gave_up = Some(format!("monitoring could not queue a redeploy: {error}"));
                    false
                }
            };
            self.publish(&state);
            queued
        };
        if queued {
            engine.incidents.redeploy_queued(engine, &svc).await;
        }
    }

    /// A platform redeploy ended; returns its service (`None` when `op`
    /// was not one of the queue's).
    fn ended(&self, op: OperationId, succeeded: bool) -> Option<ServiceId> {
        let mut state = self.lock();
        let svc = state.running.remove(&op)?;
        if let Some(health) = state.services.get_mut(&svc) {
            health.redeploying = None;
        }
        if succeeded {
            state.recovered.insert(svc);
        }
        self.publish(&state);
        Some(svc)
    }

    /// After missed events: ends the in-flight redeploys that are final.
    async fn recheck(&self, engine: &Arc<Engine>) {
        let ids: Vec<OperationId> = self.lock().running.keys().copied().collect();
        for id in ids {
            let op = engine.store.read(move |r| operations::operation_by_id(r, id)).await;
            if let Ok(op) = op
                && op.status.is_final()
            {
                let succeeded = op.status == OperationStatus::DeploymentOk;
                if let Some(svc) = self.ended(id, succeeded) {
                    engine.incidents.redeploy_ended(engine, svc, succeeded).await;
                }
            }
        }
    }

    fn publish(&self, state: &State) {
        self.progress.send_replace(RecoveryProgress {
            queued: state.queue.len(),
            running: state.running.len(),
            affected: state.affected.len(),
            recovered: state.recovered.len(),
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("healing state")
    }
}

/// Writes a `SYSTEM` line of monitoring to the service's log (it gave up,
/// or a hot service is at its maximum).
pub async fn record_service_line(engine: &Engine, svc: ServiceId, line: String) {
    let written = engine
        .store
        .write(move |tx| logs::append(tx, Log::Service(svc), &[NewLine::system(line.clone())]))
        .await;
    if let Err(error) = written {
        tracing::error!(%error, service = %svc, "writing a monitoring line to the service log failed");
    }
}
