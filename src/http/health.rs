//! Liveness, readiness and metrics.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use super::AppState;

/// Always 200 while the process serves.
pub async fn livez() -> &'static str {
    "ok"
}

/// 200 once start-up recovery is done, 503 before.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if *state.ready.borrow() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "recovering")
    }
}

/// Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, kind: &str, value: u64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
    };
    gauge("opsgraph_ready", "1 once start-up recovery is done.", "gauge", u64::from(*state.ready.borrow()));
    gauge(
        "opsgraph_graphql_requests_total",
        "GraphQL requests received over HTTP.",
        "counter",
        state.requests.load(Ordering::Relaxed),
    );
    gauge(
        "opsgraph_operations_running",
        "Operations whose steps are running now.",
        "gauge",
        state.engine.running_count() as u64,
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
