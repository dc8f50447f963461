//! The public status page: components and their availability, incidents
//! with their timelines, scheduled maintenance windows, and the rules that
//! move them (pure: no storage, no clock).
//!
//! A component's availability is derived: the worst of what a person set
//! on it (`setComponentStatus`) and what every published, unresolved
//! incident says about it. Resolving an incident therefore gives the
//! components it touched back their own availability, and a draft incident
//! (opened by the platform, not yet published) changes nothing the public
//! sees.

use serde::{Deserialize, Serialize};

use super::{DomainError, Millis, OrganizationId, ServiceId, ServiceKind};

macro_rules! status_id {
    ($name:ident, $prefix:literal, $kind:literal) => {
        #[doc = concat!("Id of a ", $kind, "; its global form is `", $prefix, "_<n>`.")]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl $name {
            pub const PREFIX: &'static str = $prefix;
            pub const KIND: &'static str = $kind;
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}_{}", $prefix, self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = DomainError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.strip_prefix(concat!($prefix, "_"))
                    .and_then(|n| n.parse::<u64>().ok())
                    .map($name)
                    .ok_or_else(|| {
                        DomainError::bad_input(
                            "id",
                            format!("`{s}` is not a {} id (expected {}_<number>)", $kind, $prefix),
                        )
                    })
            }
        }
    };
}

status_id!(ComponentId, "cmp", "Component");
status_id!(IncidentId, "inc", "Incident");
status_id!(WindowId, "mw", "Maintenance");

/// How available a component is. Ordered from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Availability {
    Operational,
    Degraded,
    Down,
}

impl Availability {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Operational => "OPERATIONAL",
            Self::Degraded => "DEGRADED",
            Self::Down => "DOWN",
        }
    }

    /// Words for people (the HTML page, the feed).
    pub fn label(self) -> &'static str {
        match self {
            Self::Operational => "Operational",
            Self::Degraded => "Degraded",
            Self::Down => "Down",
        }
    }
}

/// A part of the platform the page reports on (API, deployments, logs …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    pub id: ComponentId,
    pub name: String,
    /// Components with the same group are shown together; `None`: on
    /// their own.
    pub group: Option<String>,
    pub description: Option<String>,
    /// What a person set; the shown availability may be worse (an incident).
    pub own: Availability,
    /// Kinds of services that run on it: automatic incidents about
    /// services of these kinds touch this component.
    pub service_kinds: Vec<ServiceKind>,
    pub created_at: Millis,
}

/// A change of a component's shown availability: its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentChange {
    pub seq: u64,
    pub at: Millis,
    pub component_id: ComponentId,
    pub from: Availability,
    pub to: Availability,
    /// The incident that caused it; `None`: set by a person directly.
    pub incident_id: Option<IncidentId>,
}

/// How bad an incident is, as the page headlines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Impact {
    None,
    Minor,
    Major,
    Critical,
}

/// Where an incident stands. Moves forward only; `Resolved` is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IncidentStatus {
    Investigating,
    Identified,
    Monitoring,
    Resolved,
}

impl IncidentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Investigating => "INVESTIGATING",
            Self::Identified => "IDENTIFIED",
            Self::Monitoring => "MONITORING",
            Self::Resolved => "RESOLVED",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Investigating => "Investigating",
            Self::Identified => "Identified",
            Self::Monitoring => "Monitoring",
            Self::Resolved => "Resolved",
        }
    }

    /// The status after an update that asks for `next`: the same or a
    /// later one; nothing moves a resolved incident.
    pub fn transition(self, next: Self) -> Result<Self, DomainError> {
        if self == Self::Resolved {
            return Err(DomainError::InvalidTransition(
                "the incident is resolved: its timeline is closed (corrections are still possible)".into(),
            ));
        }
        if next < self {
            return Err(DomainError::InvalidTransition(format!(
                "an incident moves forward (INVESTIGATING, IDENTIFIED, MONITORING, RESOLVED): it is {} and \
                 cannot go back to {}",
                self.as_str(),
                next.as_str()
            )));
        }
        Ok(next)
    }
}

