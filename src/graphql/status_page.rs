//! The status page's roots: public reads (no token needed: they go
//! through [`scope::public`]), writes (every one through
//! [`scope::status_page_editor`], the one place access control decides who
//! may edit the page) and the `incidentUpdates` feed. Merged into the
//! `Query`, `Mutation` and `Subscription` roots.

use async_graphql::{Context, ID, Object, Result, Subscription};
use futures_util::stream::Stream;

use super::connection::{IncidentConnection, MaintenanceConnection, connection, page_args};
use super::error::{GqlResult, gql};
use super::replay::{Chunk, Live, replay_then_live};
use super::scope::{audience, found, parse_id, public, status_page_editor};
use super::subscription::{EVENT_PAGE, event_cursor, one_by_one};
use super::types::enums::all;
use super::types::status_page::event::IncidentEventObject;
use super::types::status_page::incident::{IncidentObject, IncidentStatus, IncidentUpdateObject};
use super::types::status_page::inputs::*;
use super::types::status_page::window::{MaintenanceObject, MaintenanceStatus};
use super::types::status_page::{ComponentObject, StatusPage};
use crate::domain::status_page::{ComponentId, IncidentId, WindowId};
use crate::store::Event;
use crate::store::status_page::{self as page, Audience, incidents, windows};

/// Reads of the status page.
#[derive(Default)]
pub struct StatusPageQuery;

#[Object(name = "StatusPageQuery")]
impl StatusPageQuery {
    /// The public status page. Readable without a token; shows only what
    /// was published.
    async fn status_page(&self, ctx: &Context<'_>) -> Result<StatusPage> {
        public(ctx)?;
        Ok(StatusPage)
    }

    /// Incidents, newest first. Readable without a token: only published
    /// incidents, unless an editor asks for drafts too.
    // A filter, the drafts switch and the four connection arguments.
    #[allow(clippy::too_many_arguments)]
    async fn incidents(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only incidents in one of these statuses; omitted: all.")] statuses: Option<
            Vec<IncidentStatus>,
        >,
        #[graphql(desc = "Drafts too (the platform's automatic incidents before a person publishes them); \
                          needs the right to edit the status page.")]
        include_drafts: Option<bool>,
        #[graphql(desc = "The first `first` incidents after `after` (at most 100).")] first: Option<i32>,
        #[graphql(desc = "Cursor of the edge the page starts after.")] after: Option<String>,
        #[graphql(desc = "The last `last` incidents before `before` (at most 100).")] last: Option<i32>,
        #[graphql(desc = "Cursor of the edge the page ends before.")] before: Option<String>,
    ) -> Result<IncidentConnection> {
        let audience = audience(ctx, include_drafts)?;
        let statuses = all(statuses);
        let args = page_args(first, after, last, before)?;
        let page =
            public(ctx)?.read(move |r| incidents::incidents_page(r, audience, &statuses, &args)).await?;
        Ok(connection(page, |i| IncidentObject(i, audience)))
    }

    /// The incident with this id; null when there is none, or when it is a
    /// draft and drafts were not asked for.
    async fn incident(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "An incident id (`inc_<n>`).")] id: ID,
        #[graphql(desc = "Find a draft too; needs the right to edit the status page.")]
        include_drafts: Option<bool>,
    ) -> Result<Option<IncidentObject>> {
        let audience = audience(ctx, include_drafts)?;
        let id: IncidentId = parse_id(&id)?;
        let found = public(ctx)?.read(move |r| found(incidents::incident(r, id, audience))).await?;
        Ok(found.map(|i| IncidentObject(i, audience)))
    }

    /// Maintenance windows, newest first. Readable without a token.
    async fn maintenances(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only windows in one of these states; omitted: all.")] statuses: Option<
            Vec<MaintenanceStatus>,
        >,
        #[graphql(desc = "The first `first` windows after `after` (at most 100).")] first: Option<i32>,
        #[graphql(desc = "Cursor of the edge the page starts after.")] after: Option<String>,
        #[graphql(desc = "The last `last` windows before `before` (at most 100).")] last: Option<i32>,
        #[graphql(desc = "Cursor of the edge the page ends before.")] before: Option<String>,
    ) -> Result<MaintenanceConnection> {
        let statuses = all(statuses);
        let args = page_args(first, after, last, before)?;
        let page = public(ctx)?.read(move |r| windows::windows_page(r, &statuses, &args)).await?;
        Ok(connection(page, MaintenanceObject))
    }

    /// The maintenance window with this id; null when there is none.
    async fn maintenance(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A maintenance window id (`mw_<n>`).")] id: ID,
    ) -> Result<Option<MaintenanceObject>> {
        let id: WindowId = parse_id(&id)?;
        let found = public(ctx)?.read(move |r| found(windows::window(r, id))).await?;
        Ok(found.map(MaintenanceObject))
    }
}

