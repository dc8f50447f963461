//! The `Subscription` root: live feeds that first replay what is stored
//! after the client's cursor (see [`replay`](super::replay)), so a client
//! that reconnects with its last cursor misses nothing and sees nothing
//! twice.

use std::sync::Arc;

use async_graphql::{Context, ID, Result, Subscription as SubscriptionRoot};
use futures_util::stream::{self, Stream, StreamExt};

use super::error::gql;
use super::guard::guard;
use super::replay::{Chunk, Live, replay_then_live};
use super::scope::{Scope, parse_id};
use super::types::log_line::{LogBatch, query_key};
use super::types::maintenance::MaintenanceCampaignObject;
use super::types::operation_event::OperationEventNode;
use super::types::recovery::RecoveryProgressObject;
use super::types::status_event::StatusEventNode;
use crate::domain::{Action, DomainError, EnvironmentId, LogLine, MaintenanceId, OperationId, ServiceId};
use crate::engine::maintenance::CampaignStatus;
use crate::store::events::{Feed, Following, LiveLines};
use crate::store::logs::{self, Log};
use crate::store::{Event, operations, resources, statuses};

/// Events read from storage at a time.
pub(super) const EVENT_PAGE: usize = 500;
/// Log lines read from storage at a time (and most lines in one batch).
const LOG_PAGE: usize = 1000;

/// The `Subscription` root.
#[derive(Default)]
pub struct Subscription;

