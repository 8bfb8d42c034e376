//! `dangling_connector`: an `and` or `or` with a condition on one side only — the
//! condition after it deleted or commented out (`where status = 'completed' and` right
//! before `group by`, a closing parenthesis or the end of the model), the one before it
//! (`where` then `-- a = 1` then `and b = 2`), or the connector typed twice
//! (`a > 0 and and b = 1`). The connector goes.
//!
//! What the lost condition said cannot be known, and nothing is invented: the condition
//! that remains is what the model can still mean, and the explanation asks the reviewer
//! to check that no condition was meant to stand there.

use crate::error_spot::{locate_echo, parse_syntax_error, SyntaxError};
use crate::rewrite::{apply_edits, Edit};
use crate::sqlcheck::{mask_jinja, parse_model};
use crate::tokens::{tokenize, Token, TokenKind};
use crate::{RuleFix, RuleInput};

use super::{snippet, warehouse_name};

/// The rule's name.
pub(super) const NAME: &str = "dangling_connector";

/// The connectors between two conditions.
const CONNECTORS: &[&str] = &["and", "or"];

/// Keywords that start the next clause (or a join) at the connector's depth: a
/// connector right before one has no condition after it.
const CLAUSE_STARTS: &[&str] = &[
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
    "join",
    "inner",
    "left",
    "right",
    "full",
    "cross",
    "natural",
];

/// Keywords a condition follows: a connector right after one has no condition before it.
const CONDITION_STARTS: &[&str] = &["where", "having", "qualify", "on", "when"];

/// Where a connector dangles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dangling {
    /// Nothing follows it before the next clause, a closing parenthesis or the end.
    AtEnd,
    /// Nothing precedes it since the clause began, or it repeats the connector before it.
    AtStart,
}

/// One connector to remove, and the token the warehouse stops at because of it
/// (`None`: the end of the model, where the parser meets dbt's closing parenthesis).
struct Candidate {
    at: usize,
    stop: Option<usize>,
    how: Dangling,
}

/// Removes the connectors that join a condition to nothing.
///
/// Fires when all of these hold:
/// - the error is a parser error naming a token, and sqlparser also rejects the model
///   (Jinja masked: both branches of an `{% if %}` kept, so a condition inside one counts
///   as present and the rule refuses);
/// - an `and` or `or` in SQL code is directly followed, at its depth, by a clause keyword
///   ([`CLAUSE_STARTS`], not a function call such as `left(…)`), by the `)` that closes
///   its parenthesis, by `;` or by the end of the model; or directly follows a keyword a
///   condition follows ([`CONDITION_STARTS`]), an opening parenthesis or the same
///   connector;
/// - the warehouse stopped where one of them makes it stop: at the token after a
///   dangling end (at `)` for the end of the model, which dbt's wrapper closes), at the
///   connector itself for a dangling start — and, when the echoed line is found in the
///   model, its caret is on that token;
/// - without every such connector, the model parses.
pub fn dangling_connector(input: &RuleInput) -> Option<RuleFix> {
    let error = parse_syntax_error(input.error_message)?;
    let sql = input.model_sql;
    if parse_model(sql, input.adapter).is_ok() {
        return None;
    }
    // Tokens of the masked text (same offsets): Jinja statements render nothing, so the
    // tokens around them are what the warehouse sees next to each other.
    let masked = mask_jinja(sql);
    let tokens = tokenize(&masked);
    let candidates = dangling_connectors(&tokens, &masked);
    if !candidates
        .iter()
        .any(|c| stopped_here(&error, sql, &tokens, &masked, c.stop))
    {
        return None;
    }
    let edits: Vec<Edit> = candidates
        .iter()
        .map(|c| removal(sql, tokens[c.at].range.clone()))
        .collect();
    let fixed_sql = apply_edits(sql, &edits)?;
    parse_model(&fixed_sql, input.adapter).ok()?;
    let first = candidates.first()?;
    let word = tokens[first.at].text(sql);
    let line_start = sql[..tokens[first.at].range.start]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let line_end = sql[tokens[first.at].range.end..]
        .find('\n')
        .map_or(sql.len(), |i| tokens[first.at].range.end + i);
    let line = snippet(&sql[line_start..line_end]);
    let side = match first.how {
        Dangling::AtEnd => "with no condition after it",
        Dangling::AtStart => "with no condition before it",
    };
    let what = if candidates.len() == 1 {
        format!("`{word}` stood {side}, in `{line}`. Removed it")
    } else {
        format!(
            "{} connectors (`and`/`or`) joined a condition to nothing, the first in \
             `{line}`. Removed them",
            candidates.len()
        )
    };
    let explanation = format!(
        "{} could not parse `{}` near `{}`: {what}; the model now parses. If a condition \
         was meant to stand there, it has to be written back.",
        warehouse_name(input.adapter),
        input.model_name,
        error.near,
    );
    Some(RuleFix {
        fixed_sql,
        explanation,
        rule: NAME,
        confidence: 0.85,
    })
}

