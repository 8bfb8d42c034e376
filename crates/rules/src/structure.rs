//! Query structure read off the token stream: every `SELECT` with its select list, its
//! clauses and the relations of its `FROM`, and the CTEs a model defines.
//!
//! Deliberately shallow: it finds boundaries (where a select list ends, which tokens are
//! the `GROUP BY` list, which alias a `ref()` got), not meaning. Parentheses nest scopes,
//! so a subquery or a window's `order by` never ends the select list around it. When the
//! text does not have the expected shape, the functions answer `None` and the rules that
//! need the answer do not fire.

use std::ops::Range;

use crate::tokens::{matching_close, Token, TokenKind};

/// A clause that follows a select list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClauseKind {
    /// `FROM …`
    From,
    /// `WHERE …`
    Where,
    /// `GROUP BY …`
    GroupBy,
    /// `HAVING …`
    Having,
    /// `QUALIFY …`
    Qualify,
    /// `WINDOW …`
    Window,
    /// `ORDER BY …`
    OrderBy,
    /// `LIMIT …`
    Limit,
    /// `OFFSET …`
    Offset,
    /// `FETCH …`
    Fetch,
}

/// One clause of a select.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    /// Which clause.
    pub kind: ClauseKind,
    /// Token index of its first keyword (`group` of `group by`).
    pub keyword: usize,
    /// Token range of its body: after `by` for the two-word clauses.
    pub body: Range<usize>,
}

/// One `SELECT` and what belongs to it at its own depth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectScope {
    /// Token index of the `select` keyword.
    pub select: usize,
    /// The parenthesis depth of the keyword and of the scope's clause keywords.
    pub depth: usize,
    /// Token range of the select list, after `select [distinct [on (…)] | all]`.
    pub list: Range<usize>,
    /// The select items: token ranges between the list's top-level commas.
    pub items: Vec<Range<usize>>,
    /// The clauses after the list, in order.
    pub clauses: Vec<Clause>,
    /// One past the scope's last token.
    pub end: usize,
}

impl SelectScope {
    /// The clause of `kind`, if the scope has one.
    pub fn clause(&self, kind: ClauseKind) -> Option<&Clause> {
        self.clauses.iter().find(|c| c.kind == kind)
    }

    /// Index of the select item containing token `index`, if it is in the list.
    pub fn item_containing(&self, index: usize) -> Option<usize> {
        self.items.iter().position(|r| r.contains(&index))
    }
}

/// Keywords that end a set of select-list items or relations at the same depth.
const SET_OPERATORS: &[&str] = &["union", "intersect", "except", "minus"];

/// Words that cannot be an implicit table alias.
const NOT_AN_ALIAS: &[&str] = &[
    "on",
    "using",
    "join",
    "left",
    "right",
    "full",
    "inner",
    "outer",
    "cross",
    "natural",
    "where",
    "group",
    "having",
    "qualify",
    "window",
    "order",
    "limit",
    "offset",
    "fetch",
    "union",
    "intersect",
    "except",
    "minus",
    "lateral",
    "asof",
    "positional",
    "anti",
    "semi",
    "as",
    "select",
    "from",
    "tablesample",
    "using",
    "pivot",
    "unpivot",
];

/// Every select scope of the model, in text order (an outer select before the
/// subqueries in its list).
pub fn select_scopes(tokens: &[Token], source: &str) -> Vec<SelectScope> {
    tokens
        .iter()
        .enumerate()
        .filter(|(_, t)| t.is_keyword(source, "select"))
        .map(|(i, _)| scope_at(tokens, source, i))
        .collect()
}