/// Live feeds. Each replays what is stored after the client's cursor,
/// then follows live, without a gap or a repeat.
// Merged into the `Subscription` root (see `graphql::SubscriptionRoot`).
#[SubscriptionRoot(name = "OperationsSubscription")]
impl Subscription {
    /// What happens to the operations of an environment: queued, status
    /// and step changes, in order. Replays the stored events after `after`,
    /// then follows live; never completes.
    async fn operation_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The environment to watch.")] environment_id: ID,
        #[graphql(desc = "Resume after the event with this cursor; omitted: from the start of the feed.")]
        after: Option<String>,
    ) -> Result<impl Stream<Item = Result<OperationEventNode>> + use<>> {
        let s = guard(ctx, Action::Read)?;
        let env: EnvironmentId = parse_id(&environment_id)?;
        let after = event_cursor(after.as_deref()).map_err(gql)?;
        s.read(move |r, org| resources::environment(r, org, env)).await?;
        let store = s.store().clone();
        let events = store.events().subscribe();
        let read = move |after| {
            let store = store.clone();
            async move {
                store
                    .read(move |r| {
                        let items = operations::events_after(r, env, after, EVENT_PAGE)?;
                        let head = operations::last_event(r, env)?;
                        Ok(Chunk { drained: items.len() < EVENT_PAGE, items, finished: false, head })
                    })
                    .await
            }
        };
        let classify = move |event: &Event, _| match event {
            Event::Operation(e) if e.environment_id == env => Live::Items(vec![e.clone()]),
            _ => Live::Ignore,
        };
        let max_lag = s.app.limits.slow_consumer_lag;
        let feed = replay_then_live(events, after, max_lag, read, classify, |e| e.seq);
        Ok(counted(one_by_one(feed, OperationEventNode), s.store().events().following(Feed::OperationEvents)))
    }

    /// Every change of a running status (of an instance, a service or the
    /// environment) or a deployment status (of a service or the
    /// environment) in an environment, in order. Replays the stored changes
    /// after `after`, then follows live; never completes.
    async fn status_changes(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The environment to watch.")] environment_id: ID,
        #[graphql(desc = "Resume after the change with this cursor; omitted: from the start of the feed.")]
        after: Option<String>,
    ) -> Result<impl Stream<Item = Result<StatusEventNode>> + use<>> {
        let s = guard(ctx, Action::Read)?;
        let env: EnvironmentId = parse_id(&environment_id)?;
        let after = event_cursor(after.as_deref()).map_err(gql)?;
        s.read(move |r, org| resources::environment(r, org, env)).await?;
        let store = s.store().clone();
        let events = store.events().subscribe();
        let read = move |after| {
            let store = store.clone();
            async move {
                store
                    .read(move |r| {
                        let items = statuses::events_after(r, env, after, EVENT_PAGE)?;
                        let head = statuses::last_event(r, env)?;
                        Ok(Chunk { drained: items.len() < EVENT_PAGE, items, finished: false, head })
                    })
                    .await
            }
        };
        let classify = move |event: &Event, _| match event {
            Event::Status(e) if e.environment_id == env => Live::Items(vec![e.clone()]),
            _ => Live::Ignore,
        };
        let max_lag = s.app.limits.slow_consumer_lag;
        let feed = replay_then_live(events, after, max_lag, read, classify, |e| e.seq);
        Ok(counted(one_by_one(feed, StatusEventNode), s.store().events().following(Feed::StatusChanges)))
    }

    /// The recovery queue of platform redeploys: its state now, then every
    /// change; never completes.
    async fn recovery_progress(
        &self,
        ctx: &Context<'_>,
    ) -> Result<impl Stream<Item = RecoveryProgressObject> + use<>> {
        let s = guard(ctx, Action::Read)?;
        let progress = tokio_stream::wrappers::WatchStream::new(s.engine().healing.progress());
        Ok(progress.map(RecoveryProgressObject::from))
    }

    /// A maintenance campaign: its state now, then every change (a client
    /// that reads slowly may see several changes merged into one); completes
    /// after the state in which it is `COMPLETED`. `NOT_FOUND` when no such
    /// campaign is visible to the caller.
    async fn maintenance_progress(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The campaign to follow (`mnt_<n>`).")] id: ID,
    ) -> Result<impl Stream<Item = MaintenanceCampaignObject> + use<>> {
        let s = guard(ctx, Action::Read)?;
        let campaign: MaintenanceId = parse_id(&id)?;
        let progress = s
            .engine()
            .maintenance
            .watch(s.org(), campaign)
            .ok_or_else(|| gql(DomainError::not_found("MaintenanceCampaign", campaign)))?;
        // The current state first, then each change; ends right after the
        // completed state (no later change is coming to end it).
        let states = stream::unfold((progress, true, false), |(mut rx, first, done)| async move {
            if done || (!first && rx.changed().await.is_err()) {
                return None;
            }
            let campaign = rx.borrow_and_update().clone();
            let done = campaign.status == CampaignStatus::Completed;
            Some((campaign, (rx, false, done)))
        });
        Ok(states.map(MaintenanceCampaignObject::from))
    }

    /// The log of an operation: replays the lines after `after`, then
    /// follows live, and completes once the operation is final and every
    /// line was sent. Ends with `CURSOR_EXPIRED` when lines after `after`
    /// were deleted by retention, and with `SLOW_CONSUMER` when the client
    /// stops reading and falls too far behind (subscribe again with the
    /// last `lastSeq` received: nothing is lost).
    async fn operation_logs(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The operation whose log to follow.")] operation_id: ID,
        #[graphql(desc = "Resume after the line with this `seq`; omitted: from the first line kept.")]
        after: Option<i64>,
    ) -> Result<impl Stream<Item = Result<LogBatch>> + use<>> {
        let s = guard(ctx, Action::Read)?;
        let op: OperationId = parse_id(&operation_id)?;
        let after = log_cursor(after).map_err(gql)?;
        s.read(move |r, org| operations::operation(r, org, op)).await?;
        Ok(log_feed(&s, Log::Operation(op), after, query_key(ctx)))
    }

    /// What the instances of a service print: replays the lines after
    /// `after`, then follows live; never completes. Ends with
    /// `CURSOR_EXPIRED` or `SLOW_CONSUMER` like `operationLogs`.
    async fn service_logs(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The service whose runtime log to follow.")] service_id: ID,
        #[graphql(desc = "Resume after the line with this `seq`; omitted: from the first line kept.")]
        after: Option<i64>,
    ) -> Result<impl Stream<Item = Result<LogBatch>> + use<>> {
        let s = guard(ctx, Action::Read)?;
        let svc: ServiceId = parse_id(&service_id)?;
        let after = log_cursor(after).map_err(gql)?;
        s.read(move |r, org| resources::service(r, org, svc)).await?;
        Ok(log_feed(&s, Log::Service(svc), after, query_key(ctx)))
    }
}

