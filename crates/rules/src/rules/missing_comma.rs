//! `missing_comma`: the warehouse's parser stopped inside a select list (or between two
//! CTEs), and one comma between two adjacent items is the edit that makes the model
//! parse.

use crate::error_spot::{parse_syntax_error, Echo};
use crate::rewrite::{apply_edits, Edit};
use crate::sqlcheck::parse_model;
use crate::structure::select_scopes;
use crate::tokens::{separated, tokenize, Token, TokenKind};
use crate::{RuleFix, RuleInput};

use super::{line_before, snippet, warehouse_name};

/// The rule's name.
pub(super) const NAME: &str = "missing_comma";

/// Words after which a select item cannot end: an expression continues after them.
const CONTINUES_EXPRESSION: &[&str] = &[
    "select",
    "distinct",
    "all",
    "as",
    "and",
    "or",
    "not",
    "case",
    "when",
    "then",
    "else",
    "in",
    "is",
    "like",
    "ilike",
    "between",
    "on",
    "by",
    "from",
    "where",
    "with",
    "over",
    "partition",
    "interval",
    "cast",
    "try_cast",
    "exists",
    "any",
    "some",
    "escape",
    "similar",
    "to",
    "at",
    "time",
    "zone",
    "filter",
    "within",
    "using",
    "join",
    "over",
];

/// Words that cannot start a select item.
const NOT_AN_ITEM_START: &[&str] = &[
    "from",
    "where",
    "group",
    "order",
    "having",
    "limit",
    "offset",
    "qualify",
    "window",
    "union",
    "intersect",
    "except",
    "as",
    "and",
    "or",
    "then",
    "else",
    "end",
    "when",
    "on",
    "join",
    "left",
    "right",
    "inner",
    "full",
    "cross",
    "is",
    "in",
    "like",
    "between",
    "over",
    "filter",
    "asc",
    "desc",
    "nulls",
];

/// Words that, last in an item after another token, are not an alias.
const NOT_AN_ALIAS: &[&str] = &["end", "null", "true", "false"];

/// Inserts the one missing comma between two adjacent select items.
///
/// Fires when all of these hold:
/// - the error is a parser error naming a token (`syntax error at or near "status"`);
/// - sqlparser, in the adapter's dialect, also fails on the model (Jinja masked);
/// - a candidate gap is directly before an occurrence of that token in SQL code — or,
///   when the token is `AS`, before the word in front of it (DuckDB reads `a b` as `a`
///   aliased `b`, so a missing comma in `a b as c` surfaces at the `as`), or before a
///   Jinja expression whose line matches the echoed line (a macro rendered the token);
/// - the gap is whitespace between two tokens of the same select list at the list's own
///   depth, the token before it can end an expression and the one after can start one —
///   or between the `)` closing one CTE (`a as (…)`) and the next `b as (`;
/// - the item before the comma does not end in an implicit alias (`x y` then a gap is
///   refused: with two commas missing, one comma would make `y` an alias of `x` and the
///   model would build, silently wrong);
/// - with the comma, the model parses; and exactly one gap does that (ties are broken
///   by the echoed line, or the rule refuses).
pub fn missing_comma(input: &RuleInput) -> Option<RuleFix> {
    let error = parse_syntax_error(input.error_message)?;
    let sql = input.model_sql;
    if parse_model(sql, input.adapter).is_ok() {
        // sqlparser disagrees with the warehouse: we cannot verify an edit.
        return None;
    }
    let tokens = tokenize(sql);
    let near_as = error.near.eq_ignore_ascii_case("as");
    let mut gaps: Vec<(usize, bool)> = Vec::new();
    for (j, t) in tokens.iter().enumerate() {
        if token_is(t, sql, &error.near) {
            if near_as {
                if j > 0 {
                    gaps.push((j - 1, false));
                }
            } else {
                gaps.push((j, true));
            }
        } else if t.kind == TokenKind::Jinja && echo_points_at(error.echo.as_ref(), sql, t) {
            gaps.push((j, false));
        }
    }
    gaps.dedup();

    let mut found: Vec<Candidate> = gaps
        .into_iter()
        .filter_map(|(j, direct)| try_gap(input, &tokens, j, direct))
        .collect();
    if found.len() > 1 {
        // Several gaps would parse: keep the one on the echoed line.
        found.retain(|c| echo_points_at(error.echo.as_ref(), sql, &tokens[c.gap]));
    }
    let [candidate] = <[Candidate; 1]>::try_from(found).ok()?;
    let warehouse = warehouse_name(input.adapter);
    let explanation = format!(
        "{warehouse} could not parse `{}` near `{}`: the {} `{}` and `{}` had no comma \
         between them. Added the comma; the model now parses.",
        input.model_name, error.near, candidate.what, candidate.before, candidate.after,
    );
    Some(RuleFix {
        fixed_sql: candidate.fixed_sql,
        explanation,
        rule: NAME,
        confidence: if candidate.direct { 0.9 } else { 0.8 },
    })
}

