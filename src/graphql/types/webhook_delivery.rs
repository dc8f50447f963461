//! `WebhookDelivery`: what became of one GitHub delivery to a service.

use async_graphql::{Context, Object, Result};
use chrono::{DateTime, Utc};

use super::enums::WebhookDeliveryOutcome;
use super::operation::OperationNode;
use crate::domain::webhook::Delivery;
use crate::graphql::scope::{datetime, scope};
use crate::store::operations;

/// A delivery as a GraphQL object.
pub struct WebhookDeliveryNode(pub Delivery);

/// A page of webhook deliveries, newest first.
pub use crate::graphql::connection::WebhookDeliveryConnection;

/// One delivery to `POST /hooks/github/{serviceId}` and what became of it.
#[Object(name = "WebhookDelivery")]
impl WebhookDeliveryNode {
    /// When it arrived.
    async fn at(&self) -> DateTime<Utc> {
        datetime(self.0.at)
    }

    /// GitHub's id of the delivery (`X-GitHub-Delivery`); null when not
    /// sent.
    async fn delivery_id(&self) -> Option<&str> {
        self.0.delivery_id.as_deref()
    }

    /// The GitHub event (`X-GitHub-Event`, such as `push`); null when not
    /// sent.
    async fn event(&self) -> Option<&str> {
        self.0.event.as_deref()
    }

    /// Whether it deployed, and if not, what kept it from doing so.
    async fn outcome(&self) -> WebhookDeliveryOutcome {
        self.0.outcome.into()
    }

    /// Why it was ignored, skipped or refused; what it queued otherwise.
    async fn message(&self) -> &str {
        &self.0.message
    }

    /// The `DEPLOY` it queued; null unless the outcome is `DEPLOYED`.
    async fn operation(&self, ctx: &Context<'_>) -> Result<Option<OperationNode>> {
        let Some(id) = self.0.operation_id else { return Ok(None) };
        let op = scope(ctx)?.find(move |r, org| operations::operation(r, org, id)).await?;
        Ok(op.map(OperationNode))
    }
}
