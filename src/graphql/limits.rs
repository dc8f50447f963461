//! Limits on the shape of a GraphQL document, checked before any resolver
//! runs: depth, complexity, aliases, directives and the length of every
//! string the client sends (in the document or in its variables).
//!
//! async-graphql has depth and complexity limits of its own, but its
//! complexity counts every field as 1 unless each list field is annotated;
//! a forgotten annotation would let `first: 100` lists nested five deep
//! through. This walk needs no annotation: a field's children count once
//! per item it may return, which is its `first`/`last` argument, or the
//! default page size for a field that selects `edges` or `nodes` (a
//! connection), or 1 otherwise.
//!
//! Fragments are expanded where they are spread (their cost is computed
//! once and reused, so a document that spreads one fragment many times is
//! measured without being expanded in memory). A fragment that spreads
//! itself counts as empty here; validation refuses it afterwards.

use std::collections::HashMap;

use async_graphql::parser::Positioned;
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Name, Variables};
use async_graphql_value::{ConstValue, Value};

use crate::domain::DomainError;
use crate::store::DEFAULT_PAGE;

/// The bounds a document must keep (see `--max-query-depth` and the other
/// flags of `serve`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentLimits {
    /// Most nested levels of fields.
    pub depth: usize,
    /// Most fields resolved in the worst case (lists counted at their page
    /// size).
    pub complexity: usize,
    /// Most aliased fields.
    pub aliases: usize,
    /// Most directives.
    pub directives: usize,
    /// Most bytes in one string (a literal or a variable's value).
    pub string_bytes: usize,
}

impl Default for DocumentLimits {
    fn default() -> Self {
        Self { depth: 16, complexity: 100_000, aliases: 64, directives: 32, string_bytes: 1 << 20 }
    }
}

/// What a selection set costs.
#[derive(Debug, Clone, Copy, Default)]
struct Cost {
    depth: usize,
    complexity: usize,
    aliases: usize,
    directives: usize,
}

impl Cost {
    fn add(&mut self, other: Cost) {
        self.depth = self.depth.max(other.depth);
        self.complexity = self.complexity.saturating_add(other.complexity);
        self.aliases = self.aliases.saturating_add(other.aliases);
        self.directives = self.directives.saturating_add(other.directives);
    }

    /// `self` repeated `times` (a list field's children).
    fn times(self, times: usize) -> Cost {
        Cost {
            depth: self.depth,
            complexity: self.complexity.saturating_mul(times),
            aliases: self.aliases.saturating_mul(times),
            directives: self.directives.saturating_mul(times),
        }
    }
}

/// Checks `document` (every operation in it) and `variables` against
/// `limits`; the error names the limit and its value.
pub fn check(
    document: &ExecutableDocument,
    variables: &Variables,
    limits: &DocumentLimits,
) -> Result<(), DomainError> {
    for value in variables.values() {
        check_const_string(value, limits.string_bytes)?;
    }
    let mut walk = Walk { document, variables, limits, fragments: HashMap::new(), open: Vec::new() };
    for (_, operation) in document.operations.iter() {
        let operation = &operation.node;
        let mut cost = walk.selection_set(&operation.selection_set)?;
        cost.directives = cost.directives.saturating_add(operation.directives.len());
        exceeds("depth", cost.depth, limits.depth)?;
        exceeds("complexity", cost.complexity, limits.complexity)?;
        exceeds("aliases", cost.aliases, limits.aliases)?;
        exceeds("directives", cost.directives, limits.directives)?;
    }
    Ok(())
}

fn exceeds(limit: &'static str, value: usize, max: usize) -> Result<(), DomainError> {
    if value <= max {
        return Ok(());
    }
    let what = match limit {
        "depth" => "the query nests fields",
        "complexity" => "the query may resolve",
        "aliases" => "the query has aliases:",
        _ => "the query has directives:",
    };
    let unit = match limit {
        "depth" => " levels deep",
        "complexity" => " fields",
        _ => "",
    };
    Err(DomainError::LimitExceeded(format!("{what} {value}{unit}; the {limit} limit is {max}")))
}

