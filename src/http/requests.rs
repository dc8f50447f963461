//! GraphQL requests by operation name and outcome, with their latency, for
//! `/metrics`.
//!
//! The operation name is the client's `operationName` (or the name of the
//! only operation of the document); a request without one counts as
//! `anonymous`. Clients choose names, so their number is bounded: past
//! [`MAX_OPERATIONS`] distinct names, and for anything that is not a
//! GraphQL name, requests count as `other`. The outcome is `ok`, or the
//! `extensions.code` of the first error of the reply.
//!
//! Recording takes a read lock on the table of names (shared by every
//! request; a write lock only the first time a name is seen) and a few
//! relaxed atomic additions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::telemetry::{self, Histogram};

/// Most distinct operation names counted on their own.
pub const MAX_OPERATIONS: usize = 200;

/// The outcomes counted: `ok`, each error code, and `OTHER` for a code not
/// in this list.
const OUTCOMES: [&str; 14] = [
    "ok",
    "BAD_USER_INPUT",
    "NOT_FOUND",
    "CONFLICT",
    "INVALID_TRANSITION",
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "RATE_LIMITED",
    "IDEMPOTENCY_KEY_REUSED",
    "CURSOR_EXPIRED",
    "SLOW_CONSUMER",
    "LIMIT_EXCEEDED",
    "INTERNAL_SERVER_ERROR",
    "OTHER",
];

/// The figures of every operation name.
#[derive(Default)]
pub struct RequestMetrics {
    operations: RwLock<HashMap<Box<str>, Arc<OperationStats>>>,
}

#[derive(Default)]
struct OperationStats {
    /// Requests per outcome, in the order of [`OUTCOMES`].
    outcomes: [AtomicU64; OUTCOMES.len()],
    latency: Histogram,
}

impl RequestMetrics {
    /// Counts a request named `operation` that took `elapsed` and was
    /// answered with `response`.
    pub fn record(&self, operation: &str, response: &async_graphql::Response, elapsed: Duration) {
        let code = response.errors.first().map(|e| match e.extensions.as_ref().and_then(|x| x.get("code")) {
            Some(async_graphql::Value::String(code)) => code.as_str(),
            _ => "OTHER",
        });
        let outcome = match code {
            None => 0,
            Some(code) => OUTCOMES.iter().position(|o| *o == code).unwrap_or(OUTCOMES.len() - 1),
        };
        let stats = self.stats(operation);
        stats.outcomes[outcome].fetch_add(1, Ordering::Relaxed);
        stats.latency.observe(elapsed);
    }

    /// Requests counted so far, all names and outcomes together.
    pub fn total(&self) -> u64 {
        let operations = self.operations.read().unwrap_or_else(|e| e.into_inner());
        operations.values().flat_map(|s| s.outcomes.iter()).map(|n| n.load(Ordering::Relaxed)).sum()
    }

    fn stats(&self, operation: &str) -> Arc<OperationStats> {
        let valid = !operation.is_empty()
            && operation.len() <= 100
            && !operation.starts_with(|c: char| c.is_ascii_digit())
            && operation.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        let name = if valid { operation } else { "other" };
        if let Some(stats) = self.operations.read().unwrap_or_else(|e| e.into_inner()).get(name) {
            return stats.clone();
        }
        let mut operations = self.operations.write().unwrap_or_else(|e| e.into_inner());
        let name =
            if operations.len() >= MAX_OPERATIONS && !operations.contains_key(name) { "other" } else { name };
        operations.entry(name.into()).or_default().clone()
    }

    /// Writes the request counters and latency histograms.
    pub fn render(&self, out: &mut String) {
        let operations = self.operations.read().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<_> = operations.keys().collect();
        names.sort();
        const REQUESTS: &str = "opsgraph_graphql_requests_total";
        telemetry::header(
            out,
            REQUESTS,
            "counter",
            "GraphQL requests over HTTP, by operation name and outcome (ok, or the code of the first error).",
        );
        for name in &names {
            let stats = &operations[*name];
            for (outcome, count) in OUTCOMES.iter().zip(&stats.outcomes) {
                let count = count.load(Ordering::Relaxed);
                if count > 0 {
                    let labels = format!("operation=\"{}\",outcome=\"{outcome}\"", telemetry::escape(name));
                    telemetry::sample(out, REQUESTS, &labels, count);
                }
            }
        }
        const LATENCY: &str = "opsgraph_graphql_request_duration_seconds";
        telemetry::header(
            out,
            LATENCY,
            "histogram",
            "Time to answer a GraphQL request over HTTP, by operation name.",
        );
        for name in &names {
            let labels = format!("operation=\"{}\"", telemetry::escape(name));
            operations[*name].latency.render(out, LATENCY, &labels);
        }
    }
}

/// The name a request is counted under: its `operationName`, or else the
/// name of the document's one operation (without parsing more than the
/// start of the document), or `anonymous`.
pub fn operation_name(request: &async_graphql::Request) -> String {
    if let Some(name) = &request.operation_name {
        return name.clone();
    }
    let query = request.query.trim_start();
    let rest = ["query", "mutation"].iter().find_map(|kw| query.strip_prefix(kw));
    let name: String = rest
        .filter(|r| r.starts_with(char::is_whitespace))
        .map(|r| r.trim_start().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect())
        .unwrap_or_default();
    if name.is_empty() { "anonymous".to_owned() } else { name }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_operation_name_or_the_document() {
        let named = async_graphql::Request::new("query A { x }").operation_name("B");
        assert_eq!(operation_name(&named), "B");
        assert_eq!(
            operation_name(&async_graphql::Request::new("  mutation Deploy($s: ID!) { x }")),
            "Deploy"
        );
        assert_eq!(operation_name(&async_graphql::Request::new("{ x }")), "anonymous");
        assert_eq!(operation_name(&async_graphql::Request::new("query { x }")), "anonymous");
        assert_eq!(operation_name(&async_graphql::Request::new("queryX { x }")), "anonymous");
    }

    #[test]
    fn odd_names_and_names_past_the_bound_count_as_other() {
        let metrics = RequestMetrics::default();
        let ok = async_graphql::Response::new(async_graphql::Value::Null);
        metrics.record("we\"ird", &ok, Duration::from_millis(1));
        for n in 0..MAX_OPERATIONS + 5 {
            metrics.record(&format!("Op{n}"), &ok, Duration::from_millis(1));
        }
        let mut out = String::new();
        metrics.render(&mut out);
        assert!(
            out.contains("opsgraph_graphql_requests_total{operation=\"other\",outcome=\"ok\"} 7\n"),
            "{out}"
        );
        assert_eq!(metrics.total(), MAX_OPERATIONS as u64 + 6);
    }
}
