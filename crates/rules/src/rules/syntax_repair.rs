//! Two parser errors with one edit that makes the model parse, found by trying every
//! candidate near where the parser stopped and keeping the edit only when exactly one
//! candidate text parses:
//!
//! - `misspelt_keyword`: a clause or join keyword typed wrong (`form`, `gruop by`,
//!   `wehre`, `adn`): the word becomes the keyword one letter away from it;
//! - `unclosed_parenthesis`: one `(` more than `)` (`coalesce(a, 0 as x`): a `)` goes in
//!   right before or right after the token the parser stopped at; one `)` too many, and
//!   the parser stopped at it: it goes;
//! - `unclosed_case`: one `case` more than `end` (`case when … else 0 as flag`): `end`
//!   goes right before the token the parser stopped at.
//!
//! The parser is sqlparser in the adapter's dialect, Jinja masked. When it accepts the
//! model as it is, it disagrees with the warehouse, and nothing is proposed.

use std::collections::BTreeSet;

use crate::error_spot::{locate_echo, parse_syntax_error, SyntaxError};
use crate::rewrite::{apply_edits, Edit};
use crate::sqlcheck::parse_model;
use crate::tokens::{tokenize, Token, TokenKind};
use crate::{RuleFix, RuleInput};

use super::{snippet, warehouse_name};

/// The keyword rule's name.
pub(super) const KEYWORD_NAME: &str = "misspelt_keyword";
/// The parenthesis rule's name.
pub(super) const PARENTHESIS_NAME: &str = "unclosed_parenthesis";
/// The `case … end` rule's name.
pub(super) const CASE_NAME: &str = "unclosed_case";

/// Keywords a typo turns into a word the parser cannot place.
const KEYWORDS: &[&str] = &[
    "select",
    "from",
    "where",
    "group",
    "order",
    "having",
    "join",
    "inner",
    "left",
    "right",
    "outer",
    "full",
    "cross",
    "and",
    "not",
    "case",
    "when",
    "then",
    "else",
    "end",
    "union",
    "distinct",
    "limit",
    "with",
    "between",
    "like",
    "null",
    "qualify",
    "over",
    "partition",
    "using",
    "exists",
    "interval",
    "lateral",
    "natural",
    "offset",
    "window",
    "except",
    "intersect",
    "returning",
];

/// How many tokens before the one the parser stopped at may hold the typo: the parser
/// reads `b form t` as `b` aliased `form` and stops at `t`.
const LOOK_BACK: usize = 2;

/// The keywords within one edit (a transposition counts as one) of `word`; words shorter
/// than three letters are too often names. Which one is meant is left to the parser.
fn keywords_for(word: &str) -> Vec<&'static str> {
    let lower = word.to_ascii_lowercase();
    if lower.len() < 3 || KEYWORDS.contains(&lower.as_str()) {
        return Vec::new();
    }
    KEYWORDS
        .iter()
        .copied()
        .filter(|k| strsim::damerau_levenshtein(&lower, k) == 1)
        .collect()
}

/// `keyword` in `word`'s case: `FORM` → `FROM`, `Form` → `From`.
fn in_case_of(word: &str, keyword: &str) -> String {
    if word.chars().all(|c| !c.is_ascii_lowercase()) {
        keyword.to_ascii_uppercase()
    } else if word.starts_with(|c: char| c.is_ascii_uppercase()) {
        let mut out = keyword.to_owned();
        out[..1].make_ascii_uppercase();
        out
    } else {
        keyword.to_owned()
    }
}

/// The tokens the parser may have stopped at: those spelled like its `near` token — only
/// the one the echoed line points at, when the line is found in the model.
pub(super) fn stopped_at(tokens: &[Token], sql: &str, error: &SyntaxError) -> Vec<usize> {
    let spelled: Vec<usize> = tokens
        .iter()
        .enumerate()
        .filter(|(_, t)| match t.kind {
            TokenKind::Word => t.text(sql).eq_ignore_ascii_case(&error.near),
            TokenKind::Number
            | TokenKind::StringLit
            | TokenKind::QuotedIdent
            | TokenKind::Punct => t.text(sql) == error.near,
            _ => false,
        })
        .map(|(i, _)| i)
        .collect();
    let pointed = error.echo.as_ref().and_then(|echo| locate_echo(sql, echo));
    if let Some(pointed) = pointed {
        let aimed: Vec<usize> = spelled
            .iter()
            .copied()
            .filter(|&i| tokens[i].range.start < pointed.end && pointed.start < tokens[i].range.end)
            .collect();
        if !aimed.is_empty() {
            return aimed;
        }
    }
    spelled
}

