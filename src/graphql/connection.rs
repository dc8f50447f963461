//! Relay connections over store pages. Cursors are the keys of the page
//! (ids, or sequence numbers for logs) in decimal.

use async_graphql::OutputType;
use async_graphql::connection::{Connection, CursorType, Edge};

use super::error::gql;
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

/// The connection of one store page, each item turned into its GraphQL
/// node by `node`.
pub fn connection<T, N: OutputType>(page: Page<T>, node: impl Fn(T) -> N) -> Connection<u64, N> {
    let mut out = Connection::new(page.has_previous_page, page.has_next_page);
    out.edges = page.items.into_iter().map(|(key, item)| Edge::new(key, node(item))).collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_keep_the_page_order_and_its_keys_as_cursors() {
        let page = Page { items: vec![(5, "e"), (4, "d")], has_previous_page: false, has_next_page: true };
        let conn = connection(page, str::to_uppercase);
        let edges: Vec<(u64, &str)> = conn.edges.iter().map(|e| (e.cursor, e.node.as_str())).collect();
        assert_eq!(edges, [(5, "E"), (4, "D")]);
        assert!(conn.has_next_page);
        assert!(!conn.has_previous_page);
    }

    #[test]
    fn an_empty_page_gives_an_empty_connection() {
        let page: Page<u32> = Page { items: vec![], has_previous_page: false, has_next_page: false };
        let conn = connection(page, |n| n);
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
