//! `Viewer`: who is asking; `Organization` and `Member`.

use async_graphql::{Context, ID, Object};

use super::access::Role;

use crate::domain::{self, Organization};
use crate::graphql::scope::{datetime, id};

/// The caller of a request, as a GraphQL object.
pub struct Viewer {
    pub organization: Organization,
    pub member: domain::Member,
    pub role: domain::Role,
    pub token: Option<domain::access::TokenRef>,
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

    /// The role the request acts with: the member's, or the weaker one its
    /// token is capped at.
    async fn role(&self) -> Role {
        self.role.into()
    }

    /// The id of the token the request came with (`tok_<n>`).
    async fn token_id(&self) -> Option<ID> {
        self.token.as_ref().map(|t| id(crate::domain::TokenId(t.id)))
    }
}

/// Building a viewer: only a member (a personal token) is one.
impl Viewer {
    pub fn of(principal: &crate::domain::Principal, organization: Organization) -> Option<Self> {
        Some(Self {
            organization,
            member: principal.member.clone(),
            role: principal.grant.role()?,
            token: principal.token.clone(),
        })
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

/// A member as a GraphQL object.
pub struct MemberObject(pub domain::Member);

/// A person acting within an organization (through their tokens).
#[Object(name = "Member")]
impl MemberObject {
    /// Global id (`mem_<n>`).
    async fn id(&self) -> ID {
        id(crate::domain::MemberId(self.0.id))
    }

    /// Display name.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// Their role now; null once they were removed from the organization
    /// (and for the pusher named by a GitHub push, who is no member).
    async fn role(&self, ctx: &Context<'_>) -> Option<Role> {
        let app = ctx.data::<crate::graphql::GraphqlContext>().ok()?;
        if self.0.id == 0 {
            return None;
        }
        app.registry.member_role(self.0.id).map(Into::into)
    }
}
