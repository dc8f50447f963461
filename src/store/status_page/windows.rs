//! Scheduled maintenance windows: announced ahead (public at once), with
//! their own timeline, moving `SCHEDULED → IN_PROGRESS → COMPLETED`.

use std::ops::ControlFlow;

use super::{PageEvent, PageEventKind, component, record};
use crate::domain::status_page::{ComponentId, TimelineUpdate, Window, WindowId, WindowStatus};
use crate::domain::{DomainError, Millis, now_millis};
use crate::store::access::{Reader, Result, Tx};
use crate::store::paging::{Page, PageArgs, paginate};
use crate::store::tables::{MAINTENANCE_UPDATES, MAINTENANCE_WINDOWS};

/// A window a client schedules, validated.
#[derive(Debug, Clone)]
pub struct NewWindow {
    pub title: String,
    pub description: Option<String>,
    pub components: Vec<ComponentId>,
    pub starts_at: Millis,
    pub ends_at: Millis,
}

impl NewWindow {
    /// Checks the window: it ends after it starts, and has not ended yet.
    pub fn check(&self, now: Millis) -> std::result::Result<(), DomainError> {
        if self.ends_at <= self.starts_at {
            return Err(DomainError::bad_input("endsAt", "must come after startsAt"));
        }
        if self.ends_at <= now {
            return Err(DomainError::bad_input("endsAt", "the window is already over: announce it ahead"));
        }
        Ok(())
    }
}

/// Announces a window; its first update says so.
pub fn schedule(tx: &mut Tx<'_>, new: &NewWindow, author: &str) -> Result<Window> {
    let now = now_millis();
    new.check(now)?;
    for (n, c) in new.components.iter().enumerate() {
        component(tx.reader(), *c)?;
        if new.components[..n].contains(c) {
            return Err(DomainError::bad_input("components", format!("{c} is given twice")));
        }
    }
    let id = WindowId(tx.next_id("maintenance_window")?);
    let window = Window {
        id,
        title: new.title.clone(),
        description: new.description.clone(),
        components: new.components.clone(),
        starts_at: new.starts_at,
        ends_at: new.ends_at,
        status: WindowStatus::Scheduled,
        created_at: now,
        started_at: None,
        finished_at: None,
        updates: 1,
    };
    tx.put(MAINTENANCE_WINDOWS, id.0, &window)?;
    let text = new.description.clone().unwrap_or_else(|| format!("Maintenance scheduled: {}", new.title));
    let update = first_update(now, text, author);
    tx.put_row(MAINTENANCE_UPDATES, (id.0, 1), &update)?;
    record(tx, event(PageEventKind::MaintenanceScheduled, &window, &update), true)?;
    Ok(window)
}

fn first_update(at: Millis, text: String, author: &str) -> TimelineUpdate {
    TimelineUpdate {
        number: 1,
        at,
        text,
        status: WindowStatus::Scheduled.as_str().to_owned(),
        component_changes: Vec::new(),
        author: author.to_owned(),
        corrections: Vec::new(),
    }
}

/// Posts an update, moving the window to `status` when given.
pub fn post_update(
    tx: &mut Tx<'_>,
    id: WindowId,
    text: &str,
    status: Option<WindowStatus>,
    author: &str,
) -> Result<Window> {
    let mut window = window(tx.reader(), id)?;
    let status = window.status.transition(status.unwrap_or(window.status))?;
    let now = now_millis();
    if status == WindowStatus::InProgress && window.status == WindowStatus::Scheduled {
        window.started_at = Some(now);
    }
    if status.is_final() {
        window.finished_at = Some(now);
    }
    window.status = status;
    window.updates += 1;
    tx.put(MAINTENANCE_WINDOWS, id.0, &window)?;
    let update = TimelineUpdate {
        number: window.updates,
        at: now,
        text: text.to_owned(),
        status: status.as_str().to_owned(),
        component_changes: Vec::new(),
        author: author.to_owned(),
        corrections: Vec::new(),
    };
    tx.put_row(MAINTENANCE_UPDATES, (id.0, update.number), &update)?;
    record(tx, event(PageEventKind::MaintenanceUpdated, &window, &update), true)?;
    Ok(window)
}

/// The window `id`; `NOT_FOUND` when there is none.
pub fn window(r: Reader<'_>, id: WindowId) -> Result<Window> {
    r.get(MAINTENANCE_WINDOWS, id.0)?.ok_or_else(|| DomainError::not_found(WindowId::KIND, id))
}

/// Windows, newest first; `statuses` keeps only those in one of these
/// states (all when empty).
pub fn windows_page(r: Reader<'_>, statuses: &[WindowStatus], args: &PageArgs) -> Result<Page<Window>> {
    paginate(args, true, |range, rev, visit| {
        r.scan_table(MAINTENANCE_WINDOWS, range, rev, |id, w: Window| {
            if statuses.is_empty() || statuses.contains(&w.status) {
                visit(id, w)
            } else {
                Ok(ControlFlow::Continue(()))
            }
        })
    })
}

/// Windows not yet over (scheduled or in progress), soonest first.
pub fn upcoming(r: Reader<'_>) -> Result<Vec<Window>> {
    let mut out: Vec<Window> =
        r.all_rows::<Window>(MAINTENANCE_WINDOWS)?.into_iter().filter(|w| !w.status.is_final()).collect();
    out.sort_by_key(|w| (w.starts_at, w.id));
    Ok(out)
}

/// The whole timeline of a window, oldest first.
pub fn updates(r: Reader<'_>, id: WindowId) -> Result<Vec<TimelineUpdate>> {
    let mut out = Vec::new();
    r.scan_rows(MAINTENANCE_UPDATES, id.0, 1..=u64::MAX, false, |_, u| {
        out.push(u);
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(out)
}

fn event(kind: PageEventKind, window: &Window, update: &TimelineUpdate) -> PageEvent {
    let mut e = PageEvent::new(kind);
    e.window_id = Some(window.id);
    e.status = Some(window.status.as_str().to_owned());
    e.update = Some(update.number);
    e.text = Some(update.text.clone());
    e
}
