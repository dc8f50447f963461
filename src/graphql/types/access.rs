//! Roles, tokens and audit records, with their inputs.

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::viewer::MemberObject;
use crate::domain::access::{AuditEntry, AuditFilter, Token, parse_token_name};
use crate::domain::{self, DomainError, MemberId};
use crate::graphql::scope::{datetime, id, millis};
use crate::store::auth::NewToken;

/// A member's role. Each role may do what the one below it may, and more.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything, including making and removing owners.
    Owner,
    /// Creates and changes environments and services, deletes services,
    /// runs maintenance, manages members (not owners) and every token,
    /// reads the audit log.
    Admin,
    /// Deploys, redeploys, restarts, scales, stops, starts, cancels, lifts
    /// pins, appends logs.
    Developer,
    /// Reads everything of the organization; manages only their own
    /// tokens.
    Viewer,
}

impl From<Role> for domain::Role {
    fn from(r: Role) -> Self {
        match r {
            Role::Owner => Self::Owner,
            Role::Admin => Self::Admin,
            Role::Developer => Self::Developer,
            Role::Viewer => Self::Viewer,
        }
    }
}

impl From<domain::Role> for Role {
    fn from(r: domain::Role) -> Self {
        match r {
            domain::Role::Owner => Self::Owner,
            domain::Role::Admin => Self::Admin,
            domain::Role::Developer => Self::Developer,
            domain::Role::Viewer => Self::Viewer,
        }
    }
}

/// What a token is for.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Acts as its member, with the member's role (or a weaker one it is
    /// capped at): for people and CI.
    Personal,
    /// Deployment machinery: may only append logs to the operations of its
    /// organization.
    Worker,
    /// A monitoring agent: may only report probes.
    Monitoring,
}

impl From<TokenKind> for domain::TokenKind {
    fn from(k: TokenKind) -> Self {
        match k {
            TokenKind::Personal => Self::Personal,
            TokenKind::Worker => Self::Worker,
            TokenKind::Monitoring => Self::Monitoring,
        }
    }
}

impl From<domain::TokenKind> for TokenKind {
    fn from(k: domain::TokenKind) -> Self {
        match k {
            domain::TokenKind::Personal => Self::Personal,
            domain::TokenKind::Worker => Self::Worker,
            domain::TokenKind::Monitoring => Self::Monitoring,
        }
    }
}

/// A token as listed: never its secret.
pub struct TokenObject(pub Token);

/// An API token. Clients send it as `Authorization: Bearer <secret>`.
#[Object(name = "Token")]
impl TokenObject {
    /// Global id (`tok_<n>`).
    async fn id(&self) -> ID {
        id(domain::TokenId(self.0.id))
    }

    /// What its creator called it.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// What it is for.
    async fn kind(&self) -> TokenKind {
        self.0.kind.into()
    }

    /// The first characters of its secret (`ogt_` and 8 more): enough to
    /// recognise it, not to use it.
    async fn prefix(&self) -> &str {
        &self.0.prefix
    }

    /// The member a `PERSONAL` token acts as; null for other kinds.
    async fn member(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<MemberObject>> {
        let Some(member_id) = self.0.member_id else { return Ok(None) };
        let app = ctx.data::<crate::graphql::GraphqlContext>()?;
        let org = self.0.organization_id;
        let member = app.store.read(move |r| crate::store::auth::member(r, org, member_id)).await;
        Ok(member.ok().map(|m| MemberObject(m.member())))
    }

    /// The role a `PERSONAL` token is capped at; null: its member's role.
    async fn role(&self) -> Option<Role> {
        self.0.role.map(Into::into)
    }

    /// When it was created.
    async fn created_at(&self) -> DateTime<Utc> {
        datetime(self.0.created_at)
    }

    /// Who created it (a member's name, or `opsgraph` for the first owner
    /// token and tokens made with `opsgraph token create`).
    async fn created_by(&self) -> &str {
        &self.0.created_by
    }

    /// When it stops working; null: never.
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at.map(datetime)
    }

    /// When it was revoked; null while it is not.
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at.map(datetime)
    }

    /// Whether requests with it are accepted now (not revoked, not expired,
    /// its member not removed).
    async fn active(&self, ctx: &Context<'_>) -> bool {
        let member_ok = match self.0.member_id {
            Some(id) => ctx
                .data::<crate::graphql::GraphqlContext>()
                .is_ok_and(|app| app.registry.member_role(id).is_some()),
            None => true,
        };
        member_ok && self.0.unusable(domain::now_millis()).is_none()
    }
}

/// A new token with its secret.
#[derive(SimpleObject)]
pub struct CreatedToken {
    /// The token as it will be listed.
    pub token: TokenObject,
    /// The whole secret, shown only in this answer: only its hash is
    /// stored, so it cannot be read again. Send it as `Authorization:
    /// Bearer <secret>`.
    pub secret: String,
}

