//! `wrong_alias`: a column is qualified with an alias that is in scope but does not have
//! it (`t.order_status` where `t` is the item counts), and exactly one other relation of
//! the same select does: the qualifier becomes that relation's alias.
//!
//! What each relation exposes is read from the evidence and the model itself: a
//! `ref()`/`source()` has its parent's columns, a CTE or a subquery the names of its
//! select list (following `*` through the relations it reads). A relation whose columns
//! cannot be read could have the column too, so the rule then refuses rather than guess.

use crate::column_errors::{hinted_qualifiers, parse_missing_column};
use crate::relations::{relation_node, same_node};
use crate::rewrite::{apply_edits, Edit};
use crate::sqlcheck::breaks_parse;
use crate::structure::{
    ctes, from_relations, select_scopes, ClauseKind, FromRelation, SelectScope,
};
use crate::tokens::{separated, tokenize, Token, TokenKind};
use crate::{ParentColumns, RuleFix, RuleInput};

use super::{column_ref, ends_in_alias};

/// The rule's name.
pub(super) const NAME: &str = "wrong_alias";

/// How deep CTEs and subqueries are followed to read their columns.
const MAX_HOPS: usize = 4;

fn is_name(token: &Token) -> bool {
    matches!(token.kind, TokenKind::Word | TokenKind::QuotedIdent)
}

/// The name a relation goes by in its select: its alias, or a bare name's last part.
fn relation_name<'s>(tokens: &[Token], sql: &'s str, relation: &FromRelation) -> Option<&'s str> {
    match relation.alias {
        Some(alias) => Some(tokens[alias].unquoted(sql)),
        None => {
            let last = tokens.get(relation.relation.end.checked_sub(1)?)?;
            is_name(last).then(|| last.unquoted(sql))
        }
    }
}

/// The columns a relation exposes, as far as they can be read.
#[derive(Debug, Default)]
struct Exposed {
    /// Names it certainly has.
    names: Vec<String>,
    /// Names it may have: the words of a select item without an alias, which the
    /// warehouse names by rules of its own (PostgreSQL calls `status::text` `status`,
    /// `upper(s)` `upper`; DuckDB uses the expression's text).
    maybe: Vec<String>,
}

impl Exposed {
    /// `Some(true)` when it has `column`, `Some(false)` when it has not, `None` when it
    /// may.
    fn has(&self, column: &str) -> Option<bool> {
        if self.names.iter().any(|c| c.eq_ignore_ascii_case(column)) {
            Some(true)
        } else if self.maybe.iter().any(|c| c.eq_ignore_ascii_case(column)) {
            None
        } else {
            Some(false)
        }
    }

    fn extend(&mut self, other: Exposed) {
        self.names.extend(other.names);
        self.maybe.extend(other.maybe);
    }
}

/// What the model and its evidence say about the columns of relations.
struct Columns<'a, 'i> {
    tokens: &'a [Token],
    sql: &'a str,
    scopes: &'a [SelectScope],
    parents: &'i [ParentColumns<'i>],
}

impl Columns<'_, '_> {
    /// The columns `relation` exposes; `None` when they cannot be read.
    fn of_relation(&self, relation: &FromRelation, hops: usize) -> Option<Exposed> {
        let (tokens, sql) = (self.tokens, self.sql);
        if hops == 0 {
            return None;
        }
        let first = tokens.get(relation.relation.start)?;
        if first.is_punct(sql, '(') {
            // A subquery: `(select …)`.
            let select = relation.relation.start + 1;
            let scope = self.scopes.iter().find(|s| s.select == select)?;
            return self.of_scope(scope, hops - 1);
        }
        let [only] = tokens.get(relation.relation.clone())? else {
            return None;
        };
        match only.kind {
            TokenKind::Jinja => {
                let node = relation_node(tokens, sql, relation)?;
                // No columns known (an undocumented parent) says nothing, not "none".
                let parent = self
                    .parents
                    .iter()
                    .find(|p| same_node(p.name, &node) && !p.columns.is_empty())?;
                Some(Exposed {
                    names: parent.columns.iter().map(|c| (*c).to_owned()).collect(),
                    maybe: Vec::new(),
                })
            }
            TokenKind::Word | TokenKind::QuotedIdent => {
                let name = only.unquoted(sql);
                let cte = ctes(tokens, sql)
                    .into_iter()
                    .find(|c| tokens[c.name].unquoted(sql).eq_ignore_ascii_case(name))?;
                let scope = self.scopes.iter().find(|s| s.select == cte.select)?;
                self.of_scope(scope, hops - 1)
            }
            _ => None,
        }
    }

