//! `Service`: one deployable thing in an environment, with its spec.

use async_graphql::{Context, ID, Object, Result};
use chrono::{DateTime, Utc};

use super::enums::{OperationStatus, ServiceKind};
use super::environment::EnvironmentNode;
use super::instance::InstanceNode;
use super::log_line::{LogFilterInput, LogLineConnection, log_page};
use super::metrics::{self, ServiceMetrics};
use super::monitoring::MonitoringObject;
use super::operation::{OperationConnection, OperationNode};
use super::pin::CommitPinObject;
use super::recovery::HealingObject;
use super::running_status::{self, RunningStatus};
use super::selector::OperationSelectorInput;
use super::webhook_delivery::{WebhookDeliveryConnection, WebhookDeliveryNode};
use crate::domain::{self, OperationFilter};
use crate::graphql::connection::{connection, page_args};
use crate::graphql::error::GqlResult;
use crate::graphql::scope::{datetime, id, scope};
use crate::store::logs::Log;
use crate::store::{activity, hooks, operations, resources};

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

    /// Where self-healing of it stands: what monitoring found, the
    /// platform redeploys made, whether it gave up.
    async fn healing(&self, ctx: &Context<'_>) -> Result<HealingObject> {
        Ok(HealingObject(scope(ctx)?.engine().healing.of_service(self.0.id)))
    }

    /// What its instances used over a period, as time series to plot: CPU,
    /// memory and disk, sampled by monitoring, in buckets of `resolution`
    /// seconds.
    async fn metrics(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Start of the period (included).")] from: DateTime<Utc>,
        #[graphql(desc = "End of the period (excluded); later than `from`.")] to: DateTime<Utc>,
        #[graphql(desc = "Seconds per bucket (1 to 86400), giving at most 1000 buckets over the period.")]
        resolution: i32,
    ) -> Result<ServiceMetrics> {
        metrics::of_service(ctx, self.0.id, (from, to), resolution).await
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

    /// The operation a selector names: what runs now, what ran before it,
    /// the latest failure, or one `n` operations back; null when the
    /// service has none such.
    async fn operation(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Which operation.")] selector: OperationSelectorInput,
    ) -> Result<Option<OperationNode>> {
        let selector = selector.validate().gql()?;
        let svc = self.0.id;
        let op = scope(ctx)?.read(move |r, _| activity::select(r, svc, selector)).await?;
        Ok(op.map(OperationNode))
    }

    /// The git branch whose pushes deploy the service.
    async fn branch(&self) -> &str {
        &self.0.branch
    }

    /// Whether a webhook secret is set (the secret itself is never shown);
    /// without one, every push is refused.
    async fn webhook_secret_set(&self) -> bool {
        self.0.webhook_secret.is_some()
    }

    /// Where GitHub posts push events for this service, relative to this
    /// server (content type `application/json`, signed with the secret).
    async fn webhook_path(&self) -> String {
        format!("/hooks/github/{}", self.0.id)
    }

    /// The commit pushes do not deploy because a person rolled the service
    /// back from it; null when none is pinned.
    async fn pin(&self) -> Option<CommitPinObject> {
        self.0.pin.clone().map(CommitPinObject)
    }

    /// The latest GitHub deliveries and what became of each (refused
    /// signatures included), newest first; the last 100 are kept.
    async fn webhook_deliveries(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The first `first` deliveries after `after` (at most 100).")] first: Option<i32>,
        #[graphql(desc = "Cursor of the edge the page starts after.")] after: Option<String>,
        #[graphql(desc = "The last `last` deliveries before `before` (at most 100).")] last: Option<i32>,
        #[graphql(desc = "Cursor of the edge the page ends before.")] before: Option<String>,
    ) -> Result<WebhookDeliveryConnection> {
        let args = page_args(first, after, last, before)?;
        let svc = self.0.id;
        let page = scope(ctx)?.read(move |r, _| hooks::deliveries_page(r, svc, &args)).await?;
        Ok(connection(page, WebhookDeliveryNode))
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

    /// How monitoring watches its running instances.
    async fn monitoring(&self) -> MonitoringObject {
        MonitoringObject(self.0.monitoring.clone())
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

    /// Where its operations run: `local` (this server) or the name of the
    /// worker pool whose workers claim them.
    async fn executor(&self) -> &str {
        &self.0.executor
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
