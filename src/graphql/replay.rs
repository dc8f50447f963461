//! "Replay then live": the one pattern behind every subscription.
//!
//! 1. Subscribe to the live feed first, so nothing committed from then on
//!    can be missed.
//! 2. Read what is stored after the client's position, page by page, until
//!    a short page says the end is reached.
//! 3. Follow the live feed. An event either carries the items themselves
//!    or says that more is stored (then read again from storage). Items at
//!    or before the position were already sent and are dropped, so nothing
//!    is sent twice.
//! 4. A subscriber that lags behind the feed reads again from storage after
//!    its position: it is never skipped ahead. One that was following live
//!    and then fell more than `max_lag` positions behind what is stored
//!    (its client stopped reading) is ended with `SLOW_CONSUMER`; it
//!    resumes from its last position with a new subscription.
//!
//! Memory per subscriber is bounded: a page read from storage at a time,
//! and a place in the shared broadcast ring.
//!
//! The position only moves forward, to the last item sent.

use std::future::Future;

use futures_util::stream::{self, Stream};
use tokio::sync::broadcast::{
    self,
    error::{RecvError, TryRecvError},
};

use crate::domain::DomainError;
use crate::store::Event;

/// A live batch gathers the items of events already waiting until it holds
/// this many: a burst of small commits goes out together, while a big
/// commit goes out alone — as the very batch every other subscriber gets,
/// which they can share (see `LiveLines`).
const GATHER_UNTIL: usize = 100;

/// One read from storage after the position.
pub struct Chunk<T> {
    /// Items after the position, in order.
    pub items: Vec<T>,
    /// Whether the read reached the end of what is stored (a short page).
    pub drained: bool,
    /// Whether the feed is complete as of this read; once drained, the
    /// stream ends. Must be read in the same snapshot as `items`.
    pub finished: bool,
    /// The position of the newest stored item (how far the feed goes).
    pub head: u64,
}

/// What one live event means to one subscription.
pub enum Live<T> {
    /// Not about this subscription (or already seen).
    Ignore,
    /// The event carries these items.
    Items(Vec<T>),
    /// Something new is stored: read it from storage.
    Wake,
}

