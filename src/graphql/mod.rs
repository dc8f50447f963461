//! The GraphQL schema: root types, one file per GraphQL type under
//! [`types`], and the one place errors become GraphQL errors ([`error`]).
//!
//! Every error a client receives carries `extensions.code`: resolvers set
//! it through [`error::gql`], and the transports run every request through
//! [`CodedSchema`], which covers the errors async-graphql raises.
//!
//! Resolvers are thin: each starts with the permission check of its root
//! field ([`guard`]), validates input into domain types and calls one
//! store or engine function. Every read is scoped by the organization of
//! the request's [`Principal`](crate::domain::Principal), which the HTTP
//! layer authenticates per request (or per WebSocket connection).
//!
//! Imports `domain`, `store` and `engine`; never `http`.

mod agents;
mod connection;
pub mod error;
pub mod guard;
pub mod limits;
mod mutation;
mod query;
mod replay;
mod scope;
mod status_page;
mod subscription;
pub mod types;
mod workers;

use std::sync::Arc;

use async_graphql::{MergedObject, MergedSubscription, Schema};

use crate::engine::Engine;
use crate::store::Store;

pub use error::{CodedSchema, RequestId};
pub use limits::DocumentLimits;
pub use mutation::Mutation;
pub use query::Query;
pub use subscription::Subscription;
pub use types::log_line::Prerendered;

/// The schema served at `/graphql`.
pub type AppSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// Reads. Objects of another organization read exactly as missing ones;
/// the status page is public.
#[derive(MergedObject, Default)]
#[graphql(name = "Query")]
pub struct QueryRoot(Query, status_page::StatusPageQuery);

/// Changes. Every change to what runs is an operation, queued and run in
/// order per service; those mutations answer with the operation as queued.
/// The status page's mutations need the right to edit it.
#[derive(MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct MutationRoot(
    Mutation,
    status_page::StatusPageMutation,
    workers::WorkerMutation,
    agents::MonitoringMutation,
);

/// Live feeds. Each replays what is stored after the client's cursor,
/// then follows live, without a gap or a repeat.
#[derive(MergedSubscription, Default)]
#[graphql(name = "Subscription")]
pub struct SubscriptionRoot(Subscription, status_page::StatusPageSubscription, workers::WorkerSubscription);

/// What resolvers need from the rest of the application; attached once to
/// the schema.
#[derive(Clone)]
pub struct GraphqlContext {
    /// Reads, and the writes that are not operations (creating and editing
    /// environments and services).
    pub store: Store,
    /// Queues and cancels operations.
    pub engine: Arc<Engine>,
    pub limits: Limits,
    /// The tokens and members requests are authenticated against; the
    /// mutations that change them update it before they answer.
    pub registry: Arc<crate::auth::Registry>,
}

/// Bounds on what one client may ask of the server, from the configuration.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most lines one `appendLogs` call may carry (after splitting strings
    /// at their line breaks).
    pub max_append_lines: usize,
    /// How many positions a subscriber that was following live may fall
    /// behind its feed before it is ended with `SLOW_CONSUMER`.
    pub slow_consumer_lag: u64,
    /// Whether clients may ask the schema about itself. Without it, error
    /// messages do not suggest field names either.
    pub introspection: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_append_lines: 10_000, slow_consumer_lag: 100_000, introspection: true }
    }
}

/// Builds the schema. Without a context the schema can only describe
/// itself ([`sdl`]): every resolver that needs storage then fails with an
/// internal error.
pub fn build_schema(ctx: Option<GraphqlContext>) -> AppSchema {
    // No extension: any extension puts a hook chain on every field.
    let mut builder =
        Schema::build(QueryRoot::default(), MutationRoot::default(), SubscriptionRoot::default());
    if ctx.as_ref().is_some_and(|ctx| !ctx.limits.introspection) {
        builder = builder.disable_introspection().disable_suggestions();
    }
    match ctx {
        Some(ctx) => builder.data(ctx).finish(),
        None => builder.finish(),
    }
}

/// The schema in GraphQL SDL: the public contract, exported without any
/// storage (`opsgraph export-schema`).
pub fn sdl() -> String {
    build_schema(None).sdl()
}
