//! The `Query` root: lookups by id and the top-level lists. Every read is
//! scoped by the caller's organization; objects of another organization
//! read exactly as missing ones.

use async_graphql::{Context, ID, Object, Result};
use chrono::{DateTime, Utc};

use super::connection::{AuditEntryConnection, MemberConnection, TokenConnection, connection, page_args};
use super::error::{GqlResult, gql};
use super::guard::guard;
use super::scope::{millis, parse_id};
use super::types::access::{AuditEntryObject, AuditFilterInput, TokenObject};
use super::types::activity::{ActivityConnection, ActivityFilter};
use super::types::activity_report::ActivityReport;
use super::types::environment::{EnvironmentConnection, EnvironmentNode};
use super::types::maintenance::MaintenanceCampaignObject;
use super::types::node::{self, Node};
use super::types::operation::{OperationConnection, OperationFilterInput, OperationNode};
use super::types::recovery::RecoveryProgressObject;
use super::types::service::ServiceNode;
use super::types::viewer::{MemberObject, Viewer};
use crate::domain::{Action, DomainError, EnvironmentId, MaintenanceId, OperationId, ServiceId, report};
use crate::store::{auth, operations, resources};

/// The `Query` root.
#[derive(Default)]
pub struct Query;

/// Reads: any member's token (every role) unless a field says otherwise.
/// Objects of another organization read exactly as missing ones.
// Merged into the `Query` root (see `graphql::QueryRoot`) under its own name.
#[Object(name = "OperationsQuery")]
impl Query {
    /// The object with this global id; null when none is visible to the
    /// caller.
    async fn node(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A global id, such as `svc_12`.")] id: ID,
    ) -> Result<Option<Node>> {
        guard(ctx, Action::Read)?.read(move |r, org| node::lookup(r, org, &id)).await
    }

    /// The recovery queue of platform redeploys: how many wait, how many
    /// run, and the share of affected services running again.
    async fn recovery(&self, ctx: &Context<'_>) -> Result<RecoveryProgressObject> {
        let s = guard(ctx, Action::Read)?;
        Ok(s.engine().healing.progress().borrow().clone().into())
    }

    /// The maintenance campaign with this id; null when none is visible to
    /// the caller (campaigns do not survive a server restart).
    async fn maintenance_campaign(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A campaign id (`mnt_<n>`).")] id: ID,
    ) -> Result<Option<MaintenanceCampaignObject>> {
        let s = guard(ctx, Action::Read)?;
        let id: MaintenanceId = parse_id(&id)?;
        Ok(s.engine().maintenance.get(s.org(), id).map(Into::into))
    }

    /// The organization's maintenance campaigns since the server started,
    /// newest first.
    async fn maintenance_campaigns(&self, ctx: &Context<'_>) -> Result<Vec<MaintenanceCampaignObject>> {
        let s = guard(ctx, Action::Read)?;
        Ok(s.engine().maintenance.list(s.org()).into_iter().map(Into::into).collect())
    }

    /// Who is asking: the member and role of the request's token. Any
    /// member's token.
    async fn viewer(&self, ctx: &Context<'_>) -> Result<Viewer> {
        let s = guard(ctx, Action::Read)?;
        let organization = s.read(resources::organization).await?;
        Viewer::of(s.principal, organization)
            .ok_or_else(|| gql(DomainError::Forbidden("only a member's token has a viewer".into())))
    }

    /// The organization's members (not the removed ones), oldest first.
    async fn members(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The first `first` members after `after` (at most 100).")] first: Option<i32>,
        #[graphql(desc = "Cursor of the edge the page starts after.")] after: Option<String>,
    ) -> Result<MemberConnection> {
        let s = guard(ctx, Action::Read)?;
        let args = page_args(first, after, None, None)?;
        let page = s.read(move |r, org| auth::members_page(r, org, &args)).await?;
        Ok(connection(page, |m| MemberObject(m.member())))
    }

    /// Tokens, oldest first, revoked ones included: every token of the
    /// organization for `ADMIN` and `OWNER`, one's own for the others.
    /// Secrets are never shown; `prefix` tells tokens apart.
    async fn tokens(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The first `first` tokens after `after` (at most 100).")] first: Option<i32>,
        #[graphql(desc = "Cursor of the edge the page starts after.")] after: Option<String>,
    ) -> Result<TokenConnection> {
        let s = guard(ctx, Action::OwnTokens)?;
        let args = page_args(first, after, None, None)?;
        let only = (!s.principal.grant.allows(Action::ManageMembers)).then_some(s.principal.member.id);
        let page = s.read(move |r, org| auth::tokens_page(r, org, only, &args)).await?;
        Ok(connection(page, TokenObject))
    }

