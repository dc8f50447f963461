//! `Trigger`: who or what asked for an operation.

use async_graphql::Object;

use super::enums::{PlatformReason, TriggerKind, TriggerSource};
use super::viewer::MemberObject;
use crate::domain;

/// A trigger as a GraphQL object.
pub struct TriggerObject(pub domain::Trigger);

/// Who or what asked for an operation.
/// Fields resolve one after another (`serial`): nearly all are plain reads
/// of the row, and a loop is much cheaper than a set of futures per field.
#[Object(name = "Trigger", serial)]
impl TriggerObject {
    /// A member, support, or the platform itself.
    async fn kind(&self) -> TriggerKind {
        self.0.kind.into()
    }

    /// The channel the request came through (`MONITORING` for the
    /// platform).
    async fn source(&self) -> TriggerSource {
        self.0.source.into()
    }

    /// The member who asked; null for `PLATFORM`.
    async fn author(&self) -> Option<MemberObject> {
        self.0.author.clone().map(MemberObject)
    }

    /// Why the platform asked; null unless the kind is `PLATFORM`.
    async fn reason(&self) -> Option<PlatformReason> {
        self.0.reason.map(Into::into)
    }
}
