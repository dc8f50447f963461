//! Log downloads: `GET /operations/{id}/logs` (an operation's whole log)
//! and `GET /services/{id}/logs?since=…&until=…` (a service's runtime log
//! over a period), as plain text or NDJSON (`?format=ndjson`).
//!
//! Both stream page by page from storage, so memory stays bounded whatever
//! the size of the log. In plain text a line stored in pieces (longer than
//! 64 KiB) is written whole again; NDJSON keeps one object per stored line
//! with `continuesPrevious`.

use std::fmt::Write as _;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat};
use futures_util::stream;
use serde::Deserialize;

use super::{AppState, error_response};
use crate::domain::{Action, DomainError, LogLine, Millis, OperationId, OperationSelector, ServiceId};
use crate::store::logs::{self, Log};
use crate::store::{Store, activity, operations, resources};

/// Lines read per storage round trip.
const CHUNK: usize = 1_000;

#[derive(Deserialize)]
pub struct LogQuery {
    /// `text` (default) or `ndjson`.
    format: Option<String>,
    /// RFC 3339: only lines stored at or after this time.
    since: Option<String>,
    /// RFC 3339: only lines stored before this time.
    until: Option<String>,
}

/// What one download asks for, checked.
#[derive(Clone, Copy)]
struct Download {
    log: Log,
    ndjson: bool,
    since: Option<Millis>,
    until: Option<Millis>,
}

impl LogQuery {
    /// Whether the lines go out as JSON lines.
    fn ndjson(&self) -> Result<bool, DomainError> {
        match self.format.as_deref() {
            None | Some("text") => Ok(false),
            Some("ndjson") => Ok(true),
            Some(other) => Err(DomainError::bad_input(
                "format",
                format!("`{other}` is not a log format: use `text` or `ndjson`"),
            )),
        }
    }
}

pub async fn operation_logs(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<LogQuery>,
    headers: HeaderMap,
) -> Response {
    let checked = async {
        let org = state.caller(&headers, Action::Read)?.organization_id;
        let op = id.parse::<OperationId>()?;
        state.store.read(move |r| operations::operation(r, org, op)).await?;
        Download::of(Log::Operation(op), &query)
    };
    match checked.await {
        Ok(download) => download.respond(state.store.clone()),
        Err(e) => error_response(e),
    }
}

/// `GET /services/{id}/operations/{selector}/logs`: the log of the
/// operation a selector (`current`, `previous`, `latest-failed`,
/// `offset-<n>`) names on a service.
pub async fn selected_operation_logs(
    State(state): State<AppState>,
    Path((svc, selector)): Path<(String, String)>,
    Query(query): Query<LogQuery>,
    headers: HeaderMap,
) -> Response {
    let checked = async {
        let org = state.caller(&headers, Action::Read)?.organization_id;
        let svc = svc.parse::<ServiceId>()?;
        let selector = OperationSelector::parse(&selector)?;
        let op = state.store.read(move |r| activity::selected(r, org, svc, selector)).await?;
        Download::of(Log::Operation(op.id), &query)
    };
    match checked.await {
        Ok(download) => download.respond(state.store.clone()),
        Err(e) => error_response(e),
    }
}

pub async fn service_logs(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<LogQuery>,
    headers: HeaderMap,
) -> Response {
    let checked = async {
        let org = state.caller(&headers, Action::Read)?.organization_id;
        let svc = id.parse::<ServiceId>()?;
        state.store.read(move |r| resources::service(r, org, svc)).await?;
        Download::of(Log::Service(svc), &query)
    };
    match checked.await {
        Ok(download) => download.respond(state.store.clone()),
        Err(e) => error_response(e),
    }
}

impl Download {
    fn of(log: Log, query: &LogQuery) -> Result<Self, DomainError> {
        let ndjson = query.ndjson()?;
        let since = time("since", query.since.as_deref())?;
        let until = time("until", query.until.as_deref())?;
        if let (Some(since), Some(until)) = (since, until)
            && since >= until
        {
            return Err(DomainError::bad_input("until", "must be later than `since`"));
        }
        Ok(Self { log, ndjson, since, until })
    }

