//! `GET /operations/{id}/logs`: an operation's whole log, streamed page by
//! page so memory stays bounded whatever its size.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use serde::Deserialize;

use super::AppState;
use crate::domain::{DomainError, LogLine, OperationId, OperationSelector, ServiceId};
use crate::store::{activity, operations};

/// Lines read per storage round trip.
const CHUNK: usize = 1_000;

#[derive(Deserialize)]
pub struct LogQuery {
    /// `text` (default) or `ndjson`.
    format: Option<String>,
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
) -> Response {
    let org = state.principal().organization_id;
    let found = async {
        let ndjson = query.ndjson()?;
        let id = id.parse::<OperationId>()?;
        state.store.read(move |r| operations::operation(r, org, id)).await?;
        Ok((id, ndjson))
    };
    match found.await {
        Ok((id, ndjson)) => stream_log(&state, id, ndjson),
        Err(e) => super::error_response(e),
    }
}

/// `GET /services/{id}/operations/{selector}/logs`: the log of the
/// operation a selector (`current`, `previous`, `latest-failed`,
/// `offset-<n>`) names on a service.
pub async fn selected_operation_logs(
    State(state): State<AppState>,
    Path((svc, selector)): Path<(String, String)>,
    Query(query): Query<LogQuery>,
) -> Response {
    let org = state.principal().organization_id;
    let found = async {
        let ndjson = query.ndjson()?;
        let svc = svc.parse::<ServiceId>()?;
        let selector = OperationSelector::parse(&selector)?;
        let op = state.store.read(move |r| activity::selected(r, org, svc, selector)).await?;
        Ok::<_, DomainError>((op.id, ndjson))
    };
    match found.await {
        Ok((id, ndjson)) => stream_log(&state, id, ndjson),
        Err(e) => super::error_response(e),
    }
}

/// The whole log of operation `id`, streamed page by page.
fn stream_log(state: &AppState, id: OperationId, ndjson: bool) -> Response {
    let store = state.store.clone();
    let body = stream::unfold(Some(0u64), move |after| {
        let store = store.clone();
        async move {
            let after = after?;
            let lines = store.read(move |r| operations::log_lines_after(r, id, after, CHUNK)).await;
            match lines {
                Ok(lines) if lines.is_empty() => None,
                Ok(lines) => {
                    let next = lines.last().map(|l| l.seq);
                    let chunk: String = lines.iter().map(|l| render(l, ndjson)).collect();
                    Some((Ok::<_, std::io::Error>(chunk), next))
                }
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
            }
        }
    });
    let content_type = if ndjson { "application/x-ndjson" } else { "text/plain; charset=utf-8" };
    ([(header::CONTENT_TYPE, content_type)], Body::from_stream(body)).into_response()
}

fn render(line: &LogLine, ndjson: bool) -> String {
    let at = chrono::DateTime::from_timestamp_millis(line.at).unwrap_or_default();
    if ndjson {
        let value = serde_json::json!({
            "seq": line.seq,
            "at": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "stream": line.stream,
            "text": line.text,
        });
        format!("{value}\n")
    } else {
        let at = at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        format!("{at} {} {}\n", line.stream.as_str(), line.text)
    }
}
