//! Two slips of the hand that stop the parser, each fixed by one edit next to where it
//! stopped, kept only when exactly one candidate text parses (sqlparser in the adapter's
//! dialect, Jinja masked — the same arbiter as [`super::syntax_repair`]):
//!
//! - `doubled_keyword`: the same keyword written twice in a row (`as as`, `from from`,
//!   `group group by`, `on on`): one copy goes;
//! - `using_without_parentheses`: `join … using customer_id`, which every warehouse
//!   wants as `using (customer_id)`: the column list gets its parentheses.
//!
//! Strings, quoted names, comments and Jinja are never words here: the tokenizer keeps
//! them apart, so `'from from'`, `"as"` or `{% if %}` between two words never look
//! doubled.

use crate::error_spot::parse_syntax_error;
use crate::rewrite::Edit;
use crate::tokens::{tokenize, Token, TokenKind};
use crate::{RuleFix, RuleInput};

use super::syntax_repair::{broken_model, only_parsing, stopped_at};
use super::{snippet, warehouse_name};

/// The doubled keyword rule's name.
pub(super) const DOUBLED_NAME: &str = "doubled_keyword";
/// The `using` rule's name.
pub(super) const USING_NAME: &str = "using_without_parentheses";

/// Keywords that never legitimately follow themselves. `not` is missing (`not not x` is
/// a condition), and so is `case` (a simple `case` may switch on a `case` expression);
/// `end end` closes two nested cases, which the parser check tells apart. `and and` and
/// `or or` are `dangling_connector`'s, which fixes them the same way.
const DOUBLED: &[&str] = &[
    "select", "from", "where", "group", "order", "by", "having", "join", "on", "using", "as",
    "then", "else", "when", "end", "with", "union", "limit", "left", "right", "inner", "full",
    "cross", "distinct", "qualify",
];

/// Words that end the column list of a `using` written without parentheses: the next
/// clause or join. Anything else after the names (`using sample 10%`) is not a join's
/// `using`, and the rule refuses.
const AFTER_USING: &[&str] = &[
    "where",
    "group",
    "order",
    "having",
    "qualify",
    "window",
    "limit",
    "offset",
    "union",
    "except",
    "intersect",
    "join",
    "left",
    "right",
    "inner",
    "full",
    "cross",
    "natural",
    "positional",
    "asof",
    "anti",
    "semi",
    "lateral",
];

/// Removes the one keyword written twice where the parser stopped.
///
/// Fires when the error is a parser error naming a token; a keyword that never follows
/// itself does, with only whitespace between, at the
/// token the parser stopped at or the one before it (`as as x` stops at `x`, `from from`
/// at the second `from`); and removing exactly one such copy makes the model parse.
pub fn doubled_keyword(input: &RuleInput) -> Option<RuleFix> {
    // Not `broken_model`: sqlparser reads `from from t` as a table named `from` and
    // accepts it. The warehouse stopping at a doubled keyword is evidence enough; the
    // edited model must still parse.
    let error = parse_syntax_error(input.error_message)?;
    let sql = input.model_sql;
    let tokens = tokenize(sql);
    let mut candidates = Vec::new();
    for at in stopped_at(&tokens, sql, &error) {
        for second in [at.checked_sub(1), Some(at)].into_iter().flatten() {
            let Some(first) = second.checked_sub(1) else {
                continue;
            };
            let (a, b) = (&tokens[first], &tokens[second]);
            let doubled = a.kind == TokenKind::Word
                && b.kind == TokenKind::Word
                && a.text(sql).eq_ignore_ascii_case(b.text(sql))
                && DOUBLED.iter().any(|k| a.is_keyword(sql, k))
                // A comment between the two is someone's words; leave it be.
                && sql[a.range.end..b.range.start].trim().is_empty();
            if doubled {
                // The second copy and the blank before it: the first keeps its place.
                candidates.push(Edit {
                    range: a.range.end..b.range.end,
                    replacement: String::new(),
                });
            }
        }
    }
    let (fixed_sql, edit) = only_parsing(sql, input.adapter, candidates)?;
    let word = sql[edit.range.clone()].trim();
    let explanation = format!(
        "{} could not parse `{}`: `{word}` is written twice in a row, in `{}`. With one \
         copy removed the model parses.",
        warehouse_name(input.adapter),
        input.model_name,
        snippet(line_of(sql, edit.range.start)),
    );
    Some(RuleFix {
        fixed_sql,
        explanation,
        rule: DOUBLED_NAME,
        confidence: 0.85,
    })
}

