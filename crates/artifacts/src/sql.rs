//! Reading a model's SQL for what evidence needs: the `ref()`s and `source()`s it calls and
//! the columns its final `SELECT` produces.
//!
//! Raw model SQL is Jinja. It is rendered just enough to parse: `{{ ref('x') }}` becomes a
//! placeholder table name that maps back to the ref, `{{ source('a', 'b') }}` likewise,
//! `{{ config(…) }}` and `{% … %}` tags vanish, any other `{{ … }}` becomes a placeholder
//! identifier. The result is parsed with sqlparser (DuckDB dialect, then generic, then
//! Postgres); `select *` is expanded through CTEs, subqueries and the resolver, which
//! recurses into parent models. When parsing fails a plain scan of the last top-level
//! select list is the fallback.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use regex::Regex;
use sqlparser::ast::{
    Expr, ObjectName, Query, Select, SelectItem, SelectItemQualifiedWildcardKind, SetExpr,
    Statement, TableFactor, WildcardAdditionalOptions,
};
use sqlparser::dialect::{Dialect, DuckDbDialect, GenericDialect, PostgreSqlDialect};
use sqlparser::parser::Parser;

/// How deep `select *` expansion follows parents before giving up (cycles, huge DAGs).
pub(crate) const MAX_DEPTH: usize = 8;

const REF_PREFIX: &str = "__dbtops_ref__";
const SOURCE_PREFIX: &str = "__dbtops_src__";
const SOURCE_SEP: &str = "__dot__";

/// A relation a query reads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Relation {
    /// `ref('name')`.
    Ref(String),
    /// `source('source_name', 'table')`.
    Source(String, String),
    /// A literal table name (compiled SQL, hard-coded relations): its dotted parts.
    Name(String),
}

/// Gives the columns of a relation a query reads (a parent model, a seed, a source).
pub(crate) trait ColumnResolver {
    /// `None` when unknown. `depth` is how far expansion has already recursed.
    fn columns(&self, relation: &Relation, depth: usize) -> Option<Vec<String>>;
}

/// The columns a query produces, and whether every one of them could be named.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Columns {
    pub names: Vec<String>,
    pub complete: bool,
}

