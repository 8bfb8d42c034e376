//! `aggregate_in_where`: a condition on an aggregate (`sum(amount) > 100`) written in
//! `WHERE`, which filters rows before they are grouped, so the warehouse refuses it. The
//! condition belongs in `HAVING`, which filters the groups.
//!
//! The rule moves every `AND`-term of the `WHERE` that calls an aggregate, and only
//! those, into `HAVING` (appending to one that exists); the other terms keep filtering
//! rows. It is sure only when the move is valid as written: the select is grouped (or
//! all its items aggregate, so the whole result is one group), and whatever the term
//! reads outside its aggregates is a grouping key. `amount > avg(amount)` in a select
//! that does not group by `amount` is a per-row comparison with a window's average, not
//! a group filter: no fix.

use std::sync::OnceLock;

use regex::Regex;

use crate::patterns::{self, AdapterPattern};
use crate::rewrite::apply_edits;
use crate::segment::segment;
use crate::structure::{select_scopes, ClauseKind, SelectScope};
use crate::tokens::{tokenize, Token};
use crate::{sqlcheck, RuleFix, RuleInput};

use super::misplaced_condition::{
    aggregates_outside_windows, byte_range, conjuncts, move_terms, term_reads, Destination,
    WhereSplit,
};
use super::{column_ref, snippet, warehouse_name};

/// The rule's name.
pub(super) const NAME: &str = "aggregate_in_where";

/// The wordings of "an aggregate is not allowed in WHERE", each captured from a real run.
pub const AGGREGATE_IN_WHERE_PATTERNS: &[AdapterPattern] = &[
    AdapterPattern {
        // `Binder Error: WHERE clause cannot contain aggregates!` (dbt-duckdb 1.11.1).
        name: "duckdb_where_cannot_contain_aggregates",
        adapters: &["duckdb", "motherduck"],
        regex: r"WHERE clause cannot contain aggregates",
    },
    AdapterPattern {
        // `aggregate functions are not allowed in WHERE` (PostgreSQL 15, dbt-postgres
        // 1.11).
        name: "postgres_aggregate_functions_not_allowed",
        adapters: &["postgres", "postgresql", "redshift"],
        regex: r"aggregate functions are not allowed in WHERE",
    },
];

fn compiled() -> &'static [(AdapterPattern, Regex)] {
    static COMPILED: OnceLock<Vec<(AdapterPattern, Regex)>> = OnceLock::new();
    COMPILED.get_or_init(|| patterns::compile(AGGREGATE_IN_WHERE_PATTERNS))
}

/// Whether `message` is the warehouse refusing an aggregate in `WHERE`.
pub fn refuses_aggregate_in_where(message: &str, adapter: &str) -> bool {
    patterns::own_adapter_first(compiled(), adapter).any(|(_, re)| re.is_match(message))
}

const HAVING: Destination = Destination {
    kind: ClauseKind::Having,
    keyword: "having",
    after: &[ClauseKind::From, ClauseKind::Where, ClauseKind::GroupBy],
    keeps_where: false,
};

