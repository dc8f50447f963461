//! The mutations of members and tokens. Like every mutation, each starts
//! with `guard_mutation` and records its attempt in the audit log; each
//! updates the authentication registry after its commit, before it
//! answers, so a change has effect from the reply on.

use async_graphql::{Context, Object, Result};

use crate::auth::random_secret;
use crate::domain::access::{new_secret, parse_member_name};
use crate::domain::{Action, MemberId, TokenId};
use crate::graphql::guard::guard_mutation;
use crate::graphql::types::access::{
    AddMemberInput, ChangeMemberRoleInput, CreateTokenInput, CreatedToken, RemoveMemberInput,
    RevokeTokenInput, TokenObject,
};
use crate::graphql::types::viewer::MemberObject;
use crate::store::auth::{self, SecretParts};

/// Members and tokens.
#[derive(Default)]
pub struct AccessMutation;

#[Object]
impl AccessMutation {
    /// Creates an API token and answers with its secret: the only time the
    /// secret is shown (only its hash is stored). Anyone may create
    /// `PERSONAL` tokens for themselves (for CI, say, capped at a weaker
    /// role); tokens for another member, and `WORKER` and `MONITORING`
    /// tokens, need `ADMIN` or `OWNER`.
    async fn create_token(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The token to create.")] input: CreateTokenInput,
    ) -> Result<CreatedToken> {
        let m =
            guard_mutation(ctx, Action::OwnTokens, input.member_id.as_ref().map(|id| id.to_string())).await?;
        let audit = m.audit.clone();
        let result = async {
            let new = input.validate()?;
            let (secret, prefix, hash) = new_secret(random_secret()?);
            let parts = SecretParts { prefix, hash };
            let token = m
                .scope
                .try_write(move |tx, by| {
                    let token = auth::create_token(tx, by, &new, &parts)?;
                    audit.record_on(tx, TokenId(token.id))?;
                    Ok(token)
                })
                .await?;
            m.scope.app.registry.token_changed(&token);
            Ok(CreatedToken { token: TokenObject(token), secret })
        };
        m.finish(result.await).await
    }

    /// Revokes a token with immediate effect: requests with it are refused
    /// from this answer on, and its open subscriptions are closed. One's
    /// own tokens, or with `ADMIN` or `OWNER` any of the organization's.
    async fn revoke_token(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The token to revoke.")] input: RevokeTokenInput,
    ) -> Result<TokenObject> {
        let m = guard_mutation(ctx, Action::OwnTokens, Some(input.token_id.to_string())).await?;
        let audit = m.audit.clone();
        let result = async {
            let id: TokenId = input.token_id.parse()?;
            let token = m
                .scope
                .try_write(move |tx, by| {
                    let token = auth::revoke_token(tx, by, id.0)?;
                    audit.record(tx)?;
                    Ok(token)
                })
                .await?;
            m.scope.app.registry.token_changed(&token);
            Ok(TokenObject(token))
        };
        m.finish(result.await).await
    }

    /// Adds a member to the organization. `ADMIN` or `OWNER`; only an
    /// `OWNER` adds owners. The member acts through the tokens made for
    /// them (`createToken` with `memberId`).
    async fn add_member(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The member to add.")] input: AddMemberInput,
    ) -> Result<MemberObject> {
        let m = guard_mutation(ctx, Action::ManageMembers, None).await?;
        let audit = m.audit.clone();
        let result = async {
            let name = parse_member_name(&input.name)?;
            let role = input.role.into();
            let member = m
                .scope
                .try_write(move |tx, by| {
                    let member = auth::add_member(tx, by, &name, role)?;
                    audit.record_on(tx, MemberId(member.id))?;
                    Ok(member)
                })
                .await?;
            m.scope.app.registry.member_changed(&member);
            Ok(MemberObject(member.member()))
        };
        m.finish(result.await).await
    }

    /// Changes a member's role, with effect on their next request. `ADMIN`
    /// or `OWNER`; only an `OWNER` makes or unmakes owners, and the last
    /// owner stays one (`CONFLICT`).
    async fn change_member_role(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The member and their new role.")] input: ChangeMemberRoleInput,
    ) -> Result<MemberObject> {
        let m = guard_mutation(ctx, Action::ManageMembers, Some(input.member_id.to_string())).await?;
        let audit = m.audit.clone();
        let result = async {
            let id: MemberId = input.member_id.parse()?;
            let role = input.role.into();
            let member = m
                .scope
                .try_write(move |tx, by| {
                    let member = auth::change_role(tx, by, id.0, role)?;
                    audit.record(tx)?;
                    Ok(member)
                })
                .await?;
            m.scope.app.registry.member_changed(&member);
            Ok(MemberObject(member.member()))
        };
        m.finish(result.await).await
    }

    /// Removes a member: their tokens are revoked (their open
    /// subscriptions closed); what they did stays on record under their
    /// name. `ADMIN` or `OWNER`; only an `OWNER` removes owners, and the
    /// last owner cannot be removed (`CONFLICT`).
    async fn remove_member(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The member to remove.")] input: RemoveMemberInput,
    ) -> Result<MemberObject> {
        let m = guard_mutation(ctx, Action::ManageMembers, Some(input.member_id.to_string())).await?;
        let audit = m.audit.clone();
        let result = async {
            let id: MemberId = input.member_id.parse()?;
            let (member, revoked) = m
                .scope
                .try_write(move |tx, by| {
                    let removed = auth::remove_member(tx, by, id.0)?;
                    audit.record(tx)?;
                    Ok(removed)
                })
                .await?;
            for token in &revoked {
                m.scope.app.registry.token_changed(token);
            }
            m.scope.app.registry.member_changed(&member);
            Ok(MemberObject(member.member()))
        };
        m.finish(result.await).await
    }
}