    /// The audit log: every mutation attempt, allowed or refused, newest
    /// first. `ADMIN` or `OWNER`. Also as CSV: `GET /reports/audit.csv`.
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only the records that match.")] filter: Option<AuditFilterInput>,
        #[graphql(desc = "The first `first` records after `after` (at most 100).")] first: Option<i32>,
        #[graphql(desc = "Cursor of the edge the page starts after.")] after: Option<String>,
    ) -> Result<AuditEntryConnection> {
        let s = guard(ctx, Action::ReadAudit)?;
        let filter = filter.unwrap_or_default().validate().gql()?;
        let args = page_args(first, after, None, None)?;
        let page = s.read(move |r, org| auth::audit_page(r, org, &filter, &args)).await?;
        Ok(connection(page, AuditEntryObject))
    }

    /// The organization's environments, oldest first.
    async fn environments(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The first `first` environments after `after` (at most 100).")] first: Option<i32>,
        #[graphql(desc = "Cursor of the edge the page starts after.")] after: Option<String>,
        #[graphql(desc = "The last `last` environments before `before` (at most 100).")] last: Option<i32>,
        #[graphql(desc = "Cursor of the edge the page ends before.")] before: Option<String>,
    ) -> Result<EnvironmentConnection> {
        let args = page_args(first, after, last, before)?;
        let page =
            guard(ctx, Action::Read)?.read(move |r, org| resources::environments_page(r, org, &args)).await?;
        Ok(connection(page, EnvironmentNode))
    }

    /// The environment with this id; null when none is visible to the
    /// caller.
    async fn environment(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "An environment id (`env_<n>`).")] id: ID,
    ) -> Result<Option<EnvironmentNode>> {
        let id: EnvironmentId = parse_id(&id)?;
        let env = guard(ctx, Action::Read)?.find(move |r, org| resources::environment(r, org, id)).await?;
        Ok(env.map(EnvironmentNode))
    }

    /// The service with this id, deleted or not; null when none is visible
    /// to the caller.
    async fn service(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A service id (`svc_<n>`).")] id: ID,
    ) -> Result<Option<ServiceNode>> {
        let id: ServiceId = parse_id(&id)?;
        let svc = guard(ctx, Action::Read)?.find(move |r, org| resources::service(r, org, id)).await?;
        Ok(svc.map(ServiceNode))
    }

    /// The operation with this id; null when none is visible to the caller.
    async fn operation(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "An operation id (`op_<n>`).")] id: ID,
    ) -> Result<Option<OperationNode>> {
        let id: OperationId = parse_id(&id)?;
        let op = guard(ctx, Action::Read)?.find(move |r, org| operations::operation(r, org, id)).await?;
        Ok(op.map(OperationNode))
    }

    /// The activity timeline of an environment or of a service (give
    /// exactly one): its operations, newest first, one block each.
    // Each argument is one of the public contract's (API.md).
    #[allow(clippy::too_many_arguments)]
    async fn activity(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The environment whose timeline to read.")] environment_id: Option<ID>,
        #[graphql(desc = "The service (deleted or not) whose timeline to read.")] service_id: Option<ID>,
        #[graphql(desc = "Only the blocks that match.")] filter: Option<ActivityFilter>,
        #[graphql(desc = "The first `first` blocks after `after` (at most 100).")] first: Option<i32>,
        #[graphql(desc = "Cursor of the edge the page starts after.")] after: Option<String>,
        #[graphql(desc = "The last `last` blocks before `before` (at most 100).")] last: Option<i32>,
        #[graphql(desc = "Cursor of the edge the page ends before.")] before: Option<String>,
    ) -> Result<ActivityConnection> {
        let filter =
            filter.unwrap_or_default().validate(environment_id.as_ref(), service_id.as_ref()).gql()?;
        let args = page_args(first, after, last, before)?;
        let page = guard(ctx, Action::Read)?
            .read(move |r, org| operations::operations_page(r, org, &filter, &args))
            .await?;
        Ok(connection(page, OperationNode))
    }

    /// The activity report of an environment over `[from, to)`: every
    /// operation queued in the period, including those on services deleted
    /// since. Any period of the environment's life can be asked for.
    async fn activity_report(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The environment to report on.")] environment_id: ID,
        #[graphql(desc = "Start of the period (included).")] from: DateTime<Utc>,
        #[graphql(desc = "End of the period (excluded); later than `from`.")] to: DateTime<Utc>,
    ) -> Result<ActivityReport> {
        let env: EnvironmentId = parse_id(&environment_id)?;
        let period = report::period(millis(from), millis(to)).gql()?;
        let environment =
            guard(ctx, Action::Read)?.read(move |r, org| resources::environment(r, org, env)).await?;
        Ok(ActivityReport { environment, period })
    }

    /// The organization's operations, newest first.
    async fn operations(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only the operations that match.")] filter: Option<OperationFilterInput>,
        #[graphql(desc = "The first `first` operations after `after` (at most 100).")] first: Option<i32>,
        #[graphql(desc = "Cursor of the edge the page starts after.")] after: Option<String>,
        #[graphql(desc = "The last `last` operations before `before` (at most 100).")] last: Option<i32>,
        #[graphql(desc = "Cursor of the edge the page ends before.")] before: Option<String>,
    ) -> Result<OperationConnection> {
        let filter = filter.unwrap_or_default().validate().gql()?;
        let args = page_args(first, after, last, before)?;
        let page = guard(ctx, Action::Read)?
            .read(move |r, org| operations::operations_page(r, org, &filter, &args))
            .await?;
        Ok(connection(page, OperationNode))
    }
}
