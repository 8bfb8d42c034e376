//! `ambiguous_column`: an unqualified column exists in both relations of a join on that
//! very column, so which relation to read it from is decided by the join itself.

use std::sync::OnceLock;

use regex::Regex;

use crate::rewrite::{apply_edits, identifier_occurrences, Edit};
use crate::segment::segment;
use crate::sqlcheck::breaks_parse;
use crate::structure::{
    from_relations, select_scopes, ClauseKind, FromRelation, JoinKind, SelectScope,
};
use crate::tokens::{tokenize, Token, TokenKind};
use crate::{RuleFix, RuleInput};

/// The rule's name.
pub(super) const NAME: &str = "ambiguous_column";

/// The column and the qualified alternatives the warehouse lists: DuckDB's `Ambiguous
/// reference to column name "store_id" (use: 's.store_id' or 'o.store_id')`,
/// PostgreSQL's `column reference "store_id" is ambiguous` (no alternatives).
pub fn parse_ambiguous_column(message: &str) -> Option<(String, Vec<String>)> {
    static RES: OnceLock<Vec<Regex>> = OnceLock::new();
    let res = RES.get_or_init(|| {
        [
            r#"Ambiguous reference to column name "(?P<column>[^"]+)"(?: \(use: (?P<list>[^)\n]*)\))?"#,
            r#"column reference "(?P<column>[^"]+)" is ambiguous"#,
        ]
        .iter()
        .filter_map(|p| Regex::new(p).ok())
        .collect()
    });
    let caps = res.iter().find_map(|re| re.captures(message))?;
    let column = caps.name("column")?.as_str().to_owned();
    let options = caps
        .name("list")
        .map(|l| {
            l.as_str()
                .split('\'')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Some((column, options))
}

/// Qualifies the ambiguous column with the relation the join keeps.
///
/// Fires when every unqualified use of the column `C` in SQL code that sits in a select
/// with several relations (uses in single-relation selects are not ambiguous and stay)
/// is in a select whose `FROM` joins two relations on `x.C = y.C` (one conjunct of the
/// `ON` condition), and
/// the join kind says which side always has the value: an inner join either (the
/// earlier one is used), a `LEFT JOIN` the left, a `RIGHT JOIN` the right. A `FULL` or
/// other join would need `coalesce` — a decision — and is refused. Without the
/// warehouse's list of alternatives (PostgreSQL) the select must have exactly those two
/// relations; with it (DuckDB), the list must be exactly `x.C` and `y.C`.
pub fn ambiguous_column(input: &RuleInput) -> Option<RuleFix> {
    let (column, options) = parse_ambiguous_column(input.error_message)?;
    let sql = input.model_sql;
    let tokens = tokenize(sql);
    let scopes = select_scopes(&tokens, sql);
    let occurrences: Vec<_> = identifier_occurrences(sql, &segment(sql), &column)
        .into_iter()
        .filter(|o| !o.qualified && !o.after_as)
        .collect();
    if occurrences.is_empty() {
        return None;
    }
    let mut edits = Vec::new();
    let mut chosen = Vec::new();
    for occurrence in &occurrences {
        let index = tokens.iter().position(|t| {
            t.range.start <= occurrence.range.start && occurrence.range.end <= t.range.end
        })?;
        if tokens[index].kind == TokenKind::QuotedIdent {
            return None;
        }
        let scope = scopes
            .iter()
            .filter(|s| s.select < index && index < s.end && tokens[index].depth >= s.depth)
            .max_by_key(|s| s.select)?;
        // Not a function name or a qualifier itself.
        if tokens
            .get(index + 1)
            .is_some_and(|n| n.is_punct(sql, '(') || n.is_punct(sql, '.'))
        {
            return None;
        }
        // A select with one relation is not where the ambiguity is.
        let from = scope.clause(ClauseKind::From);
        let relation_count = from
            .and_then(|f| from_relations(&tokens, sql, f.body.clone(), scope.depth))
            .map_or(0, |r| r.len());
        if from.is_some() && relation_count == 0 {
            // A FROM this reader cannot follow: it might be the ambiguous one.
            return None;
        }
        if relation_count <= 1 {
            continue;
        }
        let qualifier = keeper(&tokens, sql, scope, &column, &options)?;
        edits.push(Edit {
            range: occurrence.range.start..occurrence.range.start,
            replacement: format!("{qualifier}."),
        });
        chosen.push(qualifier);
    }
    if edits.is_empty() {
        return None;
    }
    chosen.dedup();
    let fixed_sql = apply_edits(sql, &edits)?;
    if breaks_parse(sql, &fixed_sql, input.adapter) {
        return None;
    }
    let qualifiers = chosen
        .iter()
        .map(|q| format!("`{q}.{column}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let places = if edits.len() == 1 {
        "1 place".to_owned()
    } else {
        format!("{} places", edits.len())
    };
    let explanation = format!(
        "`{column}` is in several joined relations of `{}`, which are joined on it; the joins keep the \
         value of one of them, so the column is read from there: {qualifiers} ({places}).",
        input.model_name,
    );
    Some(RuleFix {
        fixed_sql,
        explanation,
        rule: NAME,
        confidence: 0.85,
    })
}

/// The alias (or name) of the relation whose `C` the select should read.
///
/// The relations that carry `C` (the warehouse's list, or every relation of the `FROM`
/// when the warehouse gives none) must form one tree of equi-joins on `C`: every carrier
/// but the first is joined to an earlier carrier on `earlier.C = it.C`. With inner and
/// left joins only, the first carrier always holds the value and every other one holds
/// the same value or null, so it is kept. A right join is followed only between two
/// carriers (the right side is kept); a full join needs `coalesce`, a decision.
fn keeper(
    tokens: &[Token],
    sql: &str,
    scope: &SelectScope,
    column: &str,
    options: &[String],
) -> Option<String> {
    let from = scope.clause(ClauseKind::From)?;
    let relations = from_relations(tokens, sql, from.body.clone(), scope.depth)?;
    let names: Vec<Option<String>> = relations
        .iter()
        .map(|r| relation_name(tokens, sql, r))
        .collect();
    let position = |q: &str| {
        names
            .iter()
            .position(|n| n.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(q)))
    };
    let edges: Vec<Option<(usize, usize)>> = relations
        .iter()
        .map(|relation| {
            let (a, b) = equality_on(tokens, sql, relation.on.clone()?, column)?;
            Some((position(&a)?, position(&b)?))
        })
        .collect();
    // DuckDB lists the first two relations with the column, not every one; a relation
    // named in an equi-join on the column has it too. PostgreSQL lists none: then every
    // relation of the FROM must be in the join tree, or one outside it might hold the
    // column unjoined.
    let mut carriers: Vec<usize> = if options.is_empty() {
        (0..relations.len()).collect()
    } else {
        let mut listed = Vec::new();
        for option in options {
            let (qualifier, listed_column) = option.rsplit_once('.')?;
            if !listed_column.trim_matches('"').eq_ignore_ascii_case(column) {
                return None;
            }
            listed.push(position(qualifier.trim_matches('"'))?);
        }
        listed.extend(edges.iter().flatten().flat_map(|(a, b)| [*a, *b]));
        listed
    };
    carriers.sort_unstable();
    carriers.dedup();
    if carriers.len() < 2 {
        return None;
    }
    let root = carriers[0];
    let mut keep = root;
    for (k, relation) in relations.iter().enumerate() {
        if k == root || !carriers.contains(&k) {
            continue;
        }
        let (pa, pb) = edges[k]?;
        let partner = match (pa.min(pb), pa.max(pb)) {
            (earlier, later) if later == k && earlier < k && carriers.contains(&earlier) => earlier,
            _ => return None,
        };
        match relation.join? {
            JoinKind::Inner | JoinKind::Left => {}
            JoinKind::Right if carriers.len() == 2 && partner == root => keep = k,
            _ => return None,
        }
    }
    names[keep].clone()
}

fn relation_name(tokens: &[Token], sql: &str, relation: &FromRelation) -> Option<String> {
    let token = match relation.alias {
        Some(a) => &tokens[a],
        None => tokens.get(relation.relation.end.checked_sub(1)?)?,
    };
    matches!(token.kind, TokenKind::Word | TokenKind::QuotedIdent)
        .then(|| token.text(sql).trim_matches('"').to_owned())
}

/// In an `ON` condition, a top-level conjunct `a.C = b.C`: the two qualifiers.
fn equality_on(
    tokens: &[Token],
    sql: &str,
    on: std::ops::Range<usize>,
    column: &str,
) -> Option<(String, String)> {
    let depth = tokens.get(on.start)?.depth;
    let mut conjuncts = Vec::new();
    let mut start = on.start;
    for i in on.clone() {
        if tokens[i].depth == depth && tokens[i].is_keyword(sql, "and") {
            conjuncts.push(start..i);
            start = i + 1;
        }
        if tokens[i].depth == depth && tokens[i].is_keyword(sql, "or") {
            return None;
        }
    }
    conjuncts.push(start..on.end);
    conjuncts.into_iter().find_map(|c| {
        let t = tokens.get(c)?;
        let name = |x: &Token| x.text(sql).trim_matches('"').to_owned();
        match t {
            [qa, d1, ca, eq, qb, d2, cb]
                if d1.is_punct(sql, '.')
                    && d2.is_punct(sql, '.')
                    && eq.kind == TokenKind::Operator
                    && eq.text(sql) == "="
                    && name(ca).eq_ignore_ascii_case(column)
                    && name(cb).eq_ignore_ascii_case(column) =>
            {
                Some((name(qa), name(qb)))
            }
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wordings() {
        assert_eq!(
            parse_ambiguous_column("Binder Error: Ambiguous reference to column name \"store_id\" (use: 's.store_id' or 'o.store_id')"),
            Some(("store_id".to_owned(), vec!["s.store_id".to_owned(), "o.store_id".to_owned()]))
        );
        assert_eq!(
            parse_ambiguous_column("column reference \"store_id\" is ambiguous"),
            Some(("store_id".to_owned(), vec![]))
        );
    }
}