/// The stream of item batches (never empty) after `after`: first what is
/// stored, then what comes live.
///
/// - `read(position)` reads stored items after `position`;
/// - `classify(event, position)` tells what a live event means;
/// - `position(item)` is an item's place in the feed (increasing).
///
/// A read error is sent as the last item.
pub fn replay_then_live<T, R, Fut, C>(
    events: broadcast::Receiver<Event>,
    after: u64,
    max_lag: u64,
    read: R,
    classify: C,
    position: fn(&T) -> u64,
) -> impl Stream<Item = Result<Vec<T>, DomainError>> + Send + 'static
where
    T: Send + 'static,
    R: Fn(u64) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Chunk<T>, DomainError>> + Send,
    C: Fn(&Event, u64) -> Live<T> + Send + 'static,
{
    let feed =
        Feed { events, last: after, mode: Mode::Read, went_live: false, max_lag, read, classify, position };
    stream::unfold(feed, |mut feed| async move {
        let batch = feed.next().await?;
        Some((batch, feed))
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Reading stored items.
    Read,
    /// Waiting for live events.
    Live,
    /// Ended: complete, failed, or the feed closed.
    Done,
}

struct Feed<T, R, C> {
    /// Subscribed before the first read.
    events: broadcast::Receiver<Event>,
    /// The position of the last item sent (or the client's cursor).
    last: u64,
    mode: Mode,
    /// Whether the subscriber has caught up with the feed once: from then
    /// on, falling more than `max_lag` behind ends it.
    went_live: bool,
    max_lag: u64,
    read: R,
    classify: C,
    position: fn(&T) -> u64,
}

impl<T, R, Fut, C> Feed<T, R, C>
where
    R: Fn(u64) -> Fut,
    Fut: Future<Output = Result<Chunk<T>, DomainError>>,
    C: Fn(&Event, u64) -> Live<T>,
{
    /// The next non-empty batch; `None` once the stream ends.
    async fn next(&mut self) -> Option<Result<Vec<T>, DomainError>> {
        loop {
            match self.mode {
                Mode::Done => return None,
                Mode::Read => {
                    let chunk = match (self.read)(self.last).await {
                        Ok(chunk) => chunk,
                        Err(e) => {
                            self.mode = Mode::Done;
                            return Some(Err(e));
                        }
                    };
                    let lag = chunk.head.saturating_sub(self.last);
                    if self.went_live && lag > self.max_lag {
                        self.mode = Mode::Done;
                        return Some(Err(slow_consumer(lag, self.max_lag)));
                    }
                    if chunk.drained {
                        self.mode = if chunk.finished { Mode::Done } else { Mode::Live };
                        self.went_live = true;
                    }
                    let items = self.fresh(chunk.items);
                    if !items.is_empty() {
                        return Some(Ok(items));
                    }
                }
                Mode::Live => match self.events.recv().await {
                    Ok(event) => match (self.classify)(&event, self.last) {
                        Live::Ignore => {}
                        Live::Wake => self.mode = Mode::Read,
                        Live::Items(items) => {
                            if let Some(slow) = self.too_far_behind(&items) {
                                return Some(Err(slow));
                            }
                            let mut items = self.fresh(items);
                            self.gather(&mut items);
                            if !items.is_empty() {
                                return Some(Ok(items));
                            }
                        }
                    },
                    Err(RecvError::Lagged(_)) => self.mode = Mode::Read,
                    Err(RecvError::Closed) => self.mode = Mode::Done,
                },
            }
        }
    }

    /// Adds the items of the events that are already waiting to `items`, so
    /// a burst of small commits goes out as one batch; stops at an event
    /// that needs a read from storage.
    fn gather(&mut self, items: &mut Vec<T>) {
        while items.len() < GATHER_UNTIL {
            match self.events.try_recv() {
                Ok(event) => match (self.classify)(&event, self.last) {
                    Live::Ignore => {}
                    Live::Wake => {
                        self.mode = Mode::Read;
                        return;
                    }
                    Live::Items(more) => items.extend(self.fresh(more)),
                },
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Lagged(_)) | Err(TryRecvError::Closed) => {
                    // Lagged: catch up from storage. Closed: the next
                    // `recv` ends the feed.
                    self.mode = Mode::Read;
                    return;
                }
            }
        }
    }

    /// `SLOW_CONSUMER` when live `items` show the feed is more than
    /// `max_lag` positions ahead of what was sent; ends the feed.
    fn too_far_behind(&mut self, items: &[T]) -> Option<DomainError> {
        let head = items.last().map(self.position)?;
        let lag = head.saturating_sub(self.last);
        (lag > self.max_lag).then(|| {
            self.mode = Mode::Done;
            slow_consumer(lag, self.max_lag)
        })
    }

    /// The items after the position; moves the position to the last one.
    fn fresh(&mut self, items: Vec<T>) -> Vec<T> {
        let position = self.position;
        let items: Vec<T> = items.into_iter().filter(|i| position(i) > self.last).collect();
        if let Some(last) = items.last() {
            self.last = position(last);
        }
        items
    }
}

fn slow_consumer(lag: u64, max_lag: u64) -> DomainError {
    DomainError::SlowConsumer(format!(
        "{lag} items behind the feed (at most {max_lag} allowed): subscribe again after the last \
         cursor received"
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use futures_util::StreamExt;

    use super::*;
    use crate::domain::ServiceId;
    use crate::store::logs::Log;

    /// A stored log of numbers, read in pages of two.
    fn feed(
        stored: Arc<Mutex<Vec<u64>>>,
        events: broadcast::Receiver<Event>,
        after: u64,
        finished: Arc<Mutex<bool>>,
        max_lag: u64,
    ) -> impl Stream<Item = Result<Vec<u64>, DomainError>> {
        let read = move |after: u64| {
            let (stored, finished) = (stored.clone(), finished.clone());
            async move {
                let all: Vec<u64> = stored.lock().unwrap().iter().copied().filter(|n| *n > after).collect();
                let items: Vec<u64> = all.iter().copied().take(2).collect();
                let head = stored.lock().unwrap().last().copied().unwrap_or(0);
                Ok(Chunk { drained: all.len() <= 2, items, finished: *finished.lock().unwrap(), head })
            }
        };
        let classify = |event: &Event, last: u64| match event {
            Event::Log { last_seq, .. } if *last_seq > last => Live::Wake,
            _ => Live::Ignore,
        };
        replay_then_live(events, after, max_lag, read, classify, |n| *n)
    }

    fn wake(n: u64) -> Event {
        Event::Log { log: Log::Service(ServiceId(1)), last_seq: n, lines: None }
    }

    #[tokio::test]
    async fn replays_after_the_cursor_then_follows_live_without_repeats() {
        let (tx, rx) = broadcast::channel(16);
        let stored = Arc::new(Mutex::new(vec![1, 2, 3, 4, 5]));
        let mut s = Box::pin(feed(stored.clone(), rx, 1, Arc::default(), 100));
        assert_eq!(s.next().await.unwrap().unwrap(), [2, 3]);
        assert_eq!(s.next().await.unwrap().unwrap(), [4, 5]);
        // An event about lines already sent is ignored; a new one is read.
        stored.lock().unwrap().push(6);
        tx.send(wake(5)).unwrap();
        tx.send(wake(6)).unwrap();
        assert_eq!(s.next().await.unwrap().unwrap(), [6]);
    }

    #[tokio::test]
    async fn a_lagging_subscriber_reads_again_from_storage() {
        let (tx, rx) = broadcast::channel(2);
        let stored = Arc::new(Mutex::new(vec![1]));
        let mut s = Box::pin(feed(stored.clone(), rx, 0, Arc::default(), 100));
        assert_eq!(s.next().await.unwrap().unwrap(), [1]);
        for n in 2..=6 {
            stored.lock().unwrap().push(n);
            let _ = tx.send(wake(n));
        }
        let mut got = Vec::new();
        while got.last() != Some(&6) {
            got.extend(s.next().await.unwrap().unwrap());
        }
        assert_eq!(got, [2, 3, 4, 5, 6]);
    }

    #[tokio::test]
    async fn a_subscriber_far_behind_after_going_live_is_ended_as_slow() {
        let (tx, rx) = broadcast::channel(16);
        let stored = Arc::new(Mutex::new(vec![1, 2, 3, 4, 5, 6]));
        // A replay far behind is fine: it is catching up.
        let mut s = Box::pin(feed(stored.clone(), rx, 0, Arc::default(), 3));
        let mut got = Vec::new();
        while got.last() != Some(&6) {
            got.extend(s.next().await.unwrap().unwrap());
        }
        // Live now; then four more are stored before it reads again.
        stored.lock().unwrap().extend([7, 8, 9, 10]);
        tx.send(wake(10)).unwrap();
        let error = s.next().await.unwrap().unwrap_err();
        assert_eq!(error.code().as_str(), "SLOW_CONSUMER");
        assert!(s.next().await.is_none(), "the stream ends after the error");
    }

    #[tokio::test]
    async fn a_finished_feed_ends_once_drained() {
        let (_tx, rx) = broadcast::channel(2);
        let stored = Arc::new(Mutex::new(vec![1, 2, 3]));
        let s = feed(stored, rx, 0, Arc::new(Mutex::new(true)), 100);
        let batches: Vec<Vec<u64>> = s.map(Result::unwrap).collect().await;
        assert_eq!(batches, [vec![1, 2], vec![3]]);
    }

    #[tokio::test]
    async fn events_that_carry_items_are_sent_once_and_waiting_ones_go_together() {
        let (tx, rx) = broadcast::channel(8);
        let read = |_after: u64| async {
            Ok(Chunk { items: Vec::<u64>::new(), drained: true, finished: false, head: 0 })
        };
        let classify = |event: &Event, _: u64| match event {
            Event::Log { last_seq, .. } => Live::Items(vec![*last_seq]),
            _ => Live::Ignore,
        };
        let mut s = Box::pin(replay_then_live(rx, 3, 100, read, classify, |n| *n));
        for n in [2, 3, 4, 4, 5] {
            tx.send(wake(n)).unwrap();
        }
        assert_eq!(s.next().await.unwrap().unwrap(), [4, 5]);
        tx.send(wake(5)).unwrap();
        tx.send(wake(6)).unwrap();
        assert_eq!(s.next().await.unwrap().unwrap(), [6]);
    }
}
