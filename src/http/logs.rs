//! `GET /operations/{id}/logs`: an operation's whole log, streamed page by
//! page so memory stays bounded whatever its size.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use serde::Deserialize;

use super::AppState;
use crate::domain::{LogLine, OperationId};
use crate::store::operations;

/// Lines read per storage round trip.
const CHUNK: usize = 1_000;

#[derive(Deserialize)]
pub struct LogQuery {
    /// `text` (default) or `ndjson`.
    format: Option<String>,
}

pub async fn operation_logs(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<LogQuery>,
) -> Response {
    let ndjson = match query.format.as_deref() {
        None | Some("text") => false,
        Some("ndjson") => true,
        Some(other) => {
            return super::error_response(crate::domain::DomainError::bad_input(
                "format",
                format!("`{other}` is not a log format: use `text` or `ndjson`"),
            ));
        }
    };
    let org = state.principal().organization_id;
    let id = match id.parse::<OperationId>() {
        Ok(id) => id,
        Err(e) => return super::error_response(e),
    };
    if let Err(e) = state.store.read(move |r| operations::operation(r, org, id)).await {
        return super::error_response(e);
    }
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