fn scope_at(tokens: &[Token], source: &str, select: usize) -> SelectScope {
    let depth = tokens[select].depth;
    let mut end = select + 1;
    while end < tokens.len() {
        let t = &tokens[end];
        if t.depth < depth {
            break;
        }
        if t.depth == depth
            && (t.is_punct(source, ';') || SET_OPERATORS.iter().any(|k| t.is_keyword(source, k)))
        {
            break;
        }
        end += 1;
    }

    let mut start = select + 1;
    if tokens
        .get(start)
        .is_some_and(|t| t.is_keyword(source, "distinct"))
    {
        start += 1;
        if tokens
            .get(start)
            .is_some_and(|t| t.is_keyword(source, "on"))
            && tokens
                .get(start + 1)
                .is_some_and(|t| t.is_punct(source, '('))
        {
            start = matching_close(tokens, source, start + 1).map_or(end, |c| c + 1);
        }
    } else if tokens
        .get(start)
        .is_some_and(|t| t.is_keyword(source, "all"))
    {
        start += 1;
    }
    let start = start.min(end);

    // Clause keywords at the scope's own depth.
    let mut marks: Vec<(ClauseKind, usize, usize)> = Vec::new();
    let mut i = start;
    while i < end {
        let t = &tokens[i];
        if t.depth != depth || t.kind != TokenKind::Word {
            i += 1;
            continue;
        }
        let next_is_by = tokens
            .get(i + 1)
            .is_some_and(|n| n.is_keyword(source, "by"));
        let found = if t.is_keyword(source, "from") && !is_distinct_from(tokens, source, i) {
            Some((ClauseKind::From, 1))
        } else if t.is_keyword(source, "where") {
            Some((ClauseKind::Where, 1))
        } else if t.is_keyword(source, "group") && next_is_by {
            Some((ClauseKind::GroupBy, 2))
        } else if t.is_keyword(source, "having") {
            Some((ClauseKind::Having, 1))
        } else if t.is_keyword(source, "qualify") {
            Some((ClauseKind::Qualify, 1))
        } else if t.is_keyword(source, "window") {
            Some((ClauseKind::Window, 1))
        } else if t.is_keyword(source, "order") && next_is_by {
            Some((ClauseKind::OrderBy, 2))
        } else if t.is_keyword(source, "limit") {
            Some((ClauseKind::Limit, 1))
        } else if t.is_keyword(source, "offset") {
            Some((ClauseKind::Offset, 1))
        } else if t.is_keyword(source, "fetch") {
            Some((ClauseKind::Fetch, 1))
        } else {
            None
        };
        match found {
            Some((kind, width)) => {
                marks.push((kind, i, i + width));
                i += width;
            }
            None => i += 1,
        }
    }
    let list_end = marks.first().map_or(end, |m| m.1);
    let clauses = marks
        .iter()
        .enumerate()
        .map(|(n, &(kind, keyword, body_start))| Clause {
            kind,
            keyword,
            body: body_start..marks.get(n + 1).map_or(end, |m| m.1),
        })
        .collect();
    let list = start..list_end.max(start);
    SelectScope {
        select,
        depth,
        items: split_commas(tokens, source, list.clone(), depth),
        list,
        clauses,
        end,
    }
}

/// `a is distinct from b`: that `from` is an operator, not a clause.
fn is_distinct_from(tokens: &[Token], source: &str, from: usize) -> bool {
    from >= 2
        && tokens[from - 1].is_keyword(source, "distinct")
        && (tokens[from - 2].is_keyword(source, "is") || tokens[from - 2].is_keyword(source, "not"))
}

/// Splits a token range at the commas of `depth` into non-overlapping item ranges
/// (commas excluded). An empty item (a trailing comma) is an empty range.
pub fn split_commas(
    tokens: &[Token],
    source: &str,
    range: Range<usize>,
    depth: usize,
) -> Vec<Range<usize>> {
    if range.is_empty() {
        return Vec::new();
    }
    let mut items = Vec::new();
    let mut start = range.start;
    for i in range.clone() {
        let t = &tokens[i];
        if t.depth == depth && t.is_punct(source, ',') {
            items.push(start..i);
            start = i + 1;
        }
    }
    items.push(start..range.end);
    items
}

/// How a relation joins the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    /// `join` or `inner join`.
    Inner,
    /// `left [outer] join`.
    Left,
    /// `right [outer] join`.
    Right,
    /// `full [outer] join`.
    Full,
    /// `cross join` or a comma.
    Cross,
    /// Any other join (`natural`, `asof`, `positional`, `semi`, `anti`, `lateral`).
    Other,
}

/// One relation in a `FROM` clause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromRelation {
    /// Token range of the relation: a name, a Jinja `ref()`, a parenthesized subquery
    /// or a table function call.
    pub relation: Range<usize>,
    /// Token index of its alias, if it has one.
    pub alias: Option<usize>,
    /// How it is joined to the relations before it; `None` for the first.
    pub join: Option<JoinKind>,
    /// Token range of its `ON` condition.
    pub on: Option<Range<usize>>,
}

