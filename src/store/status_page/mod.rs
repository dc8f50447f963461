//! The status page's rows: components and their history, incidents and
//! maintenance windows with their timelines ([`incidents`], [`windows`]),
//! and the ordered feed of everything that happened to them, which
//! `incidentUpdates` replays from a cursor.
//!
//! The feed has two audiences stored side by side: the public one holds
//! only what was published; the editors' one holds everything (drafts of
//! automatic incidents included). An event of both has the same `seq` in
//! both.
//!
//! A component's shown availability is derived (see
//! `domain::status_page`); every write that may change it takes the shown
//! availabilities before ([`Shown::take`]) and records the differences in
//! the same transaction.

pub mod incidents;
pub mod windows;

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use serde::{Deserialize, Serialize};

use super::access::{Reader, Result, Tx};
use super::events::Event;
use super::paging::{Page, PageArgs, paginate};
use super::tables::{COMPONENT_CHANGES, COMPONENTS, INCIDENTS, INCIDENTS_BY_AUDIENCE, STATUS_PAGE_EVENTS};
use crate::domain::status_page::{
    Availability, Component, ComponentChange, ComponentId, Incident, IncidentId, WindowId, text,
};
use crate::domain::{DomainError, Millis, ServiceKind, now_millis};

/// Who may see a row of the feed or an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Anyone, without a token: only what was published.
    Public,
    /// The people who edit the page: drafts too.
    Editors,
}

impl Audience {
    fn key(self) -> u64 {
        match self {
            Self::Public => 0,
            Self::Editors => 1,
        }
    }
}

/// Index audience of the published, unresolved incidents.
pub(crate) const ACTIVE: u8 = 2;

/// What happened on the status page: a row of the `incidentUpdates` feed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PageEvent {
    /// Position in the feed; clients resume after it.
    pub seq: u64,
    pub at: Millis,
    pub kind: PageEventKind,
    pub incident_id: Option<IncidentId>,
    pub window_id: Option<WindowId>,
    pub component_id: Option<ComponentId>,
    /// The timeline update it is about (its number).
    pub update: Option<u64>,
    /// The text as it read at this event (an update's, a correction's).
    pub text: Option<String>,
    /// The incident's status, the window's state or the component's
    /// availability right after the event.
    pub status: Option<String>,
}

/// Kinds of [`PageEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PageEventKind {
    IncidentOpened,
    IncidentPublished,
    IncidentUpdated,
    UpdateCorrected,
    IncidentResolved,
    SummaryPublished,
    MaintenanceScheduled,
    MaintenanceUpdated,
    ComponentChanged,
}

impl PageEvent {
    pub fn new(kind: PageEventKind) -> Self {
        Self {
            seq: 0,
            at: now_millis(),
            kind,
            incident_id: None,
            window_id: None,
            component_id: None,
            update: None,
            text: None,
            status: None,
        }
    }
}

/// Stores `event` in the editors' feed, and in the public one when
/// `public`; published after commit.
pub(crate) fn record(tx: &mut Tx<'_>, mut event: PageEvent, public: bool) -> Result<()> {
    event.seq = tx.next_id("status_page_event")?;
    tx.put_row(STATUS_PAGE_EVENTS, (Audience::Editors.key(), event.seq), &event)?;
    if public {
        tx.put_row(STATUS_PAGE_EVENTS, (Audience::Public.key(), event.seq), &event)?;
    }
    tx.emit(Event::StatusPage { event, public });
    Ok(())
}

/// Events of `audience` after `after`, oldest first, at most `limit`.
pub fn events_after(r: Reader<'_>, audience: Audience, after: u64, limit: usize) -> Result<Vec<PageEvent>> {
    let mut out = Vec::new();
    r.scan_rows(STATUS_PAGE_EVENTS, audience.key(), after.saturating_add(1)..=u64::MAX, false, |_, e| {
        out.push(e);
        Ok(if out.len() >= limit { ControlFlow::Break(()) } else { ControlFlow::Continue(()) })
    })?;
    Ok(out)
}

/// The cursor of the newest event of `audience` (0 when none).
pub fn last_event(r: Reader<'_>, audience: Audience) -> Result<u64> {
    r.last_seq(STATUS_PAGE_EVENTS, audience.key())
}

/// A component a client asks to create, validated.
#[derive(Debug, Clone)]
pub struct NewComponent {
    pub name: String,
    pub group: Option<String>,
    pub description: Option<String>,
    pub service_kinds: Vec<ServiceKind>,
}

impl NewComponent {
    pub fn parse(
        name: &str,
        group: Option<&str>,
        description: Option<&str>,
        service_kinds: Vec<ServiceKind>,
    ) -> std::result::Result<Self, DomainError> {
        Ok(Self {
            name: text("name", name, 100)?,
            group: group.map(|g| text("group", g, 100)).transpose()?,
            description: description.map(|d| text("description", d, 1_000)).transpose()?,
            service_kinds,
        })
    }
}

/// Creates a component, `OPERATIONAL`; its name is unique.
pub fn create_component(tx: &mut Tx<'_>, new: &NewComponent) -> Result<Component> {
    let taken = tx.reader().all_rows::<Component>(COMPONENTS)?.iter().any(|c| c.name == new.name);
    if taken {
        return Err(DomainError::Conflict(format!("a component named `{}` already exists", new.name)));
    }
    let id = ComponentId(tx.next_id("component")?);
    let component = Component {
        id,
        name: new.name.clone(),
        group: new.group.clone(),
        description: new.description.clone(),
        own: Availability::Operational,
        service_kinds: new.service_kinds.clone(),
        created_at: now_millis(),
    };
    tx.put(COMPONENTS, id.0, &component)?;
    Ok(component)
}

