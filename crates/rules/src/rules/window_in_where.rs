//! `window_in_where`: a condition on a window function (`row_number() over (…) = 1`, the
//! usual "latest row per key" filter) written in `WHERE`, which the warehouse evaluates
//! before windows exist, so it refuses it. On a warehouse with `QUALIFY` — the clause
//! that filters on window results — the condition moves there.
//!
//! Only `AND`-terms that call a window and no plain aggregate move; the other terms keep
//! filtering rows before the window is computed, so the window numbers the rows they
//! keep — what `QUALIFY` means, and what the same query written with a subquery means.
//! A grouped select is refused: there the window runs over groups, not the rows the
//! author had in mind. PostgreSQL and Redshift have no `QUALIFY`, and the subquery they
//! need changes the select's shape: no fix there.

use std::sync::OnceLock;

use regex::Regex;

use crate::patterns::{self, AdapterPattern};
use crate::rewrite::apply_edits;
use crate::segment::segment;
use crate::structure::{select_scopes, ClauseKind};
use crate::tokens::{tokenize, Token, TokenKind};
use crate::{sqlcheck, RuleFix, RuleInput};

use super::misplaced_condition::{
    aggregates_outside_windows, byte_range, conjuncts, move_terms, term_reads, Destination,
    TermReads, WhereSplit,
};
use super::{snippet, warehouse_name};

/// The rule's name.
pub(super) const NAME: &str = "window_in_where";

/// The wordings of "a window function is not allowed in WHERE", each captured from a
/// real run.
pub const WINDOW_IN_WHERE_PATTERNS: &[AdapterPattern] = &[
    AdapterPattern {
        // `Binder Error: WHERE clause cannot contain window functions!` (dbt-duckdb
        // 1.11.1).
        name: "duckdb_where_cannot_contain_window_functions",
        adapters: &["duckdb", "motherduck"],
        regex: r"WHERE clause cannot contain window functions",
    },
    AdapterPattern {
        // `window functions are not allowed in WHERE` (PostgreSQL 15, dbt-postgres
        // 1.11): read so that the rule can say it refuses, no QUALIFY there.
        name: "postgres_window_functions_not_allowed",
        adapters: &["postgres", "postgresql", "redshift"],
        regex: r"window functions are not allowed in WHERE",
    },
];

fn compiled() -> &'static [(AdapterPattern, Regex)] {
    static COMPILED: OnceLock<Vec<(AdapterPattern, Regex)>> = OnceLock::new();
    COMPILED.get_or_init(|| patterns::compile(WINDOW_IN_WHERE_PATTERNS))
}

/// Whether `message` is the warehouse refusing a window function in `WHERE`.
pub fn refuses_window_in_where(message: &str, adapter: &str) -> bool {
    patterns::own_adapter_first(compiled(), adapter).any(|(_, re)| re.is_match(message))
}

/// A warehouse that has `QUALIFY`, and how it wants it written.
#[derive(Debug, Clone, Copy)]
pub struct QualifySupport {
    /// The dbt adapter type.
    pub adapter: &'static str,
    /// True when `QUALIFY` needs a `WHERE`, `GROUP BY` or `HAVING` beside it (BigQuery's
    /// documented restriction): a `WHERE` left empty keeps `where true`.
    pub needs_where: bool,
}

/// The adapters whose warehouse has `QUALIFY`. PostgreSQL and Redshift do not.
pub const QUALIFY_ADAPTERS: &[QualifySupport] = &[
    QualifySupport {
        adapter: "duckdb",
        needs_where: false,
    },
    QualifySupport {
        adapter: "motherduck",
        needs_where: false,
    },
    QualifySupport {
        adapter: "snowflake",
        needs_where: false,
    },
    QualifySupport {
        adapter: "databricks",
        needs_where: false,
    },
    QualifySupport {
        adapter: "bigquery",
        needs_where: true,
    },
];