/// A component an incident touches, with its availability during it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Touched {
    pub component_id: ComponentId,
    pub availability: Availability,
}

/// A service an automatic incident is about: named here, shown only to the
/// editors of its own organization, never on the public page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AffectedService {
    pub service_id: ServiceId,
    pub name: String,
    pub kind: ServiceKind,
    /// Whether it is running again after its platform redeploy.
    pub recovered: bool,
}

/// What opened an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Origin {
    /// A person, by name.
    Person { name: String },
    /// Monitoring redeployed many services of one organization at once.
    Automatic { organization_id: OrganizationId, services: Vec<AffectedService>, monitored: usize },
}

/// The summary of a resolved incident: generated, then edited and
/// published by a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub started_at: Millis,
    pub resolved_at: Millis,
    /// The worst moment, in words (`6 of 8 services down (75%)`, or the
    /// worst component availability).
    pub peak_impact: String,
    pub text: String,
    /// Who edited the text last; `None`: as generated.
    pub edited_by: Option<String>,
    pub published_at: Option<Millis>,
}

impl Summary {
    pub fn duration_ms(&self) -> i64 {
        self.resolved_at - self.started_at
    }
}

/// An incident and where it stands; its timeline is stored beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    pub id: IncidentId,
    pub title: String,
    pub impact: Impact,
    pub status: IncidentStatus,
    pub components: Vec<Touched>,
    pub origin: Origin,
    pub created_at: Millis,
    /// `None`: a draft, which the public page does not show.
    pub published_at: Option<Millis>,
    pub resolved_at: Option<Millis>,
    /// The worst number of affected services not running at once
    /// (automatic incidents).
    pub peak_down: usize,
    pub summary: Option<Summary>,
    /// Updates in its timeline (their numbers are 1 ..= updates).
    pub updates: u64,
    /// The worst availability it ever gave a component (its peak impact).
    #[serde(default)]
    pub worst: Option<Availability>,
}

impl Incident {
    pub fn is_public(&self) -> bool {
        self.published_at.is_some()
    }

    /// The availability this incident gives `component` while it counts.
    pub fn availability_of(&self, component: ComponentId) -> Option<Availability> {
        if !self.is_public() || self.status == IncidentStatus::Resolved {
            return None;
        }
        self.components.iter().find(|t| t.component_id == component).map(|t| t.availability)
    }

    /// Applies component changes: an existing one gets its new availability,
    /// a new one is added.
    pub fn touch(&mut self, changes: &[Touched]) {
        for change in changes {
            self.worst = self.worst.max(Some(change.availability));
            match self.components.iter_mut().find(|t| t.component_id == change.component_id) {
                Some(t) => t.availability = change.availability,
                None => self.components.push(*change),
            }
        }
    }

    /// The summary generated when it resolves at `at`.
    pub fn summarize(&self, at: Millis) -> Summary {
        let peak_impact = match &self.origin {
            Origin::Automatic { services, monitored, .. } => {
                let share = percent(self.peak_down, (*monitored).max(1));
                format!(
                    "{} of {} affected services down at once ({share}% of the organization's {monitored} \
                     monitored services)",
                    self.peak_down,
                    services.len()
                )
            }
            Origin::Person { .. } => match self.worst {
                Some(worst) => format!("components {}", worst.label().to_lowercase()),
                None => "no component affected".to_owned(),
            },
        };
        let duration = human_duration(at - self.created_at);
        let text = format!(
            "{}. Started {}, resolved {} later. Peak impact: {peak_impact}. {} updates were posted.",
            self.title,
            chrono::DateTime::from_timestamp_millis(self.created_at).unwrap_or_default().to_rfc3339(),
            duration,
            self.updates
        );
        Summary {
            started_at: self.created_at,
            resolved_at: at,
            peak_impact,
            text,
            edited_by: None,
            published_at: None,
        }
    }
}

/// One entry of a timeline (an incident's or a maintenance's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineUpdate {
    /// 1, 2, 3 … within its incident or maintenance.
    pub number: u64,
    pub at: Millis,
    pub text: String,
    /// The incident's status (or the maintenance's state) it set.
    pub status: String,
    pub component_changes: Vec<Touched>,
    /// Who posted it; `platform` for automatic updates.
    pub author: String,
    /// Earlier texts, oldest first: each correction keeps what it replaced.
    pub corrections: Vec<Correction>,
}