/// Writes to the status page; each needs the right to edit it.
#[derive(Default)]
pub struct StatusPageMutation;

#[Object]
impl StatusPageMutation {
    /// Adds a component to the page, `OPERATIONAL`.
    async fn create_component(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The component to add.")] input: CreateComponentInput,
    ) -> Result<ComponentObject> {
        let new = input.validate().gql()?;
        let s = status_page_editor(ctx).await?;
        let c = s.write(move |tx, _| page::create_component(tx, &new)).await?;
        let a = c.own;
        Ok(ComponentObject(c, a))
    }

    /// Sets a component's own status; the page shows the worst of it and
    /// of what open published incidents say. Recorded in its history.
    async fn set_component_status(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The component and its status.")] input: SetComponentStatusInput,
    ) -> Result<ComponentObject> {
        let id: ComponentId = parse_id(&input.component_id)?;
        let status = input.status.into();
        let s = status_page_editor(ctx).await?;
        let (c, a) = s
            .write(move |tx, _| {
                let c = page::set_component_status(tx, id, status)?;
                Ok((c, page::shown_availability(tx.reader(), id)?))
            })
            .await?;
        Ok(ComponentObject(c, a))
    }

    /// Opens an incident with its first update; published at once unless
    /// `publish: false`.
    async fn create_incident(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The incident to open.")] input: CreateIncidentInput,
    ) -> Result<IncidentObject> {
        let new = input.validate().gql()?;
        let s = status_page_editor(ctx).await?;
        let author = s.principal.member.name.clone();
        let incident = s.write(move |tx, _| incidents::create(tx, &new, &author)).await?;
        Ok(IncidentObject(incident, Audience::Editors))
    }

    /// Posts an update to an incident's timeline, moving its status forward
    /// and changing its components' status. `INVALID_TRANSITION` once
    /// resolved, or for a status before the current one.
    async fn post_incident_update(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The update.")] input: PostIncidentUpdateInput,
    ) -> Result<IncidentObject> {
        let (id, update) = input.validate().gql()?;
        let s = status_page_editor(ctx).await?;
        let author = s.principal.member.name.clone();
        let incident = s.write(move |tx, _| incidents::post_update(tx, id, &update, &author)).await?;
        Ok(IncidentObject(incident, Audience::Editors))
    }

    /// Resolves an incident with a last update: its components go back to
    /// `OPERATIONAL` in it, the page shows their own status again, and its
    /// summary is written (start, peak impact, duration) for a person to
    /// edit and publish.
    async fn resolve_incident(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The incident and its last update.")] input: ResolveIncidentInput,
    ) -> Result<IncidentObject> {
        let (id, text) = input.validate().gql()?;
        let s = status_page_editor(ctx).await?;
        let author = s.principal.member.name.clone();
        let incident = s
            .write(move |tx, _| {
                let open = incidents::incident(tx.reader(), id, Audience::Editors)?;
                let components = open
                    .components
                    .iter()
                    .map(|t| crate::domain::status_page::Touched {
                        availability: crate::domain::status_page::Availability::Operational,
                        ..*t
                    })
                    .collect();
                let update = incidents::NewUpdate {
                    text: text.clone(),
                    status: Some(crate::domain::status_page::IncidentStatus::Resolved),
                    components,
                };
                incidents::post_update(tx, id, &update, &author)
            })
            .await?;
        Ok(IncidentObject(incident, Audience::Editors))
    }

    /// Corrects the message of an update of an incident's timeline (also
    /// after resolution); the message it replaces is kept in the update's
    /// `corrections`, and the feed announces it.
    async fn correct_incident_update(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The update and its corrected message.")] input: CorrectIncidentUpdateInput,
    ) -> Result<IncidentUpdateObject> {
        let (id, number, text, reason) = input.validate().gql()?;
        let s = status_page_editor(ctx).await?;
        let author = s.principal.member.name.clone();
        let update = s
            .write(move |tx, _| incidents::correct_update(tx, id, number, &text, reason.as_deref(), &author))
            .await?;
        Ok(IncidentUpdateObject(update))
    }

