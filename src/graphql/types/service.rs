//! `Service`: one deployable thing in an environment, with its spec.

use async_graphql::{Context, ID, Object, Result};
use chrono::{DateTime, Utc};

use super::enums::{OperationStatus, ServiceKind};
use super::environment::EnvironmentNode;
use super::instance::InstanceNode;
use super::log_line::{LogFilterInput, LogLineConnection, log_page};
use super::operation::{OperationConnection, OperationNode};
use super::running_status::{self, RunningStatus};
use crate::domain::{self, OperationFilter};
use crate::graphql::connection::{connection, page_args};
use crate::graphql::scope::{datetime, id, scope};
use crate::store::logs::Log;
use crate::store::{operations, resources};

/// A service as a GraphQL object.
pub struct ServiceNode(pub domain::Service);

/// A page of services.
pub use crate::graphql::connection::ServiceConnection;

/// One deployable thing in an environment. A deleted service stays
/// readable, with `deletedAt` set.
#[Object(name = "Service")]
impl ServiceNode {
    /// Global id (`svc_<n>`).
    pub async fn id(&self) -> ID {
        id(self.0.id)
    }

    /// Unique among the live services of its environment.
    async fn name(&self) -> &str {
        self.0.name.as_str()
    }

    /// What the service is.
    async fn kind(&self) -> ServiceKind {
        self.0.kind.into()
    }

    /// The environment the service belongs to.
    async fn environment(&self, ctx: &Context<'_>) -> Result<EnvironmentNode> {
        let env = self.0.environment_id;
        let env = scope(ctx)?.read(move |r, org| resources::environment(r, org, env)).await?;
        Ok(EnvironmentNode(env))
    }

    /// How the service is built and run.
    async fn spec(&self) -> ServiceSpecObject {
        ServiceSpecObject(self.0.spec.clone())
    }

    /// The commit its current instances run; null before its first deploy.
    async fn current_commit(&self) -> Option<&str> {
        self.0.current_commit.as_deref()
    }

    /// Its instances, current and not, oldest first.
    async fn instances(&self, ctx: &Context<'_>) -> Result<Vec<InstanceNode>> {
        let svc = self.0.id;
        let instances = scope(ctx)?.read(move |r, _| resources::instances_of(r, svc)).await?;
        Ok(instances.into_iter().map(InstanceNode).collect())
    }

    /// Its runtime log: what its instances print, one stream across them
    /// (each line with its instance), in order. Operations' own output
    /// (builds, releases) is in the operations' logs.
    async fn logs(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The first `first` lines after `after` (at most 100).")] first: Option<i32>,
        #[graphql(desc = "Cursor (the `seq`) of the line the page starts after.")] after: Option<String>,
        #[graphql(desc = "The last `last` lines before `before` (at most 100).")] last: Option<i32>,
        #[graphql(desc = "Cursor (the `seq`) of the line the page ends before.")] before: Option<String>,
        #[graphql(desc = "Only the lines that match.")] filter: Option<LogFilterInput>,
    ) -> Result<LogLineConnection> {
        log_page(ctx, Log::Service(self.0.id), (first, after, last, before), filter).await
    }

    /// The running status of its instances.
    async fn running_status(&self, ctx: &Context<'_>) -> Result<RunningStatus> {
        let svc = self.0.id;
        scope(ctx)?.read(move |r, _| running_status::of_service(r, svc)).await
    }

    /// The status of its last operation; null when it has had none.
    async fn deployment_status(&self, ctx: &Context<'_>) -> Result<Option<OperationStatus>> {
        let svc = self.0.id;
        let last = scope(ctx)?.read(move |r, _| operations::last_of_service(r, svc)).await?;
        Ok(last.map(|op| op.status.into()))
    }

    /// When the service was created.
    async fn created_at(&self) -> DateTime<Utc> {
        datetime(self.0.created_at)
    }

    /// When its `DELETE` operation completed; null while it exists.
    async fn deleted_at(&self) -> Option<DateTime<Utc>> {
        self.0.deleted_at.map(datetime)
    }

    /// Its operations, newest first: the service's activity timeline.
    async fn operations(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The first `first` operations after `after` (at most 100).")] first: Option<i32>,
        #[graphql(desc = "Cursor of the edge the page starts after.")] after: Option<String>,
        #[graphql(desc = "The last `last` operations before `before` (at most 100).")] last: Option<i32>,
        #[graphql(desc = "Cursor of the edge the page ends before.")] before: Option<String>,
    ) -> Result<OperationConnection> {
        let args = page_args(first, after, last, before)?;
        let filter = OperationFilter { service_id: Some(self.0.id), ..OperationFilter::default() };
        let page =
            scope(ctx)?.read(move |r, org| operations::operations_page(r, org, &filter, &args)).await?;
        Ok(connection(page, OperationNode))
    }
}

/// A service's spec as a GraphQL object.
pub struct ServiceSpecObject(pub domain::ServiceSpec);

/// How the local executor builds and runs a service. Every command runs
/// with `sh -c` in the service's work directory.
#[Object(name = "ServiceSpec")]
impl ServiceSpecObject {
    /// Run by the build step; null when there is nothing to build.
    async fn build_command(&self) -> Option<&str> {
        self.0.build_command.as_deref()
    }

    /// Run by the release step, once per deploy (for example, migrations);
    /// null when there is none.
    async fn release_command(&self) -> Option<&str> {
        self.0.release_command.as_deref()
    }

    /// Starts one instance; null when the service has nothing to run.
    async fn start_command(&self) -> Option<&str> {
        self.0.start_command.as_deref()
    }

    /// First port handed to instances (`0`: any free port); null when the
    /// service serves no port.
    async fn port(&self) -> Option<u16> {
        self.0.port
    }

    /// How a new instance is judged healthy.
    async fn health_check(&self) -> HealthCheckObject {
        HealthCheckObject(self.0.health_check.clone())
    }

    /// Desired number of instances.
    async fn instances(&self) -> u32 {
        self.0.instances
    }

    /// Milliseconds between SIGTERM and SIGKILL when an instance stops.
    async fn stop_grace_ms(&self) -> u64 {
        self.0.stop_grace_ms
    }

    /// Milliseconds any operation on the service may run, counted from its
    /// start (not while queued), before it is cancelled with a `SYSTEM`
    /// line saying so; one that has still not ended the server's force
    /// grace later is ended as by `cancelOperation(force: true)`. Null when
    /// the service uses the default of each operation type (`DEPLOY` and
    /// `REDEPLOY` 30 minutes, the others 10 minutes).
    async fn operation_timeout_ms(&self) -> Option<u64> {
        self.0.operation_timeout_ms
    }
}

/// A health check as a GraphQL object.
pub struct HealthCheckObject(pub domain::HealthCheck);

/// How an instance is judged healthy after it starts.
#[Object(name = "HealthCheck")]
impl HealthCheckObject {
    /// With a port: how long, in milliseconds, a TCP connection may take to
    /// succeed.
    async fn timeout_ms(&self) -> u64 {
        self.0.timeout_ms
    }

    /// Without a port: how long, in milliseconds, the process must stay
    /// alive.
    async fn grace_ms(&self) -> u64 {
        self.0.grace_ms
    }
}