    /// The output names of a select; `None` when one cannot be read (Jinja that may
    /// render columns, `*` over a relation we cannot read).
    fn of_scope(&self, scope: &SelectScope, hops: usize) -> Option<Exposed> {
        let (tokens, sql) = (self.tokens, self.sql);
        let relations = || -> Option<Vec<FromRelation>> {
            let from = scope.clause(ClauseKind::From)?;
            from_relations(tokens, sql, from.body.clone(), scope.depth)
        };
        let mut exposed = Exposed::default();
        for item in &scope.items {
            let t = &tokens[item.clone()];
            if t.is_empty() {
                continue;
            }
            if t.iter().any(|x| x.kind == TokenKind::JinjaStatement) {
                return None;
            }
            let star = |x: &Token| x.kind == TokenKind::Operator && x.text(sql) == "*";
            match t {
                // `*`: every relation's columns.
                [s] if star(s) => {
                    for relation in relations()? {
                        exposed.extend(self.of_relation(&relation, hops)?);
                    }
                    continue;
                }
                // `x.*`: that relation's.
                [q, dot, s] if is_name(q) && dot.is_punct(sql, '.') && star(s) => {
                    let relation = relations()?.into_iter().find(|r| {
                        relation_name(tokens, sql, r)
                            .is_some_and(|n| n.eq_ignore_ascii_case(q.unquoted(sql)))
                    })?;
                    exposed.extend(self.of_relation(&relation, hops)?);
                    continue;
                }
                _ => {}
            }
            if let Some(reference) = column_ref(tokens, sql, item.clone()) {
                exposed.names.push(match reference.alias {
                    Some(alias) => tokens[alias].unquoted(sql).to_owned(),
                    None => reference.name,
                });
                continue;
            }
            if t.iter().any(|x| x.kind == TokenKind::Jinja) && !ends_in_alias(t, sql) {
                // `{{ m() }}` without an alias may render any column.
                return None;
            }
            match t {
                [.., _, last] if ends_in_alias(t, sql) => {
                    exposed.names.push(last.unquoted(sql).to_owned());
                }
                _ => exposed.maybe.extend(
                    t.iter()
                        .filter(|x| is_name(x))
                        .map(|x| x.unquoted(sql).to_owned()),
                ),
            }
        }
        Some(exposed)
    }
}

