//! Incidents: opened by a person or by the platform, their timeline of
//! updates (corrections included), publication, resolution and summary.
//! Each function is one write of one mutation.

use std::ops::ControlFlow;

use super::{ACTIVE, Audience, PageEvent, PageEventKind, Shown, component, record};
use crate::domain::status_page::{
    AffectedService, Availability, Correction, Impact, Incident, IncidentId, IncidentStatus, Origin,
    TimelineUpdate, Touched, human_duration, percent,
};
use crate::domain::{DomainError, OrganizationId, now_millis};
use crate::store::access::{Reader, Result, Tx};
use crate::store::paging::{Page, PageArgs, paginate};
use crate::store::tables::{COMPONENTS, INCIDENT_UPDATES, INCIDENTS, INCIDENTS_BY_AUDIENCE};

/// An incident a person opens, validated.
#[derive(Debug, Clone)]
pub struct NewIncident {
    pub title: String,
    pub impact: Impact,
    pub status: IncidentStatus,
    /// The first update of its timeline.
    pub text: String,
    pub components: Vec<Touched>,
    /// `false`: a draft, shown to editors only until published.
    pub publish: bool,
}

/// An update a person posts, validated.
#[derive(Debug, Clone)]
pub struct NewUpdate {
    pub text: String,
    /// `None`: the incident keeps its status.
    pub status: Option<IncidentStatus>,
    pub components: Vec<Touched>,
}

/// The platform's author name on what it writes.
pub const PLATFORM: &str = "platform";

/// Opens an incident with its first update.
pub fn create(tx: &mut Tx<'_>, new: &NewIncident, author: &str) -> Result<Incident> {
    if new.status == IncidentStatus::Resolved {
        return Err(DomainError::bad_input("status", "an incident cannot open resolved"));
    }
    let origin = Origin::Person { name: author.to_owned() };
    open(tx, &new.title, new.impact, new.status, &new.text, &new.components, origin, new.publish, author)
}

// One argument per field of the first update and the incident itself.
#[allow(clippy::too_many_arguments)]
fn open(
    tx: &mut Tx<'_>,
    title: &str,
    impact: Impact,
    status: IncidentStatus,
    text: &str,
    components: &[Touched],
    origin: Origin,
    publish: bool,
    author: &str,
) -> Result<Incident> {
    check_components(tx.reader(), components)?;
    let shown = Shown::take(tx.reader())?;
    let now = now_millis();
    let id = IncidentId(tx.next_id("incident")?);
    let incident = Incident {
        id,
        title: title.to_owned(),
        impact,
        status,
        components: components.to_vec(),
        origin,
        created_at: now,
        published_at: publish.then_some(now),
        resolved_at: None,
        peak_down: 0,
        summary: None,
        updates: 1,
        worst: components.iter().map(|t| t.availability).max(),
    };
    put(tx, None, &incident)?;
    let update = TimelineUpdate {
        number: 1,
        at: now,
        text: text.to_owned(),
        status: status.as_str().to_owned(),
        component_changes: components.to_vec(),
        author: author.to_owned(),
        corrections: Vec::new(),
    };
    tx.put_row(INCIDENT_UPDATES, (id.0, 1), &update)?;
    record(tx, event(PageEventKind::IncidentOpened, &incident, Some(&update)), incident.is_public())?;
    shown.record(tx, Some(id))?;
    Ok(incident)
}

/// Posts an update; a `RESOLVED` status resolves the incident and writes
/// its summary.
pub fn post_update(tx: &mut Tx<'_>, id: IncidentId, new: &NewUpdate, author: &str) -> Result<Incident> {
    check_components(tx.reader(), &new.components)?;
    let before = incident(tx.reader(), id, Audience::Editors)?;
    let status = before.status.transition(new.status.unwrap_or(before.status))?;
    let shown = Shown::take(tx.reader())?;
    let now = now_millis();
    let mut incident = before.clone();
    incident.status = status;
    incident.touch(&new.components);
    incident.updates += 1;
    if status == IncidentStatus::Resolved {
        incident.resolved_at = Some(now);
        incident.summary = Some(incident.summarize(now));
    }
    put(tx, Some(&before), &incident)?;
    let update = TimelineUpdate {
        number: incident.updates,
        at: now,
        text: new.text.clone(),
        status: status.as_str().to_owned(),
        component_changes: new.components.clone(),
        author: author.to_owned(),
        corrections: Vec::new(),
    };
    tx.put_row(INCIDENT_UPDATES, (id.0, update.number), &update)?;
    let kind = match status {
        IncidentStatus::Resolved => PageEventKind::IncidentResolved,
        _ => PageEventKind::IncidentUpdated,
    };
    record(tx, event(kind, &incident, Some(&update)), incident.is_public())?;
    shown.record(tx, Some(id))?;
    Ok(incident)
}