fn re(cell: &'static OnceLock<Option<Regex>>, pattern: &str) -> Option<&'static Regex> {
    cell.get_or_init(|| Regex::new(pattern).ok()).as_ref()
}

/// The quoted string arguments of a Jinja call's argument text, keyword arguments dropped.
fn string_args(args: &str) -> Vec<String> {
    static STR: OnceLock<Option<Regex>> = OnceLock::new();
    let Some(s) = re(&STR, r#"(?:(\w+)\s*=\s*)?(?:'([^']*)'|"([^"]*)")"#) else {
        return Vec::new();
    };
    s.captures_iter(args)
        .filter(|c| c.get(1).is_none())
        .filter_map(|c| c.get(2).or_else(|| c.get(3)).map(|m| m.as_str().to_owned()))
        .collect()
}

/// The model names a piece of raw SQL `ref()`s, in order, without repeats.
pub(crate) fn refs_in(raw: &str) -> Vec<String> {
    static REF: OnceLock<Option<Regex>> = OnceLock::new();
    let Some(r) = re(&REF, r"\bref\s*\(([^)]*)\)") else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    for c in r.captures_iter(raw) {
        // `ref('pkg', 'model')`: the model is the last positional argument.
        if let Some(name) = c.get(1).and_then(|m| string_args(m.as_str()).pop()) {
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

/// The `(source_name, table)` pairs a piece of raw SQL reads, in order, without repeats.
pub(crate) fn sources_in(raw: &str) -> Vec<(String, String)> {
    static SRC: OnceLock<Option<Regex>> = OnceLock::new();
    let Some(r) = re(&SRC, r"\bsource\s*\(([^)]*)\)") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for c in r.captures_iter(raw) {
        let args = c
            .get(1)
            .map(|m| string_args(m.as_str()))
            .unwrap_or_default();
        if let [a, b, ..] = args.as_slice() {
            let pair = (a.clone(), b.clone());
            if !out.contains(&pair) {
                out.push(pair);
            }
        }
    }
    out
}

fn placeholder_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Renders raw dbt SQL into SQL a parser accepts (see the module comment). Returns the SQL
/// and the placeholder → relation map.
pub(crate) fn render_jinja(raw: &str) -> (String, BTreeMap<String, Relation>) {
    static EXPR: OnceLock<Option<Regex>> = OnceLock::new();
    static TAG: OnceLock<Option<Regex>> = OnceLock::new();
    let mut relations = BTreeMap::new();
    let (Some(expr), Some(tag)) = (
        re(&EXPR, r"(?s)\{\{-?(.*?)-?\}\}"),
        re(&TAG, r"(?s)\{%-?.*?-?%\}|\{#.*?#\}"),
    ) else {
        return (raw.to_owned(), relations);
    };
    let without_tags = tag.replace_all(raw, " ");
    let rendered = expr.replace_all(&without_tags, |c: &regex::Captures<'_>| {
        let inner = c.get(1).map_or("", |m| m.as_str()).trim();
        if inner.starts_with("config(") || inner.starts_with("config (") {
            return String::new();
        }
        if let Some(name) = refs_in(inner).into_iter().next() {
            let ph = format!("{REF_PREFIX}{}", placeholder_safe(&name));
            relations.insert(ph.clone(), Relation::Ref(name));
            return ph;
        }
        if let Some((s, t)) = sources_in(inner).into_iter().next() {
            let ph = format!(
                "{SOURCE_PREFIX}{}{SOURCE_SEP}{}",
                placeholder_safe(&s),
                placeholder_safe(&t)
            );
            relations.insert(ph.clone(), Relation::Source(s, t));
            return ph;
        }
        "__dbtops_jinja__".to_owned()
    });
    (rendered.into_owned(), relations)
}

/// The columns the final `SELECT` of `sql` (raw dbt SQL or compiled SQL) produces.
pub(crate) fn output_columns(
    sql: &str,
    resolver: &dyn ColumnResolver,
    depth: usize,
) -> Option<Columns> {
    let (rendered, relations) = render_jinja(sql);
    let dialects: [&dyn Dialect; 3] =
        [&DuckDbDialect {}, &GenericDialect {}, &PostgreSqlDialect {}];
    for dialect in dialects {
        let Ok(statements) = Parser::parse_sql(dialect, &rendered) else {
            continue;
        };
        let query = statements.iter().rev().find_map(|s| match s {
            Statement::Query(q) => Some(q),
            _ => None,
        });
        if let Some(q) = query {
            let ctx = Ctx {
                resolver,
                relations: &relations,
                depth,
            };
            return ctx.query(q, &BTreeMap::new());
        }
    }
    fallback_select_list(&rendered)
}

struct Ctx<'a> {
    resolver: &'a dyn ColumnResolver,
    relations: &'a BTreeMap<String, Relation>,
    depth: usize,
}

type Scope = BTreeMap<String, Columns>;

impl Ctx<'_> {
    fn query(&self, q: &Query, outer: &Scope) -> Option<Columns> {
        let mut scope = outer.clone();
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                let mut cols = self.query(&cte.query, &scope).unwrap_or_default();
                if !cte.alias.columns.is_empty() {
                    cols = Columns {
                        names: cte
                            .alias
                            .columns
                            .iter()
                            .map(|c| c.name.value.clone())
                            .collect(),
                        complete: true,
                    };
                }
                scope.insert(cte.alias.name.value.to_lowercase(), cols);
            }
        }
        self.set_expr(&q.body, &scope)
    }

    fn set_expr(&self, body: &SetExpr, scope: &Scope) -> Option<Columns> {
        match body {
            SetExpr::Select(s) => Some(self.select(s, scope)),
            SetExpr::Query(q) => self.query(q, scope),
            // A union's columns are named by its first branch.
            SetExpr::SetOperation { left, .. } => self.set_expr(left, scope),
            _ => None,
        }
    }

    fn relation_of(&self, name: &ObjectName) -> Relation {
        let parts: Vec<String> = name
            .0
            .iter()
            .filter_map(|p| p.as_ident().map(|i| i.value.clone()))
            .collect();
        let last = parts.last().cloned().unwrap_or_default();
        if let Some(rel) = self.relations.get(&last) {
            return rel.clone();
        }
        Relation::Name(parts.join("."))
    }

    /// The FROM clause's relations in order: (the name columns are qualified by, columns).
    fn relations_in_from(&self, s: &Select, scope: &Scope) -> Vec<(String, Columns)> {
        let mut out = Vec::new();
        for twj in &s.from {
            for factor in
                std::iter::once(&twj.relation).chain(twj.joins.iter().map(|j| &j.relation))
            {
                out.push(self.factor(factor, scope));
            }
        }
        out
    }

    fn factor(&self, factor: &TableFactor, scope: &Scope) -> (String, Columns) {
        match factor {
            TableFactor::Table { name, alias, .. } => {
                let relation = self.relation_of(name);
                let plain = name
                    .0
                    .last()
                    .and_then(|p| p.as_ident())
                    .map(|i| i.value.clone())
                    .unwrap_or_default();
                let key = alias
                    .as_ref()
                    .map_or_else(|| plain.clone(), |a| a.name.value.clone());
                let cols = if name.0.len() == 1 && scope.contains_key(&plain.to_lowercase()) {
                    scope
                        .get(&plain.to_lowercase())
                        .cloned()
                        .unwrap_or_default()
                } else if self.depth >= MAX_DEPTH {
                    Columns::default()
                } else {
                    match self.resolver.columns(&relation, self.depth + 1) {
                        Some(names) => Columns {
                            names,
                            complete: true,
                        },
                        None => Columns::default(),
                    }
                };
                (key, cols)
            }
            TableFactor::Derived {
                subquery, alias, ..
            } => {
                let cols = self.query(subquery, scope).unwrap_or_default();
                (
                    alias
                        .as_ref()
                        .map(|a| a.name.value.clone())
                        .unwrap_or_default(),
                    cols,
                )
            }
            TableFactor::NestedJoin {
                table_with_joins,
                alias,
                ..
            } => {
                // `(a join b)`: its columns are both sides'.
                let mut all = Columns {
                    names: Vec::new(),
                    complete: true,
                };
                for f in std::iter::once(&table_with_joins.relation)
                    .chain(table_with_joins.joins.iter().map(|j| &j.relation))
                {
                    let (_, c) = self.factor(f, scope);
                    all.complete &= c.complete;
                    all.names.extend(c.names);
                }
                (
                    alias
                        .as_ref()
                        .map(|a| a.name.value.clone())
                        .unwrap_or_default(),
                    all,
                )
            }
            _ => (String::new(), Columns::default()),
        }
    }

    fn select(&self, s: &Select, scope: &Scope) -> Columns {
        let from = self.relations_in_from(s, scope);
        let mut out = Columns {
            names: Vec::new(),
            complete: true,
        };
        for item in &s.projection {
            match item {
                SelectItem::UnnamedExpr(expr) => match expr {
                    Expr::Identifier(i) => push_name(&mut out, &i.value),
                    Expr::CompoundIdentifier(parts) => {
                        if let Some(last) = parts.last() {
                            push_name(&mut out, &last.value);
                        }
                    }
                    // The warehouse names other unnamed expressions itself (`count_star()`);
                    // those names are not worth guessing.
                    _ => out.complete = false,
                },
                SelectItem::ExprWithAlias { alias, .. } => push_name(&mut out, &alias.value),
                SelectItem::ExprWithAliases { aliases, .. } => {
                    for a in aliases {
                        push_name(&mut out, &a.value);
                    }
                }
                SelectItem::Wildcard(opts) => {
                    let excluded = excluded(opts);
                    for (_, cols) in &from {
                        out.complete &= cols.complete;
                        for c in &cols.names {
                            if !excluded.contains(&c.to_lowercase()) {
                                push_unique(&mut out.names, c);
                            }
                        }
                    }
                    if from.is_empty() {
                        out.complete = false;
                    }
                }
                SelectItem::QualifiedWildcard(kind, opts) => {
                    let excluded = excluded(opts);
                    let qualifier = match kind {
                        SelectItemQualifiedWildcardKind::ObjectName(n) => {
                            n.0.last()
                                .and_then(|p| p.as_ident())
                                .map(|i| i.value.to_lowercase())
                        }
                        SelectItemQualifiedWildcardKind::Expr(_) => None,
                    };
                    match from
                        .iter()
                        .find(|(k, _)| Some(k.to_lowercase()) == qualifier)
                    {
                        Some((_, cols)) => {
                            out.complete &= cols.complete;
                            for c in &cols.names {
                                if !excluded.contains(&c.to_lowercase()) {
                                    push_unique(&mut out.names, c);
                                }
                            }
                        }
                        None => out.complete = false,
                    }
                }
            }
        }
        out
    }
}

