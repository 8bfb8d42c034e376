//! `string_concat`: strings joined with `+` (SQL Server's and Python's habit), which the
//! warehouse refuses between two strings. The standard operator is `||`; a chain of `+`
//! with a string literal among its operands can only mean concatenation, so each of its
//! `+` becomes `||`.
//!
//! `||` gives NULL when an operand is NULL, as `+` on strings does where it exists, so the
//! rows are the ones the author meant. A chain of `+` between columns only (`a + b`, both
//! strings to the warehouse) is left alone: nothing in the text says which `+` is meant,
//! and an arithmetic chain elsewhere must not turn into a concatenation.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use regex::Regex;

use crate::expressions::{operand_from, operand_kind, operand_to, OperandKind};
use crate::patterns::{self, AdapterPattern};
use crate::rewrite::{apply_edits, Edit};
use crate::sql_types::{error_type, SqlType};
use crate::tokens::{tokenize, Token, TokenKind};
use crate::{sqlcheck, RuleFix, RuleInput};

use super::{snippet, warehouse_name};

/// The rule's name.
pub(super) const NAME: &str = "string_concat";

/// The wordings, each printed by the warehouse for `+` between strings: `left` and
/// `right` groups hold the operand types as the text prints them.
pub const STRING_PLUS_PATTERNS: &[AdapterPattern] = &[
    AdapterPattern {
        // `Binder Error: No function matches the given name and argument types
        // '+(VARCHAR, STRING_LITERAL)'. You might need to add explicit type casts.`
        name: "duckdb_no_function_matches",
        adapters: &["duckdb", "motherduck"],
        regex: r"No function matches the given name and argument types '\+\((?P<left>[A-Z_]+), (?P<right>[A-Z_]+)\)'",
    },
    AdapterPattern {
        // `Binder Error: Could not choose a best candidate function for the function call
        // "+(STRING_LITERAL, STRING_LITERAL)".`
        name: "duckdb_no_best_candidate",
        adapters: &["duckdb", "motherduck"],
        regex: r#"Could not choose a best candidate function for the function call "\+\((?P<left>[A-Z_]+), (?P<right>[A-Z_]+)\)""#,
    },
    AdapterPattern {
        // `operator does not exist: character varying + unknown` (`unknown` is an untyped
        // string literal); `operator is not unique: unknown + unknown`.
        name: "postgres_operator",
        adapters: &["postgres", "postgresql", "redshift"],
        regex: r"(?m)operator (?:does not exist|is not unique): (?P<left>[a-z][a-z ]*?) \+ (?P<right>[a-z][a-z ]*?)\s*$",
    },
    AdapterPattern {
        // `No matching signature for operator + for argument types: STRING, STRING.`
        name: "bigquery_no_matching_signature",
        adapters: &["bigquery"],
        regex: r"No matching signature for operator \+ for argument types: (?P<left>[A-Z]+), (?P<right>[A-Z]+)",
    },
];

fn compiled() -> &'static [(AdapterPattern, Regex)] {
    static COMPILED: OnceLock<Vec<(AdapterPattern, Regex)>> = OnceLock::new();
    COMPILED.get_or_init(|| patterns::compile(STRING_PLUS_PATTERNS))
}

/// Whether `message` is the warehouse refusing `+` between two strings.
pub fn refuses_string_plus(message: &str, adapter: &str) -> bool {
    patterns::own_adapter_first(compiled(), adapter).any(|(pattern, re)| {
        let Some(caps) = re.captures(message) else {
            return false;
        };
        let dialect = pattern.adapters.first().copied().unwrap_or("");
        let is_text = |group: &str| {
            caps.name(group).is_some_and(|t| {
                let name = t.as_str();
                name.eq_ignore_ascii_case("string")
                    || error_type(dialect, name).is_some_and(|t| t.ty == SqlType::Text)
            })
        };
        is_text("left") && is_text("right")
    })
}

/// A run of `+` at one level: its operands and its operators (token indices).
struct PlusChain {
    operands: Vec<(usize, usize)>,
    operators: Vec<usize>,
}

fn is_plus(token: &Token, sql: &str) -> bool {
    token.kind == TokenKind::Operator && token.text(sql) == "+"
}

/// An operator next to a chain binds its end operands differently (`a * b + 'x'`): only
/// comparisons, which bind looser than `+` and `||` alike, may sit there.
fn binds_looser(token: &Token, sql: &str) -> bool {
    token.kind != TokenKind::Operator
        || matches!(token.text(sql), "=" | "<>" | "!=" | "<" | ">" | "<=" | ">=")
}

/// The chain the `+` at `at` belongs to, when its operands can be delimited and nothing
/// next to it binds tighter.
fn chain_at(tokens: &[Token], sql: &str, at: usize) -> Option<PlusChain> {
    let mut first = operand_to(tokens, sql, at.checked_sub(1)?)?;
    while first.0 >= 2 && is_plus(&tokens[first.0 - 1], sql) {
        first = operand_to(tokens, sql, first.0 - 2)?;
    }
    let mut chain = PlusChain {
        operands: vec![first],
        operators: Vec::new(),
    };
    let mut next = first.1 + 1;
    while tokens.get(next).is_some_and(|t| is_plus(t, sql)) {
        let operand = operand_from(tokens, sql, next + 1)?;
        chain.operators.push(next);
        chain.operands.push(operand);
        next = operand.1 + 1;
    }
    let before_ok = first
        .0
        .checked_sub(1)
        .is_none_or(|k| binds_looser(&tokens[k], sql));
    let after_ok = tokens.get(next).is_none_or(|t| binds_looser(t, sql));
    (before_ok && after_ok).then_some(chain)
}

