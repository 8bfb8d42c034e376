//! Which dbt node a relation in a `FROM` clause reads: a `ref()`, a `source()`, or a CTE
//! that is only `select * from` one of those (the "import CTE" style of dbt projects).

use crate::jinja_calls::find_calls;
use crate::segment::{Segment, SegmentKind};
use crate::structure::{ctes, from_relations, select_scopes, ClauseKind, FromRelation};
use crate::tokens::{Token, TokenKind};

/// How deep `select *` CTEs are followed.
const MAX_HOPS: usize = 4;

/// The node `relation` reads, as the evidence names parents: a model, seed or snapshot
/// by name, a source as `source_name.table_name`. `None` for a subquery, a table
/// function, a CTE with its own select list, or a relation we cannot name.
pub fn relation_node(tokens: &[Token], sql: &str, relation: &FromRelation) -> Option<String> {
    relation_node_hops(tokens, sql, relation, MAX_HOPS)
}

fn relation_node_hops(
    tokens: &[Token],
    sql: &str,
    relation: &FromRelation,
    hops: usize,
) -> Option<String> {
    let [only] = tokens.get(relation.relation.clone())? else {
        return None;
    };
    match only.kind {
        TokenKind::Jinja => jinja_node(sql, only),
        TokenKind::Word | TokenKind::QuotedIdent if hops > 0 => {
            let name = only.text(sql).trim_matches('"');
            let cte = ctes(tokens, sql).into_iter().find(|c| {
                tokens[c.name]
                    .text(sql)
                    .trim_matches('"')
                    .eq_ignore_ascii_case(name)
            })?;
            let scope = select_scopes(tokens, sql)
                .into_iter()
                .find(|s| s.select == cte.select)?;
            // `select * from x` and nothing else that changes the columns.
            let [item] = &scope.items[..] else {
                return None;
            };
            let star = tokens.get(item.clone()).is_some_and(
                |t| matches!(t, [s] if s.kind == TokenKind::Operator && s.text(sql) == "*"),
            );
            let from = scope.clause(ClauseKind::From)?;
            let relations = from_relations(tokens, sql, from.body.clone(), scope.depth)?;
            let [inner] = &relations[..] else {
                return None;
            };
            if !star {
                return None;
            }
            relation_node_hops(tokens, sql, inner, hops - 1)
        }
        _ => None,
    }
}

/// `{{ ref('x') }}` → `x`, `{{ ref('pkg', 'x') }}` → `x`, `{{ source('s', 't') }}` →
/// `s.t`.
fn jinja_node(sql: &str, token: &Token) -> Option<String> {
    let segment = [Segment {
        kind: SegmentKind::JinjaExpression,
        range: token.range.clone(),
    }];
    if let [call] = &find_calls(sql, &segment, "ref")[..] {
        return call.string_args.last().map(|a| a.value.clone());
    }
    if let [call] = &find_calls(sql, &segment, "source")[..] {
        if let [source, table] = &call.string_args[..] {
            return Some(format!("{}.{}", source.value, table.value));
        }
    }
    None
}

/// True when a parent named `parent` (as in the evidence) is the node `node`.
pub fn same_node(parent: &str, node: &str) -> bool {
    parent.eq_ignore_ascii_case(node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::tokenize;

    fn nodes(sql: &str) -> Vec<Option<String>> {
        let tokens = tokenize(sql);
        let scopes = select_scopes(&tokens, sql);
        let last = scopes
            .iter()
            .rfind(|s| s.depth == 0)
            .unwrap_or_else(|| panic!("no scope"));
        let from = last
            .clause(ClauseKind::From)
            .unwrap_or_else(|| panic!("no from"));
        from_relations(&tokens, sql, from.body.clone(), last.depth)
            .unwrap_or_default()
            .iter()
            .map(|r| relation_node(&tokens, sql, r))
            .collect()
    }

    #[test]
    fn refs_sources_and_import_ctes() {
        let sql = "with c as (select * from {{ ref('stg_customers') }}),\nk as (select id from {{ ref('x') }})\nselect 1 from c join {{ source('raw', 'orders') }} o on 1=1 join k on 1=1 join (select 1) s on 1=1";
        assert_eq!(
            nodes(sql),
            vec![
                Some("stg_customers".to_owned()),
                Some("raw.orders".to_owned()),
                None,
                None
            ]
        );
    }
}
