//! `missing_group_by`: a plainly selected column is neither grouped nor aggregated, and
//! the query it sits in already has a `GROUP BY` to add it to.

use std::sync::OnceLock;

use regex::Regex;

use crate::rewrite::{apply_edits, Edit};
use crate::sqlcheck::parse_model;
use crate::structure::{select_scopes, split_commas, ClauseKind, SelectScope};
use crate::tokens::{tokenize, Token, TokenKind};
use crate::{RuleFix, RuleInput};

use super::{column_ref, ColumnRef};

/// The rule's name.
pub(super) const NAME: &str = "missing_group_by";

/// The column named by `column "x" must appear in the GROUP BY clause …` (DuckDB and
/// PostgreSQL word it alike; PostgreSQL qualifies it: `"s.city"`, `"stores.city"`).
pub fn parse_group_by_column(message: &str) -> Option<(Option<String>, String)> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    let re = RE
        .get_or_init(|| {
            Regex::new(r#"column "(?P<column>[^"]+)" must appear in the GROUP BY clause"#).ok()
        })
        .as_ref()?;
    let raw = re.captures(message)?.name("column")?.as_str();
    Some(match raw.rsplit_once('.') {
        Some((qualifier, name)) => (Some(qualifier.to_owned()), name.to_owned()),
        None => (None, raw.to_owned()),
    })
}

/// Adds the column to the `GROUP BY` of the one query that selects it plainly.
///
/// Fires when exactly one select item in the whole model is a plain reference to the
/// named column (`city`, `s.city`, `s.city as town`; with PostgreSQL's qualifier, one
/// that agrees with it), in a select that has a `GROUP BY` at its own level which does
/// not already group it, is not `GROUP BY ALL` and uses no `ROLLUP`/`CUBE`/`GROUPING
/// SETS`. The reference is appended as written (`, s.city`); when every grouping key is
/// a position (`group by 1, 2`), the item's position is added instead — only if no
/// earlier item could expand to several columns (`*`, or Jinja without an `as` alias).
/// Keys that follow the select list's order get the new key in its place in that order
/// (`group by s.store_id, s.store_name, s.city, s.seat_count`); others get it last.
pub fn missing_group_by(input: &RuleInput) -> Option<RuleFix> {
    let (qualifier, column) = parse_group_by_column(input.error_message)?;
    let sql = input.model_sql;
    let tokens = tokenize(sql);
    let scopes = select_scopes(&tokens, sql);

    let mut candidates = Vec::new();
    for scope in &scopes {
        let Some(group_by) = scope.clause(ClauseKind::GroupBy) else {
            continue;
        };
        let body = group_by.body.clone();
        let keys = split_commas(&tokens, sql, body.clone(), scope.depth);
        for (index, item) in scope.items.iter().enumerate() {
            let Some(reference) = column_ref(&tokens, sql, item.clone()) else {
                continue;
            };
            if !reference.name_matches(&column) {
                continue;
            }
            if let (Some(q), Some(wanted)) = (&reference.qualifier, &qualifier) {
                if !q.eq_ignore_ascii_case(wanted) {
                    continue;
                }
            }
            let grouped = keys
                .iter()
                .any(|k| already_grouped(&tokens[k.clone()], sql, &reference, index + 1));
            if !grouped {
                candidates.push((scope, body.clone(), keys.clone(), index, reference));
            }
        }
    }
    let [(scope, body, keys, index, reference)] = <[_; 1]>::try_from(candidates).ok()?;

    if keys.is_empty() || keys.iter().any(|k| k.is_empty()) {
        return None;
    }
    let body_tokens = &tokens[body.clone()];
    let unsupported = ["all", "rollup", "cube", "grouping"];
    if body_tokens.iter().any(|t| {
        t.kind == TokenKind::JinjaStatement || unsupported.iter().any(|k| t.is_keyword(sql, k))
    }) {
        return None;
    }
    let positional = keys
        .iter()
        .all(|k| k.len() == 1 && tokens[k.start].kind == TokenKind::Number);
    let position = index + 1;
    let addition = if positional {
        if !positions_are_stable(scope, &tokens, sql, index) {
            return None;
        }
        position.to_string()
    } else {
        reference.text.clone()
    };

    let separator = separator_style(&tokens, sql, body.clone(), scope.depth);
    // Keys listed in select-list order keep that order with the new one in its place;
    // otherwise it goes last.
    let item_of_key: Option<Vec<usize>> = keys
        .iter()
        .map(|k| select_index_of_key(scope, &tokens, sql, &tokens[k.clone()]))
        .collect();
    let ordered = item_of_key
        .as_ref()
        .filter(|idx| idx.windows(2).all(|w| w[0] < w[1]));
    let edit = match ordered.and_then(|idx| idx.iter().position(|&i| i > index)) {
        Some(before) => {
            let at = tokens[keys[before].start].range.start;
            Edit {
                range: at..at,
                replacement: format!("{addition}{separator}"),
            }
        }
        None => {
            let end = tokens[body.end - 1].range.end;
            Edit {
                range: end..end,
                replacement: format!("{separator}{addition}"),
            }
        }
    };
    let fixed_sql = apply_edits(sql, &[edit])?;
    if parse_model(sql, input.adapter).is_ok() && parse_model(&fixed_sql, input.adapter).is_err() {
        return None;
    }
    let style = if positional {
        format!("position {position} of the select list")
    } else {
        format!("`{addition}`")
    };
    let explanation = format!(
        "`{}` is selected in `{}` but neither grouped nor aggregated; added {style} to the \
         GROUP BY of that select.",
        reference.text, input.model_name,
    );
    Some(RuleFix {
        fixed_sql,
        explanation,
        rule: NAME,
        confidence: 0.9,
    })
}