fn excluded(opts: &WildcardAdditionalOptions) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(ex) = &opts.opt_exclude {
        let names: Vec<&ObjectName> = match ex {
            sqlparser::ast::ExcludeSelectItem::Single(n) => vec![n],
            sqlparser::ast::ExcludeSelectItem::Multiple(ns) => ns.iter().collect(),
        };
        for n in names {
            if let Some(i) = n.0.last().and_then(|p| p.as_ident()) {
                out.push(i.value.to_lowercase());
            }
        }
    }
    if let Some(ex) = &opts.opt_except {
        out.push(ex.first_element.value.to_lowercase());
        out.extend(
            ex.additional_elements
                .iter()
                .map(|i| i.value.to_lowercase()),
        );
    }
    out
}

/// Adds an output column name, unless Jinja made it (`{{ category }}_amount`): such a name
/// is only known after rendering, so the list is marked incomplete instead.
fn push_name(out: &mut Columns, name: &str) {
    if name.contains("__dbtops_") {
        out.complete = false;
    } else {
        push_unique(&mut out.names, name);
    }
}

fn push_unique(names: &mut Vec<String>, name: &str) {
    if !names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
        names.push(name.to_owned());
    }
}

/// When the parser gives up (dialect quirks, leftover Jinja): split the last top-level
/// `select … from` list on top-level commas and keep aliases and bare column names.
fn fallback_select_list(sql: &str) -> Option<Columns> {
    static IDENT: OnceLock<Option<Regex>> = OnceLock::new();
    static ALIAS: OnceLock<Option<Regex>> = OnceLock::new();
    let ident = re(&IDENT, r#"^(?:[A-Za-z_][\w$]*\.)*"?([A-Za-z_][\w$]*)"?$"#)?;
    let alias = re(&ALIAS, r#"(?i)\s(?:as\s+)?"?([A-Za-z_][\w$]*)"?$"#)?;
    let lower = sql.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    // Find top-level `select` and its `from`.
    let mut depth = 0i32;
    let mut last_select = None;
    let mut from_after = None;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'(' => depth += 1,
            b')' => depth -= 1,
            b'\'' => {
                // Skip string literals.
                i += 1;
                while i < bytes.len() && bytes[i] != b'\'' {
                    i += 1;
                }
            }
            _ if depth == 0 && word_at(bytes, i, b"select") => {
                last_select = Some(i + 6);
                from_after = None;
            }
            _ if depth == 0
                && last_select.is_some()
                && from_after.is_none()
                && word_at(bytes, i, b"from") =>
            {
                from_after = Some(i);
            }
            _ => {}
        }
        i += 1;
    }
    let start = last_select?;
    let end = from_after.unwrap_or(sql.len());
    let list = sql.get(start..end)?;
    let mut out = Columns {
        names: Vec::new(),
        complete: true,
    };
    for item in split_top_level(list) {
        let item = item.trim();
        let item = item.strip_prefix("distinct ").unwrap_or(item).trim();
        if item.is_empty() {
            continue;
        }
        if item == "*" || item.ends_with(".*") {
            out.complete = false;
        } else if let Some(c) = ident.captures(item) {
            if let Some(m) = c.get(1) {
                push_name(&mut out, m.as_str());
            }
        } else if let Some(c) = alias.captures(item) {
            if let Some(m) = c.get(1) {
                push_name(&mut out, m.as_str());
            }
        } else {
            out.complete = false;
        }
    }
    Some(out)
}