/// A correction of an update's text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Correction {
    pub at: Millis,
    pub author: String,
    /// The text before the correction.
    pub previous: String,
    pub reason: Option<String>,
}

/// States of a maintenance window. `Cancelled` ends one that will not
/// happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WindowStatus {
    Scheduled,
    InProgress,
    Completed,
    Cancelled,
}

impl WindowStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "SCHEDULED",
            Self::InProgress => "IN_PROGRESS",
            Self::Completed => "COMPLETED",
            Self::Cancelled => "CANCELLED",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Scheduled => "Scheduled",
            Self::InProgress => "In progress",
            Self::Completed => "Completed",
            Self::Cancelled => "Cancelled",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Cancelled)
    }

    /// `Scheduled → InProgress → Completed`, or to `Cancelled` before it
    /// completes; staying in the same state is allowed (a plain update).
    pub fn transition(self, next: Self) -> Result<Self, DomainError> {
        let ok = match (self, next) {
            _ if self.is_final() => false,
            (a, b) if a == b => true,
            (Self::Scheduled, Self::InProgress) | (Self::InProgress, Self::Completed) => true,
            (_, Self::Cancelled) => true,
            _ => false,
        };
        if ok {
            Ok(next)
        } else {
            Err(DomainError::InvalidTransition(format!(
                "a maintenance moves SCHEDULED → IN_PROGRESS → COMPLETED (or to CANCELLED before it \
                 completes): it is {} and cannot become {}",
                self.as_str(),
                next.as_str()
            )))
        }
    }
}

/// A maintenance window announced ahead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub id: WindowId,
    pub title: String,
    pub description: Option<String>,
    pub components: Vec<ComponentId>,
    pub starts_at: Millis,
    pub ends_at: Millis,
    pub status: WindowStatus,
    pub created_at: Millis,
    pub started_at: Option<Millis>,
    pub finished_at: Option<Millis>,
    pub updates: u64,
}

/// The incident status a stored update names (`INVESTIGATING` …).
pub fn incident_status(raw: &str) -> IncidentStatus {
    serde_json::from_value(serde_json::Value::String(raw.to_owned())).unwrap_or(IncidentStatus::Investigating)
}

/// The window state a stored update names (`IN_PROGRESS` …).
pub fn window_status(raw: &str) -> WindowStatus {
    serde_json::from_value(serde_json::Value::String(raw.to_owned())).unwrap_or(WindowStatus::Scheduled)
}

/// Longest title.
pub const MAX_TITLE: usize = 200;
/// Longest update, description or summary text.
pub const MAX_TEXT: usize = 10_000;

/// A trimmed, non-empty text of at most `max` characters.
pub fn text(field: &'static str, raw: &str, max: usize) -> Result<String, DomainError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(DomainError::bad_input(field, "must not be empty"));
    }
    if trimmed.chars().count() > max {
        return Err(DomainError::bad_input(field, format!("must be at most {max} characters")));
    }
    Ok(trimmed.to_owned())
}

/// `part` of `whole` in whole percent, rounded down.
pub fn percent(part: usize, whole: usize) -> usize {
    (part * 100).checked_div(whole).unwrap_or(100)
}

/// `1 h 5 min`, `3 min 20 s`, `12 s`.
pub fn human_duration(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    let (h, m, s) = (s / 3600, s % 3600 / 60, s % 60);
    match (h, m) {
        (0, 0) => format!("{s} s"),
        (0, _) => format!("{m} min {s} s"),
        _ => format!("{h} h {m} min"),
    }
}

/// When the platform opens an incident by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutoIncidentRule {
    /// More than this percentage of an organization's monitored services
    /// must be redeployed by monitoring within `window_ms`.
    pub share_percent: u32,
    pub window_ms: u64,
    /// … and at least this many services.
    pub min_services: usize,
}

