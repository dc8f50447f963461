//! Inputs of the status page's mutations, each validated into the store's
//! own types before anything is written.

use async_graphql::{ID, InputObject};
use chrono::{DateTime, Utc};

use super::ComponentStatus;
use super::incident::{IncidentImpact, IncidentStatus};
use super::window::MaintenanceStatus;
use crate::domain::status_page::{ComponentId, IncidentId, MAX_TEXT, MAX_TITLE, Touched, WindowId, text};
use crate::domain::{DomainError, ServiceKind};
use crate::graphql::scope::millis;
use crate::store::status_page::NewComponent;
use crate::store::status_page::incidents::{NewIncident, NewUpdate};
use crate::store::status_page::windows::NewWindow;

type Checked<T> = Result<T, DomainError>;

/// Input of `createComponent`.
#[derive(InputObject)]
pub struct CreateComponentInput {
    /// Its name: 1 to 100 characters, unique on the page.
    pub name: String,
    /// The group it is shown in (1 to 100 characters); none: on its own.
    pub group: Option<String>,
    /// What it is, for readers of the page (up to 1,000 characters).
    pub description: Option<String>,
    /// Kinds of services that run on it: incidents the platform opens by
    /// itself about such services touch it.
    #[graphql(default)]
    pub service_kinds: Vec<crate::graphql::types::enums::ServiceKind>,
}

impl CreateComponentInput {
    pub fn validate(self) -> Checked<NewComponent> {
        let kinds: Vec<ServiceKind> = self.service_kinds.into_iter().map(Into::into).collect();
        NewComponent::parse(&self.name, self.group.as_deref(), self.description.as_deref(), kinds)
    }
}

/// Input of `setComponentStatus`.
#[derive(InputObject)]
pub struct SetComponentStatusInput {
    /// The component (`cmp_<n>`).
    pub component_id: ID,
    /// Its own status; open incidents may still show it worse.
    pub status: ComponentStatus,
}

/// A component and its status in an incident.
#[derive(InputObject)]
pub struct ComponentStatusInput {
    /// The component (`cmp_<n>`).
    pub component_id: ID,
    /// Its status during the incident.
    pub status: ComponentStatus,
}

fn touched(list: Vec<ComponentStatusInput>) -> Checked<Vec<Touched>> {
    list.into_iter()
        .map(|c| Ok(Touched { component_id: c.component_id.parse()?, availability: c.status.into() }))
        .collect()
}

fn message(raw: &str) -> Checked<String> {
    text("message", raw, MAX_TEXT)
}

/// Input of `createIncident`.
#[derive(InputObject)]
pub struct CreateIncidentInput {
    /// Its headline: 1 to 200 characters.
    pub title: String,
    /// How bad it is.
    #[graphql(default_with = "IncidentImpact::Minor")]
    pub impact: IncidentImpact,
    /// Its first status; not `RESOLVED`.
    #[graphql(default_with = "IncidentStatus::Investigating")]
    pub status: IncidentStatus,
    /// The first update of its timeline: 1 to 10,000 characters.
    pub message: String,
    /// The components it touches, each with its status during it.
    #[graphql(default)]
    pub components: Vec<ComponentStatusInput>,
    /// `false` keeps it a draft that only editors see until
    /// `publishIncident`.
    #[graphql(default = true)]
    pub publish: bool,
}

impl CreateIncidentInput {
    pub fn validate(self) -> Checked<NewIncident> {
        Ok(NewIncident {
            title: text("title", &self.title, MAX_TITLE)?,
            impact: self.impact.into(),
            status: self.status.into(),
            text: message(&self.message)?,
            components: touched(self.components)?,
            publish: self.publish,
        })
    }
}

/// Input of `postIncidentUpdate`.
#[derive(InputObject)]
pub struct PostIncidentUpdateInput {
    /// The incident (`inc_<n>`).
    pub incident_id: ID,
    /// What to say: 1 to 10,000 characters.
    pub message: String,
    /// Its new status (the same or a later one); omitted: unchanged.
    /// `RESOLVED` resolves it, like `resolveIncident`.
    pub status: Option<IncidentStatus>,
    /// Components whose status changes (or that it now touches).
    #[graphql(default)]
    pub components: Vec<ComponentStatusInput>,
}

