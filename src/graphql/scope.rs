//! What every resolver starts from: the application context and the caller,
//! and small conversions shared by the types.

use async_graphql::{Context, ID};
use chrono::{DateTime, Utc};

use super::GraphqlContext;
use super::error::gql;
use crate::domain::{DomainError, Millis, OrganizationId, Principal};
use crate::engine::Engine;
use crate::store::{Reader, Store, Tx};

/// The store, the engine and the caller of one request. Every read through
/// it is scoped by the caller's organization. Only [`super::guard`] makes
/// one, after the permission check of the root field.
pub struct Scope<'a> {
    pub app: &'a GraphqlContext,
    pub principal: &'a Principal,
}

/// The scope of a field of an object that a root field returned (such as
/// `Environment.services`): the root field was guarded already, so this
/// only needs the caller. Root resolvers never call it: they start with
/// [`super::guard::guard`] (or `guard_mutation`, or `public`), which
/// classifies them.
pub fn scope<'a>(ctx: &Context<'a>) -> async_graphql::Result<Scope<'a>> {
    let app = ctx
        .data::<GraphqlContext>()
        .map_err(|_| gql(DomainError::internal("the schema was built without a GraphqlContext")))?;
    let principal = match ctx.data::<super::guard::Caller>() {
        Ok(super::guard::Caller(Ok(principal))) => principal,
        Ok(super::guard::Caller(Err(why))) => return Err(gql(DomainError::Unauthenticated(why.clone()))),
        Err(_) => return Err(gql(DomainError::Unauthenticated("no token".into()))),
    };
    Ok(Scope { app, principal })
}

