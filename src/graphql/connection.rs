//! Relay connections over store pages. Cursors are the keys of the page
//! (ids, or sequence numbers for logs) in decimal.

use async_graphql::connection::{CursorType, PageInfo};
use async_graphql::{ComplexObject, SimpleObject};

use super::error::gql;
use super::types::access::{AuditEntryObject, TokenObject};
use super::types::environment::EnvironmentNode;
use super::types::log_line::LogLineNode;
use super::types::operation::OperationNode;
use super::types::service::ServiceNode;
use super::types::status_page::ComponentChangeObject;
use super::types::status_page::incident::IncidentObject;
use super::types::status_page::window::MaintenanceObject;
use super::types::viewer::MemberObject;
use super::types::webhook_delivery::WebhookDeliveryNode;
use crate::domain::DomainError;
use crate::store::{Page, PageArgs};

/// Checks connection arguments: `first`/`last` (at most 100, not both) and
/// the cursors; a cursor that is not one of ours is `BAD_USER_INPUT`.
pub fn page_args(
    first: Option<i32>,
    after: Option<String>,
    last: Option<i32>,
    before: Option<String>,
) -> async_graphql::Result<PageArgs> {
    let args = decode_args(first, after, last, before);
    args.map_err(gql)
}

fn decode_args(
    first: Option<i32>,
    after: Option<String>,
    last: Option<i32>,
    before: Option<String>,
) -> Result<PageArgs, DomainError> {
    let after = after.as_deref().map(|c| cursor("after", c)).transpose()?;
    let before = before.as_deref().map(|c| cursor("before", c)).transpose()?;
    PageArgs::new(first, last, after, before)
}

fn cursor(field: &'static str, raw: &str) -> Result<u64, DomainError> {
    u64::decode_cursor(raw)
        .map_err(|_| DomainError::bad_input(field, format!("`{raw}` is not a cursor of this connection")))
}

/// A connection type that [`connection`] can fill.
pub trait Connects {
    type Node;
    fn assemble(edges: Vec<(String, Self::Node)>, page_info: PageInfo) -> Self;
}

/// Declares a documented `…Connection` and `…Edge` pair per node type.
macro_rules! connections {
    ($($connection:ident, $edge:ident, $node:ty, $what:literal;)*) => {$(
        #[doc = concat!("A page of ", $what, ", Relay style: the edges (each item with its cursor), the items alone, and where the page sits in the whole list.")]
        #[derive(SimpleObject)]
        #[graphql(complex)]
        pub struct $connection {
            /// The items of the page with their cursors, in list order.
            pub edges: Vec<$edge>,
            /// Whether there are more items before or after this page, and
            /// the cursors of its ends.
            pub page_info: PageInfo,
        }

        #[ComplexObject]
        impl $connection {
            /// The items of the page without their cursors, in list order.
            async fn nodes(&self) -> Vec<&$node> {
                self.edges.iter().map(|e| &e.node).collect()
            }
        }

        #[doc = concat!("One of ", $what, " and its cursor.")]
        #[derive(SimpleObject)]
        pub struct $edge {
            /// Where the item sits: pass it as `after` or `before` to page on.
            pub cursor: String,
            /// The item.
            pub node: $node,
        }

        impl Connects for $connection {
            type Node = $node;
            fn assemble(edges: Vec<(String, $node)>, page_info: PageInfo) -> Self {
                Self { edges: edges.into_iter().map(|(cursor, node)| $edge { cursor, node }).collect(), page_info }
            }
        }
    )*};
}