impl PostIncidentUpdateInput {
    pub fn validate(self) -> Checked<(IncidentId, NewUpdate)> {
        let update = NewUpdate {
            text: message(&self.message)?,
            status: self.status.map(Into::into),
            components: touched(self.components)?,
        };
        Ok((self.incident_id.parse()?, update))
    }
}

/// Input of `resolveIncident`.
#[derive(InputObject)]
pub struct ResolveIncidentInput {
    /// The incident (`inc_<n>`).
    pub incident_id: ID,
    /// The last update; omitted: "This incident has been resolved."
    pub message: Option<String>,
}

impl ResolveIncidentInput {
    pub fn validate(self) -> Checked<(IncidentId, String)> {
        let text = message(self.message.as_deref().unwrap_or("This incident has been resolved."))?;
        Ok((self.incident_id.parse()?, text))
    }
}

/// Input of `correctIncidentUpdate`.
#[derive(InputObject)]
pub struct CorrectIncidentUpdateInput {
    /// The incident (`inc_<n>`).
    pub incident_id: ID,
    /// The update's number in the timeline (1, 2, 3 …).
    pub number: i64,
    /// The corrected message: 1 to 10,000 characters.
    pub message: String,
    /// Why it was corrected (up to 500 characters).
    pub reason: Option<String>,
}

impl CorrectIncidentUpdateInput {
    pub fn validate(self) -> Checked<(IncidentId, u64, String, Option<String>)> {
        let number = u64::try_from(self.number).ok().filter(|n| *n >= 1).ok_or_else(|| {
            DomainError::bad_input("number", format!("must be 1 or more, got {}", self.number))
        })?;
        let reason = self.reason.as_deref().map(|r| text("reason", r, 500)).transpose()?;
        Ok((self.incident_id.parse()?, number, message(&self.message)?, reason))
    }
}

/// Input of the mutations that act on one incident as a whole
/// (`publishIncident`, `publishIncidentSummary`).
#[derive(InputObject)]
pub struct IncidentActionInput {
    /// The incident (`inc_<n>`).
    pub incident_id: ID,
}

/// Input of `editIncidentSummary`.
#[derive(InputObject)]
pub struct EditIncidentSummaryInput {
    /// The resolved incident (`inc_<n>`).
    pub incident_id: ID,
    /// The summary's new text: 1 to 10,000 characters.
    pub text: String,
}

impl EditIncidentSummaryInput {
    pub fn validate(self) -> Checked<(IncidentId, String)> {
        Ok((self.incident_id.parse()?, text("text", &self.text, MAX_TEXT)?))
    }
}

/// Input of `scheduleMaintenance`.
#[derive(InputObject)]
pub struct ScheduleMaintenanceInput {
    /// Its headline: 1 to 200 characters.
    pub title: String,
    /// What will be done (up to 10,000 characters); it is also the first
    /// update.
    pub description: Option<String>,
    /// The components it touches (`cmp_<n>`).
    #[graphql(default)]
    pub components: Vec<ID>,
    /// When the window opens.
    pub starts_at: DateTime<Utc>,
    /// When it closes: after `startsAt`, and in the future.
    pub ends_at: DateTime<Utc>,
}

impl ScheduleMaintenanceInput {
    pub fn validate(self) -> Checked<NewWindow> {
        Ok(NewWindow {
            title: text("title", &self.title, MAX_TITLE)?,
            description: self.description.as_deref().map(|d| text("description", d, MAX_TEXT)).transpose()?,
            components: self.components.iter().map(|c| c.parse::<ComponentId>()).collect::<Checked<_>>()?,
            starts_at: millis(self.starts_at),
            ends_at: millis(self.ends_at),
        })
    }
}

/// Input of `postMaintenanceUpdate`.
#[derive(InputObject)]
pub struct PostMaintenanceUpdateInput {
    /// The window (`mw_<n>`).
    pub maintenance_id: ID,
    /// What to say: 1 to 10,000 characters.
    pub message: String,
    /// Its new state (`IN_PROGRESS` after `SCHEDULED`, `COMPLETED` after
    /// `IN_PROGRESS`, or `CANCELLED`); omitted: unchanged.
    pub status: Option<MaintenanceStatus>,
}

impl PostMaintenanceUpdateInput {
    pub fn validate(self) -> Checked<(WindowId, String, Option<crate::domain::status_page::WindowStatus>)> {
        Ok((self.maintenance_id.parse()?, message(&self.message)?, self.status.map(Into::into)))
    }
}
