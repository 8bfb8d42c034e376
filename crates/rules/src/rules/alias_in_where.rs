//! `alias_in_where`: `WHERE` (or `HAVING`) reads a column alias the same select defines
//! (`amount * 100 as amount_cents … where amount_cents > 1000`). DuckDB, Snowflake and
//! Redshift resolve such a reference; PostgreSQL evaluates `WHERE` before the select
//! list and says the column does not exist — a model moved from one to the other fails
//! this way. The fix writes the aliased expression in place of the alias.
//!
//! The error names the first alias only; the other aliases of the same select read in
//! the same clause are substituted too when the parents' columns prove they are not
//! columns. In `WHERE` the expression must not aggregate or window (that is another
//! error); in `HAVING` an aggregate is what it should be.

use std::ops::Range;

use crate::column_errors::parse_missing_column;
use crate::rewrite::{apply_edits, Edit};
use crate::structure::{select_scopes, ClauseKind, SelectScope};
use crate::tokens::{tokenize, Token, TokenKind};
use crate::{sqlcheck, RuleFix, RuleInput};

use super::misplaced_condition::{byte_range, term_reads};
use super::{column_ref, ends_in_alias, snippet, warehouse_name};

/// The rule's name.
pub(super) const NAME: &str = "alias_in_where";

/// The adapters whose warehouse refuses a select-list alias in `WHERE` with a "column
/// does not exist" error. (DuckDB, Snowflake and Redshift resolve it; BigQuery refuses it
/// too, but its wording was not captured.)
pub const ALIAS_BLIND_WHERE_ADAPTERS: &[&str] = &["postgres", "postgresql"];

/// One alias a select defines.
struct Alias {
    /// Its name, unquoted.
    name: String,
    /// The bytes of the expression it names.
    expression: Range<usize>,
    /// True when the expression aggregates or windows.
    aggregates: bool,
}