/// The one candidate text that parses, with its edit; `None` for none or several.
pub(super) fn only_parsing(
    sql: &str,
    adapter: &str,
    candidates: Vec<Edit>,
) -> Option<(String, Edit)> {
    let mut parsing: Vec<(String, Edit)> = Vec::new();
    let mut seen = BTreeSet::new();
    for edit in candidates {
        let Some(text) = apply_edits(sql, std::slice::from_ref(&edit)) else {
            continue;
        };
        if seen.insert(text.clone()) && parse_model(&text, adapter).is_ok() {
            parsing.push((text, edit));
        }
    }
    match <[(String, Edit); 1]>::try_from(parsing) {
        Ok([one]) => Some(one),
        Err(_) => None,
    }
}

/// The parser error, the model's tokens, and whether sqlparser agrees the model is broken.
pub(super) fn broken_model<'a>(input: &RuleInput<'a>) -> Option<(SyntaxError, Vec<Token>)> {
    let error = parse_syntax_error(input.error_message)?;
    if parse_model(input.model_sql, input.adapter).is_ok() {
        return None;
    }
    Some((error, tokenize(input.model_sql)))
}

/// Replaces the one misspelt keyword near where the parser stopped.
///
/// Fires when the error is a parser error naming a token; sqlparser fails on the model
/// too; a word at that token or up to two tokens before it is one edit away from a
/// keyword (and is not itself a keyword, a name of a parent's column, or a word used
/// elsewhere in the model); and exactly one such replacement makes the model parse.
pub fn misspelt_keyword(input: &RuleInput) -> Option<RuleFix> {
    let (error, tokens) = broken_model(input)?;
    let sql = input.model_sql;
    let known_column = |word: &str| {
        input
            .parents
            .iter()
            .any(|p| p.columns.iter().any(|c| c.eq_ignore_ascii_case(word)))
    };
    let uses = |word: &str| {
        tokens
            .iter()
            .filter(|t| t.kind == TokenKind::Word && t.text(sql).eq_ignore_ascii_case(word))
            .count()
    };
    let mut candidates = Vec::new();
    for at in stopped_at(&tokens, sql, &error) {
        for token in &tokens[at.saturating_sub(LOOK_BACK)..=at] {
            if token.kind != TokenKind::Word {
                continue;
            }
            let word = token.text(sql);
            if known_column(word) || uses(word) > 1 {
                continue;
            }
            for keyword in keywords_for(word) {
                candidates.push(Edit {
                    range: token.range.clone(),
                    replacement: in_case_of(word, keyword),
                });
            }
        }
    }
    let (fixed_sql, edit) = only_parsing(sql, input.adapter, candidates)?;
    let wrong = &sql[edit.range.clone()];
    let explanation = format!(
        "{} could not parse `{}`: `{wrong}` is the keyword `{}` mistyped. With it spelt \
         right the model parses.",
        warehouse_name(input.adapter),
        input.model_name,
        edit.replacement,
    );
    Some(RuleFix {
        fixed_sql,
        explanation,
        rule: KEYWORD_NAME,
        confidence: 0.85,
    })
}

