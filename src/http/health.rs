//! Liveness, readiness and metrics.
//!
//! - `/livez` answers 200 while the process serves.
//! - `/readyz` answers 200 once start-up recovery is done and while
//!   storage works; 503 before recovery ends, and from a storage failure
//!   until the database file is open again (see `store::health`).
//! - `/metrics` is the Prometheus text format (see [`metrics`] for the
//!   series).

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use super::AppState;
use crate::store::{StoreStats, operations};
use crate::telemetry::{header as family, sample};

/// Always 200 while the process serves.
pub async fn livez() -> &'static str {
    "ok"
}

/// 200 once start-up recovery is done and while storage works; 503 with
/// the reason otherwise.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if !*state.ready.borrow() {
        (StatusCode::SERVICE_UNAVAILABLE, "recovering")
    } else if !state.store.is_healthy() {
        (StatusCode::SERVICE_UNAVAILABLE, "storage failing")
    } else {
        (StatusCode::OK, "ready")
    }
}

/// Prometheus text format:
///
/// | series | what |
/// | --- | --- |
/// | `opsgraph_ready` | 1 once recovery is done and storage works |
/// | `opsgraph_storage_healthy` | 0 from a storage failure until the file is open again |
/// | `opsgraph_graphql_requests_total{operation,outcome}` | GraphQL requests over HTTP |
/// | `opsgraph_graphql_request_duration_seconds{operation}` | their latency (histogram) |
/// | `opsgraph_operations{status}` | operations stored, by status |
/// | `opsgraph_operations_running` | operations running steps in this process |
/// | `opsgraph_log_lines_ingested_total` | log lines committed |
/// | `opsgraph_subscribers{subscription}` | clients following a log or event feed |
/// | `opsgraph_commits_total`, `opsgraph_commit_failures_total` | write transactions |
/// | `opsgraph_commit_duration_seconds` | time in `commit()` (histogram) |
/// | `opsgraph_storage_reopens_total` | reopens of the file after a failure |
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut out = String::with_capacity(8 * 1024);
    let ready = *state.ready.borrow() && state.store.is_healthy();
    family(&mut out, "opsgraph_ready", "gauge", "1 once start-up recovery is done and while storage works.");
    sample(&mut out, "opsgraph_ready", "", u8::from(ready));
    family(
        &mut out,
        "opsgraph_storage_healthy",
        "gauge",
        "0 from a storage failure until the database is open again.",
    );
    sample(&mut out, "opsgraph_storage_healthy", "", u8::from(state.store.is_healthy()));
    state.requests.render(&mut out);
    // Operations by status: a scan of the status index (none while
    // storage is failing).
    if let Ok(counts) = state.store.read(operations::count_by_status).await {
        family(&mut out, "opsgraph_operations", "gauge", "Operations stored, by status.");
        for (status, n) in counts {
            sample(&mut out, "opsgraph_operations", &format!("status=\"{}\"", status.as_str()), n);
        }
    }
    family(
        &mut out,
        "opsgraph_operations_running",
        "gauge",
        "Operations whose steps run in this process now.",
    );
    sample(&mut out, "opsgraph_operations_running", "", state.engine.running_count());
    let stats = state.store.stats();
    let counter = |out: &mut String, name: &str, help: &str, value: &std::sync::atomic::AtomicU64| {
        family(out, name, "counter", help);
        sample(out, name, "", StoreStats::get(value));
    };
    counter(
        &mut out,
        "opsgraph_log_lines_ingested_total",
        "Log lines committed, every log and stream.",
        &stats.log_lines,
    );
    family(
        &mut out,
        "opsgraph_subscribers",
        "gauge",
        "Clients following a log or event feed now, by subscription.",
    );
    for (feed, n) in state.store.events().subscribers() {
        sample(&mut out, "opsgraph_subscribers", &format!("subscription=\"{}\"", feed.as_str()), n);
    }
    counter(&mut out, "opsgraph_commits_total", "Write transactions committed.", &stats.commits);
    counter(
        &mut out,
        "opsgraph_commit_failures_total",
        "Write transactions that storage failed to commit.",
        &stats.commit_failures,
    );
    counter(
        &mut out,
        "opsgraph_storage_reopens_total",
        "Reopens of the database file after a storage failure.",
        &stats.reopens,
    );
    family(
        &mut out,
        "opsgraph_commit_duration_seconds",
        "histogram",
        "Time to commit a write transaction (write-out and fsync).",
    );
    stats.commit_latency.render(&mut out, "opsgraph_commit_duration_seconds", "");
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out)
}
