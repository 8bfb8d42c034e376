//! `double_equals`: `==` written for SQL's `=` (the habit of Python, Jinja and most
//! programming languages). DuckDB accepts `==` as a synonym, so a model written against
//! DuckDB runs there and fails on PostgreSQL (and Redshift), whose parser reads `==` as
//! an operator name that no type defines: `operator does not exist: text == unknown`.
//!
//! Nothing is guessed: SQL has no `==` of its own, so every `==` in the model's SQL code
//! means `=`. A `==` inside Jinja (`{% if x == 'y' %}`) is Jinja's and stays.

use std::sync::OnceLock;

use regex::Regex;

use crate::patterns::{self, AdapterPattern};
use crate::rewrite::{apply_edits, Edit};
use crate::sqlcheck::parse_model;
use crate::tokens::{tokenize, TokenKind};
use crate::{RuleFix, RuleInput};

use super::warehouse_name;

/// The rule's name.
pub(super) const NAME: &str = "double_equals";

/// The wordings of a warehouse refusing `==`.
pub const DOUBLE_EQUALS_PATTERNS: &[AdapterPattern] = &[AdapterPattern {
    // PostgreSQL 15, real: `operator does not exist: text == unknown` (`unknown` is an
    // untyped string literal; `integer == integer` for two numbers).
    name: "postgres_operator",
    adapters: &["postgres", "postgresql", "redshift"],
    regex: r"(?m)operator does not exist: [a-z][a-z0-9_ ]*? == [a-z][a-z0-9_ ]*?\s*$",
}];

fn compiled() -> &'static [(AdapterPattern, Regex)] {
    static COMPILED: OnceLock<Vec<(AdapterPattern, Regex)>> = OnceLock::new();
    COMPILED.get_or_init(|| patterns::compile(DOUBLE_EQUALS_PATTERNS))
}

/// Replaces every `==` in the model's SQL code with `=`.
///
/// Fires when the error is one of [`DOUBLE_EQUALS_PATTERNS`], the model's SQL code (not
/// its strings, comments or Jinja) has at least one operator token that is exactly `==`,
/// and with each of them written `=` the model parses in the adapter's dialect.
pub fn double_equals(input: &RuleInput) -> Option<RuleFix> {
    let refused = patterns::own_adapter_first(compiled(), input.adapter)
        .any(|(_, re)| re.is_match(input.error_message));
    if !refused {
        return None;
    }
    let sql = input.model_sql;
    let edits: Vec<Edit> = tokenize(sql)
        .into_iter()
        .filter(|t| t.kind == TokenKind::Operator && t.text(sql) == "==")
        .map(|t| Edit {
            range: t.range,
            replacement: "=".to_owned(),
        })
        .collect();
    if edits.is_empty() {
        return None;
    }
    let fixed_sql = apply_edits(sql, &edits)?;
    parse_model(&fixed_sql, input.adapter).ok()?;
    let places = if edits.len() == 1 {
        "it is".to_owned()
    } else {
        format!("all {} of them are", edits.len())
    };
    let explanation = format!(
        "{} has no `==` operator (DuckDB accepts it as `=`), so `{}` failed to compare \
         with it. SQL's equality is `=`: {places} written that way now.",
        warehouse_name(input.adapter),
        input.model_name,
    );
    Some(RuleFix {
        fixed_sql,
        explanation,
        rule: NAME,
        confidence: 0.95,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;

    fn fix(sql: &str, message: &str) -> Option<String> {
        double_equals(&RuleInput {
            error_class: ErrorClass::TypeMismatch,
            error_message: message,
            model_name: "m",
            model_sql: sql,
            adapter: "postgres",
            ..RuleInput::default()
        })
        .map(|f| f.fixed_sql)
    }

    #[test]
    fn every_double_equals_in_code_becomes_equals() {
        let message = "operator does not exist: integer == integer\nLINE 1: ...";
        assert_eq!(
            fix(
                "select a == 1 as f, '==' as s\nfrom t\n{% if x == 'y' %}where b==2{% endif %}",
                message
            )
            .as_deref(),
            Some("select a = 1 as f, '==' as s\nfrom t\n{% if x == 'y' %}where b=2{% endif %}")
        );
    }

    #[test]
    fn only_for_the_refused_operator() {
        // Another operator the warehouse lacks for those types.
        assert_eq!(
            fix(
                "select a == 1 from t",
                "operator does not exist: text = integer"
            ),
            None
        );
        // `!==`, `<==`: not an equality typed twice.
        assert_eq!(
            fix(
                "select a <== 1 from t",
                "operator does not exist: integer == integer"
            ),
            None
        );
    }
}
