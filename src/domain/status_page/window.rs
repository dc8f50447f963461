//! Scheduled maintenance windows and their states.

use serde::{Deserialize, Serialize};

use super::{ComponentId, WindowId};
use crate::domain::{DomainError, Millis};

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

/// The window state a stored update names (`IN_PROGRESS` …).
pub fn window_status(raw: &str) -> WindowStatus {
    serde_json::from_value(serde_json::Value::String(raw.to_owned())).unwrap_or(WindowStatus::Scheduled)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
