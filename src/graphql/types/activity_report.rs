//! `ActivityReport`: every operation of an environment queued in a period
//! (deleted services included), summarised, with the rows as a connection.
//! `GET /reports/activity.csv` serves the same rows as CSV.

use async_graphql::connection::PageInfo;
use async_graphql::{Context, Object, Result, SimpleObject};
use chrono::{DateTime, SecondsFormat, Utc};

use super::enums::{OperationStatus, OperationType, PlatformReason, TriggerKind, TriggerSource};
use super::environment::EnvironmentNode;
use super::operation::OperationNode;
use crate::domain::report::{Counts, Summary};
use crate::domain::{DomainError, Environment};
use crate::graphql::connection::{Connects, ReportRowConnection};
use crate::graphql::error::gql;
use crate::graphql::scope::{datetime, scope};
use crate::store::activity::{self, Period, TimeKey};
use crate::store::paging::{DEFAULT_PAGE, MAX_PAGE};

/// A report over the period `[from, to)` of an environment.
pub struct ActivityReport {
    pub environment: Environment,
    pub period: Period,
}

/// Every operation queued in an environment over a period, including those
/// on services deleted since: summarised, and row by row in queue order.
#[Object]
impl ActivityReport {
    /// The environment reported on.
    async fn environment(&self) -> EnvironmentNode {
        EnvironmentNode(self.environment.clone())
    }

    /// Start of the period (included).
    async fn from(&self) -> DateTime<Utc> {
        datetime(self.period.0)
    }

    /// End of the period (excluded).
    async fn to(&self) -> DateTime<Utc> {
        datetime(self.period.1)
    }

    /// Counts, rates and durations over the period.
    async fn summary(&self, ctx: &Context<'_>) -> Result<ActivitySummary> {
        let (env, period) = (self.environment.id, self.period);
        let summary = scope(ctx)?.read(move |r, _| activity::period_summary(r, env, period)).await?;
        Ok(ActivitySummary(summary))
    }

    /// The operations, oldest first: the rows of the CSV download.
    async fn rows(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The first `first` rows after `after` (at most 100; default 20).")] first: Option<
            i32,
        >,
        #[graphql(desc = "Cursor of the row the page starts after.")] after: Option<String>,
    ) -> Result<ReportRowConnection> {
        let size = match first {
            None => DEFAULT_PAGE,
            Some(n) => usize::try_from(n).ok().filter(|n| *n <= MAX_PAGE).ok_or_else(|| {
                gql(DomainError::bad_input("first", format!("must be between 0 and {MAX_PAGE}, got {n}")))
            })?,
        };
        let after = after.as_deref().map(decode_cursor).transpose().map_err(gql)?;
        let (env, period) = (self.environment.id, self.period);
        let (rows, more) =
            scope(ctx)?.read(move |r, _| activity::period_page(r, env, period, after, size)).await?;
        let edges: Vec<_> =
            rows.into_iter().map(|(key, op)| (encode_cursor(key), OperationNode(op))).collect();
        let page_info = PageInfo {
            has_previous_page: false,
            has_next_page: more,
            start_cursor: edges.first().map(|(c, _)| c.clone()),
            end_cursor: edges.last().map(|(c, _)| c.clone()),
        };
        Ok(ReportRowConnection::assemble(edges, page_info))
    }

    /// Where the same rows download as CSV (add `&format=ndjson` for JSON
    /// lines), relative to this server.
    async fn csv_path(&self) -> String {
        let at = |ms| datetime(ms).to_rfc3339_opts(SecondsFormat::Millis, true);
        format!(
            "/reports/activity.csv?environment={}&from={}&to={}",
            self.environment.id,
            at(self.period.0),
            at(self.period.1)
        )
    }
}

fn encode_cursor((at, id): TimeKey) -> String {
    format!("{at}:{id}")
}

fn decode_cursor(raw: &str) -> Result<TimeKey, DomainError> {
    raw.split_once(':')
        .and_then(|(at, id)| Some((at.parse().ok()?, id.parse().ok()?)))
        .ok_or_else(|| DomainError::bad_input("after", format!("`{raw}` is not a cursor of this connection")))
}

/// The summary of an activity report.
pub struct ActivitySummary(pub Summary);

