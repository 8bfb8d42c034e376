//! `missing_group_by`: a plainly selected column is neither grouped nor aggregated. When
//! the query it sits in has a `GROUP BY`, the column is added to it; when it has none
//! (the clause deleted whole), one is written that groups every select item that is not
//! an aggregate.

use std::sync::OnceLock;

use regex::Regex;

use std::ops::Range;

use crate::error_spot::{locate_echo, parse_echo};
use crate::rewrite::{apply_edits, Edit};
use crate::sqlcheck::breaks_parse;
use crate::structure::{select_scopes, split_commas, ClauseKind, SelectScope};
use crate::tokens::{matching_close, tokenize, Token, TokenKind};
use crate::{RuleFix, RuleInput};

use super::{column_ref, ends_in_alias, ColumnRef, VALUE_WORDS};

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
    if candidates.is_empty() {
        return add_group_by(input, &tokens, &scopes, qualifier.as_deref(), &column);
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
    if breaks_parse(sql, &fixed_sql, input.adapter) {
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

/// Aggregate functions of DuckDB and PostgreSQL, and the common ones of other
/// warehouses, lower case. A call of one of these in a select item makes it an
/// aggregate; any other call is a scalar function.
pub(super) const AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "any_value",
    "arbitrary",
    "first",
    "last",
    "array_agg",
    "list",
    "string_agg",
    "group_concat",
    "listagg",
    "median",
    "mode",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "variance",
    "var_pop",
    "var_samp",
    "bool_and",
    "bool_or",
    "every",
    "bit_and",
    "bit_or",
    "bit_xor",
    "count_if",
    "countif",
    "count_star",
    "approx_count_distinct",
    "approx_quantile",
    "quantile",
    "quantile_cont",
    "quantile_disc",
    "percentile_cont",
    "percentile_disc",
    "reservoir_quantile",
    "arg_max",
    "arg_min",
    "argmax",
    "argmin",
    "max_by",
    "min_by",
    "product",
    "corr",
    "covar_pop",
    "covar_samp",
    "regr_slope",
    "regr_intercept",
    "regr_count",
    "regr_r2",
    "regr_avgx",
    "regr_avgy",
    "regr_sxx",
    "regr_syy",
    "regr_sxy",
    "entropy",
    "kurtosis",
    "skewness",
    "histogram",
    "fsum",
    "favg",
    "sumkahan",
    "kahan_sum",
    "geomean",
    "geometric_mean",
    "mad",
    "json_agg",
    "jsonb_agg",
    "json_object_agg",
    "jsonb_object_agg",
    "json_group_array",
    "json_group_object",
    "xmlagg",
    "bitstring_agg",
    "approx_top_k",
    "array_concat_agg",
    "logical_and",
    "logical_or",
];

/// Words in an expression that are syntax, not columns.
pub(super) const EXPRESSION_KEYWORDS: &[&str] = &[
    "case",
    "when",
    "then",
    "else",
    "end",
    "and",
    "or",
    "not",
    "is",
    "null",
    "true",
    "false",
    "in",
    "between",
    "like",
    "ilike",
    "similar",
    "to",
    "escape",
    "distinct",
    "interval",
    "date",
    "timestamp",
    "time",
    "as",
    "at",
    "zone",
    "collate",
    "filter",
    "where",
    "within",
    "group",
    "order",
    "by",
    "asc",
    "desc",
    "nulls",
    "first",
    "last",
];

/// What a select item is, for grouping.
enum ItemKind {
    /// It aggregates (`count(*)`, `coalesce(sum(x), 0) as total`): no key.
    Aggregate,
    /// It reads no column (`'x' as kind`, `1`): no key needed.
    Constant,
    /// It reads columns outside any aggregate: the expression (alias excluded) is a
    /// grouping key.
    Key(Range<usize>),
}

/// Classifies one select item; `None` when it cannot be: Jinja (renders unknown SQL),
/// a window function, a subquery, `*`, or an aggregate mixed with a column read
/// outside it (`sum(x) / y`).
fn classify_item(tokens: &[Token], sql: &str, item: Range<usize>) -> Option<ItemKind> {
    let t = tokens.get(item.clone())?;
    let is_star = |x: &Token| x.kind == TokenKind::Operator && x.text(sql) == "*";
    let star = match t {
        [s] => is_star(s),
        [_, dot, s] => dot.is_punct(sql, '.') && is_star(s),
        _ => false,
    };
    let unclassifiable = t.iter().any(|x| {
        matches!(x.kind, TokenKind::Jinja | TokenKind::JinjaStatement)
            || x.is_keyword(sql, "over")
            || x.is_keyword(sql, "select")
    });
    if t.is_empty() || star || unclassifiable {
        return None;
    }
    // Jinja inside a string literal (`'{{ var("f") }}'`) is one literal token; it still
    // renders to who knows what.
    let text = &sql[t[0].range.start..t[t.len() - 1].range.end];
    if text.contains("{{") || text.contains("{%") {
        return None;
    }
    // The expression without its alias.
    let expression = match column_ref(tokens, sql, item.clone()) {
        Some(reference) => reference.tokens,
        None if ends_in_alias(t, sql) => {
            let cut = if t[t.len() - 2].is_keyword(sql, "as") {
                2
            } else {
                1
            };
            item.start..item.end - cut
        }
        None => item.clone(),
    };
    let mut aggregate = false;
    let mut reads_column = false;
    let mut k = expression.start;
    while k < expression.end {
        let x = &tokens[k];
        let called = tokens.get(k + 1).is_some_and(|n| n.is_punct(sql, '('));
        let after_type_marker = k > expression.start
            && (tokens[k - 1].is_keyword(sql, "as")
                || (tokens[k - 1].kind == TokenKind::Operator && tokens[k - 1].text(sql) == "::"));
        if x.kind == TokenKind::Word
            && called
            && AGGREGATES
                .iter()
                .any(|a| x.text(sql).eq_ignore_ascii_case(a))
        {
            aggregate = true;
            // Past the arguments, and a `filter (where …)` or `within group (…)`: what
            // they read is aggregated too.
            k = matching_close(tokens, sql, k + 1)? + 1;
            let kw = |at: usize, w: &str| at < expression.end && tokens[at].is_keyword(sql, w);
            let open = |at: usize| at < expression.end && tokens[at].is_punct(sql, '(');
            if kw(k, "filter") && open(k + 1) {
                k = matching_close(tokens, sql, k + 1)? + 1;
            } else if kw(k, "within") && kw(k + 1, "group") && open(k + 2) {
                k = matching_close(tokens, sql, k + 2)? + 1;
            }
            continue;
        }
        let is_column = match x.kind {
            TokenKind::QuotedIdent => !after_type_marker,
            TokenKind::Word => {
                !called
                    && !after_type_marker
                    && !EXPRESSION_KEYWORDS.iter().any(|w| x.is_keyword(sql, w))
                    && !VALUE_WORDS.iter().any(|w| x.is_keyword(sql, w))
            }
            _ => false,
        };
        reads_column |= is_column;
        k += 1;
    }
    match (aggregate, reads_column) {
        (true, true) => None,
        (true, false) => Some(ItemKind::Aggregate),
        (false, true) => Some(ItemKind::Key(expression)),
        (false, false) => Some(ItemKind::Constant),
    }
}

/// True when the item calls an aggregate function at all.
fn calls_aggregate(tokens: &[Token], sql: &str, item: Range<usize>) -> bool {
    item.clone().any(|k| {
        tokens[k].kind == TokenKind::Word
            && tokens.get(k + 1).is_some_and(|n| n.is_punct(sql, '('))
            && AGGREGATES
                .iter()
                .any(|a| tokens[k].text(sql).eq_ignore_ascii_case(a))
    })
}

/// True when the item reads the named column (PostgreSQL's qualifier, when it gives
/// one, must agree with the model's).
fn item_reads(
    tokens: &[Token],
    sql: &str,
    item: Range<usize>,
    qualifier: Option<&str>,
    column: &str,
) -> bool {
    item.clone().any(|k| {
        let t = &tokens[k];
        let name = match t.kind {
            TokenKind::Word => t.text(sql),
            TokenKind::QuotedIdent => unquote(t.text(sql)),
            _ => return false,
        };
        if !name.eq_ignore_ascii_case(column) {
            return false;
        }
        let written = (k >= item.start + 2 && tokens[k - 1].is_punct(sql, '.')).then(|| {
            let q = &tokens[k - 2];
            if q.kind == TokenKind::QuotedIdent {
                unquote(q.text(sql))
            } else {
                q.text(sql)
            }
        });
        match (written, qualifier) {
            (Some(w), Some(q)) => w.eq_ignore_ascii_case(q),
            _ => true,
        }
    })
}

/// The leading blanks of the line `at` is on, when only blanks precede `at` there.
fn line_indent(sql: &str, at: usize) -> Option<&str> {
    let start = sql[..at].rfind('\n').map_or(0, |i| i + 1);
    let before = &sql[start..at];
    before
        .chars()
        .all(|c| c == ' ' || c == '\t')
        .then_some(before)
}

/// Writes a `GROUP BY` into the one select that aggregates, selects the column outside
/// an aggregate, and has none.
///
/// The select is the one with no `GROUP BY` whose items read the column outside an
/// aggregate — narrowed, when several do, to the one the error's echoed line points
/// into — and it must have a `FROM`, at least one aggregate item, and only items
/// [`classify_item`] can classify (no window functions, Jinja, subqueries or `*`). The
/// keys are its non-aggregate, non-constant items in select order, each as written
/// without its alias — or by position when every other `GROUP BY` of the model is
/// positional. The clause goes after `FROM`/`WHERE`, before `HAVING`, `QUALIFY`,
/// `WINDOW`, `ORDER BY`, `LIMIT`, `OFFSET`, `FETCH` or the end of the select (a CTE's
/// closing parenthesis), on its own line when the clause after it starts one.
fn add_group_by(
    input: &RuleInput,
    tokens: &[Token],
    scopes: &[SelectScope],
    qualifier: Option<&str>,
    column: &str,
) -> Option<RuleFix> {
    let sql = input.model_sql;
    let mut found: Vec<&SelectScope> = scopes
        .iter()
        .filter(|s| s.clause(ClauseKind::GroupBy).is_none())
        .filter(|s| {
            s.items
                .iter()
                .any(|item| item_reads(tokens, sql, item.clone(), qualifier, column))
                && s.items
                    .iter()
                    .any(|item| calls_aggregate(tokens, sql, item.clone()))
        })
        .collect();
    if found.len() > 1 {
        let pointed = parse_echo(input.error_message).and_then(|e| locate_echo(sql, &e))?;
        found.retain(|s| {
            s.items.iter().any(|item| {
                !item.is_empty()
                    && tokens[item.start].range.start <= pointed.start
                    && pointed.end <= tokens[item.end - 1].range.end
            })
        });
    }
    let [scope] = found[..] else {
        return None;
    };
    scope.clause(ClauseKind::From)?;
    let kinds: Vec<ItemKind> = scope
        .items
        .iter()
        .map(|item| classify_item(tokens, sql, item.clone()))
        .collect::<Option<_>>()?;
    if !kinds.iter().any(|k| matches!(k, ItemKind::Aggregate)) {
        return None;
    }
    let keys: Vec<(usize, &Range<usize>)> = kinds
        .iter()
        .enumerate()
        .filter_map(|(i, k)| match k {
            ItemKind::Key(range) => Some((i, range)),
            _ => None,
        })
        .collect();
    if keys.is_empty() {
        return None;
    }
    // The model's own style: positions when every GROUP BY it has uses them.
    let other_keys: Vec<Vec<Range<usize>>> = scopes
        .iter()
        .filter_map(|s| {
            let clause = s.clause(ClauseKind::GroupBy)?;
            Some(split_commas(tokens, sql, clause.body.clone(), s.depth))
        })
        .collect();
    let positional = !other_keys.is_empty()
        && other_keys
            .iter()
            .flatten()
            .all(|k| k.len() == 1 && tokens[k.start].kind == TokenKind::Number);
    let key_texts: Vec<String> = keys
        .iter()
        .map(|(i, range)| {
            if positional {
                (i + 1).to_string()
            } else {
                sql[tokens[range.start].range.start..tokens[range.end - 1].range.end].to_owned()
            }
        })
        .collect();
    let clause = format!("group by {}", key_texts.join(", "));

    let next = scope.clauses.iter().find(|c| {
        matches!(
            c.kind,
            ClauseKind::Having
                | ClauseKind::Qualify
                | ClauseKind::Window
                | ClauseKind::OrderBy
                | ClauseKind::Limit
                | ClauseKind::Offset
                | ClauseKind::Fetch
        )
    });
    let edit = match next {
        Some(next) => {
            let at = tokens[next.keyword].range.start;
            let replacement = match line_indent(sql, at) {
                Some(indent) => format!("{clause}\n{indent}"),
                None => format!("{clause} "),
            };
            Edit {
                range: at..at,
                replacement,
            }
        }
        None => {
            let last = tokens.get(scope.end.checked_sub(1)?)?;
            if last.kind == TokenKind::JinjaStatement {
                return None;
            }
            // Indented like the clause it follows, when that starts its line.
            let previous = scope.clauses.last()?;
            let at = last.range.end;
            let replacement = match line_indent(sql, tokens[previous.keyword].range.start) {
                Some(indent) => format!("\n{indent}{clause}"),
                None => format!(" {clause}"),
            };
            Edit {
                range: at..at,
                replacement,
            }
        }
    };
    let fixed_sql = apply_edits(sql, &[edit])?;
    if breaks_parse(sql, &fixed_sql, input.adapter) {
        return None;
    }
    let style = if positional {
        " (by position, as the model's other GROUP BYs are)"
    } else {
        ""
    };
    let explanation = format!(
        "`{}` aggregates in a select that has no GROUP BY, and reads `{column}` outside any \
         aggregate there. Added `{clause}`{style}: every select item of it that is not an \
         aggregate.",
        input.model_name,
    );
    Some(RuleFix {
        fixed_sql,
        explanation,
        rule: NAME,
        confidence: 0.8,
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

    #[test]
    fn a_group_by_is_written_where_none_was() {
        // One line: before ORDER BY, inline; constants and aggregates with a FILTER are
        // no keys.
        assert_eq!(
            fix(
                "select a, 'x' as k, count(*) filter (where b > 1) as n from t order by a",
                "a"
            )
            .as_deref(),
            Some("select a, 'x' as k, count(*) filter (where b > 1) as n from t group by a order by a")
        );
        // At the end of a select followed by UNION, indented like its WHERE.
        assert_eq!(
            fix(
                "select a, sum(b) as s\n  from t\n  where c\nunion all\nselect 1, 2",
                "a"
            )
            .as_deref(),
            Some(
                "select a, sum(b) as s\n  from t\n  where c\n  group by a\nunion all\nselect 1, 2"
            )
        );
        // Before LIMIT, keys in select order, aliases left out.
        assert_eq!(
            fix("select upper(a) as ua, b, max(c) as m from t\nlimit 5", "a").as_deref(),
            Some("select upper(a) as ua, b, max(c) as m from t\ngroup by upper(a), b\nlimit 5")
        );
    }

    #[test]
    fn selects_it_cannot_classify_get_no_group_by() {
        // An aggregate mixed with a column outside it.
        assert_eq!(fix("select a, sum(b) / c as r from t", "a"), None);
        // Jinja, a window function, a subquery, a star.
        assert_eq!(fix("select a, {{ m() }}, count(*) from t", "a"), None);
        assert_eq!(
            fix("select a, count(*), rank() over (order by a) from t", "a"),
            None
        );
        assert_eq!(
            fix(
                "select a, (select max(x) from u) as m, count(*) from t",
                "a"
            ),
            None
        );
        assert_eq!(fix("select *, count(*) from t", "a"), None);
        // No aggregate at all: the error is not about this select.
        assert_eq!(fix("select a, b from t", "a"), None);
    }
}
