//! Log lines of operations and services.

use serde::{Deserialize, Serialize};

use super::{InstanceId, Millis};

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LogStream {
    Stdout,
    Stderr,
    /// Written by opsgraph itself: steps, status changes, decisions.
    System,
}

impl LogStream {
    /// The name clients see (`STDOUT`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdout => "STDOUT",
            Self::Stderr => "STDERR",
            Self::System => "SYSTEM",
        }
    }
}

/// One stored line. `seq` counts 1, 2, 3 … per operation or per service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogLine {
    pub seq: u64,
    pub at: Millis,
    pub stream: LogStream,
    pub text: String,
    pub instance: Option<InstanceId>,
}

/// Which lines a log listing returns.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    /// Only these streams (all when empty).
    pub streams: Vec<LogStream>,
    /// Only lines containing this text.
    pub contains: Option<String>,
}

impl LogFilter {
    pub fn matches(&self, line: &LogLine) -> bool {
        (self.streams.is_empty() || self.streams.contains(&line.stream))
            && self.contains.as_deref().is_none_or(|c| line.text.contains(c))
    }
}
