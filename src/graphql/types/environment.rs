//! `Environment`: an isolated set of services, and the inputs that create
//! and rename it.

use async_graphql::{Context, ID, InputObject, Object, Result};
use chrono::{DateTime, Utc};

use super::enums::OperationStatus;
use super::running_status::{self, RunningStatus};
use super::service::{ServiceConnection, ServiceNode};
use crate::domain::resource::parse_log_retention_days;
use crate::domain::{self, DomainError, EnvironmentId, EnvironmentPatch, Name};
use crate::graphql::connection::{connection, page_args};
use crate::graphql::scope::{datetime, id, scope};
use crate::store::{operations, resources};

/// An environment as a GraphQL object.
pub struct EnvironmentNode(pub domain::Environment);

/// A page of environments.
pub use crate::graphql::connection::EnvironmentConnection;

/// An isolated set of services, such as `production` or `staging`.
#[Object(name = "Environment")]
impl EnvironmentNode {
    /// Global id (`env_<n>`).
    pub async fn id(&self) -> ID {
        id(self.0.id)
    }

    /// Unique within the organization.
    async fn name(&self) -> &str {
        self.0.name.as_str()
    }

    /// When the environment was created.
    async fn created_at(&self) -> DateTime<Utc> {
        datetime(self.0.created_at)
    }

    /// Days the logs of its operations and services are kept; older lines
    /// are deleted, and a log cursor older than that gets `CURSOR_EXPIRED`.
    async fn log_retention_days(&self) -> u32 {
        self.0.log_retention_days
    }

    /// Its services, oldest first.
    async fn services(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The first `first` services after `after` (at most 100).")] first: Option<i32>,
        #[graphql(desc = "Cursor of the edge the page starts after.")] after: Option<String>,
        #[graphql(desc = "The last `last` services before `before` (at most 100).")] last: Option<i32>,
        #[graphql(desc = "Cursor of the edge the page ends before.")] before: Option<String>,
        #[graphql(desc = "Also list deleted services.", default = false)] include_deleted: bool,
    ) -> Result<ServiceConnection> {
        let args = page_args(first, after, last, before)?;
        let env = self.0.id;
        let page =
            scope(ctx)?.read(move |r, _| resources::services_page(r, env, include_deleted, &args)).await?;
        Ok(connection(page, ServiceNode))
    }

    /// The running status of its live services.
    async fn running_status(&self, ctx: &Context<'_>) -> Result<RunningStatus> {
        let env = self.0.id;
        scope(ctx)?.read(move |r, _| running_status::of_environment(r, env)).await
    }

    /// The status of the last operation queued in the environment; null when
    /// none was.
    async fn deployment_status(&self, ctx: &Context<'_>) -> Result<Option<OperationStatus>> {
        let env = self.0.id;
        let last = scope(ctx)?.read(move |r, _| operations::last_of_environment(r, env)).await?;
        Ok(last.map(|op| op.status.into()))
    }
}

/// Input of `createEnvironment`.
#[derive(InputObject)]
pub struct CreateEnvironmentInput {
    /// 1 to 63 letters, digits, `-`, `_` or `.`, starting with a letter or
    /// digit; unique within the organization.
    pub name: String,
    /// Days its logs are kept, 1 to 3650.
    #[graphql(default = 30)]
    pub log_retention_days: i64,
}

impl CreateEnvironmentInput {
    /// The validated name and log retention.
    pub fn validate(&self) -> Result<(Name, u32), DomainError> {
        Ok((Name::parse("name", &self.name)?, parse_log_retention_days(self.log_retention_days)?))
    }
}

/// Input of `updateEnvironment`: an omitted field keeps its value.
#[derive(InputObject)]
pub struct UpdateEnvironmentInput {
    /// The environment to change.
    pub environment_id: ID,
    /// A new name: 1 to 63 letters, digits, `-`, `_` or `.`, starting with a
    /// letter or digit; unique within the organization. Operations already
    /// queued keep the name they were queued with.
    pub name: Option<String>,
    /// Days its logs are kept, 1 to 3650. Shortening it deletes the older
    /// lines at the next retention pass.
    pub log_retention_days: Option<i64>,
}

impl UpdateEnvironmentInput {
    pub fn validate(&self) -> Result<(EnvironmentId, EnvironmentPatch), DomainError> {
        let patch = EnvironmentPatch {
            name: self.name.as_deref().map(|n| Name::parse("name", n)).transpose()?,
            log_retention_days: self.log_retention_days.map(parse_log_retention_days).transpose()?,
        };
        Ok((self.environment_id.parse()?, patch))
    }
}
