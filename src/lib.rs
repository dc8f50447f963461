//! opsgraph: the operations record and control plane of a
//! platform-as-a-service, served as GraphQL over one embedded redb file.
//!
//! Layers, with dependencies pointing one way (`http -> graphql -> auth ->
//! engine -> store -> domain`):
//!
//! - [`domain`] — pure types and rules: ids, the operation status machine,
//!   step plans, running-status aggregation, validation, the error enum.
//!   Imports none of redb, axum or async-graphql.
//! - [`store`] — the only module that imports redb: tables, migrations, the
//!   group-committing writer thread, typed reads and writes, logs and their
//!   retention, the status feed, the event bus (events are published only
//!   after their commit).
//! - [`engine`] — runs operations: a queue per service, steps with rollback
//!   and cancel, timeouts and forced ends of stuck operations, start-up
//!   recovery, monitoring and self-healing through one recovery queue, and
//!   the local executor that runs services as child processes, and the
//!   status page's incidents that open themselves. Must not import
//!   `graphql` or `http`.
//! - [`auth`] — authentication: the in-memory registry of tokens and
//!   members every request is checked against, and the cancellation that
//!   ends a revoked token's connections. Imports `store` and `domain`.
//! - [`graphql`] — the schema: thin resolvers that validate input into
//!   domain types and call one store or engine function; the one place
//!   errors become GraphQL errors with `extensions.code`; `guard`, the
//!   one permission check every root field starts with, and the audit
//!   record of every mutation attempt.
//! - [`http`] — axum routes: GraphQL over HTTP and WebSocket, GraphiQL, log
//!   downloads, the public status page and its Atom feed, health and
//!   metrics.
//! - [`demo`] — demo data, seeded through the GraphQL schema as one caller.
//! - [`app`] — wires everything, runs recovery, shuts down gracefully.
//! - [`config`] — the command line (`clap`, with environment fallbacks).
//! - [`telemetry`] — lock-free counters and histograms for `/metrics`;
//!   imports nothing of the project, so every layer may record into it.

pub mod app;
pub mod auth;
pub mod config;
pub mod demo;
pub mod domain;
pub mod engine;
pub mod graphql;
pub mod http;
pub mod store;
pub mod telemetry;

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
