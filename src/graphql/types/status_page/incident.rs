//! `Incident`, its timeline (`IncidentUpdate`, with corrections), the
//! components it touches and its summary.

use async_graphql::{Context, Enum, ID, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use super::ComponentObject;
use super::ComponentStatus;
use crate::domain::Action;
use crate::domain::status_page::{AffectedService, Incident, Origin, Summary, TimelineUpdate, Touched};
use crate::graphql::guard::guard;
use crate::graphql::scope::{datetime, found, id, public};
use crate::graphql::types::enums::ServiceKind;
use crate::graphql::types::service::ServiceNode;
use crate::store::resources;
use crate::store::status_page::{self as page, Audience, incidents};

/// How bad an incident is.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "crate::domain::status_page::Impact")]
pub enum IncidentImpact {
    /// Nothing users notice (a notice).
    None,
    /// Some users notice: slower, some errors.
    Minor,
    /// Many users are affected.
    Major,
    /// The platform is down for most users.
    Critical,
}

/// Where an incident stands. It moves forward only; `RESOLVED` is final.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "crate::domain::status_page::IncidentStatus")]
pub enum IncidentStatus {
    /// Something is wrong; the cause is being looked for.
    Investigating,
    /// The cause is known; a fix is under way.
    Identified,
    /// A fix is in place; the platform is being watched.
    Monitoring,
    /// Over. Final: the timeline takes no new update (corrections still).
    Resolved,
}

/// An incident, as read for `audience`.
pub struct IncidentObject(pub Incident, pub Audience);

/// Something that went wrong on the platform, with its timeline.
#[Object(name = "Incident")]
impl IncidentObject {
    /// Global id (`inc_<n>`).
    pub async fn id(&self) -> ID {
        id(self.0.id)
    }

    /// Its headline.
    async fn title(&self) -> &str {
        &self.0.title
    }

    /// How bad it is.
    async fn impact(&self) -> IncidentImpact {
        self.0.impact.into()
    }

    /// Where it stands now.
    async fn status(&self) -> IncidentStatus {
        self.0.status.into()
    }

    /// The components it touches, each with its status during the incident
    /// (as the latest update set it).
    async fn components(&self) -> Vec<AffectedComponent> {
        self.0.components.iter().copied().map(AffectedComponent).collect()
    }

    /// Its timeline, oldest first.
    async fn updates(&self, ctx: &Context<'_>) -> Result<Vec<IncidentUpdateObject>> {
        let id = self.0.id;
        let updates = public(ctx)?.read(move |r| incidents::updates(r, id)).await?;
        Ok(updates.into_iter().map(IncidentUpdateObject).collect())
    }

    /// When it was opened.
    async fn created_at(&self) -> DateTime<Utc> {
        datetime(self.0.created_at)
    }

    /// When it appeared on the public page; null for a draft.
    async fn published_at(&self) -> Option<DateTime<Utc>> {
        self.0.published_at.map(datetime)
    }

    /// When it was resolved; null until then.
    async fn resolved_at(&self) -> Option<DateTime<Utc>> {
        self.0.resolved_at.map(datetime)
    }

    /// Whether the platform opened it by itself (a mass redeploy).
    async fn automatic(&self) -> bool {
        matches!(self.0.origin, Origin::Automatic { .. })
    }

    /// Who opened it: a member's name, or `platform`.
    async fn opened_by(&self) -> &str {
        match &self.0.origin {
            Origin::Person { name } => name,
            Origin::Automatic { .. } => incidents::PLATFORM,
        }
    }

    /// The summary written when it resolved (start, peak impact,
    /// duration), for a person to edit and publish. Null until resolved;
    /// to the public, null until published.
    async fn summary(&self) -> Option<IncidentSummary> {
        let summary = self.0.summary.clone()?;
        (self.1 == Audience::Editors || summary.published_at.is_some()).then_some(IncidentSummary(summary))
    }

    /// The services an automatic incident is about, each with whether it
    /// runs again. Never public: null on public reads (ask with
    /// `includeDrafts: true`, or from a mutation), unless the caller may
    /// edit the status page and belongs to the services' organization, and
    /// for incidents a person opened.
    async fn affected_services(&self, ctx: &Context<'_>) -> Option<Vec<AffectedServiceObject>> {
        let Origin::Automatic { organization_id, services, .. } = &self.0.origin else { return None };
        if self.1 != Audience::Editors {
            return None;
        }
        let editor = guard(ctx, Action::Configure).ok()?;
        (editor.org() == *organization_id)
            .then(|| services.iter().cloned().map(AffectedServiceObject).collect())
    }
}

/// A component an incident touches.
pub struct AffectedComponent(pub Touched);

/// A component an incident touches.
#[Object]
impl AffectedComponent {
    /// The component.
    async fn component(&self, ctx: &Context<'_>) -> Result<ComponentObject> {
        let id = self.0.component_id;
        let (c, a) = public(ctx)?
            .read(move |r| Ok((page::component(r, id)?, page::shown_availability(r, id)?)))
            .await?;
        Ok(ComponentObject(c, a))
    }

    /// Its status during the incident.
    async fn status(&self) -> ComponentStatus {
        self.0.availability.into()
    }
}

/// One entry of an incident's timeline.
pub struct IncidentUpdateObject(pub TimelineUpdate);

/// One entry of an incident's timeline.
#[Object(name = "IncidentUpdate")]
impl IncidentUpdateObject {
    /// Its place in the timeline: 1, 2, 3 …
    async fn number(&self) -> i64 {
        self.0.number as i64
    }

    /// When it was posted.
    async fn at(&self) -> DateTime<Utc> {
        datetime(self.0.at)
    }

    /// What it says (after corrections, if any).
    async fn message(&self) -> &str {
        &self.0.text
    }

    /// The incident's status it set.
    async fn status(&self) -> IncidentStatus {
        crate::domain::status_page::incident_status(&self.0.status).into()
    }

    /// The components whose status it changed.
    async fn component_changes(&self) -> Vec<AffectedComponent> {
        self.0.component_changes.iter().copied().map(AffectedComponent).collect()
    }

    /// Who posted it: a member's name, or `platform`.
    async fn author(&self) -> &str {
        &self.0.author
    }

    /// Its corrections, oldest first; empty when it reads as posted.
    async fn corrections(&self) -> Vec<UpdateCorrection> {
        self.0
            .corrections
            .iter()
            .map(|c| UpdateCorrection {
                at: datetime(c.at),
                author: c.author.clone(),
                previous_message: c.previous.clone(),
                reason: c.reason.clone(),
            })
            .collect()
    }
}

/// A correction of an update: the text it replaced, who and why.
#[derive(SimpleObject)]
pub struct UpdateCorrection {
    /// When it was corrected.
    pub at: DateTime<Utc>,
    /// Who corrected it.
    pub author: String,
    /// The message before this correction.
    pub previous_message: String,
    /// Why, when given.
    pub reason: Option<String>,
}

/// The summary of a resolved incident.
pub struct IncidentSummary(pub Summary);

/// The summary of a resolved incident.
#[Object]
impl IncidentSummary {
    /// When the incident started.
    async fn started_at(&self) -> DateTime<Utc> {
        datetime(self.0.started_at)
    }

    /// When it was resolved.
    async fn resolved_at(&self) -> DateTime<Utc> {
        datetime(self.0.resolved_at)
    }

    /// How long it lasted, in milliseconds.
    async fn duration_ms(&self) -> i64 {
        self.0.duration_ms()
    }

    /// The worst moment, in words.
    async fn peak_impact(&self) -> &str {
        &self.0.peak_impact
    }

    /// The summary's text: generated, then as a person edited it.
    async fn text(&self) -> &str {
        &self.0.text
    }

    /// Who edited the text last; null while it reads as generated.
    async fn edited_by(&self) -> Option<&str> {
        self.0.edited_by.as_deref()
    }

    /// When it was published; null while only editors see it.
    async fn published_at(&self) -> Option<DateTime<Utc>> {
        self.0.published_at.map(datetime)
    }
}

/// A service an automatic incident is about.
pub struct AffectedServiceObject(pub AffectedService);

/// A service an automatic incident is about.
#[Object(name = "AffectedService")]
impl AffectedServiceObject {
    /// The service; null when the caller cannot see it.
    async fn service(&self, ctx: &Context<'_>) -> Result<Option<ServiceNode>> {
        let id = self.0.service_id;
        let s = guard(ctx, Action::Configure)?;
        let svc = s.read(move |r, org| found(resources::service(r, org, id))).await?;
        Ok(svc.map(ServiceNode))
    }

    /// Its name when the incident opened.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// Its kind.
    async fn kind(&self) -> ServiceKind {
        self.0.kind.into()
    }

    /// Whether it runs again after its platform redeploy.
    async fn recovered(&self) -> bool {
        self.0.recovered
    }
}