/// Puts the column list of a join's `using` in parentheses.
///
/// Fires when the error is a parser error naming a token; sqlparser fails on the model
/// too; the token before one the parser stopped at is `using`, not followed by `(`;
/// after it come names separated by commas, then the end of the model, `)`, `;`, a
/// Jinja statement or a clause or join keyword; and the names in parentheses make the
/// model parse, the only candidate that does.
pub fn using_without_parentheses(input: &RuleInput) -> Option<RuleFix> {
    let (error, tokens) = broken_model(input)?;
    let sql = input.model_sql;
    let candidates: Vec<Edit> = stopped_at(&tokens, sql, &error)
        .into_iter()
        .filter_map(|at| {
            let using = at.checked_sub(1)?;
            if !tokens[using].is_keyword(sql, "using") {
                return None;
            }
            let last = using_columns_end(&tokens, sql, at)?;
            let range = tokens[at].range.start..tokens[last].range.end;
            Some(Edit {
                replacement: format!("({})", &sql[range.clone()]),
                range,
            })
        })
        .collect();
    let (fixed_sql, edit) = only_parsing(sql, input.adapter, candidates)?;
    let explanation = format!(
        "{} could not parse `{}`: a join's `using` takes its columns in parentheses, in \
         `{}`. With `{}` the model parses.",
        warehouse_name(input.adapter),
        input.model_name,
        snippet(line_of(sql, edit.range.start)),
        edit.replacement,
    );
    Some(RuleFix {
        fixed_sql,
        explanation,
        rule: USING_NAME,
        confidence: 0.85,
    })
}

/// The index of the last name of the list `a, b, c` starting at `first`, when what
/// follows it ends a `using` list; `None` otherwise.
fn using_columns_end(tokens: &[Token], sql: &str, first: usize) -> Option<usize> {
    let is_clause = |t: &Token| AFTER_USING.iter().any(|k| t.is_keyword(sql, k));
    let is_name = |t: &Token| {
        t.kind == TokenKind::QuotedIdent
            || (t.kind == TokenKind::Word && !is_clause(t) && !t.is_keyword(sql, "on"))
    };
    if !is_name(tokens.get(first)?) {
        return None;
    }
    let mut last = first;
    while tokens.get(last + 1).is_some_and(|t| t.is_punct(sql, ','))
        && tokens.get(last + 2).is_some_and(is_name)
    {
        last += 2;
    }
    let ends = match tokens.get(last + 1) {
        None => true,
        Some(t) => {
            t.is_punct(sql, ')')
                || t.is_punct(sql, ';')
                || t.kind == TokenKind::JinjaStatement
                || is_clause(t)
        }
    };
    ends.then_some(last)
}

