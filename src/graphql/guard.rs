//! The permission check every root field starts with, and the audit record
//! of every mutation attempt.
//!
//! A root resolver gets its [`Scope`] (the store, the engine, the caller)
//! only through one of three calls, each naming how the field is
//! classified:
//!
//! - [`guard`]`(ctx, Action::…)` for queries and subscriptions: the caller
//!   must be authenticated and its grant must allow the action
//!   (`UNAUTHENTICATED`, `FORBIDDEN`);
//! - [`guard_mutation`]`(ctx, Action::…, target)` for mutations: the same
//!   check, plus an audit draft; a refusal is recorded at once, and
//!   [`Mutating::finish`] records any later failure, while a success is
//!   recorded by the write transaction of its effect ([`Audit::record`]);
//! - [`public`]`(ctx)` for the fields anyone may read without a token:
//!   only those named in [`PUBLIC_FIELDS`].
//!
//! `tests/api/access.rs` enumerates every root field of the schema and
//! fails for a field that has no row in its matrix, so a new field cannot
//! ship unclassified.

use async_graphql::Context;

use super::GraphqlContext;
use super::error::gql;
use super::scope::Scope;
use crate::domain::{Action, DomainError, Principal};
use crate::store::auth::{Audit, record_audit};

/// The root fields anyone may call without a token (`Query.statusPage`,
/// for instance). Every other field needs a token and a grant.
pub const PUBLIC_FIELDS: &[&str] =
    &["statusPage", "incidents", "incident", "maintenances", "maintenance", "incidentUpdates"];

/// Who a request comes from, inserted by the transport: the caller, or why
/// it is not authenticated.
#[derive(Debug, Clone)]
pub struct Caller(pub Result<Principal, String>);

/// The id of a request, for the audit log (`X-Request-Id`).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

fn context<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a GraphqlContext> {
    ctx.data::<GraphqlContext>()
        .map_err(|_| gql(DomainError::internal("the schema was built without a GraphqlContext")))
}

fn principal<'a>(ctx: &Context<'a>) -> Result<&'a Principal, DomainError> {
    match ctx.data::<Caller>() {
        Ok(Caller(Ok(principal))) => Ok(principal),
        Ok(Caller(Err(why))) => Err(DomainError::Unauthenticated(why.clone())),
        Err(_) => Err(DomainError::Unauthenticated("send `Authorization: Bearer <token>`".into())),
    }
}

/// The scope of a query or subscription root field classified as `action`.
pub fn guard<'a>(ctx: &Context<'a>, action: Action) -> async_graphql::Result<Scope<'a>> {
    let app = context(ctx)?;
    let principal = principal(ctx).map_err(gql)?;
    principal.check(action).map_err(gql)?;
    Ok(Scope { app, principal })
}

/// What a public field may use: the application, and the caller if the
/// request carried a valid token.
pub struct PublicScope<'a> {
    pub app: &'a GraphqlContext,
    pub principal: Option<&'a Principal>,
}

/// The scope of a root field anyone may call. The field must be listed in
/// [`PUBLIC_FIELDS`]; otherwise this is an internal error (a field cannot
/// become public by accident).
pub fn public<'a>(ctx: &Context<'a>) -> async_graphql::Result<PublicScope<'a>> {
    let field = ctx.field().name();
    if !PUBLIC_FIELDS.contains(&field) {
        return Err(gql(DomainError::internal(format!("`{field}` is not listed in PUBLIC_FIELDS"))));
    }
    Ok(PublicScope { app: context(ctx)?, principal: principal(ctx).ok() })
}

/// A mutation under way: its scope and its audit draft.
pub struct Mutating<'a> {
    pub scope: Scope<'a>,
    pub audit: Audit,
}

/// The scope of a mutation classified as `action`, acting on `target`
/// (the global id the input names, if any). A refused caller's attempt is
/// recorded before the refusal is returned; an unauthenticated one has no
/// actor or organization to record it under, and is only logged.
pub async fn guard_mutation<'a>(
    ctx: &Context<'a>,
    action: Action,
    target: Option<String>,
) -> async_graphql::Result<Mutating<'a>> {
    let app = context(ctx)?;
    let field = ctx.field().name();
    let principal = principal(ctx).map_err(|e| {
        tracing::info!(mutation = field, "unauthenticated mutation attempt refused");
        gql(e)
    })?;
    let request_id = ctx.data::<RequestId>().map_or("-", |r| r.0.as_str());
    let audit = Audit::new(principal, field, target, request_id);
    let mutating = Mutating { scope: Scope { app, principal }, audit };
    if let Err(refusal) = principal.check(action) {
        return mutating.finish(Err(refusal)).await;
    }
    Ok(mutating)
}

impl Mutating<'_> {
    /// The mutation's answer. A failure is recorded in a transaction of its
    /// own (the failed attempt wrote nothing else); a success must have
    /// been recorded by its effect's transaction.
    pub async fn finish<T>(&self, result: Result<T, DomainError>) -> async_graphql::Result<T> {
        match result {
            Ok(value) => {
                if !self.audit.was_recorded() {
                    tracing::error!(mutation = ?self.audit, "a mutation succeeded without its audit record");
                    debug_assert!(false, "a mutation succeeded without its audit record: {:?}", self.audit);
                }
                Ok(value)
            }
            Err(error) => {
                let entry = self.audit.refused(error.code());
                let written = self.scope.store().write(move |tx| record_audit(tx, entry.clone())).await;
                if let Err(e) = written {
                    tracing::error!(error = %e, "the audit record of a refused mutation was not written");
                }
                Err(gql(error))
            }
        }
    }
}