/// A string literal that does not read as a number (`'1' + 1` may be arithmetic).
fn is_text_literal(text: &str) -> bool {
    operand_kind(text) == OperandKind::StringLiteral
        && text.trim_matches('\'').trim().parse::<f64>().is_err()
}

/// Rewrites every `+` chain holding a string literal with `||`.
///
/// Fires only when the error is a row of [`STRING_PLUS_PATTERNS`] with two string types,
/// at least one chain of `+` in the model has a string literal operand, and — when the
/// model parses (Jinja masked) — the rewritten one still does.
pub fn string_concat(input: &RuleInput) -> Option<RuleFix> {
    if !refuses_string_plus(input.error_message, input.adapter) {
        return None;
    }
    let sql = input.model_sql;
    let tokens = tokenize(sql);
    let mut visited = BTreeSet::new();
    let mut edits = Vec::new();
    let mut rewritten = Vec::new();
    for (at, token) in tokens.iter().enumerate() {
        if !is_plus(token, sql) || visited.contains(&at) {
            continue;
        }
        let Some(chain) = chain_at(&tokens, sql, at) else {
            visited.insert(at);
            continue;
        };
        visited.extend(chain.operators.iter().copied());
        let text =
            |(start, end): (usize, usize)| &sql[tokens[start].range.start..tokens[end].range.end];
        if !chain.operands.iter().any(|o| is_text_literal(text(*o))) {
            continue;
        }
        edits.extend(chain.operators.iter().map(|&k| Edit {
            range: tokens[k].range.clone(),
            replacement: "||".to_owned(),
        }));
        let first = chain.operands.first()?;
        let last = chain.operands.last()?;
        rewritten.push(snippet(
            &sql[tokens[first.0].range.start..tokens[last.1].range.end],
        ));
    }
    if edits.is_empty() {
        return None;
    }
    let fixed_sql = apply_edits(sql, &edits)?;
    if sqlcheck::breaks_parse(sql, &fixed_sql, input.adapter) {
        return None;
    }
    let explanation = format!(
        "{} has no `+` for strings; `{}` joins strings with `+` in {}. SQL's string \
         concatenation is `||` (NULL when an operand is NULL, as `+` on strings is \
         elsewhere), so each `+` there became `||`.",
        warehouse_name(input.adapter),
        input.model_name,
        rewritten
            .iter()
            .map(|r| format!("`{r}`"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    Some(RuleFix {
        fixed_sql,
        explanation,
        rule: NAME,
        confidence: 0.85,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;

    fn run(sql: &str, message: &str, adapter: &str) -> Option<String> {
        string_concat(&RuleInput {
            error_class: ErrorClass::TypeMismatch,
            error_message: message,
            model_name: "m",
            model_sql: sql,
            adapter,
            ..RuleInput::default()
        })
        .map(|f| f.fixed_sql)
    }

    #[test]
    fn patterns_compile_and_read_string_types_only() {
        assert_eq!(compiled().len(), STRING_PLUS_PATTERNS.len());
        assert!(refuses_string_plus(
            "Binder Error: No function matches the given name and argument types '+(VARCHAR, STRING_LITERAL)'.",
            "duckdb"
        ));
        assert!(refuses_string_plus(
            "operator does not exist: character varying + unknown\nLINE 1: …",
            "postgres"
        ));
        assert!(refuses_string_plus(
            "operator is not unique: unknown + unknown",
            "postgres"
        ));
        assert!(!refuses_string_plus(
            "Binder Error: No function matches the given name and argument types '+(VARCHAR, INTEGER_LITERAL)'.",
            "duckdb"
        ));
        assert!(!refuses_string_plus(
            "operator does not exist: date + text",
            "postgres"
        ));
    }

    #[test]
    fn only_chains_with_a_text_literal_are_rewritten() {
        let message =
            "No function matches the given name and argument types '+(VARCHAR, STRING_LITERAL)'";
        assert_eq!(
            run(
                "select a + ' (' + b + ')' as label, x + 1 as y, p + q as r from t",
                message,
                "duckdb"
            )
            .as_deref(),
            Some("select a || ' (' || b || ')' as label, x + 1 as y, p + q as r from t")
        );
        // Columns only: which `+` is meant is not in the text.
        assert_eq!(run("select a + b from t", message, "duckdb"), None);
        // A numeric string may be arithmetic.
        assert_eq!(run("select a + '1' from t", message, "duckdb"), None);
        // A tighter operator next to the chain: refused.
        assert_eq!(run("select n * a + 'x' from t", message, "duckdb"), None);
        // A comparison next to it binds looser than either operator.
        assert_eq!(
            run("select a from t where b = a + '-x'", message, "duckdb").as_deref(),
            Some("select a from t where b = a || '-x'")
        );
    }
}
