//! `LogLine`, its filter and connection, and `LogBatch` for subscriptions.

use async_graphql::{Context, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use super::enums::LogStream;
use super::instance::{InstanceNode, visible_instance};
use crate::domain;
use crate::graphql::scope::{datetime, scope};

/// A log line as a GraphQL object.
pub struct LogLineNode(pub domain::LogLine);

/// A page of log lines.
pub use crate::graphql::connection::LogLineConnection;

/// One line of an operation's or a service's log.
/// Fields resolve one after another (`serial`): nearly all are plain reads
/// of the row, and a loop is much cheaper than a set of futures per field.
#[Object(name = "LogLine", serial)]
impl LogLineNode {
    /// Position in its log: 1, 2, 3 … per operation or per service.
    async fn seq(&self) -> u64 {
        self.0.seq
    }

    /// When it was stored.
    async fn at(&self) -> DateTime<Utc> {
        datetime(self.0.at)
    }

    /// Where it came from.
    async fn stream(&self) -> LogStream {
        self.0.stream.into()
    }

    /// The text, without its line break.
    async fn text(&self) -> &str {
        &self.0.text
    }

    /// The instance that printed it; null for lines of commands and of
    /// opsgraph itself, and once the instance is gone.
    async fn instance(&self, ctx: &Context<'_>) -> Result<Option<InstanceNode>> {
        let Some(inst) = self.0.instance else { return Ok(None) };
        let found = scope(ctx)?.find(move |r, org| visible_instance(r, org, inst)).await?;
        Ok(found.map(InstanceNode))
    }
}

/// Which lines a log listing returns; every field narrows it.
#[derive(InputObject, Default)]
#[graphql(name = "LogFilter")]
pub struct LogFilterInput {
    /// Only lines of these streams; omitted or empty: every stream.
    pub streams: Option<Vec<LogStream>>,
    /// Only lines containing this text (case-sensitive).
    pub contains: Option<String>,
}

impl From<LogFilterInput> for domain::LogFilter {
    fn from(input: LogFilterInput) -> Self {
        Self {
            streams: input.streams.unwrap_or_default().into_iter().map(Into::into).collect(),
            contains: input.contains.filter(|c| !c.is_empty()),
        }
    }
}

/// Lines sent together by a log subscription.
#[derive(SimpleObject)]
pub struct LogBatch {
    /// The lines, in order; never empty.
    pub lines: Vec<LogLineNode>,
    /// The `seq` of the last line: subscribe again with `after: lastSeq` to
    /// resume without a gap or a repeat.
    pub last_seq: u64,
}

impl LogBatch {
    /// The batch of `lines`; `None` when there are none.
    pub fn of(lines: Vec<domain::LogLine>) -> Option<Self> {
        let last_seq = lines.last()?.seq;
        Some(Self { lines: lines.into_iter().map(LogLineNode).collect(), last_seq })
    }
}