struct Walk<'a> {
    document: &'a ExecutableDocument,
    variables: &'a Variables,
    limits: &'a DocumentLimits,
    /// Costs of the fragments measured so far.
    fragments: HashMap<Name, Cost>,
    /// The fragments being measured, to stop at a cycle.
    open: Vec<Name>,
}

impl Walk<'_> {
    fn selection_set(&mut self, set: &Positioned<SelectionSet>) -> Result<Cost, DomainError> {
        let mut total = Cost::default();
        for item in &set.node.items {
            let cost = match &item.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    for (_, value) in &field.arguments {
                        self.check_string(&value.node)?;
                    }
                    let children = self.selection_set(&field.selection_set)?;
                    let items = self.items(field, &field.selection_set.node);
                    let mut cost = children.times(items);
                    cost.depth = children.depth + 1;
                    cost.complexity = cost.complexity.saturating_add(1);
                    cost.aliases = cost.aliases.saturating_add(usize::from(field.alias.is_some()));
                    cost.directives = cost.directives.saturating_add(field.directives.len());
                    cost
                }
                Selection::FragmentSpread(spread) => {
                    let mut cost = self.fragment(&spread.node.fragment_name.node)?;
                    cost.directives = cost.directives.saturating_add(spread.node.directives.len());
                    cost
                }
                Selection::InlineFragment(inline) => {
                    let mut cost = self.selection_set(&inline.node.selection_set)?;
                    cost.directives = cost.directives.saturating_add(inline.node.directives.len());
                    cost
                }
            };
            total.add(cost);
        }
        Ok(total)
    }

    fn fragment(&mut self, name: &Name) -> Result<Cost, DomainError> {
        if let Some(cost) = self.fragments.get(name) {
            return Ok(*cost);
        }
        let Some(definition) = self.document.fragments.get(name) else { return Ok(Cost::default()) };
        if self.open.contains(name) {
            return Ok(Cost::default());
        }
        self.open.push(name.clone());
        let cost = self.selection_set(&definition.node.selection_set);
        self.open.pop();
        let mut cost = cost?;
        cost.directives = cost.directives.saturating_add(definition.node.directives.len());
        self.fragments.insert(name.clone(), cost);
        Ok(cost)
    }

    /// How many items `field` may return: its `first`/`last`, the default
    /// page of a connection, or 1.
    fn items(&self, field: &async_graphql::parser::types::Field, children: &SelectionSet) -> usize {
        let page = field.arguments.iter().find_map(|(name, value)| {
            matches!(name.node.as_str(), "first" | "last").then(|| self.int(&value.node)).flatten()
        });
        if let Some(page) = page {
            return page;
        }
        let connection = children.items.iter().any(|item| {
            matches!(&item.node, Selection::Field(f) if matches!(f.node.name.node.as_str(), "edges" | "nodes"))
        });
        if connection { DEFAULT_PAGE } else { 1 }
    }

    /// A non-negative integer argument, literal or from a variable.
    fn int(&self, value: &Value) -> Option<usize> {
        let number = match value {
            Value::Number(n) => n.as_u64(),
            Value::Variable(name) => match self.variables.get(name) {
                Some(ConstValue::Number(n)) => n.as_u64(),
                _ => None,
            },
            _ => None,
        }?;
        usize::try_from(number).ok()
    }

    fn check_string(&self, value: &Value) -> Result<(), DomainError> {
        match value {
            Value::String(s) => string_fits(s, self.limits.string_bytes),
            Value::List(items) => items.iter().try_for_each(|v| self.check_string(v)),
            Value::Object(fields) => fields.values().try_for_each(|v| self.check_string(v)),
            _ => Ok(()),
        }
    }
}

fn check_const_string(value: &ConstValue, max: usize) -> Result<(), DomainError> {
    match value {
        ConstValue::String(s) => string_fits(s, max),
        ConstValue::List(items) => items.iter().try_for_each(|v| check_const_string(v, max)),
        ConstValue::Object(fields) => fields.values().try_for_each(|v| check_const_string(v, max)),
        _ => Ok(()),
    }
}

fn string_fits(s: &str, max: usize) -> Result<(), DomainError> {
    if s.len() <= max {
        return Ok(());
    }
    Err(DomainError::LimitExceeded(format!(
        "a string of {} bytes was sent; the string length limit is {max} bytes",
        s.len()
    )))
}

