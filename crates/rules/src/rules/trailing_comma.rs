//! `trailing_comma`: a comma right before `FROM` (or another clause, or a closing
//! parenthesis) that the warehouse's parser rejects.

use crate::error_spot::parse_syntax_error;
use crate::rewrite::{apply_edits, Edit};
use crate::sqlcheck::parse_model;
use crate::tokens::{tokenize, TokenKind};
use crate::{RuleFix, RuleInput};

use super::warehouse_name;

/// The rule's name.
pub(super) const NAME: &str = "trailing_comma";

/// Tokens a list can end at; a comma right before one of them is a trailing comma.
const LIST_ENDS: &[&str] = &[
    "from",
    "where",
    "group",
    "having",
    "order",
    "limit",
    "qualify",
    "window",
    "union",
    "intersect",
    "except",
    // A comma after the last CTE: `with o as (…),\nselect …` (DuckDB accepts it).
    "select",
    ")",
];

/// Removes every comma that directly precedes the token the parser stopped at.
///
/// Fires when the error is a parser error at `FROM`, another clause keyword or `)`
/// (PostgreSQL: `syntax error at or near "from"`; DuckDB accepts trailing commas and
/// never reports this), sqlparser in the adapter's dialect also rejects the model, at
/// least one comma in SQL code is followed (across whitespace and comments only) by that
/// token at the comma's own depth, and removing those commas makes the model parse.
pub fn trailing_comma(input: &RuleInput) -> Option<RuleFix> {
    let error = parse_syntax_error(input.error_message)?;
    let near = error.near.to_ascii_lowercase();
    if !LIST_ENDS.contains(&near.as_str()) {
        return None;
    }
    let sql = input.model_sql;
    if parse_model(sql, input.adapter).is_ok() {
        return None;
    }
    let tokens = tokenize(sql);
    let edits: Vec<Edit> = tokens
        .windows(2)
        .filter(|pair| {
            let (comma, next) = (&pair[0], &pair[1]);
            let next_matches = if near == ")" {
                next.is_punct(sql, ')') && comma.depth == next.depth + 1
            } else {
                next.kind == TokenKind::Word
                    && next.text(sql).eq_ignore_ascii_case(&near)
                    && comma.depth == next.depth
            };
            comma.is_punct(sql, ',') && next_matches
        })
        .map(|pair| {
            // `(1, 2, )` → `(1, 2)`: the blank between the comma and `)` goes too.
            let gap = &sql[pair[0].range.end..pair[1].range.start];
            let end = if near == ")" && gap.chars().all(char::is_whitespace) {
                pair[1].range.start
            } else {
                pair[0].range.end
            };
            Edit {
                range: pair[0].range.start..end,
                replacement: String::new(),
            }
        })
        .collect();
    if edits.is_empty() {
        return None;
    }
    let fixed_sql = apply_edits(sql, &edits)?;
    parse_model(&fixed_sql, input.adapter).ok()?;
    let places = if edits.len() == 1 {
        "it".to_owned()
    } else {
        format!("all {} of them", edits.len())
    };
    let explanation = format!(
        "{} could not parse `{}` near `{}`: a list ended with a comma right before `{}`, \
         which this warehouse does not accept. Removed {places}; the model now parses.",
        warehouse_name(input.adapter),
        input.model_name,
        error.near,
        error.near,
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

    fn fix(sql: &str, adapter: &str) -> Option<String> {
        trailing_comma(&RuleInput {
            error_class: ErrorClass::SqlSyntax,
            error_message: "syntax error at or near \"from\"",
            model_sql: sql,
            adapter,
            ..RuleInput::default()
        })
        .map(|f| f.fixed_sql)
    }

    #[test]
    fn only_where_the_dialect_rejects_it() {
        assert_eq!(
            fix("select a, b, from t", "postgres").as_deref(),
            Some("select a, b from t")
        );
        // DuckDB accepts a trailing comma: that cannot be what failed.
        assert_eq!(fix("select a, b, from t", "duckdb"), None);
        // No comma before `from`: something else is wrong.
        assert_eq!(fix("select a b c from t", "postgres"), None);
    }
}
