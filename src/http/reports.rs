//! `GET /reports/activity.csv?environment=…&from=…&to=…`: the rows of an
//! activity report as CSV (or, with `format=ndjson`, JSON lines); and
//! `GET /reports/audit.csv?from=…&to=…`: the audit log as CSV.
//!
//! One read snapshot on a blocking thread scans the time index and renders
//! rows into chunks; a bounded channel hands them to the response body. So
//! the export is consistent, and memory stays flat however many rows: at
//! most `QUEUED_CHUNKS` chunks wait for a slow client, and the producer
//! stops when the client goes away.

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use chrono::DateTime;
use futures_util::stream;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::{AppState, error_response};
use crate::domain::access::{AUDIT_CSV_HEADER, AuditFilter, audit_csv_row};
use crate::domain::{Action, DomainError, EnvironmentId, Millis, Operation, OrganizationId, export, report};
use crate::store::activity::{self, Period};
use crate::store::{Reader, auth, resources};

/// Bytes rendered before a chunk is handed to the body.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks that may wait for the client.
const QUEUED_CHUNKS: usize = 4;

/// The query string; every field is checked by [`ExportRequest::parse`] so
/// that a bad one is a JSON error with a code.
#[derive(Deserialize)]
pub struct ReportQuery {
    environment: Option<String>,
    from: Option<String>,
    to: Option<String>,
    format: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Ndjson,
}

struct ExportRequest {
    environment: EnvironmentId,
    period: Period,
    format: Format,
}

impl ExportRequest {
    fn parse(q: ReportQuery) -> Result<Self, DomainError> {
        let required = |field: &'static str, value: Option<String>| {
            value.ok_or_else(|| DomainError::bad_input(field, "is required"))
        };
        let environment = required("environment", q.environment)?.parse()?;
        let from = time("from", &required("from", q.from)?)?;
        let to = time("to", &required("to", q.to)?)?;
        let format = match q.format.as_deref() {
            None | Some("csv") => Format::Csv,
            Some("ndjson") => Format::Ndjson,
            Some(other) => {
                return Err(DomainError::bad_input(
                    "format",
                    format!("`{other}` is not a report format: use `csv` or `ndjson`"),
                ));
            }
        };
        Ok(Self { environment, period: report::period(from, to)?, format })
    }
}

/// An RFC 3339 time. A `+` that was not percent-encoded reaches us as a
/// space (`…T10:00:00 02:00`); RFC 3339 has no space there, so it is read
/// back as the `+` it was.
fn time(field: &'static str, raw: &str) -> Result<Millis, DomainError> {
    let parse = |s: &str| DateTime::parse_from_rfc3339(s).ok();
    let fixed = raw.rfind(' ').map(|i| format!("{}+{}", &raw[..i], &raw[i + 1..]));
    parse(raw)
        .or_else(|| fixed.as_deref().and_then(parse))
        .map(|t| t.timestamp_millis())
        .ok_or_else(|| DomainError::bad_input(field, format!("`{raw}` is not an RFC 3339 time")))
}

pub async fn activity_csv(
    State(state): State<AppState>,
    Query(query): Query<ReportQuery>,
    headers: HeaderMap,
) -> Response {
    let org = match state.caller(&headers, Action::Read) {
        Ok(p) => p.organization_id,
        Err(e) => return error_response(e),
    };
    let request = match ExportRequest::parse(query) {
        Ok(r) => r,
        Err(e) => return error_response(e),
    };
    let env = request.environment;
    if let Err(e) = state.store.read(move |r| resources::environment(r, org, env)).await {
        return error_response(e);
    }
    let (sender, mut receiver) = mpsc::channel(QUEUED_CHUNKS);
    let (period, format) = (request.period, request.format);
    let store = state.store();
    tokio::spawn(async move {
        let failed = sender.clone();
        let result = store.read(move |r| produce(r, env, period, format, &sender)).await;
        if let Err(error) = result {
            tracing::error!(%error, "activity report export failed");
            let _ = failed.send(Err(std::io::Error::other("the export failed"))).await;
        }
    });
    let body = stream::poll_fn(move |cx| receiver.poll_recv(cx));
    let (content_type, extension) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Ndjson => ("application/x-ndjson", "ndjson"),
    };
    let disposition = format!("attachment; filename=\"activity-{env}.{extension}\"");
    (
        [(header::CONTENT_TYPE, content_type.to_owned()), (header::CONTENT_DISPOSITION, disposition)],
        Body::from_stream(body),
    )
        .into_response()
}

type Chunk = Result<Bytes, std::io::Error>;

/// The query string of `/reports/audit.csv`: an optional period.
#[derive(Deserialize)]
pub struct AuditQuery {
    from: Option<String>,
    to: Option<String>,
}