#[cfg(test)]
mod tests {
    use async_graphql::parser::parse_query;

    use super::*;

    fn checked(query: &str, variables: serde_json::Value, limits: &DocumentLimits) -> Result<(), String> {
        let document = parse_query(query).unwrap();
        let variables = Variables::from_json(variables);
        check(&document, &variables, limits).map_err(|e| e.to_string())
    }

    fn ok(query: &str, limits: &DocumentLimits) -> bool {
        checked(query, serde_json::json!({}), limits).is_ok()
    }

    #[test]
    fn depth_counts_nested_fields_through_fragments() {
        let limits = DocumentLimits { depth: 3, ..DocumentLimits::default() };
        assert!(ok("{ a { b { c } } }", &limits));
        assert!(!ok("{ a { b { c { d } } } }", &limits));
        assert!(ok("{ a { ...F } } fragment F on T { b { c } }", &limits));
        let error =
            checked("{ a { ...F } } fragment F on T { b { c { d } } }", serde_json::json!({}), &limits);
        assert_eq!(error.unwrap_err(), "the query nests fields 4 levels deep; the depth limit is 3");
    }

    #[test]
    fn complexity_multiplies_children_by_page_size() {
        let limits = DocumentLimits { complexity: 1_000, ..DocumentLimits::default() };
        // 1 + 10 × (1 + 1) = 21
        assert!(ok("{ list(first: 10) { edges { x } } }", &limits));
        // 1 + 100 × (1 + 100 × 1) = 10,101
        let nested = "query($n: Int) { a(first: 100) { b(first: $n) { c } } }";
        assert!(checked(nested, serde_json::json!({ "n": 100 }), &limits).is_err());
        assert!(checked(nested, serde_json::json!({ "n": 5 }), &limits).is_ok());
        // A connection without `first` counts at the default page size.
        let limits = DocumentLimits { complexity: 100, ..DocumentLimits::default() };
        assert!(!ok("{ a { nodes { b { nodes { c } } } } }", &limits));
    }

    #[test]
    fn aliases_and_directives_are_counted_including_repeated_fragments() {
        let limits = DocumentLimits { aliases: 4, directives: 2, ..DocumentLimits::default() };
        assert!(ok("{ a: x b: x c: x d: x }", &limits));
        assert!(!ok("{ a: x b: x c: x d: x e: x }", &limits));
        assert!(!ok("{ ...F ...F ...F } fragment F on Q { a: x b: x }", &limits));
        assert!(ok("{ x @skip(if: false) y @include(if: true) }", &limits));
        assert!(!ok("{ x @skip(if: false) y @include(if: true) z @skip(if: false) }", &limits));
    }

    #[test]
    fn a_fragment_spread_many_times_is_measured_not_expanded() {
        let mut query = String::from("{ ...F0 }");
        for i in 0..40 {
            query.push_str(&format!(" fragment F{i} on Q {{ ...F{} ...F{} }}", i + 1, i + 1));
        }
        query.push_str(" fragment F40 on Q { x }");
        let error = checked(&query, serde_json::json!({}), &DocumentLimits::default()).unwrap_err();
        assert!(error.contains("the complexity limit is 100000"), "{error}");
    }

    #[test]
    fn cycles_between_fragments_end_the_walk() {
        assert!(ok("{ ...A } fragment A on Q { ...B } fragment B on Q { ...A }", &DocumentLimits::default()));
    }

    #[test]
    fn strings_are_bounded_in_literals_and_variables() {
        let limits = DocumentLimits { string_bytes: 8, ..DocumentLimits::default() };
        assert!(ok(r#"{ f(a: "12345678") }"#, &limits));
        assert!(!ok(r#"{ f(a: {b: ["123456789"]}) }"#, &limits));
        let query = "query($s: String) { f(a: $s) }";
        assert!(checked(query, serde_json::json!({ "s": "12345678" }), &limits).is_ok());
        let error = checked(query, serde_json::json!({ "s": { "t": ["123456789"] } }), &limits);
        assert_eq!(error.unwrap_err(), "a string of 9 bytes was sent; the string length limit is 8 bytes");
    }
}