impl AutoIncidentRule {
    /// Whether `redeployed` distinct services among `monitored` make an
    /// incident.
    pub fn opens(&self, redeployed: usize, monitored: usize) -> bool {
        redeployed >= self.min_services.max(1)
            && (redeployed as u128) * 100 > (self.share_percent as u128) * (monitored.max(1) as u128)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incidents_move_forward_only_and_stop_once_resolved() {
        use IncidentStatus::*;
        assert_eq!(Investigating.transition(Monitoring).unwrap(), Monitoring);
        assert_eq!(Identified.transition(Identified).unwrap(), Identified);
        assert_eq!(Monitoring.transition(Investigating).unwrap_err().code().as_str(), "INVALID_TRANSITION");
        let err = Resolved.transition(Resolved).unwrap_err();
        assert!(err.to_string().contains("resolved"), "{err}");
    }

    #[test]
    fn maintenance_windows_follow_their_states() {
        use WindowStatus::*;
        assert!(Scheduled.transition(InProgress).is_ok());
        assert!(InProgress.transition(Completed).is_ok());
        assert!(Scheduled.transition(Cancelled).is_ok());
        assert!(Scheduled.transition(Completed).is_err(), "it must start first");
        assert!(InProgress.transition(Scheduled).is_err());
        assert!(Completed.transition(Completed).is_err(), "a finished window takes no update");
    }

    #[test]
    fn drafts_and_resolved_incidents_leave_components_alone() {
        let cmp = ComponentId(1);
        let mut inc = Incident {
            id: IncidentId(1),
            title: "t".into(),
            impact: Impact::Major,
            status: IncidentStatus::Investigating,
            components: vec![Touched { component_id: cmp, availability: Availability::Down }],
            origin: Origin::Person { name: "owner".into() },
            created_at: 0,
            published_at: None,
            resolved_at: None,
            peak_down: 0,
            summary: None,
            updates: 1,
            worst: None,
        };
        assert_eq!(inc.availability_of(cmp), None, "a draft changes nothing");
        inc.published_at = Some(1);
        assert_eq!(inc.availability_of(cmp), Some(Availability::Down));
        inc.touch(&[Touched { component_id: cmp, availability: Availability::Degraded }]);
        assert_eq!(inc.availability_of(cmp), Some(Availability::Degraded));
        inc.status = IncidentStatus::Resolved;
        assert_eq!(inc.availability_of(cmp), None);
    }

    #[test]
    fn the_rule_needs_more_than_the_share_and_the_minimum() {
        let rule = AutoIncidentRule { share_percent: 50, window_ms: 60_000, min_services: 3 };
        assert!(!rule.opens(2, 3), "two services are under the minimum");
        assert!(!rule.opens(3, 6), "exactly half is not more than half");
        assert!(rule.opens(4, 6));
        assert!(rule.opens(3, 3));
    }

    #[test]
    fn summaries_give_start_peak_and_duration() {
        let inc = Incident {
            id: IncidentId(1),
            title: "Instances restarted".into(),
            impact: Impact::Major,
            status: IncidentStatus::Resolved,
            components: vec![],
            origin: Origin::Automatic { organization_id: OrganizationId(1), services: vec![], monitored: 8 },
            created_at: 0,
            published_at: None,
            resolved_at: None,
            peak_down: 6,
            summary: None,
            updates: 4,
            worst: None,
        };
        let summary = inc.summarize(65_000);
        assert_eq!(summary.duration_ms(), 65_000);
        assert!(summary.peak_impact.starts_with("6 of 0 affected"), "{}", summary.peak_impact);
        assert!(summary.peak_impact.contains("75%"), "{}", summary.peak_impact);
        assert!(summary.text.contains("1 min 5 s"), "{}", summary.text);
    }

    #[test]
    fn texts_are_trimmed_and_bounded() {
        assert_eq!(text("title", "  x ", 5).unwrap(), "x");
        assert_eq!(text("title", "   ", 5).unwrap_err().code().as_str(), "BAD_USER_INPUT");
        assert!(text("title", "abcdef", 5).is_err());
        assert_eq!("inc_3".parse::<IncidentId>().unwrap(), IncidentId(3));
        assert!("cmp_3".parse::<IncidentId>().is_err());
    }
}
