//! Change events, published to subscribers only after their commit.

use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

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
        lines: Option<Arc<LiveLines>>,
    },
    /// A running or deployment status changed.
    Status(super::statuses::StatusEvent),
    /// An instance of the service changed status.
    Instance {
        service_id: ServiceId,
    },
    /// Something happened on the status page; `public` when the public
    /// feed has it too.
    StatusPage {
        event: super::status_page::PageEvent,
        public: bool,
    },
}

/// Lines stored together, as the live feed carries them to every
/// subscriber of their log.
///
/// They are shared, and so is what subscribers derive from them: a
/// subscriber that turns them into a response for its query keeps the
/// result here under a key naming that query, and every other subscriber
/// with the same key reuses it. A thousand clients following one deploy
/// then cost one rendering of each batch, not a thousand.
pub struct LiveLines {
    pub lines: Box<[LogLine]>,
    renderings: Mutex<Vec<(Arc<str>, Rendering)>>,
}

/// Whatever a subscriber derived from [`LiveLines`].
type Rendering = Arc<dyn Any + Send + Sync>;

impl LiveLines {
    /// Distinct renderings kept per batch; past it, more are not kept (the
    /// subscribers asking for them render their own).
    const MAX_RENDERINGS: usize = 8;

    pub fn new(lines: Vec<LogLine>) -> Self {
        Self { lines: lines.into(), renderings: Mutex::default() }
    }

    /// The rendering kept under `key`, if one of type `T` is.
    pub fn rendering<T: Any + Send + Sync>(&self, key: &str) -> Option<Arc<T>> {
        let renderings = self.renderings.lock().unwrap_or_else(|e| e.into_inner());
        let (_, found) = renderings.iter().find(|(k, _)| **k == *key)?;
        found.clone().downcast().ok()
    }

    /// Keeps `rendering` under `key` for the next subscribers (unless one is
    /// kept already, or there are too many).
    pub fn keep_rendering<T: Any + Send + Sync>(&self, key: Arc<str>, rendering: Arc<T>) {
        let mut renderings = self.renderings.lock().unwrap_or_else(|e| e.into_inner());
        if renderings.len() < Self::MAX_RENDERINGS && !renderings.iter().any(|(k, _)| *k == key) {
            renderings.push((key, rendering));
        }
    }
}

impl std::fmt::Debug for LiveLines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveLines").field("lines", &self.lines).finish_non_exhaustive()
    }
}

/// One broadcast channel for every event. Subscribers filter; one that
/// lags behind re-reads what it missed from storage.
#[derive(Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Event>,
    /// Clients following each kind of feed now (`/metrics`).
    subscribers: Arc<[AtomicU64; Feed::ALL.len()]>,
}

/// The feeds clients subscribe to, as `/metrics` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    OperationLogs,
    ServiceLogs,
    OperationEvents,
    StatusChanges,
}

impl Feed {
    pub const ALL: [Feed; 4] =
        [Feed::OperationLogs, Feed::ServiceLogs, Feed::OperationEvents, Feed::StatusChanges];

    /// The name of the GraphQL subscription.
    pub fn as_str(self) -> &'static str {
        match self {
            Feed::OperationLogs => "operationLogs",
            Feed::ServiceLogs => "serviceLogs",
            Feed::OperationEvents => "operationEvents",
            Feed::StatusChanges => "statusChanges",
        }
    }
}

/// A client counted as following a feed until this is dropped (with the
/// subscription's stream).
pub struct Following {
    count: Arc<[AtomicU64; Feed::ALL.len()]>,
    feed: usize,
}

impl Drop for Following {
    fn drop(&mut self) {
        self.count[self.feed].fetch_sub(1, Ordering::Relaxed);
    }
}

impl EventBus {
    /// Enough room for bursts of log batches between two polls of a slow
    /// subscriber; past it the subscriber re-reads from storage. With the
    /// lines a log event may carry (see `logs::LIVE_BYTES`), this bounds
    /// the memory of the ring.
    const CAPACITY: usize = 4_096;

    pub fn new() -> Self {
        Self { sender: broadcast::channel(Self::CAPACITY).0, subscribers: Arc::default() }
    }

    /// Counts a client following `feed` until the guard is dropped.
    pub fn following(&self, feed: Feed) -> Following {
        let index = Feed::ALL.iter().position(|f| *f == feed).unwrap_or(0);
        self.subscribers[index].fetch_add(1, Ordering::Relaxed);
        Following { count: self.subscribers.clone(), feed: index }
    }

    /// How many clients follow each feed now.
    pub fn subscribers(&self) -> Vec<(Feed, u64)> {
        Feed::ALL.iter().zip(self.subscribers.iter()).map(|(f, n)| (*f, n.load(Ordering::Relaxed))).collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renderings_are_kept_by_key_and_type_up_to_a_bound() {
        let live = LiveLines::new(Vec::new());
        assert!(live.rendering::<String>("a").is_none());
        live.keep_rendering("a".into(), Arc::new(String::from("first")));
        live.keep_rendering("a".into(), Arc::new(String::from("second")));
        assert_eq!(*live.rendering::<String>("a").unwrap(), "first", "the first rendering stays");
        assert!(live.rendering::<u64>("a").is_none(), "another type is not mistaken for it");
        for n in 0..20 {
            live.keep_rendering(format!("k{n}").into(), Arc::new(n));
        }
        assert!(live.rendering::<i32>("k6").is_some());
        assert!(live.rendering::<i32>("k7").is_none(), "past the bound, nothing more is kept");
    }
}