/// The replay-then-live feed of one log, as `LogBatch`es. An operation's
/// log is complete once the operation is final; a service's never is.
/// `query` names the subscriber's query: batches that are exactly one
/// commit's lines are rendered once per query and shared.
fn log_feed(
    s: &Scope<'_>,
    log: Log,
    after: u64,
    query: Arc<str>,
) -> impl Stream<Item = Result<LogBatch>> + Send + use<> {
    let store = s.store().clone();
    let events = store.events().subscribe();
    let following = store.events().following(match log {
        Log::Operation(_) => Feed::OperationLogs,
        Log::Service(_) => Feed::ServiceLogs,
    });
    let read = move |after| {
        let store = store.clone();
        async move {
            store
                .read(move |r| {
                    logs::check_cursor(r, log, after)?;
                    // One snapshot: when it shows the operation final, it
                    // also holds the last line, committed with that status.
                    let finished = match log {
                        Log::Operation(op) => operations::operation_by_id(r, op)?.status.is_final(),
                        Log::Service(_) => false,
                    };
                    let items: Vec<_> = logs::lines_after(r, log, after, LOG_PAGE)?
                        .into_iter()
                        .map(FedLine::Stored)
                        .collect();
                    let head = logs::head(r, log)?;
                    Ok(Chunk { drained: items.len() < LOG_PAGE, items, finished, head })
                })
                .await
        }
    };
    let classify = move |event: &Event, last: u64| match event {
        Event::Log { log: of, last_seq, lines } if *of == log && *last_seq > last => match lines {
            // The event's lines follow on from what was sent: no gap.
            Some(live) if live.lines.first().is_some_and(|l| l.seq <= last + 1) => {
                Live::Items((0..live.lines.len()).map(|i| FedLine::Live(live.clone(), i)).collect())
            }
            _ => Live::Wake,
        },
        Event::Operation(e) if Log::Operation(e.operation_id) == log && e.status.is_final() => Live::Wake,
        _ => Live::Ignore,
    };
    let max_lag = s.app.limits.slow_consumer_lag;
    let feed = replay_then_live(events, after, max_lag, read, classify, FedLine::seq);
    let feed = counted(feed, following);
    feed.filter_map(move |batch| {
        let batch = match batch {
            Ok(lines) => FedLine::batch(lines, &query).map(Ok),
            Err(e) => Some(Err(gql(e))),
        };
        std::future::ready(batch)
    })
}

/// A line of a log feed: read from storage, or one of the lines a live
/// event carries (kept shared, not copied).
enum FedLine {
    Stored(LogLine),
    Live(Arc<LiveLines>, usize),
}

impl FedLine {
    fn seq(&self) -> u64 {
        match self {
            Self::Stored(line) => line.seq,
            Self::Live(live, i) => live.lines[*i].seq,
        }
    }

    /// The batch of `lines`: shared when they are all the lines of one live
    /// event, this subscriber's own otherwise; `None` when empty.
    fn batch(lines: Vec<Self>, query: &Arc<str>) -> Option<LogBatch> {
        if let Some(Self::Live(live, _)) = lines.first()
            && lines.len() == live.lines.len()
            && lines.iter().all(|l| matches!(l, Self::Live(other, _) if Arc::ptr_eq(other, live)))
        {
            return Some(LogBatch::shared(live.clone(), query.clone()));
        }
        let lines = lines.into_iter().map(|line| match line {
            Self::Stored(line) => line,
            Self::Live(live, i) => live.lines[i].clone(),
        });
        LogBatch::of(lines.collect())
    }
}

/// `stream`, with the client counted as a subscriber of its feed for as
/// long as the stream lives.
fn counted<S: Stream>(stream: S, following: Following) -> impl Stream<Item = S::Item> {
    stream.map(move |item| {
        let _counted = &following;
        item
    })
}

/// A feed of event batches as a stream of single events (events are few;
/// clients expect one message per event).
pub(super) fn one_by_one<T, N>(
    feed: impl Stream<Item = Result<Vec<T>, DomainError>> + Send + 'static,
    node: impl Fn(T) -> N + Send + 'static,
) -> impl Stream<Item = Result<N>> + Send + 'static
where
    T: Send + 'static,
    N: Send + 'static,
{
    feed.flat_map(move |batch| {
        let items: Vec<Result<N>> = match batch {
            Ok(events) => events.into_iter().map(|e| Ok(node(e))).collect(),
            Err(e) => vec![Err(gql(e))],
        };
        stream::iter(items)
    })
}

/// An event cursor (the decimal `seq` of an event); omitted: 0.
pub(super) fn event_cursor(raw: Option<&str>) -> Result<u64, DomainError> {
    raw.map_or(Ok(0), |raw| {
        raw.parse::<u64>()
            .map_err(|_| DomainError::bad_input("after", format!("`{raw}` is not a cursor of this feed")))
    })
}

/// A log position (the `seq` of a line); omitted: 0.
fn log_cursor(raw: Option<i64>) -> Result<u64, DomainError> {
    raw.map_or(Ok(0), |n| {
        u64::try_from(n).map_err(|_| DomainError::bad_input("after", format!("must be 0 or more, got {n}")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_checked() {
        assert_eq!(event_cursor(None).unwrap(), 0);
        assert_eq!(event_cursor(Some("42")).unwrap(), 42);
        for bad in ["", "x", "-1", "1.5"] {
            assert_eq!(event_cursor(Some(bad)).unwrap_err().code().as_str(), "BAD_USER_INPUT");
        }
        assert_eq!(log_cursor(Some(7)).unwrap(), 7);
        assert_eq!(log_cursor(Some(-1)).unwrap_err().code().as_str(), "BAD_USER_INPUT");
    }
}
