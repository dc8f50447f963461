//! `RecoveryProgress`: the recovery queue of platform redeploys, and
//! `Healing`: where self-healing of one service stands.

use async_graphql::{Enum, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};

use crate::engine::healing::{RecoveryProgress, ServiceHealing};
use crate::graphql::scope::{datetime, id};

/// The recovery queue as a GraphQL object.
#[derive(SimpleObject)]
#[graphql(name = "RecoveryProgress")]
pub struct RecoveryProgressObject {
    /// Services waiting for a redeploy slot or their back-off.
    pub queued: u64,
    /// Platform redeploys in flight (never more than the server's
    /// `--recovery-concurrency`).
    pub running: u64,
    /// Services that needed a redeploy since the last time every affected
    /// service was back.
    pub affected: u64,
    /// Of those, the services running again after their redeploy.
    pub recovered: u64,
    /// `recovered / affected`, from 0 to 1; 1 when none was affected.
    pub share_recovered: f64,
}

impl From<RecoveryProgress> for RecoveryProgressObject {
    fn from(p: RecoveryProgress) -> Self {
        let share_recovered = if p.affected == 0 { 1.0 } else { p.recovered as f64 / p.affected as f64 };
        Self {
            queued: p.queued as u64,
            running: p.running as u64,
            affected: p.affected as u64,
            recovered: p.recovered as u64,
            share_recovered,
        }
    }
}

/// What self-healing is doing with a service.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealingState {
    /// Nothing found wrong (or its last redeploy held).
    Watching,
    /// A redeploy waits for a slot or its back-off.
    Queued,
    /// A platform redeploy is in flight.
    Redeploying,
    /// Monitoring gave up after too many redeploys in a row; the service is
    /// left as it is until a person deploys it again.
    GaveUp,
}

/// Where self-healing of a service stands, as a GraphQL object.
pub struct HealingObject(pub ServiceHealing);

/// Where self-healing of a service stands.
#[Object(name = "Healing")]
impl HealingObject {
    /// What self-healing is doing with it.
    async fn state(&self) -> HealingState {
        match &self.0 {
            h if h.gave_up.is_some() => HealingState::GaveUp,
            h if h.redeploying.is_some() => HealingState::Redeploying,
            h if h.queued_until.is_some() => HealingState::Queued,
            _ => HealingState::Watching,
        }
    }

    /// Platform redeploys in the current series.
    async fn redeploys_in_a_row(&self) -> u32 {
        self.0.redeploys
    }

    /// When the last platform redeploy was queued; null when none was.
    async fn last_redeploy_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_redeploy_at.map(datetime)
    }

    /// What monitoring last found wrong; null when nothing was.
    async fn last_finding(&self) -> Option<&str> {
        self.0.last_finding.as_deref()
    }

    /// When a queued redeploy may start (its back-off); null unless queued.
    async fn next_redeploy_at(&self) -> Option<DateTime<Utc>> {
        self.0.queued_until.map(datetime)
    }

    /// The platform redeploy in flight; null when none is.
    async fn redeploy_operation_id(&self) -> Option<ID> {
        self.0.redeploying.map(id)
    }

    /// Why monitoring gave up; null unless it did.
    async fn gave_up_reason(&self) -> Option<&str> {
        self.0.gave_up.as_deref()
    }
}
