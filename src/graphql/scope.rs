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
/// it is scoped by the caller's organization.
pub struct Scope<'a> {
    pub app: &'a GraphqlContext,
    pub principal: &'a Principal,
}

/// The scope of the request `ctx` belongs to.
///
/// A request without a [`Principal`] was not authenticated by the HTTP
/// layer: `UNAUTHENTICATED`. A schema built without a context (for the SDL
/// only) cannot answer: an internal error.
pub fn scope<'a>(ctx: &Context<'a>) -> async_graphql::Result<Scope<'a>> {
    let app = ctx
        .data::<GraphqlContext>()
        .map_err(|_| gql(DomainError::internal("the schema was built without a GraphqlContext")))?;
    let principal = ctx.data::<Principal>().map_err(|_| gql(DomainError::Unauthenticated))?;
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

/// The scope of every write to the status page (components, incidents,
/// maintenance windows), and of reading its drafts.
///
/// The one place where "editing the status page needs `ADMIN` or `OWNER`"
/// is decided: until access control exists every request acts as the
/// built-in owner, who may.
pub fn status_page_editor<'a>(ctx: &Context<'a>) -> async_graphql::Result<Scope<'a>> {
    scope(ctx)
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
        status_page_editor(ctx)?;
        Ok(Audience::Editors)
    } else {
        Ok(Audience::Public)
    }
}