/// The relations of a `FROM` clause body at `depth`; `None` when the clause has a shape
/// this reader does not know (Jinja control flow inside it, a pivot, …).
pub fn from_relations(
    tokens: &[Token],
    source: &str,
    body: Range<usize>,
    depth: usize,
) -> Option<Vec<FromRelation>> {
    let kw = |i: usize, k: &str| {
        tokens
            .get(i)
            .is_some_and(|t| i < body.end && t.is_keyword(source, k))
    };
    let mut relations = Vec::new();
    let mut pos = body.start;
    let mut join: Option<JoinKind> = None;
    while pos < body.end {
        if tokens[pos].kind == TokenKind::JinjaStatement {
            return None;
        }
        if kw(pos, "lateral") {
            pos += 1;
        }
        // The relation.
        let rel_start = pos;
        let first = tokens.get(pos).filter(|_| pos < body.end)?;
        if first.is_punct(source, '(') {
            pos = matching_close(tokens, source, pos)? + 1;
        } else if matches!(
            first.kind,
            TokenKind::Jinja | TokenKind::Word | TokenKind::QuotedIdent
        ) {
            if first.kind == TokenKind::Word
                && NOT_AN_ALIAS.iter().any(|k| first.is_keyword(source, k))
            {
                return None;
            }
            pos += 1;
            // Dotted continuation: `schema.table`, `{{ target.schema }}.t`.
            while pos + 1 < body.end
                && tokens[pos].is_punct(source, '.')
                && matches!(
                    tokens[pos + 1].kind,
                    TokenKind::Word | TokenKind::QuotedIdent | TokenKind::Jinja
                )
            {
                pos += 2;
            }
            if pos < body.end && tokens[pos].is_punct(source, '(') {
                pos = matching_close(tokens, source, pos)? + 1;
            }
        } else {
            return None;
        }
        let relation = rel_start..pos;
        // The alias.
        let mut alias = None;
        if kw(pos, "as") {
            let a = tokens.get(pos + 1).filter(|_| pos + 1 < body.end)?;
            if !matches!(a.kind, TokenKind::Word | TokenKind::QuotedIdent) {
                return None;
            }
            alias = Some(pos + 1);
            pos += 2;
        } else if let Some(a) = tokens.get(pos).filter(|_| pos < body.end) {
            let is_alias = a.kind == TokenKind::QuotedIdent
                || (a.kind == TokenKind::Word
                    && !NOT_AN_ALIAS.iter().any(|k| a.is_keyword(source, k)));
            if is_alias {
                alias = Some(pos);
                pos += 1;
            }
        }
        if alias.is_some() && pos < body.end && tokens[pos].is_punct(source, '(') {
            // Column aliases: `t(a, b)`.
            pos = matching_close(tokens, source, pos)? + 1;
        }
        // The join condition.
        let mut on = None;
        if kw(pos, "on") {
            let start = pos + 1;
            let mut end = start;
            while end < body.end
                && !(tokens[end].depth == depth && starts_join(tokens, source, end))
            {
                end += 1;
            }
            on = Some(start..end);
            pos = end;
        } else if kw(pos, "using") {
            if !tokens.get(pos + 1).is_some_and(|t| t.is_punct(source, '(')) {
                return None;
            }
            pos = matching_close(tokens, source, pos + 1)? + 1;
        }
        relations.push(FromRelation {
            relation,
            alias,
            join,
            on,
        });
        if pos >= body.end {
            break;
        }
        // What joins the next relation.
        let (kind, width) = join_keyword(tokens, source, pos, body.end)?;
        join = Some(kind);
        pos += width;
    }
    (!relations.is_empty()).then_some(relations)
}

fn starts_join(tokens: &[Token], source: &str, i: usize) -> bool {
    let t = &tokens[i];
    t.is_punct(source, ',')
        || [
            "join",
            "left",
            "right",
            "full",
            "inner",
            "cross",
            "natural",
            "asof",
            "positional",
            "anti",
            "semi",
        ]
        .iter()
        .any(|k| t.is_keyword(source, k))
}

/// The join starting at `pos` and how many tokens it takes.
fn join_keyword(
    tokens: &[Token],
    source: &str,
    pos: usize,
    end: usize,
) -> Option<(JoinKind, usize)> {
    let kw = |i: usize, k: &str| i < end && tokens[i].is_keyword(source, k);
    if pos < end && tokens[pos].is_punct(source, ',') {
        return Some((JoinKind::Cross, 1));
    }
    let mut i = pos;
    let mut kind = JoinKind::Inner;
    if kw(i, "natural") || kw(i, "asof") || kw(i, "positional") {
        kind = JoinKind::Other;
        i += 1;
    }
    if kw(i, "left") {
        kind = if kind == JoinKind::Other {
            kind
        } else {
            JoinKind::Left
        };
        i += 1;
    } else if kw(i, "right") {
        kind = if kind == JoinKind::Other {
            kind
        } else {
            JoinKind::Right
        };
        i += 1;
    } else if kw(i, "full") {
        kind = if kind == JoinKind::Other {
            kind
        } else {
            JoinKind::Full
        };
        i += 1;
    } else if kw(i, "inner") {
        i += 1;
    } else if kw(i, "cross") {
        kind = JoinKind::Cross;
        i += 1;
    }
    if kw(i, "outer") {
        i += 1;
    }
    if kw(i, "semi") || kw(i, "anti") {
        kind = JoinKind::Other;
        i += 1;
    }
    if !kw(i, "join") {
        return None;
    }
    Some((kind, i + 1 - pos))
}

/// A CTE the model defines: `name as ( select … )`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cte {
    /// Token index of its name.
    pub name: usize,
    /// Token index of the `select` that opens its body.
    pub select: usize,
}

