//! Change events, published to subscribers only after their commit.

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use std::sync::Arc;

use super::logs::Log;
use crate::domain::{
    EnvironmentId, LogLine, Millis, OperationId, OperationStatus, ServiceId, StepKind, StepStatus,
};

/// What happened to an operation: a row of the `operationEvents` feed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OperationEvent {
    /// Position in the feed; clients resume after it.
    pub seq: u64,
    pub at: Millis,
    pub environment_id: EnvironmentId,
    pub service_id: ServiceId,
    pub operation_id: OperationId,
    pub kind: OperationEventKind,
    /// The operation's status right after the event.
    pub status: OperationStatus,
    /// For step events: which step and its new status.
    pub step: Option<(StepKind, StepStatus)>,
}

/// Kinds of [`OperationEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OperationEventKind {
    Queued,
    StatusChanged,
    StepChanged,
}

/// Everything the store announces.
#[derive(Debug, Clone)]
pub enum Event {
    Operation(OperationEvent),
    /// Lines up to `last_seq` of a log are stored. A small batch carries
    /// its lines, so live subscribers need not read them back from storage.
    Log {
        log: Log,
        last_seq: u64,
        lines: Option<Arc<[LogLine]>>,
    },
    /// A running or deployment status changed.
    Status(super::statuses::StatusEvent),
    /// An instance of the service changed status.
    Instance {
        service_id: ServiceId,
    },
}

/// One broadcast channel for every event. Subscribers filter; one that
/// lags behind re-reads what it missed from storage.
#[derive(Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Event>,
}

impl EventBus {
    /// Enough room for bursts of log batches between two polls of a slow
    /// subscriber; past it the subscriber re-reads from storage. With the
    /// lines a log event may carry (see `logs::LIVE_BYTES`), this bounds
    /// the memory of the ring.
    const CAPACITY: usize = 4_096;

    pub fn new() -> Self {
        Self { sender: broadcast::channel(Self::CAPACITY).0 }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }

    pub(crate) fn publish(&self, event: Event) {
        // No receiver is not an error: nobody is watching.
        let _ = self.sender.send(event);
    }
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}
