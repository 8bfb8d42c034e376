//! `stray_comma`: a comma that no list can hold, at the comma the parser stopped at
//! (`syntax error at or near ","`): a second comma right after another (`count(*) as
//! n,,`), or a comma that ends a clause without a list (`where status = 'completed',`
//! before `group by`, the condition after it deleted). It goes.
//!
//! Unlike a missing comma there is nothing to guess: no SQL list has an empty element,
//! and a comma right before a clause keyword separates nothing. The comma after a select
//! list's last item is `trailing_comma`'s (PostgreSQL stops at the keyword after it;
//! DuckDB accepts it).

use crate::error_spot::parse_syntax_error;
use crate::rewrite::{apply_edits, Edit};
use crate::sqlcheck::parse_model;
use crate::tokens::{tokenize, Token};
use crate::{RuleFix, RuleInput};

use super::missing_comma::echo_points_at;
use super::warehouse_name;

/// The rule's name.
pub(super) const NAME: &str = "stray_comma";

/// Keywords that start a clause (or a set operation): a comma right before one ends the
/// clause before it with nothing.
const CLAUSE_STARTS: &[&str] = &[
    "from",
    "where",
    "group",
    "having",
    "qualify",
    "window",
    "order",
    "limit",
    "offset",
    "union",
    "intersect",
    "except",
];

/// Removes the commas no list can hold.
///
/// Fires when all of these hold:
/// - the error is a parser error at a comma (`syntax error at or near ","`, DuckDB and
///   PostgreSQL alike);
/// - sqlparser, in the adapter's dialect, also rejects the model (Jinja masked);
/// - the model has, in SQL code, commas directly after another comma at the same depth
///   (blanks and comments between them at most: a Jinja tag between may render
///   something) — every one of them goes, each would fail the next run — and, when the
///   error echoes its line, one of them is the comma its caret is on;
/// - or the echoed caret is on a comma directly followed by a clause keyword
///   ([`CLAUSE_STARTS`]) at its depth, a closing parenthesis, a `;` or the end of the
///   model — that comma goes;
/// - without them, the model parses.
pub fn stray_comma(input: &RuleInput) -> Option<RuleFix> {
    let error = parse_syntax_error(input.error_message)?;
    if error.near != "," {
        return None;
    }
    let sql = input.model_sql;
    if parse_model(sql, input.adapter).is_ok() {
        // sqlparser disagrees with the warehouse: we cannot verify an edit.
        return None;
    }
    let tokens = tokenize(sql);
    let is_comma = |t: &Token| t.is_punct(sql, ',');
    let pointed = |t: &Token| echo_points_at(error.echo.as_ref(), sql, t);
    // Each comma that directly follows another at its depth.
    let doubled: Vec<usize> = (1..tokens.len())
        .filter(|&i| {
            is_comma(&tokens[i])
                && is_comma(&tokens[i - 1])
                && tokens[i].depth == tokens[i - 1].depth
        })
        .collect();
    let mut edits: Vec<Edit> = Vec::new();
    let what = if !doubled.is_empty()
        && (error.echo.is_none() || doubled.iter().any(|&i| pointed(&tokens[i])))
    {
        // From the end of the comma before to the end of the extra one: `n,,` → `n,`,
        // `a, , b` → `a, b`.
        edits.extend(doubled.iter().map(|&i| Edit {
            range: tokens[i - 1].range.end..tokens[i].range.end,
            replacement: String::new(),
        }));
        "two commas followed each other with nothing between them"
    } else {
        let ends_clause = |i: usize| {
            let comma = &tokens[i];
            match tokens.get(i + 1) {
                None => true,
                Some(next) => {
                    next.is_punct(sql, ';')
                        || (next.is_punct(sql, ')') && next.depth + 1 == comma.depth)
                        || (next.depth == comma.depth
                            && CLAUSE_STARTS.iter().any(|k| next.is_keyword(sql, k)))
                }
            }
        };
        let stray: Vec<usize> = (0..tokens.len())
            .filter(|&i| is_comma(&tokens[i]) && pointed(&tokens[i]) && ends_clause(i))
            .collect();
        let [at] = stray[..] else {
            return None;
        };
        edits.push(Edit {
            range: tokens[at].range.clone(),
            replacement: String::new(),
        });
        "a comma ended a clause with nothing after it"
    };
    let fixed_sql = apply_edits(sql, &edits)?;
    parse_model(&fixed_sql, input.adapter).ok()?;
    let places = if edits.len() == 1 {
        "it".to_owned()
    } else {
        format!("the {} extra ones", edits.len())
    };
    let explanation = format!(
        "{} could not parse `{}` near `,`: {what}. Removed {places}; the model now parses.",
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
        stray_comma(&RuleInput {
            error_class: ErrorClass::SqlSyntax,
            error_message: message,
            model_sql: sql,
            adapter: "postgres",
            ..RuleInput::default()
        })
        .map(|f| f.fixed_sql)
    }

    #[test]
    fn doubled_commas_in_code_only() {
        let message = "syntax error at or near \",\"";
        assert_eq!(
            fix("select a, , b,,, c from t", message).as_deref(),
            Some("select a, b, c from t")
        );
        // In a string, or split by Jinja that may render a column: not a doubled comma.
        assert_eq!(fix("select a, ',,' as b c from t", message), None);
        assert_eq!(fix("select a, {{ extra }}, b c from t", message), None);
        // A parser error at another token.
        assert_eq!(
            fix("select a,, b from t", "syntax error at or near \"b\""),
            None
        );
    }

    #[test]
    fn the_echoed_line_must_be_the_stray_comma() {
        let message = "syntax error at or near \",\"\nLINE 3:     c, d\n             ^";
        assert_eq!(fix("select\n    a,, b,\n    c, d e\nfrom t", message), None);
    }

    #[test]
    fn a_comma_that_ends_a_clause() {
        let message = "syntax error at or near \",\"\nLINE 2: where a = 1,\n                   ^";
        assert_eq!(
            fix(
                "select a, count(*) from t\nwhere a = 1,\ngroup by a",
                message
            )
            .as_deref(),
            Some("select a, count(*) from t\nwhere a = 1\ngroup by a")
        );
        // Followed by more of the clause: an `and` or `or` lost, not a stray comma.
        let message =
            "syntax error at or near \",\"\nLINE 2: where a = 1, b = 2\n                   ^";
        assert_eq!(fix("select a from t\nwhere a = 1, b = 2", message), None);
        // Without an echo nothing says which comma the parser meant.
        assert_eq!(
            fix(
                "select a, count(*) from t\nwhere a = 1,\ngroup by a",
                "syntax error at or near \",\""
            ),
            None
        );
    }
}
