//! `LogLine`, its filter and connection, and `LogBatch` for subscriptions.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};

use async_graphql::parser::types::Field;
use async_graphql::registry::Registry;
use async_graphql::{
    Context, ContextSelectionSet, ID, InputObject, Object, OutputType, Positioned, Result, ServerError,
    ServerResult, SimpleObject, Value,
};
use chrono::{DateTime, Utc};

use super::enums::LogStream;
use super::instance::{InstanceNode, visible_instance};
use crate::domain::{self, DomainError};
use crate::graphql::connection::{connection, page_args};
use crate::graphql::error::gql;
use crate::graphql::scope::{datetime, millis, parse_id, scope};
use crate::store::events::LiveLines;
use crate::store::logs::{self, Log};

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

    /// Whether this line carries the rest of the line before it: a line
    /// longer than 64 KiB is stored in pieces, and joining each piece to
    /// the one before it (without a line break) gives the original text.
    async fn continues_previous(&self) -> bool {
        self.0.continued
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
    /// Only lines printed by this instance (in a service's log).
    pub instance_id: Option<ID>,
    /// Only lines stored at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only lines stored before this time.
    pub until: Option<DateTime<Utc>>,
}

impl LogFilterInput {
    fn validate(self) -> Result<domain::LogFilter> {
        let (since, until) = (self.since.map(millis), self.until.map(millis));
        if let (Some(since), Some(until)) = (since, until)
            && since >= until
        {
            return Err(gql(DomainError::bad_input("until", "must be later than `since`")));
        }
        Ok(domain::LogFilter {
            streams: self.streams.unwrap_or_default().into_iter().map(Into::into).collect(),
            contains: self.contains.filter(|c| !c.is_empty()),
            instance: self.instance_id.as_ref().map(parse_id).transpose()?,
            since,
            until,
        })
    }
}

/// A page of `log` for a `logs(...)` connection field. A cursor whose
/// following lines were deleted by retention gets `CURSOR_EXPIRED`.
pub async fn log_page(
    ctx: &Context<'_>,
    log: Log,
    (first, after, last, before): (Option<i32>, Option<String>, Option<i32>, Option<String>),
    filter: Option<LogFilterInput>,
) -> Result<LogLineConnection> {
    let args = page_args(first, after, last, before)?;
    let filter = filter.unwrap_or_default().validate()?;
    let page = scope(ctx)?
        .read(move |r, _| {
            if let Some(after) = args.after {
                logs::check_cursor(r, log, after)?;
            }
            logs::page(r, log, &filter, &args)
        })
        .await?;
    Ok(connection(page, LogLineNode))
}

/// What `appendLogs` answers.
#[derive(SimpleObject)]
pub struct AppendLogsPayload {
    /// The `seq` of the first line stored by this call.
    pub first_seq: u64,
    /// The `seq` of the last line stored by this call.
    pub last_seq: u64,
}

/// Lines sent together by a log subscription.
///
/// Its GraphQL fields are those of [`LogBatchFields`]. A batch that is
/// exactly the lines of one commit, as every live subscriber of the log
/// receives them, is rendered once per distinct query and the rendering is
/// shared (see [`LiveLines`]): a fast producer followed by many clients
/// costs one GraphQL execution per batch, not one per batch per client.
pub struct LogBatch(BatchLines);

enum BatchLines {
    /// Read from storage, or gathered from several commits: this
    /// subscriber's own.
    Own(LogBatchFields),
    /// One commit's lines; `query` names the subscriber's query (the same
    /// text with the same variables renders the same).
    Shared { live: Arc<LiveLines>, query: Arc<str> },
}

/// Lines sent together by a log subscription.
#[derive(SimpleObject)]
#[graphql(name = "LogBatch")]
pub struct LogBatchFields {
    /// The lines, in order; never empty.
    lines: Vec<LogLineNode>,
    /// The `seq` of the last line: subscribe again with `after: lastSeq` to
    /// resume without a gap or a repeat.
    last_seq: u64,
}