/// Every `name as (select …)` at any depth, in order.
pub fn ctes(tokens: &[Token], source: &str) -> Vec<Cte> {
    let mut out = Vec::new();
    for i in 0..tokens.len().saturating_sub(3) {
        let defines = matches!(tokens[i].kind, TokenKind::Word | TokenKind::QuotedIdent)
            && tokens[i + 1].is_keyword(source, "as")
            && tokens[i + 2].is_punct(source, '(')
            && tokens[i + 3].is_keyword(source, "select");
        let preceded = i > 0
            && (tokens[i - 1].is_keyword(source, "with")
                || tokens[i - 1].is_keyword(source, "recursive")
                || tokens[i - 1].is_punct(source, ','));
        if defines && preceded {
            out.push(Cte {
                name: i,
                select: i + 3,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::tokenize;

    fn item_texts(source: &str, tokens: &[Token], scope: &SelectScope) -> Vec<String> {
        scope
            .items
            .iter()
            .map(|r| {
                if r.is_empty() {
                    String::new()
                } else {
                    source[tokens[r.start].range.start..tokens[r.end - 1].range.end].to_owned()
                }
            })
            .collect()
    }

    #[test]
    fn scopes_lists_and_clauses() {
        let sql = "with a as (select x, count(*) over (order by y) n from t where z group by x)\nselect distinct a.x, (select max(q) from u) m from a order by 1 limit 5";
        let tokens = tokenize(sql);
        let scopes = select_scopes(&tokens, sql);
        assert_eq!(scopes.len(), 3);
        assert_eq!(
            item_texts(sql, &tokens, &scopes[0]),
            vec!["x", "count(*) over (order by y) n"]
        );
        let kinds: Vec<ClauseKind> = scopes[0].clauses.iter().map(|c| c.kind).collect();
        assert_eq!(
            kinds,
            vec![ClauseKind::From, ClauseKind::Where, ClauseKind::GroupBy]
        );
        assert_eq!(
            item_texts(sql, &tokens, &scopes[1]),
            vec!["a.x", "(select max(q) from u) m"]
        );
        let kinds: Vec<ClauseKind> = scopes[1].clauses.iter().map(|c| c.kind).collect();
        assert_eq!(
            kinds,
            vec![ClauseKind::From, ClauseKind::OrderBy, ClauseKind::Limit]
        );
        assert_eq!(scopes[2].depth, 1);
        let ctes = ctes(&tokens, sql);
        assert_eq!(ctes.len(), 1);
        assert_eq!(tokens[ctes[0].name].text(sql), "a");
    }

    #[test]
    fn is_distinct_from_is_not_a_clause() {
        let sql = "select a is distinct from b as d from t";
        let tokens = tokenize(sql);
        let scope = &select_scopes(&tokens, sql)[0];
        assert_eq!(
            item_texts(sql, &tokens, scope),
            vec!["a is distinct from b as d"]
        );
    }

    #[test]
    fn union_ends_a_scope() {
        let sql = "select a from t union all select b from u";
        let tokens = tokenize(sql);
        let scopes = select_scopes(&tokens, sql);
        assert_eq!(scopes[0].end, 4);
        assert_eq!(item_texts(sql, &tokens, &scopes[1]), vec!["b"]);
    }

    #[test]
    fn relations_aliases_and_joins() {
        let sql = "select 1 from {{ ref('s') }} as s left join completed_orders o on s.id = o.id and s.x = 1 cross join main.t, read_csv('x') r";
        let tokens = tokenize(sql);
        let scope = &select_scopes(&tokens, sql)[0];
        let from = scope.clause(ClauseKind::From).unwrap();
        let rels = from_relations(&tokens, sql, from.body.clone(), 0).unwrap();
        let described: Vec<(String, Option<&str>, Option<JoinKind>)> = rels
            .iter()
            .map(|r| {
                (
                    sql[tokens[r.relation.start].range.start..tokens[r.relation.end - 1].range.end]
                        .to_owned(),
                    r.alias.map(|a| tokens[a].text(sql)),
                    r.join,
                )
            })
            .collect();
        assert_eq!(
            described,
            vec![
                ("{{ ref('s') }}".to_owned(), Some("s"), None),
                (
                    "completed_orders".to_owned(),
                    Some("o"),
                    Some(JoinKind::Left)
                ),
                ("main.t".to_owned(), None, Some(JoinKind::Cross)),
                ("read_csv('x')".to_owned(), Some("r"), Some(JoinKind::Cross)),
            ]
        );
        let on = rels[1].on.clone().unwrap();
        assert_eq!(
            &sql[tokens[on.start].range.start..tokens[on.end - 1].range.end],
            "s.id = o.id and s.x = 1"
        );
    }
}