struct Candidate {
    /// Token index after the inserted comma.
    gap: usize,
    /// What the comma separates: `select items` or `CTEs`.
    what: &'static str,
    fixed_sql: String,
    before: String,
    after: String,
    /// The comma sits right before the token the warehouse named.
    direct: bool,
}

/// The comma inserted before token `j`, if every condition holds there.
fn try_gap(input: &RuleInput, tokens: &[Token], j: usize, direct: bool) -> Option<Candidate> {
    let sql = input.model_sql;
    if j == 0 || !separated(tokens, j) {
        return None;
    }
    let (prev, cur) = (&tokens[j - 1], &tokens[j]);
    let (what, before, after) = if let Some((before, after)) = between_ctes(tokens, sql, j) {
        ("CTEs", before, after)
    } else {
        if !can_end_expression(prev, sql) || !can_start_item(cur, sql) {
            return None;
        }
        let scope = select_scopes(tokens, sql)
            .into_iter()
            .rfind(|s| s.list.contains(&(j - 1)) && s.list.contains(&j) && cur.depth == s.depth)?;
        let item = scope.items.get(scope.item_containing(j)?)?.clone();
        if item.start >= j || !item.contains(&(j - 1)) {
            return None;
        }
        let head = &tokens[item.start..j];
        if head.iter().any(|t| t.kind == TokenKind::JinjaStatement)
            || ends_in_implicit_alias(head, sql)
        {
            return None;
        }
        // A relation is never a select item: `b form {{ ref('x') }}` is a misspelt
        // `from`, and a comma after `b` would parse as a select without one.
        if tokens[j..item.end].iter().any(|t| renders_relation(t, sql)) {
            return None;
        }
        let item_end = tokens[item.end - 1].range.end;
        (
            "select items",
            snippet(&sql[tokens[item.start].range.start..prev.range.end]),
            snippet(&sql[cur.range.start..item_end]),
        )
    };
    let fixed_sql = apply_edits(
        sql,
        &[Edit {
            range: prev.range.end..prev.range.end,
            replacement: ",".to_owned(),
        }],
    )?;
    parse_model(&fixed_sql, input.adapter).ok()?;
    Some(Candidate {
        gap: j,
        what,
        before,
        after,
        fixed_sql,
        direct,
    })
}

/// A Jinja expression that renders a relation name: `{{ ref('x') }}`, `{{ source(…) }}`.
fn renders_relation(token: &Token, sql: &str) -> bool {
    token.kind == TokenKind::Jinja && {
        let text = token.text(sql);
        text.contains("ref(") || text.contains("source(")
    }
}

/// When the gap before token `j` separates two CTE definitions — a `)` closing
/// `name as (…)` after `with` or a comma, then `name as (` — the two CTEs as
/// `name as (…)` for the explanation.
fn between_ctes(tokens: &[Token], sql: &str, j: usize) -> Option<(String, String)> {
    let close = &tokens[j - 1];
    if !close.is_punct(sql, ')') {
        return None;
    }
    let open = (0..j - 1)
        .rev()
        .find(|&i| tokens[i].depth == close.depth && tokens[i].is_punct(sql, '('))?;
    let defines = |name: usize| {
        tokens
            .get(name)
            .is_some_and(|t| matches!(t.kind, TokenKind::Word | TokenKind::QuotedIdent))
            && tokens
                .get(name + 1)
                .is_some_and(|t| t.is_keyword(sql, "as"))
            && tokens.get(name + 2).is_some_and(|t| t.is_punct(sql, '('))
    };
    let previous = open.checked_sub(2)?;
    let opened_by = tokens.get(previous.checked_sub(1)?)?;
    let previous_is_cte = defines(previous)
        && (opened_by.is_keyword(sql, "with")
            || opened_by.is_keyword(sql, "recursive")
            || opened_by.is_punct(sql, ','));
    if !previous_is_cte || !defines(j) {
        return None;
    }
    Some((
        format!("{} as (…)", tokens[previous].text(sql)),
        format!("{} as (…)", tokens[j].text(sql)),
    ))
}

/// True when `t` is the token the warehouse printed: a word compared without case, a
/// literal or quoted identifier exactly.
fn token_is(t: &Token, sql: &str, printed: &str) -> bool {
    match t.kind {
        TokenKind::Word => t.text(sql).eq_ignore_ascii_case(printed),
        TokenKind::Number | TokenKind::StringLit | TokenKind::QuotedIdent => t.text(sql) == printed,
        _ => false,
    }
}

