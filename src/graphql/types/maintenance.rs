//! `MaintenanceCampaign`: a redeploy of many services, a few at a time,
//! with its input `StartMaintenanceInput`.

use async_graphql::{Enum, ID, InputObject, SimpleObject};
use chrono::{DateTime, Utc};

use super::enums::ServiceKind;
use crate::domain::{DomainError, EnvironmentId, ServiceId};
use crate::engine::maintenance::{Campaign, CampaignFilter, NewCampaign};
use crate::graphql::scope::{datetime, id};

/// Longest campaign description accepted, in characters.
const MAX_DESCRIPTION: usize = 500;
/// Most redeploys of one campaign in flight at once.
const MAX_CONCURRENCY: i32 = 64;

/// Input of `startMaintenance`. The campaign redeploys the live services
/// that pass every filter given (all of the organization's when none is).
#[derive(InputObject)]
pub struct StartMaintenanceInput {
    /// Only the services of this environment.
    pub environment_id: Option<ID>,
    /// Only these services.
    pub service_ids: Option<Vec<ID>>,
    /// Only services of these kinds.
    pub kinds: Option<Vec<ServiceKind>>,
    /// Why: 1 to 500 characters, written to the log of every operation the
    /// campaign queues.
    pub description: String,
    /// Most of the campaign's redeploys queued or running at once: 1 to 64.
    pub concurrency: i32,
}

impl StartMaintenanceInput {
    pub fn validate(self) -> Result<NewCampaign, DomainError> {
        let description = self.description.trim();
        let chars = description.chars().count();
        if chars == 0 || chars > MAX_DESCRIPTION {
            return Err(DomainError::bad_input(
                "description",
                format!("must be 1 to {MAX_DESCRIPTION} characters, got {chars}"),
            ));
        }
        if !(1..=MAX_CONCURRENCY).contains(&self.concurrency) {
            return Err(DomainError::bad_input(
                "concurrency",
                format!("must be 1 to {MAX_CONCURRENCY}, got {}", self.concurrency),
            ));
        }
        let environment = self.environment_id.map(|e| e.parse::<EnvironmentId>()).transpose()?;
        let services = self
            .service_ids
            .map(|ids| ids.iter().map(|s| s.parse::<ServiceId>()).collect::<Result<Vec<_>, _>>())
            .transpose()?;
        let kinds = self.kinds.map(|kinds| kinds.into_iter().map(Into::into).collect());
        Ok(NewCampaign {
            filter: CampaignFilter { environment, services, kinds },
            description: description.to_owned(),
            concurrency: self.concurrency as u32,
        })
    }
}

/// Whether a campaign is still at work.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "crate::engine::maintenance::CampaignStatus")]
pub enum MaintenanceCampaignStatus {
    /// Redeploys are queued or in flight.
    Running,
    /// Every matching service was redeployed (or could not be); final.
    Completed,
}

/// A maintenance campaign: a `REDEPLOY` of every matching service (trigger
/// `PLATFORM`, reason `MAINTENANCE`), at most `concurrency` at a time.
/// Campaigns are kept in memory: after a server restart they are gone.
#[derive(SimpleObject)]
#[graphql(name = "MaintenanceCampaign")]
pub struct MaintenanceCampaignObject {
    /// Its id (`mnt_<n>`).
    pub id: ID,
    /// Why it was started; also in each of its operations' logs.
    pub description: String,
    /// Most of its redeploys queued or running at once.
    pub concurrency: u32,
    /// Who started it.
    pub started_by: String,
    /// Whether it is still at work.
    pub status: MaintenanceCampaignStatus,
    /// Services it redeploys: the matching services that were deployed
    /// before (`skipped` not included).
    pub total: u64,
    /// Of those, the ones whose redeploy is not queued yet.
    pub queued: u64,
    /// Its redeploys queued or running now; never more than `concurrency`.
    pub running: u64,
    /// Its redeploys that ended `DEPLOYMENT_OK`.
    pub succeeded: u64,
    /// Its redeploys that ended otherwise, or could not be queued.
    pub failed: u64,
    /// Matching services never deployed: nothing to redeploy.
    pub skipped: u64,
    /// When it was started.
    pub started_at: DateTime<Utc>,
    /// When its last redeploy ended; null while it is running.
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<Campaign> for MaintenanceCampaignObject {
    fn from(c: Campaign) -> Self {
        Self {
            id: id(c.id),
            description: c.description,
            concurrency: c.concurrency,
            started_by: c.started_by,
            status: c.status.into(),
            total: c.total as u64,
            queued: c.queued as u64,
            running: c.running as u64,
            succeeded: c.succeeded as u64,
            failed: c.failed as u64,
            skipped: c.skipped as u64,
            started_at: datetime(c.started_at),
            finished_at: c.finished_at.map(datetime),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(description: &str, concurrency: i32) -> StartMaintenanceInput {
        StartMaintenanceInput {
            environment_id: None,
            service_ids: None,
            kinds: None,
            description: description.into(),
            concurrency,
        }
    }

    #[test]
    fn bad_input_names_its_field() {
        let field = |i: StartMaintenanceInput| match i.validate().unwrap_err() {
            DomainError::BadUserInput { field, .. } => field,
            other => panic!("{other}"),
        };
        assert_eq!(field(input("patch", 0)), "concurrency");
        assert_eq!(field(input("patch", 65)), "concurrency");
        assert_eq!(field(input("  ", 2)), "description");
        assert_eq!(field(input(&"x".repeat(501), 2)), "description");
        assert!(input(&"é".repeat(500), 64).validate().is_ok());
        assert!(input("kernel patch", 1).validate().is_ok());
    }
}
