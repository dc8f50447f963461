//! Incidents: their status machine, the components they touch, what
//! opened them, their timeline entries and their summary.

use serde::{Deserialize, Serialize};

use super::{Availability, ComponentId, IncidentId, human_duration, percent};
use crate::domain::{DomainError, Millis, OrganizationId, ServiceId, ServiceKind};

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

/// The incident status a stored update names (`INVESTIGATING` …).
pub fn incident_status(raw: &str) -> IncidentStatus {
    serde_json::from_value(serde_json::Value::String(raw.to_owned())).unwrap_or(IncidentStatus::Investigating)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::status_page::ComponentId;

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
}