impl LogBatchFields {
    fn of(lines: Vec<domain::LogLine>) -> Option<Self> {
        let last_seq = lines.last()?.seq;
        Some(Self { lines: lines.into_iter().map(LogLineNode).collect(), last_seq })
    }
}

impl LogBatch {
    /// The batch of `lines`; `None` when there are none.
    pub fn of(lines: Vec<domain::LogLine>) -> Option<Self> {
        LogBatchFields::of(lines).map(|fields| Self(BatchLines::Own(fields)))
    }

    /// The lines of one commit, rendered for `query` at most once.
    pub fn shared(live: Arc<LiveLines>, query: Arc<str>) -> Self {
        Self(BatchLines::Shared { live, query })
    }
}

impl OutputType for LogBatch {
    fn type_name() -> Cow<'static, str> {
        LogBatchFields::type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        LogBatchFields::create_type_info(registry)
    }

    async fn resolve(&self, ctx: &ContextSelectionSet<'_>, field: &Positioned<Field>) -> ServerResult<Value> {
        let (live, query) = match &self.0 {
            BatchLines::Own(fields) => return fields.resolve(ctx, field).await,
            BatchLines::Shared { live, query } => (live, query),
        };
        let rendered = match live.rendering::<Rendered>(query) {
            Some(rendered) => rendered,
            None => {
                let Some(fields) = LogBatchFields::of(live.lines.to_vec()) else { return Ok(Value::Null) };
                let errors = || ctx.query_env.errors.lock().map_or(usize::MAX, |e| e.len());
                let errors_before = errors();
                let value = fields.resolve(ctx, field).await?;
                // A rendering with a field error (a failed read of an
                // instance) is this subscriber's alone: others render
                // their own.
                if errors() != errors_before {
                    return Ok(value);
                }
                let json =
                    serde_json::to_string(&value).map_err(|e| ServerError::new(e.to_string(), None))?;
                let rendered = Arc::new(Rendered { value, json: json.into() });
                live.keep_rendering(query.clone(), rendered.clone());
                rendered
            }
        };
        match ctx.data_opt::<Arc<Prerendered>>() {
            Some(slot) => {
                slot.put(rendered.json.clone());
                Ok(Value::Null)
            }
            None => Ok(rendered.value.clone()),
        }
    }
}

/// A batch rendered for one query: as a value, and serialized.
struct Rendered {
    value: Value,
    json: Arc<str>,
}

/// A slot a transport gives each subscription when it can send JSON that
/// was serialized once for many clients.
///
/// A shared log batch then puts its serialized rendering here and resolves
/// to a placeholder `null`; the transport takes the JSON out right after
/// the result and writes it in place of the field's value. Without the
/// slot (any other transport), batches resolve to their value as usual.
#[derive(Default)]
pub struct Prerendered(Mutex<Option<Arc<str>>>);

impl Prerendered {
    fn put(&self, json: Arc<str>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(json);
    }

    /// The JSON put since the last call, if any.
    pub fn take(&self) -> Option<Arc<str>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// What makes one subscriber's rendering of a batch the same as another's:
/// its whole operation (with the fragments it may use) and its variables.
/// Positions are part of it, so only the same text matches; anything else
/// just renders on its own.
///
/// async-graphql exposes the parsed request as a public (if undocumented)
/// field of the context; reading it once per subscription is the one way
/// to see the directives on fragment spreads, which change what a
/// selection returns.
pub fn query_key(ctx: &Context<'_>) -> Arc<str> {
    let env = &ctx.query_env;
    let mut fragments: Vec<_> = env.fragments.iter().collect();
    fragments.sort_by_key(|(name, _)| *name);
    format!("{:?}\n{fragments:?}\n{:?}", env.operation.node, env.variables).into()
}