/// Balances the one parenthesis too many or too few where the parser stopped.
///
/// Fires when the error is a parser error naming a token; sqlparser fails on the model
/// too; the model's SQL has exactly one `(` more than `)` (or one `)` more than `(`);
/// and of the candidate edits — a `)` right before or right after a token the parser
/// may have stopped at, or a `)` at or right before that token removed — exactly one
/// makes the model parse.
pub fn unclosed_parenthesis(input: &RuleInput) -> Option<RuleFix> {
    let (error, tokens) = broken_model(input)?;
    let sql = input.model_sql;
    let count = |c: char| tokens.iter().filter(|t| t.is_punct(sql, c)).count();
    let (opens, closes) = (count('('), count(')'));
    let stopped = stopped_at(&tokens, sql, &error);
    let mut candidates = Vec::new();
    if opens == closes + 1 {
        for &at in &stopped {
            let token = &tokens[at];
            // Right after the token before, so `0 as` becomes `0) as`, not `0 )as`.
            let before = at
                .checked_sub(1)
                .map_or(token.range.start, |k| tokens[k].range.end);
            candidates.push(Edit {
                range: before..before,
                replacement: ")".into(),
            });
            candidates.push(Edit {
                range: token.range.end..token.range.end,
                replacement: ")".into(),
            });
        }
    } else if closes == opens + 1 {
        // The parser stops at the stray `)` or, when it reads `x)` as a finished call,
        // at the token after it (`0)) as` stops at `as`).
        for &at in &stopped {
            for k in [Some(at), at.checked_sub(1)].into_iter().flatten() {
                if tokens[k].is_punct(sql, ')') {
                    candidates.push(Edit {
                        range: tokens[k].range.clone(),
                        replacement: String::new(),
                    });
                }
            }
        }
    } else {
        return None;
    }
    let (fixed_sql, edit) = only_parsing(sql, input.adapter, candidates)?;
    let line_start = sql[..edit.range.start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = sql[edit.range.end..]
        .find('\n')
        .map_or(sql.len(), |i| edit.range.end + i);
    let line = snippet(&sql[line_start..line_end]);
    let what = if edit.replacement.is_empty() {
        "one `)` closes nothing; it is removed"
    } else {
        "one `(` is never closed; the `)` goes where the parser stopped"
    };
    let explanation = format!(
        "{} could not parse `{}`: {what}, in `{line}`. With that the model parses.",
        warehouse_name(input.adapter),
        input.model_name,
    );
    Some(RuleFix {
        fixed_sql,
        explanation,
        rule: PARENTHESIS_NAME,
        confidence: 0.75,
    })
}

/// Ends the one `case` left open where the parser stopped.
///
/// Fires when the error is a parser error naming a token; sqlparser fails on the model
/// too; the model's SQL has exactly one `case` more than `end`; and of the candidate
/// edits — ` end` right after the token before one the parser may have stopped at —
/// exactly one makes the model parse.
pub fn unclosed_case(input: &RuleInput) -> Option<RuleFix> {
    let (error, tokens) = broken_model(input)?;
    let sql = input.model_sql;
    let count = |word: &str| tokens.iter().filter(|t| t.is_keyword(sql, word)).count();
    if count("case") != count("end") + 1 {
        return None;
    }
    let upper = tokens
        .iter()
        .find(|t| t.is_keyword(sql, "case"))
        .is_some_and(|t| t.text(sql) == "CASE");
    let end_word = if upper { " END" } else { " end" };
    let candidates: Vec<Edit> = stopped_at(&tokens, sql, &error)
        .into_iter()
        .filter_map(|at| {
            let before = tokens.get(at.checked_sub(1)?)?.range.end;
            Some(Edit {
                range: before..before,
                replacement: end_word.to_owned(),
            })
        })
        .collect();
    let (fixed_sql, edit) = only_parsing(sql, input.adapter, candidates)?;
    let line_start = sql[..edit.range.start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = sql[edit.range.end..]
        .find('\n')
        .map_or(sql.len(), |i| edit.range.end + i);
    let explanation = format!(
        "{} could not parse `{}`: a `case` expression is never ended, in `{}`. `end` goes \
         where the parser stopped, and the model parses.",
        warehouse_name(input.adapter),
        input.model_name,
        snippet(&sql[line_start..line_end]),
    );
    Some(RuleFix {
        fixed_sql,
        explanation,
        rule: CASE_NAME,
        confidence: 0.8,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ErrorClass, ParentColumns};

    fn input<'a>(
        sql: &'a str,
        message: &'a str,
        parents: &'a [ParentColumns<'a>],
    ) -> RuleInput<'a> {
        RuleInput {
            error_class: ErrorClass::SqlSyntax,
            error_message: message,
            model_name: "m",
            model_sql: sql,
            adapter: "duckdb",
            parents,
            ..RuleInput::default()
        }
    }

    fn keyword(sql: &str, near: &str) -> Option<String> {
        let message = format!("Parser Error: syntax error at or near \"{near}\"");
        misspelt_keyword(&input(sql, &message, &[])).map(|f| f.fixed_sql)
    }

    fn parenthesis(sql: &str, near: &str) -> Option<String> {
        let message = format!("Parser Error: syntax error at or near \"{near}\"");
        unclosed_parenthesis(&input(sql, &message, &[])).map(|f| f.fixed_sql)
    }

    #[test]
    fn keywords_one_edit_away_are_restored() {
        // Each near-token is what DuckDB 1.4 reports for the statement.
        let cases = [
            ("select a, b form t", "t", "select a, b from t"),
            ("selct a, b from t", "selct", "select a, b from t"),
            (
                "select a, b from t wehre a > 1",
                "a",
                "select a, b from t where a > 1",
            ),
            (
                "select a, count(*) from t gruop by a",
                "by",
                "select a, count(*) from t group by a",
            ),
            (
                "select a from t oder by a",
                "by",
                "select a from t order by a",
            ),
            (
                "select a,\n b\nfrom t\nwhere a > 1\nadn b < 2",
                "adn",
                "select a,\n b\nfrom t\nwhere a > 1\nand b < 2",
            ),
            (
                "SELECT a FROM t WEHRE a > 1",
                "a",
                "SELECT a FROM t WHERE a > 1",
            ),
        ];
        for (sql, near, fixed) in cases {
            assert_eq!(keyword(sql, near).as_deref(), Some(fixed), "{sql}");
        }
    }

    #[test]
    fn names_are_not_taken_for_keywords() {
        // `form` is a column of the parent.
        let parents = [ParentColumns {
            name: "t",
            columns: &["form", "b"],
        }];
        let message = "Parser Error: syntax error at or near \"t\"";
        assert!(misspelt_keyword(&input("select a, b form t", message, &parents)).is_none());
        // A word used twice is a name.
        assert_eq!(keyword("select form, b form t", "t"), None);
        // A model that parses: sqlparser disagrees with the warehouse.
        assert_eq!(keyword("select a, b from t", "t"), None);
    }

    #[test]
    fn one_parenthesis_is_balanced_where_the_parser_stopped() {
        let cases = [
            (
                "select coalesce(a, 0 as x from t",
                "as",
                "select coalesce(a, 0) as x from t",
            ),
            (
                "select (a + b as x from t",
                "as",
                "select (a + b) as x from t",
            ),
            (
                "select a from t where (a > 1",
                "1",
                "select a from t where (a > 1)",
            ),
            ("select a) from t", ")", "select a from t"),
            (
                "select coalesce(a, 0)) as x,\n    b as y\nfrom t",
                "as",
                "select coalesce(a, 0) as x,\n    b as y\nfrom t",
            ),
        ];
        for (sql, near, fixed) in cases {
            assert_eq!(parenthesis(sql, near).as_deref(), Some(fixed), "{sql}");
        }
        let case = |sql: &str, near: &str| {
            let message = format!("Parser Error: syntax error at or near \"{near}\"");
            unclosed_case(&input(sql, &message, &[])).map(|f| f.fixed_sql)
        };
        assert_eq!(
            case(
                "select case when a > 1 then 1 else 0 as flag, b from t",
                "as"
            )
            .as_deref(),
            Some("select case when a > 1 then 1 else 0 end as flag, b from t")
        );
        assert_eq!(
            case("select sum(case when a > 1 then b else 0) as s from t", ")").as_deref(),
            Some("select sum(case when a > 1 then b else 0 end) as s from t")
        );
        assert_eq!(
            case(
                "select a,\n  CASE WHEN a > 1 THEN 1 ELSE 0\n  as flag\nfrom t",
                "as"
            )
            .as_deref(),
            Some("select a,\n  CASE WHEN a > 1 THEN 1 ELSE 0 END\n  as flag\nfrom t")
        );
        // Two missing: not one edit.
        assert_eq!(
            parenthesis("select coalesce(sum(a, 0 as x from t", "as"),
            None
        );
    }
}