    /// Shows a draft incident (one the platform opened by itself, or one
    /// created with `publish: false`) on the public page, with its whole
    /// timeline. The services it names stay private.
    async fn publish_incident(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The draft incident.")] input: IncidentActionInput,
    ) -> Result<IncidentObject> {
        let id: IncidentId = parse_id(&input.incident_id)?;
        let incident = status_page_editor(ctx).await?.write(move |tx, _| incidents::publish(tx, id)).await?;
        Ok(IncidentObject(incident, Audience::Editors))
    }

    /// Replaces the text of a resolved incident's summary.
    async fn edit_incident_summary(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The incident and the new text.")] input: EditIncidentSummaryInput,
    ) -> Result<IncidentObject> {
        let (id, text) = input.validate().gql()?;
        let s = status_page_editor(ctx).await?;
        let author = s.principal.member.name.clone();
        let incident = s.write(move |tx, _| incidents::edit_summary(tx, id, &text, &author)).await?;
        Ok(IncidentObject(incident, Audience::Editors))
    }

    /// Shows a resolved, published incident's summary on the public page.
    async fn publish_incident_summary(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The incident.")] input: IncidentActionInput,
    ) -> Result<IncidentObject> {
        let id: IncidentId = parse_id(&input.incident_id)?;
        let incident =
            status_page_editor(ctx).await?.write(move |tx, _| incidents::publish_summary(tx, id)).await?;
        Ok(IncidentObject(incident, Audience::Editors))
    }

    /// Announces a maintenance window (public at once), `SCHEDULED`.
    async fn schedule_maintenance(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The window to announce.")] input: ScheduleMaintenanceInput,
    ) -> Result<MaintenanceObject> {
        let new = input.validate().gql()?;
        let s = status_page_editor(ctx).await?;
        let author = s.principal.member.name.clone();
        let window = s.write(move |tx, _| windows::schedule(tx, &new, &author)).await?;
        Ok(MaintenanceObject(window))
    }

    /// Posts an update to a maintenance window, moving it to its next
    /// state when `status` is given. `INVALID_TRANSITION` for a state out of
    /// order or once it is over.
    async fn post_maintenance_update(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The update.")] input: PostMaintenanceUpdateInput,
    ) -> Result<MaintenanceObject> {
        let (id, text, status) = input.validate().gql()?;
        let s = status_page_editor(ctx).await?;
        let author = s.principal.member.name.clone();
        let window = s.write(move |tx, _| windows::post_update(tx, id, &text, status, &author)).await?;
        Ok(MaintenanceObject(window))
    }
}

/// The status page's live feed.
#[derive(Default)]
pub struct StatusPageSubscription;

#[Subscription]
impl StatusPageSubscription {
    /// Everything that happens on the status page, in order: incidents
    /// opened, updated, corrected, published and resolved, summaries
    /// published, maintenance announced and updated, component changes.
    /// Replays the stored events after `after` (all when omitted), then
    /// follows live; never completes. Readable without a token: only what
    /// was published, unless an editor asks for drafts too.
    async fn incident_updates(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Resume after the event with this cursor; omitted: from the start of the feed.")]
        after: Option<String>,
        #[graphql(desc = "Drafts too; needs the right to edit the status page.")] include_drafts: Option<
            bool,
        >,
    ) -> Result<impl Stream<Item = Result<IncidentEventObject>> + use<>> {
        let audience = audience(ctx, include_drafts)?;
        let after = event_cursor(after.as_deref()).map_err(gql)?;
        let app = public(ctx)?.app;
        let store = app.store.clone();
        let events = store.events().subscribe();
        let read = move |after| {
            let store = store.clone();
            async move {
                store
                    .read(move |r| {
                        let items = page::events_after(r, audience, after, EVENT_PAGE)?;
                        let head = page::last_event(r, audience)?;
                        Ok(Chunk { drained: items.len() < EVENT_PAGE, items, finished: false, head })
                    })
                    .await
            }
        };
        let classify = move |event: &Event, _| match event {
            Event::StatusPage { event, public } if *public || audience == Audience::Editors => {
                Live::Items(vec![event.clone()])
            }
            _ => Live::Ignore,
        };
        let feed = replay_then_live(events, after, app.limits.slow_consumer_lag, read, classify, |e| e.seq);
        Ok(one_by_one(feed, move |e| IncidentEventObject(e, audience)))
    }
}