/// The line of `sql` holding byte `at`, for explanations.
fn line_of(sql: &str, at: usize) -> &str {
    let start = sql[..at].rfind('\n').map_or(0, |i| i + 1);
    let end = sql[at..].find('\n').map_or(sql.len(), |i| at + i);
    &sql[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;

    fn input<'a>(sql: &'a str, message: &'a str) -> RuleInput<'a> {
        RuleInput {
            error_class: ErrorClass::SqlSyntax,
            error_message: message,
            model_name: "m",
            model_sql: sql,
            adapter: "duckdb",
            ..RuleInput::default()
        }
    }

    fn message(near: &str) -> String {
        format!("Parser Error: syntax error at or near \"{near}\"")
    }

    fn doubled(sql: &str, near: &str) -> Option<String> {
        doubled_keyword(&input(sql, &message(near))).map(|f| f.fixed_sql)
    }

    fn using(sql: &str, near: &str) -> Option<String> {
        using_without_parentheses(&input(sql, &message(near))).map(|f| f.fixed_sql)
    }

    #[test]
    fn doubled_keywords_lose_one_copy() {
        // Each near-token is where DuckDB stops for the statement.
        let cases = [
            (
                "select min(a) as as first_a from t",
                "first_a",
                "select min(a) as first_a from t",
            ),
            ("select a\nfrom from t", "from", "select a\nfrom t"),
            (
                "select a, count(*) from t group group by a",
                "group",
                "select a, count(*) from t group by a",
            ),
            (
                "select a, count(*) from t group by by a",
                "a",
                "select a, count(*) from t group by a",
            ),
            (
                "select a from t join u on on t.a = u.a",
                "on",
                "select a from t join u on t.a = u.a",
            ),
            (
                "select a from t left join join u on t.a = u.a",
                "u",
                "select a from t left join u on t.a = u.a",
            ),
            (
                "SELECT a FROM t WHERE WHERE a > 1",
                "WHERE",
                "SELECT a FROM t WHERE a > 1",
            ),
        ];
        for (sql, near, fixed) in cases {
            assert_eq!(doubled(sql, near).as_deref(), Some(fixed), "{sql}");
        }
    }

    #[test]
    fn legitimate_repetitions_are_left_alone() {
        // A word inside a string, a quoted name, a comment between two copies: never a
        // doubled keyword. The model stays broken elsewhere (`form`).
        assert_eq!(
            doubled("select 'from from' as \"as\" as x form t", "t"),
            None
        );
        assert_eq!(doubled("select a as /* as */ as x from t", "x"), None);
        // `not not` is a condition: not in the list.
        assert_eq!(doubled("select a from t where not not a b", "b"), None);
        // Removing one copy does not make the model parse: a second slip further on.
        assert_eq!(
            doubled("select min(a) as as x, max(a) as as y from t", "x"),
            None
        );
        // No doubled keyword where the parser stopped.
        assert_eq!(doubled("select a as x from t", "x"), None);
    }

    #[test]
    fn two_parsing_candidates_are_refused() {
        // Three `end`s where two close the nested cases: removing the second or the
        // third both parse, and they leave different texts (the blanks differ).
        let sql = "select case when a then case when b then 1 end  end\nend as x from t";
        assert_eq!(doubled(sql, "end"), None);
    }

    #[test]
    fn the_rest_of_the_model_is_kept_byte_for_byte() {
        let sql = "{{ config(materialized='table') }}\n-- note: from from\nselect\n    a,   -- a\n    min(b) as  as first_b\nfrom {{ ref('t') }}   where c = 'as as'\n";
        let fixed = doubled(sql, "first_b");
        assert_eq!(
            fixed.as_deref(),
            Some("{{ config(materialized='table') }}\n-- note: from from\nselect\n    a,   -- a\n    min(b) as first_b\nfrom {{ ref('t') }}   where c = 'as as'\n")
        );
    }

    #[test]
    fn using_gets_its_parentheses() {
        let cases = [
            (
                "select * from t left join u using a",
                "a",
                "select * from t left join u using (a)",
            ),
            (
                "select * from t join u using a, b\nwhere a > 1",
                "a",
                "select * from t join u using (a, b)\nwhere a > 1",
            ),
            (
                "with x as (select * from t join u USING a) select * from x",
                "a",
                "with x as (select * from t join u USING (a)) select * from x",
            ),
            (
                "select * from t join u using \"A\" join v on v.a = t.a",
                "\"A\"",
                "select * from t join u using (\"A\") join v on v.a = t.a",
            ),
        ];
        for (sql, near, fixed) in cases {
            assert_eq!(using(sql, near).as_deref(), Some(fixed), "{sql}");
        }
    }

    #[test]
    fn using_refuses_what_is_not_a_column_list() {
        // Something other than a clause after the names.
        assert_eq!(using("select * from t join u using a b", "a"), None);
        // Jinja renders to something unknown.
        assert_eq!(using("select * from t join u using {{ k }}", "{{"), None);
        // Already in parentheses: something else is wrong.
        assert_eq!(using("select * from t join u using (a) b c", "b"), None);
    }
}