    fn respond(self, store: Store) -> Response {
        let content_type = if self.ndjson { "application/x-ndjson" } else { "text/plain; charset=utf-8" };
        let body = stream::unfold(Cursor::Start, move |cursor| self.next_chunk(store.clone(), cursor));
        ([(header::CONTENT_TYPE, content_type)], Body::from_stream(body)).into_response()
    }

    /// The next piece of the body, and where to go on from.
    async fn next_chunk(self, store: Store, cursor: Cursor) -> Option<(std::io::Result<String>, Cursor)> {
        let (after, wrote) = match cursor {
            Cursor::Done => return None,
            Cursor::Start => {
                let since = self.since;
                let start =
                    store.read(move |r| since.map_or(Ok(0), |t| logs::position_before(r, self.log, t)));
                match start.await {
                    Ok(start) => (start, false),
                    Err(e) => return Some((Err(io_error(e)), Cursor::Done)),
                }
            }
            Cursor::After { seq, wrote } => (seq, wrote),
        };
        let lines = store.read(move |r| logs::lines_after(r, self.log, after, CHUNK)).await;
        let mut lines = match lines {
            Ok(lines) => lines,
            Err(e) => return Some((Err(io_error(e)), Cursor::Done)),
        };
        let ended =
            lines.len() < CHUNK || self.until.is_some_and(|u| lines.last().is_some_and(|l| l.at >= u));
        lines.retain(|l| self.until.is_none_or(|u| l.at < u));
        let mut chunk = String::new();
        let mut wrote_any = wrote;
        for line in &lines {
            self.render(line, wrote_any, &mut chunk);
            wrote_any = true;
        }
        if ended && wrote_any && !self.ndjson {
            chunk.push('\n');
        }
        let next = match (ended, lines.last()) {
            (true, _) => Cursor::Done,
            (false, Some(last)) => Cursor::After { seq: last.seq, wrote: wrote_any },
            (false, None) => Cursor::Done,
        };
        Some((Ok(chunk), next))
    }

    /// Appends `line` to `out`. In plain text a line ends when the next one
    /// starts, so a continuation can join the piece before it.
    fn render(&self, line: &LogLine, after_another: bool, out: &mut String) {
        let at = DateTime::from_timestamp_millis(line.at).unwrap_or_default();
        let at = at.to_rfc3339_opts(SecondsFormat::Millis, true);
        let instance = line.instance.map(|i| i.to_string());
        if self.ndjson {
            let value = serde_json::json!({
                "seq": line.seq,
                "at": at,
                "stream": line.stream,
                "text": line.text,
                "instance": instance,
                "continuesPrevious": line.continued,
            });
            let _ = writeln!(out, "{value}");
            return;
        }
        if line.continued && after_another {
            out.push_str(&line.text);
            return;
        }
        if after_another {
            out.push('\n');
        }
        let _ = write!(out, "{at} {}", line.stream.as_str());
        if let Some(instance) = instance {
            let _ = write!(out, " {instance}");
        }
        let _ = write!(out, " {}", line.text);
    }
}

/// Where a download stands.
#[derive(Clone, Copy)]
enum Cursor {
    Start,
    /// After the line `seq`; `wrote` says whether any line was written.
    After {
        seq: u64,
        wrote: bool,
    },
    Done,
}

fn time(field: &'static str, raw: Option<&str>) -> Result<Option<Millis>, DomainError> {
    raw.map(|raw| {
        DateTime::parse_from_rfc3339(raw).map(|t| t.timestamp_millis()).map_err(|_| {
            DomainError::bad_input(field, format!("`{raw}` is not an RFC 3339 time (2026-01-31T12:00:00Z)"))
        })
    })
    .transpose()
}

fn io_error(e: DomainError) -> std::io::Error {
    tracing::error!(error = %e, "a log download failed");
    std::io::Error::other("reading the log failed")
}
