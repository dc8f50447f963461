//! `IncidentEvent`: one row of the `incidentUpdates` feed.

use async_graphql::{Context, Enum, Object, Result};
use chrono::{DateTime, Utc};

use super::ComponentObject;
use super::incident::IncidentObject;
use super::window::MaintenanceObject;
use crate::graphql::scope::{datetime, found, public};
use crate::store::status_page::{self as page, Audience, PageEvent, incidents, windows};

/// What happened on the status page.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "crate::store::status_page::PageEventKind")]
pub enum IncidentEventKind {
    /// An incident opened (with its first update).
    IncidentOpened,
    /// A draft incident appeared on the public page, with its timeline.
    IncidentPublished,
    /// An update was posted to an incident.
    IncidentUpdated,
    /// An update's message was corrected.
    UpdateCorrected,
    /// An incident was resolved (with its last update).
    IncidentResolved,
    /// A resolved incident's summary was published.
    SummaryPublished,
    /// A maintenance window was announced.
    MaintenanceScheduled,
    /// An update was posted to a maintenance window.
    MaintenanceUpdated,
    /// A component's shown status changed.
    ComponentChanged,
}

/// One event of the status page's feed, read for an audience.
pub struct IncidentEventObject(pub PageEvent, pub Audience);

/// One event of the status page's feed, read for an audience.
#[Object(name = "IncidentEvent")]
impl IncidentEventObject {
    /// Position in the feed: pass it as `after` to resume after this event.
    async fn cursor(&self) -> String {
        self.0.seq.to_string()
    }

    /// When it happened.
    async fn at(&self) -> DateTime<Utc> {
        datetime(self.0.at)
    }

    /// What happened.
    async fn kind(&self) -> IncidentEventKind {
        self.0.kind.into()
    }

    /// The incident it is about, as it is now; null for events about
    /// something else.
    async fn incident(&self, ctx: &Context<'_>) -> Result<Option<IncidentObject>> {
        let (Some(id), audience) = (self.0.incident_id, self.1) else { return Ok(None) };
        let found = public(ctx)?.read(move |r| found(incidents::incident(r, id, audience))).await?;
        Ok(found.map(|i| IncidentObject(i, audience)))
    }

    /// The maintenance window it is about, as it is now; null for events
    /// about something else.
    async fn maintenance(&self, ctx: &Context<'_>) -> Result<Option<MaintenanceObject>> {
        let Some(id) = self.0.window_id else { return Ok(None) };
        let found = public(ctx)?.read(move |r| found(windows::window(r, id))).await?;
        Ok(found.map(MaintenanceObject))
    }

    /// The component whose status changed, as it is now; null for other
    /// events.
    async fn component(&self, ctx: &Context<'_>) -> Result<Option<ComponentObject>> {
        let Some(id) = self.0.component_id else { return Ok(None) };
        let found = public(ctx)?
            .read(move |r| {
                found(page::component(r, id).and_then(|c| Ok((c, page::shown_availability(r, id)?))))
            })
            .await?;
        Ok(found.map(|(c, a)| ComponentObject(c, a)))
    }

    /// The number of the timeline update it is about (posted or corrected);
    /// null for other events.
    async fn update_number(&self) -> Option<i64> {
        self.0.update.map(|n| n as i64)
    }

    /// The message as it read at this event (the update posted, the
    /// correction, the summary published); null for other events.
    async fn message(&self) -> Option<&str> {
        self.0.text.as_deref()
    }

    /// The incident's status, the window's state or the component's status
    /// right after the event, by name (`MONITORING`, `IN_PROGRESS`,
    /// `DEGRADED`).
    async fn status(&self) -> Option<&str> {
        self.0.status.as_deref()
    }
}