/// Every connector that joins a condition to nothing, in order.
fn dangling_connectors(tokens: &[Token], masked: &str) -> Vec<Candidate> {
    let is_connector = |t: &Token| CONNECTORS.iter().any(|w| t.is_keyword(masked, w));
    let mut found = Vec::new();
    for (at, token) in tokens.iter().enumerate() {
        if !is_connector(token) {
            continue;
        }
        let depth = token.depth;
        let next = tokens.get(at + 1);
        let at_end = match next {
            None => true,
            Some(next) => {
                next.is_punct(masked, ';')
                    || (next.is_punct(masked, ')') && next.depth + 1 == depth)
                    || (next.depth == depth
                        && CLAUSE_STARTS.iter().any(|k| next.is_keyword(masked, k))
                        // `and left(name, 1) = 'a'` calls a function.
                        && !tokens.get(at + 2).is_some_and(|t| t.is_punct(masked, '(')))
            }
        };
        if at_end {
            found.push(Candidate {
                at,
                stop: next.map(|_| at + 1),
                how: Dangling::AtEnd,
            });
            continue;
        }
        let Some(before) = at.checked_sub(1).map(|i| &tokens[i]) else {
            continue;
        };
        let at_start = (before.depth == depth
            && CONDITION_STARTS
                .iter()
                .any(|k| before.is_keyword(masked, k)))
            || (before.is_punct(masked, '(') && before.depth + 1 == depth)
            || (before.depth == depth
                && before.kind == TokenKind::Word
                && before.text(masked).eq_ignore_ascii_case(token.text(masked)));
        if at_start {
            found.push(Candidate {
                at,
                stop: Some(at),
                how: Dangling::AtStart,
            });
        }
    }
    found
}

/// True when the warehouse's parser stopped at `stop` (`None`: the end of the model,
/// where it meets the `)` of dbt's wrapper).
fn stopped_here(
    error: &SyntaxError,
    sql: &str,
    tokens: &[Token],
    masked: &str,
    stop: Option<usize>,
) -> bool {
    let pointed = error.echo.as_ref().and_then(|echo| locate_echo(sql, echo));
    match stop {
        // The echoed line is then dbt's own `  );` (which a lone `)` of the model, say
        // in `ref('x')`, may seem to locate); any other line found in the model means
        // the parser stopped in the model, not at its end.
        None => {
            let wrapper_close = error
                .echo
                .as_ref()
                .is_some_and(|echo| matches!(echo.line.trim(), ")" | ");"));
            error.near == ")" && (wrapper_close || pointed.is_none())
        }
        Some(i) => {
            let token = &tokens[i];
            let spelled = if token.kind == TokenKind::Word {
                token.text(masked).eq_ignore_ascii_case(&error.near)
            } else {
                token.text(masked) == error.near
            };
            spelled
                && pointed.is_none_or(|p| token.range.start < p.end && p.start < token.range.end)
        }
    }
}

/// The edit that removes the word at `range`, with the blanks on one side of it: the
/// whole line when the word stands alone on it, else the blanks after it (`where and a`
/// → `where a`), else those before it (`a = 1 and` → `a = 1`).
fn removal(sql: &str, range: std::ops::Range<usize>) -> Edit {
    let before = &sql[..range.start];
    let left = before.trim_end_matches([' ', '\t']).len();
    let after = &sql[range.end..];
    let right = range.end + (after.len() - after.trim_start_matches([' ', '\t']).len());
    let line_starts = left == 0 || sql[..left].ends_with('\n');
    let line_ends = right == sql.len() || sql[right..].starts_with('\n');
    let range = if line_starts && line_ends {
        left..(right + 1).min(sql.len())
    } else if right > range.end && !line_ends {
        range.start..right
    } else {
        left..range.end
    };
    Edit {
        range,
        replacement: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;

    fn fix(sql: &str, message: &str) -> Option<String> {
        dangling_connector(&RuleInput {
            error_class: ErrorClass::SqlSyntax,
            error_message: message,
            model_name: "m",
            model_sql: sql,
            adapter: "postgres",
            ..RuleInput::default()
        })
        .map(|f| f.fixed_sql)
    }

    fn near(token: &str) -> String {
        format!("syntax error at or near \"{token}\"")
    }

    #[test]
    fn a_connector_before_the_next_clause_or_the_end() {
        assert_eq!(
            fix(
                "select a from t\nwhere a = 1 and\ngroup by a",
                &near("group")
            )
            .as_deref(),
            Some("select a from t\nwhere a = 1\ngroup by a")
        );
        assert_eq!(
            fix("select a from t\nwhere a = 1\n  or\n", &near(")")).as_deref(),
            Some("select a from t\nwhere a = 1\n")
        );
        assert_eq!(
            fix(
                "with x as (select a from t where a = 1 or)\nselect a from x",
                &near(")")
            )
            .as_deref(),
            Some("with x as (select a from t where a = 1)\nselect a from x")
        );
    }

    #[test]
    fn a_connector_with_nothing_before_it() {
        assert_eq!(
            fix(
                "select a from t\nwhere\n    -- b = 2\n    and a = 1",
                &near("and")
            )
            .as_deref(),
            Some("select a from t\nwhere\n    -- b = 2\n    a = 1")
        );
        assert_eq!(
            fix("select a from t where a = 1 and and b = 2", &near("and")).as_deref(),
            Some("select a from t where a = 1 and b = 2")
        );
    }

    #[test]
    fn refusals() {
        // A function named like a join keyword follows: the connector has its condition.
        assert_eq!(
            fix(
                "select a from t where a = 1 and left(b, 1) = 'x' c",
                &near("c")
            ),
            None
        );
        // The parser stopped somewhere else.
        assert_eq!(
            fix("select a from t\nwhere a = 1 and\ngroup by a", &near("a")),
            None
        );
        // `between 1 and` lost its upper bound: removing `and` does not make it parse.
        assert_eq!(
            fix(
                "select a from t\nwhere a between 1 and\ngroup by a",
                &near("group")
            ),
            None
        );
        // `and or`: which one was meant is not known.
        assert_eq!(
            fix("select a from t where a = 1 and or b = 2", &near("or")),
            None
        );
        // A condition inside an `{% if %}` follows: it renders on some runs.
        assert_eq!(
            fix(
                "select a from t\nwhere a = 1 and\n{% if x %} b = 2 {% endif %}",
                &near(")")
            ),
            None
        );
    }
}