/// Replaces the text of update `number`; the text it replaced is kept in
/// its corrections. Allowed after resolution too.
pub fn correct_update(
    tx: &mut Tx<'_>,
    id: IncidentId,
    number: u64,
    text: &str,
    reason: Option<&str>,
    author: &str,
) -> Result<TimelineUpdate> {
    let incident = incident(tx.reader(), id, Audience::Editors)?;
    let mut update: TimelineUpdate = tx
        .reader()
        .get_row(INCIDENT_UPDATES, (id.0, number))?
        .ok_or_else(|| DomainError::not_found("IncidentUpdate", format!("{number} of {id}")))?;
    if update.text == text {
        return Err(DomainError::bad_input("text", "the correction is the same as the text it corrects"));
    }
    let previous = std::mem::replace(&mut update.text, text.to_owned());
    update.corrections.push(Correction {
        at: now_millis(),
        author: author.to_owned(),
        previous,
        reason: reason.map(str::to_owned),
    });
    tx.put_row(INCIDENT_UPDATES, (id.0, number), &update)?;
    record(tx, event(PageEventKind::UpdateCorrected, &incident, Some(&update)), incident.is_public())?;
    Ok(update)
}

/// Shows a draft on the public page, with its whole timeline.
pub fn publish(tx: &mut Tx<'_>, id: IncidentId) -> Result<Incident> {
    let before = incident(tx.reader(), id, Audience::Editors)?;
    if before.is_public() {
        return Err(DomainError::InvalidTransition(format!("incident {id} is already published")));
    }
    let shown = Shown::take(tx.reader())?;
    let mut incident = before.clone();
    incident.published_at = Some(now_millis());
    put(tx, Some(&before), &incident)?;
    record(tx, event(PageEventKind::IncidentPublished, &incident, None), true)?;
    shown.record(tx, Some(id))?;
    Ok(incident)
}

/// Replaces the text of a resolved incident's summary.
pub fn edit_summary(tx: &mut Tx<'_>, id: IncidentId, text: &str, author: &str) -> Result<Incident> {
    let mut incident = incident(tx.reader(), id, Audience::Editors)?;
    let Some(summary) = incident.summary.as_mut() else {
        return Err(no_summary(id));
    };
    summary.text = text.to_owned();
    summary.edited_by = Some(author.to_owned());
    tx.put(INCIDENTS, id.0, &incident)?;
    Ok(incident)
}

/// Shows a resolved incident's summary on the public page.
pub fn publish_summary(tx: &mut Tx<'_>, id: IncidentId) -> Result<Incident> {
    let mut incident = incident(tx.reader(), id, Audience::Editors)?;
    if !incident.is_public() {
        return Err(DomainError::InvalidTransition(format!(
            "incident {id} is a draft: publish the incident before its summary"
        )));
    }
    let Some(summary) = incident.summary.as_mut() else {
        return Err(no_summary(id));
    };
    if summary.published_at.is_some() {
        return Err(DomainError::InvalidTransition(format!("the summary of {id} is already published")));
    }
    summary.published_at = Some(now_millis());
    let text = summary.text.clone();
    tx.put(INCIDENTS, id.0, &incident)?;
    let mut e = event(PageEventKind::SummaryPublished, &incident, None);
    e.text = Some(text);
    record(tx, e, true)?;
    Ok(incident)
}

fn no_summary(id: IncidentId) -> DomainError {
    DomainError::InvalidTransition(format!(
        "incident {id} is not resolved: its summary is written when it resolves"
    ))
}

/// Opens the platform's incident about a mass redeploy in `org`: a draft
/// (the services are not public), touching the components that run the
/// affected kinds of service.
pub fn open_automatic(
    tx: &mut Tx<'_>,
    org: OrganizationId,
    services: Vec<AffectedService>,
    monitored: usize,
    window: &str,
) -> Result<Incident> {
    let components: Vec<Touched> = tx
        .reader()
        .all_rows::<crate::domain::status_page::Component>(COMPONENTS)?
        .into_iter()
        .filter(|c| services.iter().any(|s| c.service_kinds.contains(&s.kind)))
        .map(|c| Touched { component_id: c.id, availability: Availability::Degraded })
        .collect();
    let n = services.len();
    let text = format!(
        "Monitoring redeployed {n} services ({}% of the {monitored} monitored services of one organization) \
         within {window}: instances were lost at once (a host or network failure). The platform is bringing \
         them back.",
        percent(n, monitored)
    );
    let title = "Many services restarted after instance failures";
    let origin = Origin::Automatic { organization_id: org, services, monitored };
    let mut incident = open(
        tx,
        title,
        Impact::Major,
        IncidentStatus::Investigating,
        &text,
        &components,
        origin,
        false,
        PLATFORM,
    )?;
    incident.peak_down = n;
    tx.put(INCIDENTS, incident.id.0, &incident)?;
    Ok(incident)
}