macro_rules! counts {
    ($($name:ident, $value:ty, $what:literal;)*) => {$(
        #[doc = concat!("How many operations of the period had one ", $what, ".")]
        #[derive(SimpleObject)]
        pub struct $name {
            #[doc = concat!("The ", $what, ".")]
            pub value: $value,
            /// How many operations had it.
            pub count: u64,
        }
    )*};
}

counts! {
    OperationTypeCount, OperationType, "type";
    OperationStatusCount, OperationStatus, "status";
    TriggerKindCount, TriggerKind, "trigger kind";
    PlatformReasonCount, PlatformReason, "platform reason";
    TriggerSourceCount, TriggerSource, "trigger source";
}

/// `counts` as GraphQL objects, most frequent first.
fn list<D: Copy, G: From<D>, O>(counts: &Counts<D>, make: impl Fn(G, u64) -> O) -> Vec<O> {
    counts.iter().map(|(value, n)| make(G::from(*value), *n)).collect()
}

/// Counts, rates and durations over a report's period. Durations run from
/// an operation's start (or, if it never started, its queueing) to its end.
#[Object]
impl ActivitySummary {
    /// Operations queued in the period.
    async fn total(&self) -> u64 {
        self.0.total
    }

    /// Operations by type, most frequent first; types that did not occur
    /// are left out (as in every list below).
    async fn by_type(&self) -> Vec<OperationTypeCount> {
        list(&self.0.by_type, |value, count| OperationTypeCount { value, count })
    }

    /// Operations by status: the final one, or the current one of those
    /// still running.
    async fn by_status(&self) -> Vec<OperationStatusCount> {
        list(&self.0.by_status, |value, count| OperationStatusCount { value, count })
    }

    /// Operations by kind of trigger.
    async fn by_trigger_kind(&self) -> Vec<TriggerKindCount> {
        list(&self.0.by_trigger_kind, |value, count| TriggerKindCount { value, count })
    }

    /// Platform operations by reason.
    async fn by_platform_reason(&self) -> Vec<PlatformReasonCount> {
        list(&self.0.by_reason, |value, count| PlatformReasonCount { value, count })
    }

    /// Operations by trigger source.
    async fn by_source(&self) -> Vec<TriggerSourceCount> {
        list(&self.0.by_source, |value, count| TriggerSourceCount { value, count })
    }

    /// Share of the final operations that ended `DEPLOYMENT_OK` (0 to 1);
    /// null when none is final.
    async fn success_rate(&self) -> Option<f64> {
        self.0.success_rate
    }

    /// Median duration of the final operations (nearest rank), in
    /// milliseconds; null when none is final.
    async fn median_duration_ms(&self) -> Option<i64> {
        self.0.median_duration_ms
    }

    /// 95th percentile of the same durations (nearest rank); null when none
    /// is final.
    async fn p95_duration_ms(&self) -> Option<i64> {
        self.0.p95_duration_ms
    }

    /// `DEPLOY` and `REDEPLOY` operations that ended `DEPLOYMENT_OK`.
    async fn successful_deploys(&self) -> u64 {
        self.0.successful_deploys
    }

    /// Deployment frequency: successful deploys per day of the period.
    async fn deploys_per_day(&self) -> f64 {
        self.0.deploys_per_day
    }

    /// Change failure rate: failed deploys among the deploys that
    /// succeeded or failed (cancelled ones left out), 0 to 1; null when
    /// none did.
    async fn change_failure_rate(&self) -> Option<f64> {
        self.0.change_failure_rate
    }

    /// Failed deploys followed, within the period, by a successful deploy
    /// of the same service.
    async fn recoveries(&self) -> u64 {
        self.0.recoveries
    }

    /// Mean time to recovery: the mean time from the end of a failed deploy
    /// to the end of the next successful deploy of the same service, in
    /// milliseconds; null without a recovery.
    async fn mean_time_to_recovery_ms(&self) -> Option<i64> {
        self.0.mean_time_to_recovery_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_bad_user_input() {
        assert_eq!(decode_cursor(&encode_cursor((1_700_000_000_000, 42))).unwrap(), (1_700_000_000_000, 42));
        for bad in ["", "12", "a:1", "1:b", "1:2:3"] {
            assert_eq!(decode_cursor(bad).unwrap_err().code().as_str(), "BAD_USER_INPUT", "{bad:?}");
        }
    }
}