/// `GET /reports/audit.csv?from=…&to=…`: the organization's audit log as
/// CSV, oldest first, streamed from one read snapshot like the activity
/// report. `ADMIN` or `OWNER`.
pub async fn audit_csv(
    State(state): State<AppState>,
    Query(query): Query<AuditQuery>,
    headers: HeaderMap,
) -> Response {
    let org = match state.caller(&headers, Action::ReadAudit) {
        Ok(p) => p.organization_id,
        Err(e) => return error_response(e),
    };
    let period = (|| -> Result<AuditFilter, DomainError> {
        let from = query.from.as_deref().map(|t| time("from", t)).transpose()?;
        let to = query.to.as_deref().map(|t| time("to", t)).transpose()?;
        Ok(AuditFilter { from, to, ..AuditFilter::default() })
    })();
    let filter = match period {
        Ok(f) => f,
        Err(e) => return error_response(e),
    };
    let (sender, mut receiver) = mpsc::channel(QUEUED_CHUNKS);
    let store = state.store();
    tokio::spawn(async move {
        let failed = sender.clone();
        let result = store.read(move |r| produce_audit(r, org, &filter, &sender)).await;
        if let Err(error) = result {
            tracing::error!(%error, "audit log export failed");
            let _ = failed.send(Err(std::io::Error::other("the export failed"))).await;
        }
    });
    let body = stream::poll_fn(move |cx| receiver.poll_recv(cx));
    let disposition = format!("attachment; filename=\"audit-{org}.csv\"");
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// Rendered rows on their way to the client, sent in chunks of about
/// [`CHUNK_BYTES`] so memory stays bounded for any period.
struct Chunks<'s> {
    buffer: String,
    sender: &'s mpsc::Sender<Chunk>,
    /// The client went away: stop rendering.
    gone: bool,
}

impl<'s> Chunks<'s> {
    fn new(sender: &'s mpsc::Sender<Chunk>) -> Self {
        Self { buffer: Self::fresh(), sender, gone: false }
    }

    fn fresh() -> String {
        String::with_capacity(CHUNK_BYTES + 4096)
    }

    /// Sends the buffer once it is full; `Break` once the client is gone.
    fn row_done(&mut self) -> std::ops::ControlFlow<()> {
        if self.buffer.len() >= CHUNK_BYTES {
            let chunk = std::mem::replace(&mut self.buffer, Self::fresh());
            self.gone = self.sender.blocking_send(Ok(Bytes::from(chunk))).is_err();
        }
        if self.gone { std::ops::ControlFlow::Break(()) } else { std::ops::ControlFlow::Continue(()) }
    }

    /// Sends what is left.
    fn finish(self) {
        if !self.gone && !self.buffer.is_empty() {
            let _ = self.sender.blocking_send(Ok(Bytes::from(self.buffer)));
        }
    }
}

fn produce_audit(
    r: Reader<'_>,
    org: OrganizationId,
    filter: &AuditFilter,
    sender: &mpsc::Sender<Chunk>,
) -> Result<(), DomainError> {
    let mut chunks = Chunks::new(sender);
    chunks.buffer.push_str(AUDIT_CSV_HEADER);
    auth::for_each_audit(r, org, filter, |entry| {
        audit_csv_row(&mut chunks.buffer, entry);
        Ok(chunks.row_done())
    })?;
    chunks.finish();
    Ok(())
}

/// Renders every row of the period into chunks sent to `sender`; stops
/// early when the receiver (the client) is gone.
fn produce(
    r: Reader<'_>,
    env: EnvironmentId,
    period: Period,
    format: Format,
    sender: &mpsc::Sender<Chunk>,
) -> Result<(), DomainError> {
    let render: fn(&mut String, &Operation) = match format {
        Format::Csv => export::csv_row,
        Format::Ndjson => export::ndjson_row,
    };
    let mut chunks = Chunks::new(sender);
    if format == Format::Csv {
        export::csv_header(&mut chunks.buffer);
    }
    activity::for_each_in_period(r, env, period, None, |_, op| {
        render(&mut chunks.buffer, &op);
        Ok(chunks.row_done())
    })?;
    chunks.finish();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(
        environment: Option<&str>,
        from: Option<&str>,
        to: Option<&str>,
        format: Option<&str>,
    ) -> ReportQuery {
        let own = |v: Option<&str>| v.map(str::to_owned);
        ReportQuery { environment: own(environment), from: own(from), to: own(to), format: own(format) }
    }

    #[test]
    fn a_request_is_checked_field_by_field() {
        let (from, to) = (Some("2024-01-01T00:00:00Z"), Some("2024-02-01T00:00:00 01:00"));
        let ok = ExportRequest::parse(query(Some("env_1"), from, to, Some("ndjson"))).unwrap();
        assert_eq!(ok.environment, EnvironmentId(1));
        assert_eq!(ok.period, (1_704_067_200_000, 1_706_742_000_000));
        assert!(ok.format == Format::Ndjson);
        let bad = [
            (query(None, from, to, None), "environment"),
            (query(Some("svc_1"), from, to, None), "id"),
            (query(Some("env_1"), Some("yesterday"), to, None), "from"),
            (query(Some("env_1"), from, None, None), "to"),
            (query(Some("env_1"), to, from, None), "to"),
            (query(Some("env_1"), from, to, Some("xlsx")), "format"),
        ];
        for (q, field) in bad {
            let err = ExportRequest::parse(q).err().unwrap();
            assert_eq!(err.code().as_str(), "BAD_USER_INPUT");
            assert!(err.to_string().contains(field), "{err} should name {field}");
        }
    }
}
