//! `Maintenance`: a window announced ahead, with its own timeline.

use async_graphql::{Context, Enum, ID, Object, Result};
use chrono::{DateTime, Utc};

use super::ComponentObject;
use crate::domain::status_page::{TimelineUpdate, Window};
use crate::graphql::scope::{datetime, id, public};
use crate::store::status_page::{self as page, windows};

/// States of a maintenance window.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "crate::domain::status_page::WindowStatus")]
pub enum MaintenanceStatus {
    /// Announced; not started.
    Scheduled,
    /// Under way.
    InProgress,
    /// Done. Final.
    Completed,
    /// Called off before it completed. Final.
    Cancelled,
}

/// A maintenance window announced ahead, then followed live. Public once
/// scheduled.
pub struct MaintenanceObject(pub Window);

/// A maintenance window announced ahead, then followed live. Public once
/// scheduled.
#[Object(name = "Maintenance")]
impl MaintenanceObject {
    /// Global id (`mw_<n>`).
    pub async fn id(&self) -> ID {
        id(self.0.id)
    }

    /// Its headline.
    async fn title(&self) -> &str {
        &self.0.title
    }

    /// What will be done; null when not given.
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }

    /// The components it touches.
    async fn components(&self, ctx: &Context<'_>) -> Result<Vec<ComponentObject>> {
        let ids = self.0.components.clone();
        let all = public(ctx)?.read(page::components).await?;
        Ok(all.into_iter().filter(|(c, _)| ids.contains(&c.id)).map(|(c, a)| ComponentObject(c, a)).collect())
    }

    /// When the window opens, as announced.
    async fn starts_at(&self) -> DateTime<Utc> {
        datetime(self.0.starts_at)
    }

    /// When the window closes, as announced.
    async fn ends_at(&self) -> DateTime<Utc> {
        datetime(self.0.ends_at)
    }

    /// Where it stands.
    async fn status(&self) -> MaintenanceStatus {
        self.0.status.into()
    }

    /// When it was announced.
    async fn created_at(&self) -> DateTime<Utc> {
        datetime(self.0.created_at)
    }

    /// When it actually started; null until `IN_PROGRESS`.
    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.0.started_at.map(datetime)
    }

    /// When it completed or was cancelled; null until then.
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at.map(datetime)
    }

    /// Its timeline, oldest first (the first says it was scheduled).
    async fn updates(&self, ctx: &Context<'_>) -> Result<Vec<MaintenanceUpdateObject>> {
        let id = self.0.id;
        let updates = public(ctx)?.read(move |r| windows::updates(r, id)).await?;
        Ok(updates.into_iter().map(MaintenanceUpdateObject).collect())
    }
}

/// One entry of a maintenance window's timeline.
pub struct MaintenanceUpdateObject(pub TimelineUpdate);

/// One entry of a maintenance window's timeline.
#[Object(name = "MaintenanceUpdate")]
impl MaintenanceUpdateObject {
    /// Its place in the timeline: 1, 2, 3 …
    async fn number(&self) -> i64 {
        self.0.number as i64
    }

    /// When it was posted.
    async fn at(&self) -> DateTime<Utc> {
        datetime(self.0.at)
    }

    /// What it says.
    async fn message(&self) -> &str {
        &self.0.text
    }

    /// The state it moved the window to (or kept it in).
    async fn status(&self) -> MaintenanceStatus {
        crate::domain::status_page::window_status(&self.0.status).into()
    }

    /// Who posted it.
    async fn author(&self) -> &str {
        &self.0.author
    }
}