fn is_word_in(t: &Token, sql: &str, words: &[&str]) -> bool {
    t.kind == TokenKind::Word && words.iter().any(|w| t.text(sql).eq_ignore_ascii_case(w))
}

fn can_end_expression(t: &Token, sql: &str) -> bool {
    match t.kind {
        TokenKind::Word => !is_word_in(t, sql, CONTINUES_EXPRESSION),
        TokenKind::Number | TokenKind::StringLit | TokenKind::QuotedIdent | TokenKind::Jinja => {
            true
        }
        TokenKind::Punct => matches!(t.text(sql), ")" | "]"),
        _ => false,
    }
}

fn can_start_item(t: &Token, sql: &str) -> bool {
    match t.kind {
        TokenKind::Word => !is_word_in(t, sql, NOT_AN_ITEM_START),
        TokenKind::Number | TokenKind::StringLit | TokenKind::QuotedIdent | TokenKind::Jinja => {
            true
        }
        TokenKind::Punct => t.text(sql) == "(",
        _ => false,
    }
}

/// True when the item's last two tokens are an expression and an alias without `AS`:
/// `order_id customer_id`, `count(*) n`, `'x' y`.
fn ends_in_implicit_alias(item: &[Token], sql: &str) -> bool {
    let [.., prev, last] = item else {
        return false;
    };
    let last_is_name = match last.kind {
        TokenKind::Word => !is_word_in(last, sql, NOT_AN_ALIAS),
        TokenKind::QuotedIdent | TokenKind::Jinja => true,
        _ => false,
    };
    let prev_ends_expression = match prev.kind {
        TokenKind::Word => !is_word_in(prev, sql, CONTINUES_EXPRESSION),
        TokenKind::Number | TokenKind::StringLit | TokenKind::QuotedIdent | TokenKind::Jinja => {
            true
        }
        TokenKind::Punct => matches!(prev.text(sql), ")" | "]"),
        _ => false,
    };
    last_is_name
        && prev_ends_expression
        && !(prev.kind == TokenKind::Word && prev.text(sql).eq_ignore_ascii_case("as"))
}

/// True when the echoed line shows the caret at token `t`: the model's text before `t`
/// on its line (Jinja-free) equals the echo's text before the caret, and the text after
/// `t` to the end of the line ends the echo (unless the echo was cut there).
pub(super) fn echo_points_at(echo: Option<&Echo>, sql: &str, t: &Token) -> bool {
    let Some(echo) = echo else {
        return false;
    };
    let Some(echo_before) = echo.before_caret() else {
        return false;
    };
    let Some(raw_before) = line_before(sql, t.range.start) else {
        return false;
    };
    if raw_before.trim() != echo_before.trim() {
        return false;
    }
    let line_end = sql[t.range.end..]
        .find('\n')
        .map_or(sql.len(), |i| t.range.end + i);
    let raw_after = sql[t.range.end..line_end].trim_end();
    let echo_line = echo.line.trim_end();
    if echo_line.ends_with("...") || raw_after.contains("{{") || raw_after.contains("{%") {
        return true;
    }
    echo_line.ends_with(raw_after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;

    fn implicit(item: &str) -> bool {
        ends_in_implicit_alias(&tokenize(item), item)
    }

    #[test]
    fn implicit_aliases() {
        assert!(implicit("order_id customer_id"));
        assert!(implicit("count(*) n"));
        assert!(implicit("'x' y"));
        assert!(!implicit("cast(x as date) as d"));
        assert!(!implicit("o.order_id"));
        assert!(!implicit("case when a then b end"));
        assert!(!implicit("x::int"));
        assert!(!implicit("status"));
    }

    fn fix(sql: &str, message: &str, adapter: &str) -> Option<String> {
        missing_comma(&RuleInput {
            error_class: ErrorClass::SqlSyntax,
            error_message: message,
            model_sql: sql,
            adapter,
            ..RuleInput::default()
        })
        .map(|f| f.fixed_sql)
    }

    #[test]
    fn sqlparser_must_agree_the_model_is_broken() {
        let message = "Parser Error: syntax error at or near \"status\"";
        assert_eq!(fix("select a, status from t", message, "duckdb"), None);
        assert_eq!(
            fix("select a as x status from t", message, "duckdb").as_deref(),
            Some("select a as x, status from t")
        );
    }

    #[test]
    fn only_select_lists_and_ctes() {
        // `where a = 1 status`: the gap is not in a select list.
        let message = "syntax error at or near \"status\"";
        assert_eq!(
            fix("select a from t where a = 1 status", message, "postgres"),
            None
        );
        // Inside a function's arguments: not a select item boundary.
        assert_eq!(
            fix("select coalesce(a b status) from t", message, "postgres"),
            None
        );
    }
}
