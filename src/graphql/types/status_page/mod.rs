//! The status page's GraphQL types: the page itself and its components
//! (here), incidents ([`incident`]), maintenance windows ([`window`]),
//! the events of `incidentUpdates` ([`event`]) and the mutations' inputs
//! ([`inputs`]).
//!
//! Every object read from a public field shows only what was published; an
//! object also carries the [`Audience`] it was read for, so the objects it
//! leads to (an incident from a component change) keep to it.

pub mod event;
pub mod incident;
pub mod inputs;
pub mod window;

use async_graphql::{Context, Enum, ID, Object, Result};
use chrono::{DateTime, Utc};

use super::enums::ServiceKind;
use crate::domain::status_page::{Availability, Component, ComponentChange};
use crate::graphql::connection::{connection, page_args};
use crate::graphql::scope::{datetime, id, public};
use crate::store::status_page::{self as page, Audience, incidents, windows};
use incident::IncidentObject;
use window::MaintenanceObject;

/// How available a component is.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "crate::domain::status_page::Availability")]
pub enum ComponentStatus {
    /// Working as it should.
    Operational,
    /// Working, slower or with some errors.
    Degraded,
    /// Not working.
    Down,
}

/// The public status page: every component with its status, the
/// incidents going on and the maintenance announced. Readable without a
/// token; shows only what was published.
pub struct StatusPage;

/// The public status page: every component with its status, the
/// incidents going on and the maintenance announced. Readable without a
/// token; shows only what was published.
#[Object]
impl StatusPage {
    /// The worst status of any component (`OPERATIONAL` when there are
    /// none).
    async fn status(&self, ctx: &Context<'_>) -> Result<ComponentStatus> {
        let all = public(ctx)?.read(page::components).await?;
        Ok(all.iter().map(|(_, a)| *a).max().unwrap_or(Availability::Operational).into())
    }

    /// Every component, in creation order.
    async fn components(&self, ctx: &Context<'_>) -> Result<Vec<ComponentObject>> {
        let all = public(ctx)?.read(page::components).await?;
        Ok(all.into_iter().map(|(c, a)| ComponentObject(c, a)).collect())
    }

    /// The components by group, groups in the order of their first
    /// component; components without a group form a group of their own
    /// with a null name, listed last.
    async fn groups(&self, ctx: &Context<'_>) -> Result<Vec<ComponentGroup>> {
        let all = public(ctx)?.read(page::components).await?;
        let mut groups: Vec<ComponentGroup> = Vec::new();
        for (c, a) in all {
            let name = c.group.clone();
            match groups.iter_mut().find(|g| g.name == name) {
                Some(g) => g.components.push(ComponentObject(c, a)),
                None => groups.push(ComponentGroup { name, components: vec![ComponentObject(c, a)] }),
            }
        }
        groups.sort_by_key(|g| g.name.is_none());
        Ok(groups)
    }

    /// Published incidents not resolved yet, oldest first.
    async fn active_incidents(&self, ctx: &Context<'_>) -> Result<Vec<IncidentObject>> {
        let active = public(ctx)?.read(page::active_incidents).await?;
        Ok(active.into_iter().map(|i| IncidentObject(i, Audience::Public)).collect())
    }

    /// Maintenance windows scheduled or in progress, soonest first.
    async fn upcoming_maintenances(&self, ctx: &Context<'_>) -> Result<Vec<MaintenanceObject>> {
        let upcoming = public(ctx)?.read(windows::upcoming).await?;
        Ok(upcoming.into_iter().map(MaintenanceObject).collect())
    }
}

/// Components shown together under one name.
pub struct ComponentGroup {
    name: Option<String>,
    components: Vec<ComponentObject>,
}

/// Components shown together under one name.
#[Object(name = "ComponentGroup")]
impl ComponentGroup {
    /// The group's name; null for the components without a group.
    async fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Its components, in creation order.
    async fn components(&self) -> &[ComponentObject] {
        &self.components
    }

    /// The worst status of its components.
    async fn status(&self) -> ComponentStatus {
        self.components.iter().map(|c| c.1).max().unwrap_or(Availability::Operational).into()
    }
}

/// A part of the platform the status page reports on, with the status it
/// shows (the worst of what a person set and of what open published
/// incidents say).
pub struct ComponentObject(pub Component, pub Availability);

/// A part of the platform the status page reports on, with the status it
/// shows (the worst of what a person set and of what open published
/// incidents say).
#[Object(name = "Component")]
impl ComponentObject {
    /// Global id (`cmp_<n>`).
    pub async fn id(&self) -> ID {
        id(self.0.id)
    }

    /// Its name, unique on the page (`API`, `Deployments` …).
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// The group it is shown in; null when none.
    async fn group(&self) -> Option<&str> {
        self.0.group.as_deref()
    }

    /// What it is, for readers of the page; null when not given.
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }

    /// The status the page shows.
    async fn status(&self) -> ComponentStatus {
        self.1.into()
    }

    /// The status a person set with `setComponentStatus`, before open
    /// incidents are taken into account.
    async fn own_status(&self) -> ComponentStatus {
        self.0.own.into()
    }

    /// Kinds of services that run on it: incidents the platform opens by
    /// itself about such services touch this component.
    async fn service_kinds(&self) -> Vec<ServiceKind> {
        self.0.service_kinds.iter().map(|k| (*k).into()).collect()
    }

    /// When it was added to the page.
    async fn created_at(&self) -> DateTime<Utc> {
        datetime(self.0.created_at)
    }

    /// The changes of its shown status, newest first.
    async fn history(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The first `first` changes after `after` (at most 100).")] first: Option<i32>,
        #[graphql(desc = "Cursor of the edge the page starts after.")] after: Option<String>,
        #[graphql(desc = "The last `last` changes before `before` (at most 100).")] last: Option<i32>,
        #[graphql(desc = "Cursor of the edge the page ends before.")] before: Option<String>,
    ) -> Result<crate::graphql::connection::ComponentChangeConnection> {
        let args = page_args(first, after, last, before)?;
        let id = self.0.id;
        let page = public(ctx)?.read(move |r| page::history_page(r, id, &args)).await?;
        Ok(connection(page, ComponentChangeObject))
    }
}

/// A change of a component's shown status.
pub struct ComponentChangeObject(pub ComponentChange);

/// A change of a component's shown status.
#[Object(name = "ComponentChange")]
impl ComponentChangeObject {
    /// When it changed.
    async fn at(&self) -> DateTime<Utc> {
        datetime(self.0.at)
    }

    /// The status before.
    async fn from(&self) -> ComponentStatus {
        self.0.from.into()
    }

    /// The status after.
    async fn to(&self) -> ComponentStatus {
        self.0.to.into()
    }

    /// The incident that caused it (its publication, an update, its
    /// resolution); null when a person set the status directly.
    async fn incident(&self, ctx: &Context<'_>) -> Result<Option<IncidentObject>> {
        let Some(id) = self.0.incident_id else { return Ok(None) };
        let found = public(ctx)?
            .read(move |r| crate::graphql::scope::found(incidents::incident(r, id, Audience::Public)))
            .await?;
        Ok(found.map(|i| IncidentObject(i, Audience::Public)))
    }
}