/// Sets the availability a person gives a component; the shown one also
/// depends on open incidents.
pub fn set_component_status(
    tx: &mut Tx<'_>,
    id: ComponentId,
    availability: Availability,
) -> Result<Component> {
    let shown = Shown::take(tx.reader())?;
    let mut component = component(tx.reader(), id)?;
    component.own = availability;
    tx.put(COMPONENTS, id.0, &component)?;
    shown.record(tx, None)?;
    Ok(component)
}

/// The component `id`; `NOT_FOUND` when there is none.
pub fn component(r: Reader<'_>, id: ComponentId) -> Result<Component> {
    r.get(COMPONENTS, id.0)?.ok_or_else(|| DomainError::not_found(ComponentId::KIND, id))
}

/// Every component with its shown availability, in creation order.
pub fn components(r: Reader<'_>) -> Result<Vec<(Component, Availability)>> {
    let shown = Shown::take(r)?;
    Ok(r.all_rows::<Component>(COMPONENTS)?
        .into_iter()
        .map(|c| {
            let a = shown.0.get(&c.id).copied().unwrap_or(c.own);
            (c, a)
        })
        .collect())
}

/// The shown availability of one component.
pub fn shown_availability(r: Reader<'_>, id: ComponentId) -> Result<Availability> {
    let own = component(r, id)?.own;
    let worst = active_incidents(r)?.iter().filter_map(|i| i.availability_of(id)).max();
    Ok(worst.map_or(own, |w| w.max(own)))
}

/// A component's changes, newest first.
pub fn history_page(r: Reader<'_>, id: ComponentId, args: &PageArgs) -> Result<Page<ComponentChange>> {
    paginate(args, true, |range, rev, visit| r.scan_rows(COMPONENT_CHANGES, id.0, range, rev, visit))
}

/// The published incidents that are not resolved, oldest first.
pub fn active_incidents(r: Reader<'_>) -> Result<Vec<Incident>> {
    let mut out = Vec::new();
    r.scan_index(INCIDENTS_BY_AUDIENCE, ACTIVE, 0..=u64::MAX, false, |id| {
        if let Some(incident) = r.get(INCIDENTS, id)? {
            out.push(incident);
        }
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(out)
}

/// The shown availability of every component, taken before a write.
pub(crate) struct Shown(BTreeMap<ComponentId, Availability>);

impl Shown {
    pub(crate) fn take(r: Reader<'_>) -> Result<Self> {
        let active = active_incidents(r)?;
        let mut shown = BTreeMap::new();
        for c in r.all_rows::<Component>(COMPONENTS)? {
            let worst = active.iter().filter_map(|i| i.availability_of(c.id)).max();
            shown.insert(c.id, worst.map_or(c.own, |w| w.max(c.own)));
        }
        Ok(Self(shown))
    }

    /// Records a change (history row and public event) for every component
    /// whose shown availability differs from before; `cause` is the
    /// incident the write was about.
    pub(crate) fn record(self, tx: &mut Tx<'_>, cause: Option<IncidentId>) -> Result<()> {
        let now = Self::take(tx.reader())?;
        for (id, to) in now.0 {
            let from = self.0.get(&id).copied().unwrap_or(Availability::Operational);
            if from == to {
                continue;
            }
            let seq = tx.next_id("component_change")?;
            let change =
                ComponentChange { seq, at: now_millis(), component_id: id, from, to, incident_id: cause };
            tx.put_row(COMPONENT_CHANGES, (id.0, seq), &change)?;
            let mut event = PageEvent::new(PageEventKind::ComponentChanged);
            event.component_id = Some(id);
            event.incident_id = cause;
            event.status = Some(to.as_str().to_owned());
            record(tx, event, true)?;
        }
        Ok(())
    }
}

/// What the public page shows, read in one snapshot.
#[derive(Debug, Clone)]
pub struct PublicView {
    /// Every component with its shown availability.
    pub components: Vec<(Component, Availability)>,
    /// The newest published incidents (open and resolved), each with its
    /// timeline.
    pub incidents: Vec<(Incident, Vec<crate::domain::status_page::TimelineUpdate>)>,
    /// The newest maintenance windows, each with its timeline.
    pub windows: Vec<(crate::domain::status_page::Window, Vec<crate::domain::status_page::TimelineUpdate>)>,
}

/// The public view with at most `newest` incidents and windows.
pub fn public_view(r: Reader<'_>, newest: usize) -> Result<PublicView> {
    let args = PageArgs::first(newest);
    let incidents = incidents::incidents_page(r, Audience::Public, &[], &args)?
        .items
        .into_iter()
        .map(|(_, i)| {
            let updates = incidents::updates(r, i.id)?;
            Ok((i, updates))
        })
        .collect::<Result<Vec<_>>>()?;
    let windows = windows::windows_page(r, &[], &args)?
        .items
        .into_iter()
        .map(|(_, w)| {
            let updates = windows::updates(r, w.id)?;
            Ok((w, updates))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(PublicView { components: components(r)?, incidents, windows })
}