/// The index of the select item a grouping key stands for: its position, or the item
/// that is the same column reference (compared without case or blanks).
fn select_index_of_key(
    scope: &SelectScope,
    tokens: &[Token],
    sql: &str,
    key: &[Token],
) -> Option<usize> {
    if let [t] = key {
        if t.kind == TokenKind::Number {
            return t.text(sql).parse::<usize>().ok()?.checked_sub(1);
        }
    }
    let normalize = |ts: &[Token]| {
        ts.iter()
            .map(|t| t.text(sql).to_lowercase())
            .collect::<String>()
    };
    let wanted = normalize(key);
    scope.items.iter().position(|item| {
        column_ref(tokens, sql, item.clone())
            .is_some_and(|r| normalize(&tokens[r.tokens.clone()]) == wanted)
    })
}

/// True when a grouping key already is this column (by name) or its position.
fn already_grouped(key: &[Token], sql: &str, reference: &ColumnRef, position: usize) -> bool {
    match key {
        [t] if t.kind == TokenKind::Number => t.text(sql) == position.to_string(),
        _ => {
            let Some(last) = key.last() else {
                return false;
            };
            let name = match last.kind {
                TokenKind::Word => last.text(sql).to_owned(),
                TokenKind::QuotedIdent => unquote(last.text(sql)).to_owned(),
                _ => return false,
            };
            reference.name_matches(&name)
        }
    }
}

fn unquote(s: &str) -> &str {
    s.get(1..s.len().saturating_sub(1)).unwrap_or(s)
}

/// Positions count select items only when none before (or at) `index` can render to
/// several columns: `*`, `t.*`, a Jinja expression without an explicit `as` alias, or a
/// Jinja loop.
fn positions_are_stable(scope: &SelectScope, tokens: &[Token], sql: &str, index: usize) -> bool {
    scope.items[..=index].iter().all(|item| {
        let item_tokens = &tokens[item.clone()];
        let star = item_tokens
            .last()
            .is_some_and(|t| t.kind == TokenKind::Operator && t.text(sql) == "*");
        let loops = item_tokens
            .iter()
            .any(|t| t.kind == TokenKind::JinjaStatement);
        let jinja = item_tokens.iter().any(|t| t.kind == TokenKind::Jinja);
        let aliased =
            item_tokens.len() >= 2 && item_tokens[item_tokens.len() - 2].is_keyword(sql, "as");
        !star && !loops && (!jinja || aliased)
    })
}

/// The text between grouping keys as the model writes it (`,\n    ` for one key per
/// line), or `, `.
fn separator_style(
    tokens: &[Token],
    sql: &str,
    body: std::ops::Range<usize>,
    depth: usize,
) -> String {
    for i in body.clone() {
        let t = &tokens[i];
        if t.depth == depth && t.is_punct(sql, ',') && i + 1 < body.end {
            let between = &sql[t.range.start..tokens[i + 1].range.start];
            if between[1..].chars().all(char::is_whitespace) {
                return between.to_owned();
            }
        }
    }
    ", ".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;

    fn fix(sql: &str, column: &str) -> Option<String> {
        let message = format!(
            "Binder Error: column \"{column}\" must appear in the GROUP BY clause or must be part of an aggregate function."
        );
        missing_group_by(&RuleInput {
            error_class: ErrorClass::MissingGroupBy,
            error_message: &message,
            model_sql: sql,
            adapter: "duckdb",
            ..RuleInput::default()
        })
        .map(|f| f.fixed_sql)
    }

    #[test]
    fn groupings_it_does_not_touch() {
        assert_eq!(fix("select a, b, count(*) from t group by all", "b"), None);
        assert_eq!(
            fix("select a, b, count(*) from t group by rollup (a)", "b"),
            None
        );
        // Positions after a `*` cannot be counted.
        assert_eq!(fix("select *, b, count(*) from t group by 1", "b"), None);
        // The same column selected twice under different qualifiers: which one?
        assert_eq!(
            fix(
                "select x.b, y.b, count(*) from x join y on x.id = y.id group by x.id",
                "b"
            ),
            None
        );
    }

    #[test]
    fn unordered_keys_get_the_new_one_last() {
        assert_eq!(
            fix("select a, b, c, count(*) from t group by c, a", "b").as_deref(),
            Some("select a, b, c, count(*) from t group by c, a, b")
        );
        assert_eq!(
            fix("select a, b, c, count(*) from t group by 1, 3", "b").as_deref(),
            Some("select a, b, c, count(*) from t group by 1, 2, 3")
        );
    }
}