/// Records where recovery of an automatic incident stands: the affected
/// services (new ones added, each with whether it runs again), and an
/// update with the share back; resolves it when every one is back.
pub fn automatic_progress(
    tx: &mut Tx<'_>,
    id: IncidentId,
    services: Vec<AffectedService>,
) -> Result<Incident> {
    let mut incident = incident(tx.reader(), id, Audience::Editors)?;
    if incident.status == IncidentStatus::Resolved {
        return Ok(incident);
    }
    let Origin::Automatic { services: affected, .. } = &mut incident.origin else {
        return Err(DomainError::internal(format!("{id} is not an automatic incident")));
    };
    *affected = services;
    let (total, back) = (affected.len(), affected.iter().filter(|s| s.recovered).count());
    incident.peak_down = incident.peak_down.max(total - back);
    tx.put(INCIDENTS, id.0, &incident)?;
    let (text, status) = if back == total {
        let took = human_duration(now_millis() - incident.created_at);
        (
            format!("All {total} affected services are running again (recovery took {took})."),
            IncidentStatus::Resolved,
        )
    } else {
        let text = format!(
            "Recovery at {}%: {back} of {total} affected services are running again.",
            percent(back, total)
        );
        (text, IncidentStatus::Identified.max(incident.status))
    };
    let changes: Vec<Touched> = if status == IncidentStatus::Resolved {
        incident
            .components
            .iter()
            .map(|t| Touched { availability: Availability::Operational, ..*t })
            .collect()
    } else {
        Vec::new()
    };
    post_update(tx, id, &NewUpdate { text, status: Some(status), components: changes }, PLATFORM)
}

/// The incident `id` as `audience` may see it: a draft is `NOT_FOUND` to
/// the public.
pub fn incident(r: Reader<'_>, id: IncidentId, audience: Audience) -> Result<Incident> {
    let found: Option<Incident> = r.get(INCIDENTS, id.0)?;
    found
        .filter(|i| audience == Audience::Editors || i.is_public())
        .ok_or_else(|| DomainError::not_found(IncidentId::KIND, id))
}

/// Incidents `audience` may see, newest first; `status` keeps only those
/// in one of these statuses (all when empty).
pub fn incidents_page(
    r: Reader<'_>,
    audience: Audience,
    statuses: &[IncidentStatus],
    args: &PageArgs,
) -> Result<Page<Incident>> {
    let key = audience.key() as u8;
    paginate(args, true, |range, rev, visit| {
        r.scan_index(INCIDENTS_BY_AUDIENCE, key, range, rev, |id| match r.get::<Incident>(INCIDENTS, id)? {
            Some(i) if statuses.is_empty() || statuses.contains(&i.status) => visit(id, i),
            _ => Ok(ControlFlow::Continue(())),
        })
    })
}

/// The whole timeline of an incident, oldest first.
pub fn updates(r: Reader<'_>, id: IncidentId) -> Result<Vec<TimelineUpdate>> {
    let mut out = Vec::new();
    r.scan_rows(INCIDENT_UPDATES, id.0, 1..=u64::MAX, false, |_, u| {
        out.push(u);
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(out)
}

/// Stores `after` (replacing `before`) with its index entries.
fn put(tx: &mut Tx<'_>, before: Option<&Incident>, after: &Incident) -> Result<()> {
    for (audience, id) in before.map(audience_keys).unwrap_or_default() {
        tx.unindex(INCIDENTS_BY_AUDIENCE, (audience, id))?;
    }
    for (audience, id) in audience_keys(after) {
        tx.index(INCIDENTS_BY_AUDIENCE, (audience, id))?;
    }
    tx.put(INCIDENTS, after.id.0, after)
}

/// The index entries an incident calls for.
pub(crate) fn audience_keys(i: &Incident) -> Vec<(u8, u64)> {
    let mut keys = vec![(Audience::Editors.key() as u8, i.id.0)];
    if i.is_public() {
        keys.push((Audience::Public.key() as u8, i.id.0));
        if i.status != IncidentStatus::Resolved {
            keys.push((ACTIVE, i.id.0));
        }
    }
    keys
}

fn check_components(r: Reader<'_>, touched: &[Touched]) -> Result<()> {
    for (n, t) in touched.iter().enumerate() {
        component(r, t.component_id)?;
        if touched[..n].iter().any(|o| o.component_id == t.component_id) {
            return Err(DomainError::bad_input("components", format!("{} is given twice", t.component_id)));
        }
    }
    Ok(())
}

fn event(kind: PageEventKind, incident: &Incident, update: Option<&TimelineUpdate>) -> PageEvent {
    let mut e = PageEvent::new(kind);
    e.incident_id = Some(incident.id);
    e.status = Some(incident.status.as_str().to_owned());
    if let Some(u) = update {
        e.update = Some(u.number);
        e.text = Some(u.text.clone());
    }
    e
}
