//! `Viewer`: who is asking; `Organization` and `Member`.

use async_graphql::{ID, Object};

use crate::domain::{self, Organization};
use crate::graphql::scope::{datetime, id};

/// The caller of a request, as a GraphQL object.
pub struct Viewer {
    pub organization: Organization,
    pub member: domain::Member,
}

/// Who is making the request.
#[Object]
impl Viewer {
    /// The organization every read and write of the request is scoped to.
    async fn organization(&self) -> OrganizationObject {
        OrganizationObject(self.organization.clone())
    }

    /// The member making the request.
    async fn member(&self) -> MemberObject {
        MemberObject(self.member.clone())
    }
}

/// An organization as a GraphQL object.
pub struct OrganizationObject(pub Organization);

/// Owns environments; has members.
#[Object(name = "Organization")]
impl OrganizationObject {
    /// Global id (`org_<n>`).
    async fn id(&self) -> ID {
        id(self.0.id)
    }

    /// Display name.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// When the organization was created.
    async fn created_at(&self) -> chrono::DateTime<chrono::Utc> {
        datetime(self.0.created_at)
    }
}

/// Prefix of a member's global id. Members have no typed id in the domain
/// yet; this keeps their ids distinct from every other kind's.
const MEMBER_PREFIX: &str = "mem";

/// A member as a GraphQL object.
pub struct MemberObject(pub domain::Member);

/// A person acting within an organization.
#[Object(name = "Member")]
impl MemberObject {
    /// Global id (`mem_<n>`).
    async fn id(&self) -> ID {
        ID(format!("{MEMBER_PREFIX}_{}", self.0.id))
    }

    /// Display name.
    async fn name(&self) -> &str {
        &self.0.name
    }
}