/// Moves the aggregate conditions of every `WHERE` that has them into `HAVING`.
///
/// `None` unless the error is the warehouse's "aggregate in WHERE", and every select
/// with such a condition can take it in `HAVING` as written (see the module docs); the
/// result must still parse.
pub fn aggregate_in_where(input: &RuleInput) -> Option<RuleFix> {
    if !refuses_aggregate_in_where(input.error_message, input.adapter) {
        return None;
    }
    let sql = input.model_sql;
    let tokens = tokenize(sql);
    let segments = segment(sql);
    let mut edits = Vec::new();
    let mut moved_texts = Vec::new();
    for scope in select_scopes(&tokens, sql) {
        let Some(where_clause) = scope.clause(ClauseKind::Where) else {
            continue;
        };
        let conditions = conjuncts(&tokens, sql, where_clause.body.clone(), scope.depth);
        let Some(conditions) = conditions else {
            // An empty WHERE or one with Jinja control flow: fine when it has no
            // aggregate, unreadable when it has.
            if aggregates_outside_windows(&tokens, sql, where_clause.body.clone()) {
                return None;
            }
            continue;
        };
        let mut moved = Vec::with_capacity(conditions.terms.len());
        for term in &conditions.terms {
            let reads = term_reads(&tokens, sql, term.clone())?;
            let moves = reads.aggregates > 0;
            if moves {
                let grouped = grouping_keys(&tokens, sql, &scope)?;
                let reads_ungrouped = reads
                    .bare_columns
                    .iter()
                    .any(|c| !grouped.iter().any(|g| g.eq_ignore_ascii_case(c)));
                if reads.windows > 0 || reads_ungrouped {
                    return None;
                }
                moved_texts.push(snippet(&sql[byte_range(&tokens, term)]));
            }
            moved.push(moves);
        }
        if !moved.contains(&true) {
            continue;
        }
        edits.extend(move_terms(
            &tokens,
            sql,
            &segments,
            &scope,
            WhereSplit {
                clause: where_clause,
                conjuncts: &conditions,
                moved: &moved,
            },
            HAVING,
        )?);
    }
    if moved_texts.is_empty() {
        return None;
    }
    let fixed_sql = apply_edits(sql, &edits)?;
    if sqlcheck::breaks_parse(sql, &fixed_sql, input.adapter) {
        return None;
    }
    let conditions = moved_texts
        .iter()
        .map(|t| format!("`{t}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let explanation = format!(
        "{} does not allow aggregates in WHERE, which filters rows before they are grouped. \
         Moved {conditions} from WHERE to HAVING in `{}`, which filters the groups; the \
         other WHERE conditions still filter rows.",
        warehouse_name(input.adapter),
        input.model_name,
    );
    Some(RuleFix {
        fixed_sql,
        explanation,
        rule: NAME,
        confidence: 0.85,
    })
}

/// The names a `HAVING` condition of `scope` may read outside an aggregate: the
/// columns of its `GROUP BY` (a position or `all` stands for select items). An empty
/// list when the select has no `GROUP BY` but aggregates in every item (one group, no
/// keys); `None` when the select is not grouped at all, or its keys cannot be read.
fn grouping_keys(tokens: &[Token], sql: &str, scope: &SelectScope) -> Option<Vec<String>> {
    let Some(group_by) = scope.clause(ClauseKind::GroupBy) else {
        // Without GROUP BY, HAVING makes the whole result one group: valid only when
        // every item aggregates (or is a constant) and reads no column outside.
        let mut any_aggregate = false;
        for item in &scope.items {
            let reads = term_reads(tokens, sql, without_alias(tokens, sql, item.clone()))?;
            if reads.windows > 0 || reads.subquery || !reads.bare_columns.is_empty() {
                return None;
            }
            any_aggregate |= reads.aggregates > 0;
        }
        return any_aggregate.then(Vec::new);
    };
    let items = crate::structure::split_commas(tokens, sql, group_by.body.clone(), scope.depth);
    let mut keys = Vec::new();
    for item in items {
        let t = tokens.get(item.clone())?;
        match t {
            [one] if one.is_keyword(sql, "all") => {
                keys.extend(select_item_names(tokens, sql, scope, None));
            }
            [one] if one.kind == crate::tokens::TokenKind::Number => {
                let position: usize = one.text(sql).parse().ok()?;
                keys.extend(select_item_names(tokens, sql, scope, Some(position)));
            }
            // A plain column is a key; an expression (`strftime(d, '%Y-%m')`) keys on
            // itself, not on the columns it reads, so it adds nothing.
            _ => keys.extend(column_ref(tokens, sql, item.clone()).map(|r| r.name)),
        }
    }
    Some(keys)
}

/// A select item without its alias: `sum(x) as total` → `sum(x)`.
fn without_alias(
    tokens: &[Token],
    sql: &str,
    item: std::ops::Range<usize>,
) -> std::ops::Range<usize> {
    let Some(t) = tokens.get(item.clone()) else {
        return item;
    };
    if column_ref(tokens, sql, item.clone()).is_some() || !super::ends_in_alias(t, sql) {
        return item;
    }
    let cut = if t.len() >= 2 && t[t.len() - 2].is_keyword(sql, "as") {
        2
    } else {
        1
    };
    item.start..item.end - cut
}

/// The column names and aliases of the select items (all of them, or the one at a
/// 1-based position): what `group by all` or `group by 2` groups by.
fn select_item_names(
    tokens: &[Token],
    sql: &str,
    scope: &SelectScope,
    position: Option<usize>,
) -> Vec<String> {
    let mut names = Vec::new();
    for (index, item) in scope.items.iter().enumerate() {
        if position.is_some_and(|p| p != index + 1) {
            continue;
        }
        if let Some(reference) = column_ref(tokens, sql, item.clone()) {
            names.push(reference.name.clone());
            if let Some(alias) = reference.alias {
                names.push(tokens[alias].unquoted(sql).to_owned());
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;

    const DUCKDB: &str = "Binder Error: WHERE clause cannot contain aggregates!";

    fn fixed(sql: &str) -> Option<String> {
        let input = RuleInput {
            error_class: ErrorClass::MissingGroupBy,
            error_message: DUCKDB,
            model_name: "m",
            model_sql: sql,
            adapter: "duckdb",
            ..RuleInput::default()
        };
        aggregate_in_where(&input).map(|f| f.fixed_sql)
    }

    #[test]
    fn appends_to_an_existing_having() {
        assert_eq!(
            fixed("select a, count(*) as n from t where sum(b) > 1 group by a having count(*) > 2")
                .as_deref(),
            Some("select a, count(*) as n from t group by a having count(*) > 2 and sum(b) > 1")
        );
    }

    #[test]
    fn an_existing_having_with_or_is_parenthesized() {
        assert_eq!(
            fixed("select a from t where x = 1 and sum(b) > 1 group by a having min(b) = 0 or max(b) = 9")
                .as_deref(),
            Some("select a from t where x = 1 group by a having (min(b) = 0 or max(b) = 9) and sum(b) > 1")
        );
    }

    #[test]
    fn between_stays_whole_and_grouped_columns_may_be_read() {
        assert_eq!(
            fixed("select a, count(*) as n from t where a between 1 and 5 and a + count(*) > 3 group by a order by a")
                .as_deref(),
            Some("select a, count(*) as n from t where a between 1 and 5 group by a having a + count(*) > 3 order by a")
        );
    }

    #[test]
    fn a_select_that_only_aggregates_gets_having_without_group_by() {
        assert_eq!(
            fixed("select count(*) as n from t where count(*) > 0").as_deref(),
            Some("select count(*) as n from t having count(*) > 0")
        );
    }

    #[test]
    fn refusals() {
        // An aggregate in a subquery is legal where it is: nothing to move.
        assert_eq!(
            fixed("select a from t where a > (select avg(a) from t)"),
            None
        );
        // A plain column outside the aggregate that is not grouped.
        assert_eq!(
            fixed("select a, count(*) from t where b > sum(c) group by a"),
            None
        );
        // Not grouped, and a plain column selected: HAVING would need a GROUP BY.
        assert_eq!(fixed("select a from t where sum(b) > 0"), None);
        // Jinja control flow in the WHERE.
        assert_eq!(
            fixed("select a from t where {% if x %}sum(b) > 0{% endif %} group by a"),
            None
        );
        // A comment between the terms would be lost.
        assert_eq!(
            fixed("select a from t where x = 1 -- keep\n and sum(b) > 0 group by a"),
            None
        );
        // Another error text.
        let input = RuleInput {
            error_message: "Binder Error: column \"a\" must appear in the GROUP BY clause",
            model_sql: "select a from t where sum(b) > 0 group by a",
            adapter: "duckdb",
            ..RuleInput::default()
        };
        assert_eq!(aggregate_in_where(&input), None);
    }

    #[test]
    fn every_pattern_compiles() {
        assert_eq!(compiled().len(), AGGREGATE_IN_WHERE_PATTERNS.len());
    }
}
