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

mod incident;
mod window;

use serde::{Deserialize, Serialize};

pub use incident::*;
pub use window::*;

use super::{DomainError, Millis, ServiceKind};

super::ids::typed_id!(ComponentId, "cmp", "Component");
super::ids::typed_id!(IncidentId, "inc", "Incident");
super::ids::typed_id!(WindowId, "mw", "Maintenance");

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
    fn the_rule_needs_more_than_the_share_and_the_minimum() {
        let rule = AutoIncidentRule { share_percent: 50, window_ms: 60_000, min_services: 3 };
        assert!(!rule.opens(2, 3), "two services are under the minimum");
        assert!(!rule.opens(3, 6), "exactly half is not more than half");
        assert!(rule.opens(4, 6));
        assert!(rule.opens(3, 3));
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