connections! {
    EnvironmentConnection, EnvironmentEdge, EnvironmentNode, "environments";
    ServiceConnection, ServiceEdge, ServiceNode, "services";
    OperationConnection, OperationEdge, OperationNode, "operations";
    ActivityConnection, ActivityEdge, OperationNode, "an activity timeline (each operation a block)";
    ReportRowConnection, ReportRowEdge, OperationNode, "the rows of an activity report (one operation each)";
    WebhookDeliveryConnection, WebhookDeliveryEdge, WebhookDeliveryNode, "webhook deliveries";
    LogLineConnection, LogLineEdge, LogLineNode, "log lines";
    IncidentConnection, IncidentEdge, IncidentObject, "incidents";
    MaintenanceConnection, MaintenanceEdge, MaintenanceObject, "maintenance windows";
    ComponentChangeConnection, ComponentChangeEdge, ComponentChangeObject, "changes of a component's status";
    MemberConnection, MemberEdge, MemberObject, "members";
    TokenConnection, TokenEdge, TokenObject, "tokens";
    AuditEntryConnection, AuditEntryEdge, AuditEntryObject, "audit records";
}

/// The connection of one store page, each item turned into its GraphQL
/// node by `node`.
pub fn connection<T, C: Connects>(page: Page<T>, node: impl Fn(T) -> C::Node) -> C {
    let edges: Vec<(String, C::Node)> =
        page.items.into_iter().map(|(key, item)| (key.encode_cursor(), node(item))).collect();
    let page_info = PageInfo {
        has_previous_page: page.has_previous_page,
        has_next_page: page.has_next_page,
        start_cursor: edges.first().map(|(c, _)| c.clone()),
        end_cursor: edges.last().map(|(c, _)| c.clone()),
    };
    C::assemble(edges, page_info)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection of plain values, to test the assembly alone.
    struct Plain<N> {
        edges: Vec<(String, N)>,
        page_info: PageInfo,
    }

    impl<N> Connects for Plain<N> {
        type Node = N;
        fn assemble(edges: Vec<(String, N)>, page_info: PageInfo) -> Self {
            Self { edges, page_info }
        }
    }

    #[test]
    fn edges_keep_the_page_order_and_its_keys_as_cursors() {
        let page = Page { items: vec![(5, "e"), (4, "d")], has_previous_page: false, has_next_page: true };
        let conn: Plain<String> = connection(page, str::to_uppercase);
        let edges: Vec<(&str, &str)> = conn.edges.iter().map(|(c, n)| (c.as_str(), n.as_str())).collect();
        assert_eq!(edges, [("5", "E"), ("4", "D")]);
        assert!(conn.page_info.has_next_page);
        assert!(!conn.page_info.has_previous_page);
        assert_eq!(conn.page_info.start_cursor.as_deref(), Some("5"));
        assert_eq!(conn.page_info.end_cursor.as_deref(), Some("4"));
    }

    #[test]
    fn an_empty_page_gives_an_empty_connection() {
        let page: Page<u32> = Page { items: vec![], has_previous_page: false, has_next_page: false };
        let conn: Plain<u32> = connection(page, |n| n);
        assert!(conn.edges.is_empty());
    }

    #[test]
    fn cursors_are_decoded() {
        let args = decode_args(Some(10), Some("42".into()), None, None).unwrap();
        assert_eq!(args.after, Some(42));
        assert_eq!(args.size, 10);
        let args = decode_args(None, None, Some(3), Some("7".into())).unwrap();
        assert_eq!((args.before, args.backward), (Some(7), true));
    }

    #[test]
    fn a_foreign_cursor_is_bad_user_input() {
        for bad in ["abc", "-1", "", "YXJyYXljb25uZWN0aW9uOjA="] {
            let err = decode_args(Some(1), Some(bad.into()), None, None).unwrap_err();
            assert_eq!(err.code().as_str(), "BAD_USER_INPUT", "{bad:?}");
            let err = decode_args(None, None, Some(1), Some(bad.into())).unwrap_err();
            assert_eq!(err.code().as_str(), "BAD_USER_INPUT", "{bad:?}");
        }
    }

    #[test]
    fn page_sizes_over_the_limit_are_bad_user_input() {
        let err = decode_args(Some(101), None, None, None).unwrap_err();
        assert_eq!(err.code().as_str(), "BAD_USER_INPUT");
        let err = page_args(None, None, Some(-1), None).unwrap_err();
        assert!(format!("{:?}", err.extensions).contains("BAD_USER_INPUT"));
    }
}
