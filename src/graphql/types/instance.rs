//! `Instance`: one running copy of a service.

use async_graphql::{Context, ID, Object, Result};
use chrono::{DateTime, Utc};

use super::enums::InstanceStatus;
use super::service::ServiceNode;
use crate::domain::{self, DomainError, InstanceId, OrganizationId};
use crate::graphql::scope::{datetime, id, scope};
use crate::store::{Reader, resources};

/// An instance as a GraphQL object.
pub struct InstanceNode(pub domain::Instance);

/// One running copy of a service (a process started by the executor).
/// Fields resolve one after another (`serial`): nearly all are plain reads
/// of the row, and a loop is much cheaper than a set of futures per field.
#[Object(name = "Instance", serial)]
impl InstanceNode {
    /// Global id (`inst_<n>`).
    pub async fn id(&self) -> ID {
        id(self.0.id)
    }

    /// The service it is a copy of.
    async fn service(&self, ctx: &Context<'_>) -> Result<ServiceNode> {
        let svc = self.0.service_id;
        let svc = scope(ctx)?.read(move |r, org| resources::service(r, org, svc)).await?;
        Ok(ServiceNode(svc))
    }

    /// Its running status.
    async fn status(&self) -> InstanceStatus {
        self.0.status.into()
    }

    /// When it entered its current status.
    async fn status_since(&self) -> DateTime<Utc> {
        datetime(self.0.status_since)
    }

    /// The port it serves; null when the service serves no port.
    async fn port(&self) -> Option<u16> {
        self.0.port
    }

    /// Its process id; null when no process is attached.
    async fn pid(&self) -> Option<u32> {
        self.0.pid
    }

    /// The commit it runs; null when the service had no commit when it
    /// started.
    async fn commit(&self) -> Option<&str> {
        self.0.commit.as_deref()
    }

    /// Whether the service serves with it. New instances become current at
    /// the switch step of a deploy.
    async fn current(&self) -> bool {
        self.0.current
    }

    /// The exit code of its process; null while it runs or when it was
    /// killed by a signal.
    async fn exit_code(&self) -> Option<i32> {
        self.0.exit_code
    }

    /// When it was created.
    async fn created_at(&self) -> DateTime<Utc> {
        datetime(self.0.created_at)
    }
}

/// The instance, if its service belongs to `org`; `NOT_FOUND` otherwise,
/// and once its row was removed.
pub fn visible_instance(
    r: Reader<'_>,
    org: OrganizationId,
    id: InstanceId,
) -> Result<domain::Instance, DomainError> {
    let missing = || DomainError::not_found("Instance", id);
    let inst = resources::instance(r, id)?.ok_or_else(missing)?;
    match resources::service(r, org, inst.service_id) {
        Ok(_) => Ok(inst),
        Err(DomainError::NotFound { .. }) => Err(missing()),
        Err(e) => Err(e),
    }
}