/// Moves the window conditions of every `WHERE` that has them into `QUALIFY`.
///
/// `None` unless the error is the warehouse's "window function in WHERE", the adapter
/// has `QUALIFY`, and every select with such a condition is not grouped, has no
/// `WINDOW` clause (where `QUALIFY` goes next to one differs by warehouse), and holds the
/// window in a term without a plain aggregate; the result must still parse.
pub fn window_in_where(input: &RuleInput) -> Option<RuleFix> {
    if !refuses_window_in_where(input.error_message, input.adapter) {
        return None;
    }
    let support = QUALIFY_ADAPTERS
        .iter()
        .find(|s| s.adapter.eq_ignore_ascii_case(input.adapter))?;
    let destination = Destination {
        kind: ClauseKind::Qualify,
        keyword: "qualify",
        after: &[
            ClauseKind::From,
            ClauseKind::Where,
            ClauseKind::GroupBy,
            ClauseKind::Having,
        ],
        keeps_where: support.needs_where,
    };
    let sql = input.model_sql;
    let tokens = tokenize(sql);
    let segments = segment(sql);
    let mut edits = Vec::new();
    let mut moved_texts = Vec::new();
    for scope in select_scopes(&tokens, sql) {
        let Some(where_clause) = scope.clause(ClauseKind::Where) else {
            continue;
        };
        // `row_number() over (…) as rn … where rn = 1`: DuckDB reads a select alias in
        // WHERE, so the alias of a window is a window there too.
        let window_aliases: Vec<String> = scope
            .items
            .iter()
            .filter(|item| term_reads(&tokens, sql, (*item).clone()).is_some_and(|r| r.windows > 0))
            .filter_map(|item| item_alias(&tokens, sql, item))
            .collect();
        let reads_window = |reads: &TermReads| {
            reads.windows > 0
                || reads.bare_columns.iter().any(|column| {
                    window_aliases
                        .iter()
                        .any(|a| a.eq_ignore_ascii_case(column))
                })
        };
        let has_window = |range: std::ops::Range<usize>| {
            term_reads(&tokens, sql, range).is_none_or(|r| reads_window(&r))
        };
        let Some(conditions) = conjuncts(&tokens, sql, where_clause.body.clone(), scope.depth)
        else {
            if has_window(where_clause.body.clone()) {
                return None;
            }
            continue;
        };
        let mut moved = Vec::with_capacity(conditions.terms.len());
        for term in &conditions.terms {
            let reads = term_reads(&tokens, sql, term.clone())?;
            let moves = reads_window(&reads);
            if moves {
                if reads.aggregates > 0 {
                    return None;
                }
                moved_texts.push(snippet(&sql[byte_range(&tokens, term)]));
            }
            moved.push(moves);
        }
        if !moved.contains(&true) {
            continue;
        }
        let grouped = scope.clause(ClauseKind::GroupBy).is_some()
            || scope.clause(ClauseKind::Having).is_some()
            || scope
                .items
                .iter()
                .any(|item| aggregates_outside_windows(&tokens, sql, item.clone()));
        if grouped || scope.clause(ClauseKind::Window).is_some() {
            return None;
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
            destination,
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
        "{} evaluates WHERE before window functions, so it refuses a window there. Moved \
         {conditions} from WHERE to QUALIFY in `{}`, which filters on window results; the \
         other WHERE conditions still filter rows before the window is computed.",
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

/// The alias a select item gives its value: the name after `as`, or a name right after
/// a closing parenthesis (`row_number() over (…) rn`).
fn item_alias(tokens: &[Token], sql: &str, item: &std::ops::Range<usize>) -> Option<String> {
    let last = item.end.checked_sub(1).filter(|last| *last > item.start)?;
    let name = &tokens[last];
    if !matches!(name.kind, TokenKind::Word | TokenKind::QuotedIdent) {
        return None;
    }
    let before = &tokens[last - 1];
    (before.is_keyword(sql, "as") || before.is_punct(sql, ')'))
        .then(|| name.unquoted(sql).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;

    const DUCKDB: &str = "Binder Error: WHERE clause cannot contain window functions!";

    fn fixed(sql: &str, adapter: &str) -> Option<String> {
        let input = RuleInput {
            error_class: ErrorClass::SqlSyntax,
            error_message: DUCKDB,
            model_name: "m",
            model_sql: sql,
            adapter,
            ..RuleInput::default()
        };
        window_in_where(&input).map(|f| f.fixed_sql)
    }

    #[test]
    fn a_condition_on_a_window_alias_moves_too() {
        // The probe's model: DuckDB resolved `genre_rank` to the window it names and
        // refused it in WHERE with the same words.
        let sql = "select\n    book_id,\n    times_loaned,\n    rank() over (partition by genre order by times_loaned desc) as genre_rank\nfrom counts\nwhere times_loaned > 0 and genre_rank = 1\n";
        assert_eq!(
            fixed(sql, "duckdb").as_deref(),
            Some("select\n    book_id,\n    times_loaned,\n    rank() over (partition by genre order by times_loaned desc) as genre_rank\nfrom counts\nwhere times_loaned > 0\nqualify genre_rank = 1\n")
        );
        let implicit = "select a, row_number() over (order by b) rn from t where rn = 1";
        assert_eq!(
            fixed(implicit, "duckdb").as_deref(),
            Some("select a, row_number() over (order by b) rn from t qualify rn = 1")
        );
        // An alias of a plain column is no window: nothing moves.
        assert_eq!(
            fixed("select a, b as rn from t where rn = 1", "duckdb"),
            None
        );
    }

    #[test]
    fn bigquery_keeps_a_where_beside_qualify() {
        assert_eq!(
            fixed("select a from t where row_number() over (partition by a order by b) = 1", "bigquery")
                .as_deref(),
            Some("select a from t where true qualify row_number() over (partition by a order by b) = 1")
        );
    }

    #[test]
    fn appends_to_an_existing_qualify_before_order_by() {
        assert_eq!(
            fixed(
                "select a from t where x and rank() over (order by b) < 3 qualify a > 0 order by a",
                "snowflake"
            )
            .as_deref(),
            Some(
                "select a from t where x qualify a > 0 and rank() over (order by b) < 3 order by a"
            )
        );
    }

    #[test]
    fn refusals() {
        let sql = "select a from t where row_number() over (order by b) = 1";
        // No QUALIFY on PostgreSQL.
        assert_eq!(fixed(sql, "postgres"), None);
        // A WINDOW clause: where QUALIFY goes beside it differs by warehouse.
        assert_eq!(
            fixed(
                "select a from t where rank() over w = 1 window w as (order by b)",
                "duckdb"
            ),
            None
        );
        // An aggregate in the same term.
        assert_eq!(
            fixed("select a from t where sum(b) over () > count(*)", "duckdb"),
            None
        );
        // A grouped select.
        assert_eq!(
            fixed(
                "select a, count(*) from t where rank() over (order by a) = 1 group by a",
                "duckdb"
            ),
            None
        );
    }

    #[test]
    fn every_pattern_compiles() {
        assert_eq!(compiled().len(), WINDOW_IN_WHERE_PATTERNS.len());
    }
}