impl Scope<'_> {
    pub fn store(&self) -> &Store {
        &self.app.store
    }

    pub fn engine(&self) -> &std::sync::Arc<Engine> {
        &self.app.engine
    }

    pub fn org(&self) -> OrganizationId {
        self.principal.organization_id
    }

    /// Runs `f` in a read snapshot with the caller's organization.
    pub async fn read<T, F>(&self, f: F) -> async_graphql::Result<T>
    where
        F: FnOnce(Reader<'_>, OrganizationId) -> Result<T, DomainError> + Send + 'static,
        T: Send + 'static,
    {
        let org = self.org();
        self.store().read(move |r| f(r, org)).await.map_err(gql)
    }

    /// Runs `f` in a write transaction with the caller's organization. `f`
    /// may run more than once (see [`Store::write`]).
    pub async fn write<T, F>(&self, mut f: F) -> async_graphql::Result<T>
    where
        F: FnMut(&mut Tx<'_>, OrganizationId) -> Result<T, DomainError> + Send + 'static,
        T: Send + 'static,
    {
        let org = self.org();
        self.store().write(move |tx| f(tx, org)).await.map_err(gql)
    }

    /// [`Scope::read`] keeping the domain error (for mutations, whose
    /// failures are recorded with their code before they are answered).
    pub async fn try_read<T, F>(&self, f: F) -> Result<T, DomainError>
    where
        F: FnOnce(Reader<'_>, OrganizationId) -> Result<T, DomainError> + Send + 'static,
        T: Send + 'static,
    {
        let org = self.org();
        self.store().read(move |r| f(r, org)).await
    }

    /// [`Scope::write`] keeping the domain error (see [`Scope::try_read`]).
    pub async fn try_write<T, F>(&self, mut f: F) -> Result<T, DomainError>
    where
        F: FnMut(&mut Tx<'_>, &Principal) -> Result<T, DomainError> + Send + 'static,
        T: Send + 'static,
    {
        let principal = self.principal.clone();
        self.store().write(move |tx| f(tx, &principal)).await
    }

    /// Like [`Scope::read`], with `NOT_FOUND` turned into `None`: for
    /// nullable fields that answer `null` when the object is not visible.
    pub async fn find<T, F>(&self, f: F) -> async_graphql::Result<Option<T>>
    where
        F: FnOnce(Reader<'_>, OrganizationId) -> Result<T, DomainError> + Send + 'static,
        T: Send + 'static,
    {
        let org = self.org();
        self.store().read(move |r| found(f(r, org))).await.map_err(gql)
    }
}

/// `NOT_FOUND` as `None`; other errors stay errors.
pub fn found<T>(result: Result<T, DomainError>) -> Result<Option<T>, DomainError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(DomainError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A stored time as a GraphQL `DateTime`. Stored times come from the clock,
/// so they are always in range; the epoch stands in for one that is not.
pub fn datetime(ms: Millis) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// A client-given time as stored [`Millis`].
pub fn millis(at: DateTime<Utc>) -> Millis {
    at.timestamp_millis()
}

/// A typed id as a GraphQL `ID` (its global form, such as `svc_12`).
pub fn id(value: impl std::fmt::Display) -> ID {
    ID(value.to_string())
}

/// A client-given global id as a typed id; `BAD_USER_INPUT` when it is
/// malformed or of another type.
pub fn parse_id<T>(raw: &ID) -> async_graphql::Result<T>
where
    T: std::str::FromStr<Err = DomainError>,
{
    raw.as_str().parse::<T>().map_err(gql)
}

/// A write to the status page under way: its caller, and the audit record
/// its transaction will carry.
pub struct Editor<'a> {
    pub principal: &'a Principal,
    mutating: super::guard::Mutating<'a>,
}

/// The scope of every write to the status page (components, incidents,
/// maintenance windows): the one place where "editing the status page
/// needs `ADMIN` or `OWNER`" (`Action::Configure`) is decided. The attempt
/// is recorded in the audit log whatever its outcome.
pub async fn status_page_editor<'a>(ctx: &Context<'a>) -> async_graphql::Result<Editor<'a>> {
    let mutating = super::guard::guard_mutation(ctx, crate::domain::Action::Configure, None).await?;
    Ok(Editor { principal: mutating.scope.principal, mutating })
}

impl Editor<'_> {
    /// Runs `f` in a write transaction that also records the attempt in the
    /// audit log; a failure is recorded on its own. `f` may run more than
    /// once (see [`Store::write`]).
    pub async fn write<T, F>(&self, mut f: F) -> async_graphql::Result<T>
    where
        F: FnMut(&mut Tx<'_>, OrganizationId) -> Result<T, DomainError> + Send + 'static,
        T: Send + 'static,
    {
        let audit = self.mutating.audit.clone();
        let org = self.principal.organization_id;
        let result = self
            .mutating
            .scope
            .store()
            .write(move |tx| {
                let done = f(tx, org)?;
                audit.record(tx)?;
                Ok(done)
            })
            .await;
        self.mutating.finish(result).await
    }
}

/// What a public read of the status page starts from: the application,
/// and no caller at all (the page is read without a token).
pub struct Public<'a> {
    pub app: &'a GraphqlContext,
}

/// The scope of every public read of the status page. Never requires a
/// [`Principal`]: anyone may read what was published.
pub fn public<'a>(ctx: &Context<'a>) -> async_graphql::Result<Public<'a>> {
    let app = ctx
        .data::<GraphqlContext>()
        .map_err(|_| gql(DomainError::internal("the schema was built without a GraphqlContext")))?;
    Ok(Public { app })
}

impl Public<'_> {
    /// Runs `f` in a read snapshot.
    pub async fn read<T, F>(&self, f: F) -> async_graphql::Result<T>
    where
        F: FnOnce(Reader<'_>) -> Result<T, DomainError> + Send + 'static,
        T: Send + 'static,
    {
        self.app.store.read(f).await.map_err(gql)
    }
}

/// Who a status-page read is for: the public, unless the client asks for
/// drafts too — which only an editor may.
pub fn audience(
    ctx: &Context<'_>,
    drafts: Option<bool>,
) -> async_graphql::Result<crate::store::status_page::Audience> {
    use crate::store::status_page::Audience;
    if drafts.unwrap_or(false) {
        super::guard::guard(ctx, crate::domain::Action::Configure)?;
        Ok(Audience::Editors)
    } else {
        Ok(Audience::Public)
    }
}
