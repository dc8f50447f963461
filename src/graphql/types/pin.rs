//! `CommitPin`: a commit a person rolled back from, which pushes do not
//! deploy again.

use async_graphql::{Context, Object, Result};
use chrono::{DateTime, Utc};

use super::operation::OperationNode;
use super::viewer::MemberObject;
use crate::domain::CommitPin;
use crate::graphql::scope::{datetime, scope};
use crate::store::operations;

/// A pin as a GraphQL object.
pub struct CommitPinObject(pub CommitPin);

/// A commit that pushes do not deploy: a person rolled the service back
/// from it. A push of any other commit lifts the pin, and so does
/// `unpinCommit`.
#[Object(name = "CommitPin")]
impl CommitPinObject {
    /// The pinned commit.
    async fn commit(&self) -> &str {
        &self.0.commit
    }

    /// Why it is pinned, as the console shows it.
    async fn reason(&self) -> &str {
        &self.0.reason
    }

    /// When the roll back that pinned it was queued.
    async fn pinned_at(&self) -> DateTime<Utc> {
        datetime(self.0.pinned_at)
    }

    /// Who rolled back; null when unknown.
    async fn pinned_by(&self) -> Option<MemberObject> {
        self.0.pinned_by.clone().map(MemberObject)
    }

    /// The roll back: the "redeploy this commit" that set the pin.
    async fn operation(&self, ctx: &Context<'_>) -> Result<Option<OperationNode>> {
        let id = self.0.operation_id;
        let op = scope(ctx)?.find(move |r, org| operations::operation(r, org, id)).await?;
        Ok(op.map(OperationNode))
    }
}