/// Input of `createToken`.
#[derive(InputObject)]
pub struct CreateTokenInput {
    /// What to call it (1 to 100 characters), such as `ci` or `laptop`.
    pub name: String,
    /// What it is for.
    #[graphql(default_with = "TokenKind::Personal")]
    pub kind: TokenKind,
    /// For a `PERSONAL` token: the member it acts as; omitted: the caller.
    /// Another member needs `ADMIN` or `OWNER`.
    pub member_id: Option<ID>,
    /// For a `PERSONAL` token: the most it may do (it acts with the weaker
    /// of this and its member's role); omitted: its member's role.
    pub role: Option<Role>,
    /// When it stops working; omitted: never. Must be in the future.
    pub expires_at: Option<DateTime<Utc>>,
}

impl CreateTokenInput {
    pub fn validate(&self) -> Result<NewToken, DomainError> {
        Ok(NewToken {
            name: parse_token_name(&self.name)?,
            kind: self.kind.into(),
            member_id: self.member_id.as_ref().map(|m| m.parse::<MemberId>()).transpose()?.map(|m| m.0),
            role: self.role.map(Into::into),
            expires_at: self.expires_at.map(millis),
        })
    }
}

/// Input of `revokeToken`.
#[derive(InputObject)]
pub struct RevokeTokenInput {
    /// The token to revoke.
    pub token_id: ID,
}

/// Input of `addMember`.
#[derive(InputObject)]
pub struct AddMemberInput {
    /// Their name: 1 to 100 characters.
    pub name: String,
    /// What they may do.
    pub role: Role,
}

/// Input of `changeMemberRole`.
#[derive(InputObject)]
pub struct ChangeMemberRoleInput {
    /// The member.
    pub member_id: ID,
    /// Their new role.
    pub role: Role,
}

/// Input of `removeMember`.
#[derive(InputObject)]
pub struct RemoveMemberInput {
    /// The member to remove.
    pub member_id: ID,
}

/// One mutation attempt.
pub struct AuditEntryObject(pub AuditEntry);

/// A mutation attempt, allowed or refused, as the audit log keeps it.
/// Written in the same transaction as the mutation's effect: there is no
/// effect without its record.
#[Object(name = "AuditEntry")]
impl AuditEntryObject {
    /// Its number: 1, 2, 3 … in the order attempts were recorded.
    async fn seq(&self) -> u64 {
        self.0.id
    }

    /// When it was recorded.
    async fn at(&self) -> DateTime<Utc> {
        datetime(self.0.at)
    }

    /// Who attempted it: the member's name (with the token's), or the
    /// token's for worker and monitoring tokens.
    async fn actor(&self) -> String {
        self.0.actor.display()
    }

    /// The member who attempted it; null for worker and monitoring tokens.
    async fn member(&self) -> Option<MemberObject> {
        self.0.actor.member.clone().map(MemberObject)
    }

    /// The id of the token it came with (`tok_<n>`).
    async fn token_id(&self) -> Option<ID> {
        self.0.actor.token.as_ref().map(|(t, _)| id(domain::TokenId(*t)))
    }

    /// The name of the token it came with.
    async fn token_name(&self) -> Option<&str> {
        self.0.actor.token.as_ref().map(|(_, name)| name.as_str())
    }

    /// The mutation, as the schema names it (`deploy`).
    async fn action(&self) -> &str {
        &self.0.action
    }

    /// The global id of what it acted on: the object it created, the
    /// operation it queued, or the object its input named; null when none.
    async fn target(&self) -> Option<&str> {
        self.0.target.as_deref()
    }

    /// `SUCCEEDED`, or the error code it was answered with (`FORBIDDEN`,
    /// `NOT_FOUND` …).
    async fn outcome(&self) -> &str {
        &self.0.outcome
    }

    /// Whether it did what it was asked.
    async fn succeeded(&self) -> bool {
        self.0.succeeded()
    }

    /// The id of the HTTP request (its `X-Request-Id`, given or generated).
    async fn request_id(&self) -> &str {
        &self.0.request_id
    }
}

/// Which audit records to list; every given field must match.
#[derive(InputObject, Default)]
pub struct AuditFilterInput {
    /// Only attempts of this mutation (`deploy`).
    pub action: Option<String>,
    /// Only attempts by this member.
    pub member_id: Option<ID>,
    /// Only attempts with this token.
    pub token_id: Option<ID>,
    /// Only attempts on this object (a global id).
    pub target: Option<String>,
    /// `true`: only successes; `false`: only refusals and failures.
    pub succeeded: Option<bool>,
    /// Only attempts at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Only attempts before this time.
    pub to: Option<DateTime<Utc>>,
}

impl AuditFilterInput {
    pub fn validate(&self) -> Result<AuditFilter, DomainError> {
        Ok(AuditFilter {
            action: self.action.clone(),
            member_id: self.member_id.as_ref().map(|m| m.parse::<MemberId>()).transpose()?.map(|m| m.0),
            token_id: self.token_id.as_ref().map(|t| t.parse::<domain::TokenId>()).transpose()?.map(|t| t.0),
            target: self.target.clone(),
            succeeded: self.succeeded,
            from: self.from.map(millis),
            to: self.to.map(millis),
        })
    }
}