/// Substitutes the aliased expressions for the aliases `WHERE` or `HAVING` reads.
///
/// `None` unless the adapter refuses aliases there, the error names an unqualified
/// missing column that a select of the model defines as an alias and reads in its own
/// `WHERE` or `HAVING`, the name is no parent column, and every reference is a plain
/// unqualified name at that select's level (not inside a subquery); the result must
/// still parse.
pub fn alias_in_where(input: &RuleInput) -> Option<RuleFix> {
    if !ALIAS_BLIND_WHERE_ADAPTERS
        .iter()
        .any(|a| a.eq_ignore_ascii_case(input.adapter))
    {
        return None;
    }
    let missing = parse_missing_column(input.error_message, input.adapter)?;
    if missing.qualifier.is_some() {
        return None;
    }
    let is_parent_column = |name: &str| {
        input
            .parents
            .iter()
            .flat_map(|p| p.columns.iter())
            .any(|c| c.eq_ignore_ascii_case(name))
    };
    if is_parent_column(&missing.column) {
        return None;
    }
    let parents_known =
        !input.parents.is_empty() && input.parents.iter().all(|p| !p.columns.is_empty());

    let sql = input.model_sql;
    let tokens = tokenize(sql);
    let mut edits = Vec::new();
    let mut substituted: Vec<String> = Vec::new();
    for scope in select_scopes(&tokens, sql) {
        let aliases = aliases(&tokens, sql, &scope);
        for kind in [ClauseKind::Where, ClauseKind::Having] {
            let Some(clause) = scope.clause(kind) else {
                continue;
            };
            for alias in &aliases {
                let named = alias.name.eq_ignore_ascii_case(&missing.column);
                let proven = named || (parents_known && !is_parent_column(&alias.name));
                let references = references(&tokens, sql, &scope, clause.body.clone(), &alias.name);
                let Some(references) = references else {
                    if named {
                        return None;
                    }
                    continue;
                };
                if references.is_empty() || !proven {
                    continue;
                }
                if kind == ClauseKind::Where && alias.aggregates {
                    return None;
                }
                let text = &sql[alias.expression.clone()];
                let replacement = if is_one_operand(&tokens, sql, &alias.expression) {
                    text.to_owned()
                } else {
                    format!("({text})")
                };
                for &r in &references {
                    edits.push(Edit {
                        range: tokens[r].range.clone(),
                        replacement: replacement.clone(),
                    });
                }
                if !substituted.contains(&alias.name) {
                    substituted.push(alias.name.clone());
                }
            }
        }
    }
    if !substituted
        .iter()
        .any(|n| n.eq_ignore_ascii_case(&missing.column))
    {
        return None;
    }
    let fixed_sql = apply_edits(sql, &edits)?;
    if sqlcheck::breaks_parse(sql, &fixed_sql, input.adapter) {
        return None;
    }
    let names = substituted
        .iter()
        .map(|n| format!("`{}`", snippet(n)))
        .collect::<Vec<_>>()
        .join(", ");
    let explanation = format!(
        "{} evaluates WHERE and HAVING before the select list, so they cannot read its \
         aliases. Wrote the aliased expression in place of {names} there in `{}`; the \
         select list is unchanged.",
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

/// The aliases the select list defines for expressions (`expr as name`, `expr name`);
/// a renamed plain column (`status as s`) counts too. Items with Jinja control flow are
/// left out.
fn aliases(tokens: &[Token], sql: &str, scope: &SelectScope) -> Vec<Alias> {
    let mut out = Vec::new();
    for item in &scope.items {
        let Some(t) = tokens.get(item.clone()) else {
            continue;
        };
        if t.is_empty() || t.iter().any(|x| x.kind == TokenKind::JinjaStatement) {
            continue;
        }
        let (expression, alias_token) = match column_ref(tokens, sql, item.clone()) {
            Some(reference) => match reference.alias {
                Some(alias) => (reference.tokens.clone(), alias),
                None => continue,
            },
            None if ends_in_alias(t, sql) => {
                let cut = if t[t.len() - 2].is_keyword(sql, "as") {
                    2
                } else {
                    1
                };
                (item.start..item.end - cut, item.end - 1)
            }
            None => continue,
        };
        if expression.is_empty() {
            continue;
        }
        let Some(reads) = term_reads(tokens, sql, expression.clone()) else {
            continue;
        };
        out.push(Alias {
            name: tokens[alias_token].unquoted(sql).to_owned(),
            expression: byte_range(tokens, &expression),
            aggregates: reads.aggregates > 0 || reads.windows > 0 || reads.subquery,
        });
    }
    out
}

/// The tokens of `body` that read `name` as a plain unqualified column at the scope's
/// level. `None` when the name also appears in a form the rule does not rewrite
/// (qualified, called, inside a subquery or Jinja control flow).
fn references(
    tokens: &[Token],
    sql: &str,
    scope: &SelectScope,
    body: Range<usize>,
    name: &str,
) -> Option<Vec<usize>> {
    let mut found = Vec::new();
    let mut inside_subquery_until = 0;
    for i in body {
        let t = &tokens[i];
        if t.kind == TokenKind::JinjaStatement {
            return None;
        }
        if t.is_keyword(sql, "select") && t.depth > scope.depth {
            // A subquery: its names are its own business, unless it reads this one.
            let close = crate::tokens::matching_close(tokens, sql, i.checked_sub(1)?)?;
            inside_subquery_until = close;
        }
        let matches = match t.kind {
            TokenKind::Word => t.text(sql).eq_ignore_ascii_case(name),
            TokenKind::QuotedIdent => t.unquoted(sql) == name,
            _ => false,
        };
        if !matches {
            continue;
        }
        let qualified = i > 0 && tokens[i - 1].is_punct(sql, '.');
        let glued = tokens
            .get(i + 1)
            .is_some_and(|n| n.is_punct(sql, '.') || n.is_punct(sql, '('));
        if qualified || glued || i < inside_subquery_until {
            return None;
        }
        found.push(i);
    }
    Some(found)
}

/// True when the expression needs no parentheses where an operand goes: one token, or
/// one function call (`lower(status)`).
fn is_one_operand(tokens: &[Token], sql: &str, expression: &Range<usize>) -> bool {
    let Some(first) = tokens
        .iter()
        .position(|t| t.range.start == expression.start)
    else {
        return false;
    };
    let Some(last) = tokens.iter().position(|t| t.range.end == expression.end) else {
        return false;
    };
    first == last
        || (tokens[first].kind == TokenKind::Word
            && tokens.get(first + 1).is_some_and(|t| t.is_punct(sql, '('))
            && crate::tokens::matching_close(tokens, sql, first + 1) == Some(last))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ErrorClass, ParentColumns};

    fn fixed(sql: &str, column: &str, adapter: &str) -> Option<String> {
        let message = format!("column \"{column}\" does not exist");
        let parents = [ParentColumns {
            name: "t",
            columns: &["amount", "status", "total"],
        }];
        let input = RuleInput {
            error_class: ErrorClass::MissingColumn,
            error_message: &message,
            model_name: "m",
            model_sql: sql,
            parents: &parents,
            adapter,
            ..RuleInput::default()
        };
        alias_in_where(&input).map(|f| f.fixed_sql)
    }

    #[test]
    fn having_may_read_an_aggregate_alias() {
        assert_eq!(
            fixed("select status, sum(amount) as revenue from t group by status having revenue > 10", "revenue", "postgres").as_deref(),
            Some("select status, sum(amount) as revenue from t group by status having sum(amount) > 10")
        );
    }

    #[test]
    fn refusals() {
        // DuckDB resolves the alias: the error is something else.
        assert_eq!(
            fixed("select amount * 2 as x from t where x > 1", "x", "duckdb"),
            None
        );
        // An aggregate alias in WHERE is an aggregate in WHERE.
        assert_eq!(
            fixed(
                "select sum(amount) as s from t where s > 1",
                "s",
                "postgres"
            ),
            None
        );
        // Read inside a subquery.
        assert_eq!(
            fixed(
                "select amount * 2 as x from t where exists (select 1 from u where u.y = x)",
                "x",
                "postgres"
            ),
            None
        );
        // A parent column by that name: the error is about something else.
        assert_eq!(
            fixed(
                "select amount * 2 as total from t where total > 1",
                "total",
                "postgres"
            ),
            None
        );
    }
}
