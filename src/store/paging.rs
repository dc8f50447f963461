//! Relay-style pages over ordered keys (ids or log sequence numbers).

use std::ops::{ControlFlow, RangeInclusive};

use crate::domain::DomainError;

type Result<T> = std::result::Result<T, DomainError>;

/// Most items one page may hold.
pub const MAX_PAGE: usize = 100;
/// Items in a page when the client gives neither `first` nor `last`.
pub const DEFAULT_PAGE: usize = 20;

/// Validated connection arguments: exactly one of a forward (`first`) or
/// backward (`last`) window, bounded by the `after`/`before` cursors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageArgs {
    pub after: Option<u64>,
    pub before: Option<u64>,
    pub size: usize,
    pub backward: bool,
}

impl PageArgs {
    /// Checks `first`/`last` (0 to [`MAX_PAGE`], not both).
    pub fn new(
        first: Option<i32>,
        last: Option<i32>,
        after: Option<u64>,
        before: Option<u64>,
    ) -> Result<Self> {
        let check = |field: &'static str, n: i32| {
            usize::try_from(n).ok().filter(|n| *n <= MAX_PAGE).ok_or_else(|| {
                DomainError::bad_input(field, format!("must be between 0 and {MAX_PAGE}, got {n}"))
            })
        };
        let (size, backward) = match (first, last) {
            (Some(_), Some(_)) => {
                return Err(DomainError::bad_input("last", "give either `first` or `last`, not both"));
            }
            (Some(n), None) => (check("first", n)?, false),
            (None, Some(n)) => (check("last", n)?, true),
            (None, None) => (DEFAULT_PAGE, false),
        };
        Ok(Self { after, before, size, backward })
    }

    /// The first `n` items.
    pub fn first(n: usize) -> Self {
        Self { after: None, before: None, size: n, backward: false }
    }
}

/// One page: items with their cursors, in connection order.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<(u64, T)>,
    pub has_previous_page: bool,
    pub has_next_page: bool,
}

/// A scan over keys in `range`, ascending or descending (`rev`), that feeds
/// `(key, item)` to the visitor until it breaks; the scan skips keys whose
/// item is filtered out.
pub type Visitor<'v, T> = &'v mut dyn FnMut(u64, T) -> Result<ControlFlow<()>>;

/// Cuts one page out of an ordered scan. `descending` gives the connection
/// order (newest first for operations); `scan` reads keys in a range.
pub fn paginate<T>(
    args: &PageArgs,
    descending: bool,
    scan: impl FnOnce(RangeInclusive<u64>, bool, Visitor<'_, T>) -> Result<()>,
) -> Result<Page<T>> {
    let (mut lo, mut hi) = (0u64, u64::MAX);
    let (towards_end, towards_start) = if descending { (&mut hi, &mut lo) } else { (&mut lo, &mut hi) };
    // `after` moves the start of the window; `before` moves its end.
    if let Some(after) = args.after {
        *towards_end = if descending { after.saturating_sub(1) } else { after.saturating_add(1) };
    }
    if let Some(before) = args.before {
        *towards_start = if descending { before.saturating_add(1) } else { before.saturating_sub(1) };
    }
    // Keys start at 1: nothing lies before the start of the key space.
    if (descending && args.after == Some(0)) || (!descending && args.before == Some(0)) {
        return Ok(Page { items: vec![], has_previous_page: false, has_next_page: false });
    }
    // Forward pages read in connection order; backward pages read from the
    // far end and are turned around.
    let rev = descending != args.backward;
    let mut items = Vec::with_capacity(args.size.min(MAX_PAGE) + 1);
    scan(lo..=hi, rev, &mut |key, item| {
        items.push((key, item));
        Ok(if items.len() > args.size { ControlFlow::Break(()) } else { ControlFlow::Continue(()) })
    })?;
    let more = items.len() > args.size;
    items.truncate(args.size);
    if args.backward {
        items.reverse();
    }
    Ok(Page { items, has_previous_page: args.backward && more, has_next_page: !args.backward && more })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page_of(keys: &[u64], args: PageArgs, descending: bool) -> Page<u64> {
        paginate(&args, descending, |range, rev, visit| {
            let mut keys: Vec<u64> = keys.iter().copied().filter(|k| range.contains(k)).collect();
            if rev {
                keys.reverse();
            }
            for k in keys {
                if visit(k, k)?.is_break() {
                    break;
                }
            }
            Ok(())
        })
        .unwrap()
    }

    fn keys(page: &Page<u64>) -> Vec<u64> {
        page.items.iter().map(|(k, _)| *k).collect()
    }

    #[test]
    fn forward_pages_walk_newest_first() {
        let all = [1, 2, 3, 4, 5];
        let p = page_of(&all, PageArgs::new(Some(2), None, None, None).unwrap(), true);
        assert_eq!(keys(&p), [5, 4]);
        assert!(p.has_next_page);
        let p = page_of(&all, PageArgs::new(Some(2), None, Some(4), None).unwrap(), true);
        assert_eq!(keys(&p), [3, 2]);
        let p = page_of(&all, PageArgs::new(Some(2), None, Some(2), None).unwrap(), true);
        assert_eq!(keys(&p), [1]);
        assert!(!p.has_next_page);
    }

    #[test]
    fn backward_pages_return_the_end_of_the_window_in_order() {
        let all = [1, 2, 3, 4, 5];
        let p = page_of(&all, PageArgs::new(None, Some(2), None, None).unwrap(), true);
        assert_eq!(keys(&p), [2, 1]);
        assert!(p.has_previous_page);
        let p = page_of(&all, PageArgs::new(None, Some(2), None, Some(2)).unwrap(), false);
        assert_eq!(keys(&p), [1]);
        assert!(!p.has_previous_page);
    }

    #[test]
    fn ascending_pages_resume_after_a_cursor() {
        let all = [10, 20, 30];
        let p = page_of(&all, PageArgs::new(Some(5), None, Some(10), None).unwrap(), false);
        assert_eq!(keys(&p), [20, 30]);
    }

    #[test]
    fn page_sizes_are_checked() {
        assert!(PageArgs::new(Some(-1), None, None, None).is_err());
        assert!(PageArgs::new(Some(101), None, None, None).is_err());
        assert!(PageArgs::new(Some(1), Some(1), None, None).is_err());
        assert_eq!(PageArgs::new(None, None, None, None).unwrap().size, DEFAULT_PAGE);
    }
}
