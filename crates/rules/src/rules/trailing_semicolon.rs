//! `trailing_semicolon`: a model that ends its statement with `;`, or a query pasted
//! into a CTE with its `;` (`with x as (select … ;)`).
//!
//! dbt wraps a model's SQL in the statement that materializes it (`create view … as (`
//! *model* `);`, an ephemeral model in a CTE's parentheses), so a `;` at the end of the
//! model ends that statement inside its parenthesis and the warehouse stops at it:
//! `syntax error at or near ";"` (DuckDB and PostgreSQL alike). sqlparser reads the
//! model alone as one complete statement, so the parse check that guards the other syntax
//! rules cannot tell the two apart; what makes this rule sure is where the semicolons
//! stand — with nothing but comments and Jinja that renders nothing after them, or right
//! before a `)`, where no statement can end — and that the warehouse stopped at one of
//! them.

use crate::error_spot::{locate_echo, parse_syntax_error};
use crate::rewrite::{apply_edits, Edit};
use crate::sqlcheck::{mask_jinja, parse_model};
use crate::tokens::tokenize;
use crate::{RuleFix, RuleInput};

use super::warehouse_name;

/// The rule's name.
pub(super) const NAME: &str = "trailing_semicolon";

/// Removes the semicolons that end the model or a parenthesised query.
///
/// Fires when all of these hold:
/// - the error is a parser error at `;`;
/// - in the model's SQL (Jinja that renders nothing, such as `{% endif %}` or
///   `{{ config(…) }}`, left out), every `;` either ends it (only more `;`, blanks and
///   comments follow) or stands right before a `)` — a `;` between two statements is
///   not this rule's to remove, the model is then two statements;
/// - when the error echoes its line and that line is found in the model, its caret is on
///   one of those semicolons;
/// - without them, the model parses in the adapter's dialect.
pub fn trailing_semicolon(input: &RuleInput) -> Option<RuleFix> {
    let error = parse_syntax_error(input.error_message)?;
    if error.near != ";" {
        return None;
    }
    let sql = input.model_sql;
    // Masked, so that the tokens after the semicolons are exactly what renders: a
    // `{% endif %}` renders nothing, a `{{ macro() }}` may render more SQL.
    let masked = mask_jinja(sql);
    let tokens = tokenize(&masked);
    let is_semicolon = |i: usize| tokens.get(i).is_some_and(|t| t.is_punct(&masked, ';'));
    // A `;` that ends the model: every token after it is a `;` too.
    let ends_model = |i: usize| (i..tokens.len()).all(is_semicolon);
    let before_close = |i: usize| tokens.get(i + 1).is_some_and(|t| t.is_punct(&masked, ')'));
    let mut semicolons = Vec::new();
    for i in (0..tokens.len()).filter(|&i| is_semicolon(i)) {
        if !(ends_model(i) || before_close(i)) {
            return None;
        }
        semicolons.push(&tokens[i]);
    }
    if semicolons.is_empty() {
        return None;
    }
    if let Some(pointed) = error.echo.as_ref().and_then(|echo| locate_echo(sql, echo)) {
        let on_one = semicolons
            .iter()
            .any(|t| t.range.start < pointed.end && pointed.start < t.range.end);
        if !on_one {
            return None;
        }
    }
    let edits: Vec<Edit> = semicolons
        .iter()
        .map(|t| {
            // `from t ;` → `from t`: the blanks right before a semicolon on its line go
            // with it, a line break does not.
            let blanks = sql[..t.range.start].len()
                - sql[..t.range.start].trim_end_matches([' ', '\t']).len();
            Edit {
                range: t.range.start - blanks..t.range.end,
                replacement: String::new(),
            }
        })
        .collect();
    let fixed_sql = apply_edits(sql, &edits)?;
    parse_model(&fixed_sql, input.adapter).ok()?;
    let (what, it) = if semicolons.len() == 1 {
        ("a semicolon", "it")
    } else {
        ("semicolons", "them")
    };
    let explanation = format!(
        "{} could not parse `{}` near `;`: the model ended a statement with {what}, but \
         dbt wraps the model's SQL in its own statement (`create … as (` … `)`), so a \
         semicolon cuts that statement short. Removed {it}; the model now parses.",
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
        trailing_semicolon(&RuleInput {
            error_class: ErrorClass::SqlSyntax,
            error_message: message,
            model_name: "m",
            model_sql: sql,
            adapter: "duckdb",
            ..RuleInput::default()
        })
        .map(|f| f.fixed_sql)
    }

    const AT_SEMICOLON: &str = "Parser Error: syntax error at or near \";\"";

    #[test]
    fn semicolons_at_the_end_go() {
        assert_eq!(
            fix("select a\nfrom t;\n", AT_SEMICOLON).as_deref(),
            Some("select a\nfrom t\n")
        );
        assert_eq!(
            fix("select a from t ;;\n-- done\n{% endif %}\n", AT_SEMICOLON).as_deref(),
            Some("select a from t\n-- done\n{% endif %}\n")
        );
        assert_eq!(
            fix(
                "select a from t\n;\n{{ config(materialized='table') }}",
                AT_SEMICOLON
            )
            .as_deref(),
            Some("select a from t\n\n{{ config(materialized='table') }}")
        );
        // A query pasted into a CTE with its semicolon.
        assert_eq!(
            fix(
                "with x as (\n    select a from t;\n)\nselect a from x;",
                AT_SEMICOLON
            )
            .as_deref(),
            Some("with x as (\n    select a from t\n)\nselect a from x")
        );
    }

    #[test]
    fn other_semicolons_stay() {
        // Two statements: removing the first would not make one.
        assert_eq!(fix("select 1 as a;\nselect 2 as a", AT_SEMICOLON), None);
        assert_eq!(
            fix(
                "with x as (select 1 as a;)\nselect a from x;\nselect 2",
                AT_SEMICOLON
            ),
            None
        );
        // Jinja after it may render SQL.
        assert_eq!(
            fix("select a from t;\n{{ more_sql() }}", AT_SEMICOLON),
            None
        );
        // In a string or a comment it is no token.
        assert_eq!(fix("select ';' as a from t -- ;", AT_SEMICOLON), None);
        // The parser stopped elsewhere.
        assert_eq!(
            fix(
                "select a from t;",
                "Parser Error: syntax error at or near \"a\""
            ),
            None
        );
    }
}