/// Replaces a qualifier whose relation lacks the column with the one other relation of
/// the same select that has it.
///
/// Fires when all of these hold:
/// - the error names a missing column qualified by a relation `t` (DuckDB: `Values list
///   "t" does not have a column named "x"`, `Table "t" does not have …`; PostgreSQL:
///   `column t.x does not exist`);
/// - the model writes `t.x` in SQL code, and for each such use, the innermost select
///   around it that defines `t` in its `FROM` has exactly one other relation exposing
///   `x`, and the columns of every other relation there can be read (parents' columns
///   for `ref()`/`source()`, select lists for CTEs and subqueries);
/// - a use whose `t` is known to have `x` (another select's `t`) is left alone, and at
///   least one use is rewritten;
/// - when the warehouse hints at a relation for `x` (PostgreSQL's `Perhaps you meant to
///   reference the column "o.x"`), the chosen alias is among its hints;
/// - when the model parses (Jinja masked), the repaired model does too.
pub fn wrong_alias(input: &RuleInput) -> Option<RuleFix> {
    let missing = parse_missing_column(input.error_message, input.adapter)?;
    let qualifier = missing.qualifier.as_deref()?;
    let column = missing.column.as_str();
    let sql = input.model_sql;
    let tokens = tokenize(sql);
    let scopes = select_scopes(&tokens, sql);
    let columns = Columns {
        tokens: &tokens,
        sql,
        scopes: &scopes,
        parents: input.parents,
    };
    let hinted = hinted_qualifiers(input.error_message, column);

    let mut edits = Vec::new();
    let mut chosen: Vec<String> = Vec::new();
    for i in 0..tokens.len().saturating_sub(2) {
        let (q, dot, c) = (&tokens[i], &tokens[i + 1], &tokens[i + 2]);
        let is_use = is_name(q)
            && q.unquoted(sql).eq_ignore_ascii_case(qualifier)
            && dot.is_punct(sql, '.')
            && is_name(c)
            && c.unquoted(sql).eq_ignore_ascii_case(column)
            && !separated(&tokens, i + 1)
            && !separated(&tokens, i + 2)
            && !(i > 0 && tokens[i - 1].is_punct(sql, '.'));
        if !is_use {
            continue;
        }
        // The innermost enclosing select whose FROM defines the qualifier.
        let mut enclosing: Vec<&SelectScope> = scopes
            .iter()
            .filter(|s| s.select < i && i < s.end && q.depth >= s.depth)
            .collect();
        enclosing.sort_by_key(|s| std::cmp::Reverse(s.select));
        let mut defining = None;
        for scope in enclosing {
            let Some(from) = scope.clause(ClauseKind::From) else {
                continue;
            };
            let relations = from_relations(&tokens, sql, from.body.clone(), scope.depth)?;
            if relations.iter().any(|r| {
                relation_name(&tokens, sql, r).is_some_and(|n| n.eq_ignore_ascii_case(qualifier))
            }) {
                defining = Some(relations);
                break;
            }
        }
        // No select defines it: an undefined alias is `alias_typo`'s case.
        let relations = defining?;
        let mut having = Vec::new();
        let mut own_has_it = false;
        for relation in &relations {
            let name = relation_name(&tokens, sql, relation);
            let has = columns
                .of_relation(relation, MAX_HOPS)
                .and_then(|exposed| exposed.has(column));
            if name.is_some_and(|n| n.eq_ignore_ascii_case(qualifier)) {
                own_has_it |= has == Some(true);
                continue;
            }
            match (name, has) {
                (Some(n), Some(true)) => having.push((n, relation)),
                (_, Some(false)) => {}
                // Unreadable: it might have the column too.
                _ => return None,
            }
        }
        if own_has_it {
            continue;
        }
        let [(alias, relation)] = having[..] else {
            return None;
        };
        if !hinted.is_empty() && !hinted.iter().any(|h| h.eq_ignore_ascii_case(alias)) {
            // The warehouse points elsewhere: we would be guessing against it.
            return None;
        }
        let replacement = match relation.alias {
            Some(a) => tokens[a].text(sql).to_owned(),
            None => {
                let last = tokens.get(relation.relation.end.checked_sub(1)?)?;
                last.text(sql).to_owned()
            }
        };
        if !chosen.contains(&replacement) {
            chosen.push(replacement.clone());
        }
        edits.push(Edit {
            range: q.range.clone(),
            replacement,
        });
    }
    if edits.is_empty() {
        return None;
    }
    let fixed_sql = apply_edits(sql, &edits)?;
    if breaks_parse(sql, &fixed_sql, input.adapter) {
        return None;
    }
    let places = if edits.len() == 1 {
        "1 place".to_owned()
    } else {
        format!("{} places", edits.len())
    };
    let new = chosen
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let explanation = format!(
        "`{qualifier}` has no column `{column}` in `{}`; of the other relations in that select \
         only {new} has it. Qualified the column with {new} instead, in {places}.",
        input.model_name,
    );
    Some(RuleFix {
        fixed_sql,
        explanation,
        rule: NAME,
        confidence: 0.85,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;

    fn fix(sql: &str, message: &str, parents: &[ParentColumns<'_>]) -> Option<String> {
        wrong_alias(&RuleInput {
            error_class: ErrorClass::MissingColumn,
            error_message: message,
            model_sql: sql,
            parents,
            adapter: "duckdb",
            ..RuleInput::default()
        })
        .map(|f| f.fixed_sql)
    }

    const MESSAGE: &str = "Binder Error: Values list \"t\" does not have a column named \"status\"";

    #[test]
    fn the_one_other_relation_with_the_column() {
        let sql = "with o as (select id, status from x), t as (select id, n from y)\nselect o.id, t.status, t.n from o join t on o.id = t.id";
        assert_eq!(
            fix(sql, MESSAGE, &[]).as_deref(),
            Some("with o as (select id, status from x), t as (select id, n from y)\nselect o.id, o.status, t.n from o join t on o.id = t.id")
        );
        // Through `*` of an import CTE over a parent.
        let parents = [ParentColumns {
            name: "orders",
            columns: &["id", "status"],
        }];
        let sql = "with o as (select * from {{ ref('orders') }}), t as (select id, count(*) as n from y group by id)\nselect t.status from o join t on o.id = t.id";
        assert_eq!(
            fix(sql, MESSAGE, &parents).as_deref(),
            Some("with o as (select * from {{ ref('orders') }}), t as (select id, count(*) as n from y group by id)\nselect o.status from o join t on o.id = t.id")
        );
    }

    #[test]
    fn refusals() {
        // Two other relations have it.
        let sql = "with o as (select id, status from x), p as (select id, status from z), t as (select id from y)\nselect t.status from o join p on o.id = p.id join t on o.id = t.id";
        assert_eq!(fix(sql, MESSAGE, &[]), None);
        // Another relation's columns cannot be read (a ref() with no parent columns).
        let sql = "with t as (select id from y)\nselect t.status from {{ ref('orders') }} o join t on o.id = t.id";
        assert_eq!(fix(sql, MESSAGE, &[]), None);
        // A macro may render the column.
        let sql = "with o as (select id, {{ cols() }} from x), t as (select id from y)\nselect t.status from o join t on o.id = t.id";
        assert_eq!(fix(sql, MESSAGE, &[]), None);
        // `t` is not defined: alias_typo's case.
        let sql = "with o as (select id, status from x)\nselect t.status from o";
        assert_eq!(fix(sql, MESSAGE, &[]), None);
    }

    #[test]
    fn implicit_and_explicit_output_names() {
        let sql = "with o as (select id, upper(s) status, 1 as k from x), t as (select id from y)\nselect t.status from o join t on o.id = t.id";
        assert_eq!(
            fix(sql, MESSAGE, &[]).as_deref(),
            Some("with o as (select id, upper(s) status, 1 as k from x), t as (select id from y)\nselect o.status from o join t on o.id = t.id")
        );
    }
}