fn word_at(bytes: &[u8], i: usize, word: &[u8]) -> bool {
    let before_ok = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
    let end = i + word.len();
    let after_ok =
        end >= bytes.len() || !(bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_');
    before_ok && after_ok && bytes.get(i..end) == Some(word)
}

fn split_top_level(list: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    let mut in_str = false;
    for (i, c) in list.char_indices() {
        match c {
            '\'' => in_str = !in_str,
            '(' if !in_str => depth += 1,
            ')' if !in_str => depth -= 1,
            ',' if !in_str && depth == 0 => {
                out.push(&list[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&list[start..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(BTreeMap<Relation, Vec<String>>);
    impl ColumnResolver for Fixed {
        fn columns(&self, relation: &Relation, _depth: usize) -> Option<Vec<String>> {
            self.0.get(relation).cloned()
        }
    }

    fn resolver() -> Fixed {
        let mut m = BTreeMap::new();
        m.insert(
            Relation::Ref("raw_orders".into()),
            vec![
                "id".into(),
                "customer_id".into(),
                "order_date".into(),
                "amount".into(),
            ],
        );
        m.insert(
            Relation::Source("ext".into(), "raw_payments".into()),
            vec!["payment_id".into(), "amount".into()],
        );
        m.insert(
            Relation::Name("shop.main.stg_orders".into()),
            vec!["order_id".into(), "amount".into()],
        );
        Fixed(m)
    }

    #[test]
    fn finds_refs_and_sources() {
        let raw = "{{ config(materialized='table') }}\nselect * from {{ ref('stg_orders') }} o join {{ ref(\"pkg\", \"stg_customers\") }} c using (id)\njoin {{ source('ext', 'raw_payments') }} p on true join {{ ref('m', v=2) }} x on 1=1";
        assert_eq!(refs_in(raw), ["stg_orders", "stg_customers", "m"]);
        assert_eq!(
            sources_in(raw),
            [("ext".to_owned(), "raw_payments".to_owned())]
        );
    }

    #[test]
    fn aliases_and_bare_columns() {
        let cols = output_columns(
            "select\n    id as order_id,\n    customer_id,\n    o.order_date,\n    amount * 100 as cents\nfrom {{ ref('raw_orders') }} o",
            &resolver(),
            0,
        )
        .unwrap();
        assert_eq!(
            cols.names,
            ["order_id", "customer_id", "order_date", "cents"]
        );
        assert!(cols.complete);
    }

    #[test]
    fn star_through_ctes_and_refs() {
        let sql = "{{ config(materialized='view') }}\nwith o as (\n    select * from {{ ref('raw_orders') }}\n), p as (select * exclude (amount) from {{ source('ext', 'raw_payments') }})\nselect o.*, p.payment_id as pid from o join p on true";
        let cols = output_columns(sql, &resolver(), 0).unwrap();
        assert_eq!(
            cols.names,
            ["id", "customer_id", "order_date", "amount", "pid"]
        );
        assert!(cols.complete);
    }

    #[test]
    fn compiled_sql_relations_resolve_by_name() {
        let cols = output_columns(
            "select * from \"shop\".\"main\".\"stg_orders\"",
            &resolver(),
            0,
        )
        .unwrap();
        assert_eq!(cols.names, ["order_id", "amount"]);
    }

    #[test]
    fn unknown_star_is_incomplete() {
        let cols =
            output_columns("select *, 1 as one from {{ ref('nope') }}", &resolver(), 0).unwrap();
        assert_eq!(cols.names, ["one"]);
        assert!(!cols.complete);
    }

    #[test]
    fn jinja_control_flow_falls_back_gracefully() {
        let sql = "select\n  id,\n  {% for m in ['a','b'] %} sum(case when x = '{{ m }}' then 1 end) as n_{{ m }}, {% endfor %}\n  total as t\nfrom {{ ref('raw_orders') }}";
        let cols = output_columns(sql, &resolver(), 0).unwrap();
        assert!(cols.names.contains(&"id".to_owned()));
        assert!(cols.names.contains(&"t".to_owned()));
    }

    #[test]
    fn jinja_made_names_are_not_guessed() {
        let sql = "select id, {%- for c in cats %} 1 as {{ c }}_amount, {%- endfor %} 2 as total from {{ ref('raw_orders') }}";
        let cols = output_columns(sql, &resolver(), 0).unwrap();
        assert_eq!(cols.names, ["id", "total"]);
        assert!(!cols.complete);
    }

    #[test]
    fn fallback_scans_the_last_select() {
        let cols = fallback_select_list("select a, b.c, f(x) as y, 'q,w' as z from t").unwrap();
        assert_eq!(cols.names, ["a", "c", "y", "z"]);
    }

    #[test]
    fn hostile_sql_does_not_panic() {
        for sql in [
            "",
            "select",
            "((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((",
            "select * from",
            "{{ ref(",
            "with a as (select * from a) select * from a",
            "select 'unterminated",
        ] {
            let _ = output_columns(sql, &resolver(), 0);
        }
    }
}
