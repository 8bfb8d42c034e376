//! `reserved_alias`: a select item named with a word the warehouse reserves — a bare
//! alias (`sum(amount) order,`, `extract(year from ordered_at) year,`) or a column read
//! by that name alone (`select customer_id, group, …` from a CTE that defined
//! `… as group`). The word is quoted (`"order"`), which keeps the model's output column
//! name.
//!
//! What the warehouses reject was measured, not assumed (DuckDB 2.0.1 through dbt-duckdb
//! 1.11, PostgreSQL 15; every keyword each one lists, in both positions):
//!
//! - after `AS`, both take every keyword (`sum(amount) as order` builds), so a word
//!   after `AS` is never this rule's;
//! - without `AS`, DuckDB refuses 142 words as an alias (its reserved keywords, most
//!   of its type-and-function keywords and the interval units), PostgreSQL 37 (its
//!   keywords that are no "bare label": `order`, `from`, `year`, …, but not `end`,
//!   `select` or `user`);
//! - as a column read by its name alone, DuckDB refuses 101, PostgreSQL 85.
//!
//! The warehouse stops at the word itself (`syntax error at or near "year"`) or at the
//! token after it (`","`, or `"from"` on the next line, which is the line it echoes):
//! so the word is the token the error points at or the one right before it.
//!
//! sqlparser is more lenient than both: it takes `cast(x as date) day`, `max(x) end`
//! and `extract(year from x) year` as aliases and `offset` as a column. So the model as
//! written failing sqlparser is not asked for — the measured tables decide which word
//! the warehouse refused — but the quoted model must parse.
//!
//! Only DuckDB and PostgreSQL are answered: the quoted name must equal what the
//! unquoted one would have been, and that is the word as written on DuckDB (it keeps
//! the case of names) and the word in lower case on PostgreSQL (it folds them).
//! Snowflake folds to upper case and BigQuery quotes with backticks; neither was
//! measured.

use crate::error_spot::{locate_echo, parse_syntax_error, SyntaxError};
use crate::rewrite::{apply_edits, Edit};
use crate::sqlcheck::parse_model;
use crate::tokens::{tokenize, Token, TokenKind};
use crate::{RuleFix, RuleInput};

use super::warehouse_name;

/// The rule's name.
pub(super) const NAME: &str = "reserved_alias";

/// What one warehouse refuses, and how it spells an unquoted name.
struct Reserved {
    /// Words refused as an alias without `AS` (`sum(amount) order,`), sorted.
    bare_alias: &'static [&'static str],
    /// Words refused as a select item that reads a column by that name alone
    /// (`select id, order, …`), sorted.
    bare_column: &'static [&'static str],
    /// PostgreSQL folds an unquoted name to lower case; DuckDB keeps it as written.
    folds_to_lower: bool,
}

/// DuckDB 2.0.1 (dbt-duckdb 1.11), every word of `duckdb_keywords()` tried in
/// `select sum(amount) W, id`, `select amount W, id` and `select id, amount W` + a new
/// line + `from …`: these failed with `syntax error at or near`.
const DUCKDB_BARE_ALIAS: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "anti",
    "any",
    "array",
    "as",
    "asc",
    "asof",
    "asymmetric",
    "at",
    "authorization",
    "binary",
    "both",
    "by",
    "case",
    "cast",
    "centuries",
    "century",
    "check",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "day",
    "days",
    "decade",
    "decades",
    "default",
    "deferrable",
    "desc",
    "describe",
    "distinct",
    "do",
    "else",
    "end",
    "escape",
    "except",
    "exclude",
    "export_state",
    "false",
    "fetch",
    "filter",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "glob",
    "group",
    "having",
    "hour",
    "hours",
    "ignore",
    "ilike",
    "in",
    "initially",
    "inner",
    "intersect",
    "into",
    "is",
    "join",
    "lambda",
    "lateral",
    "leading",
    "left",
    "like",
    "limit",
    "microsecond",
    "microseconds",
    "millennia",
    "millennium",
    "millisecond",
    "milliseconds",
    "minute",
    "minutes",
    "month",
    "months",
    "natural",
    "not",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "outer",
    "over",
    "overlaps",
    "pivot",
    "pivot_longer",
    "pivot_wider",
    "placing",
    "positional",
    "precision",
    "primary",
    "qualify",
    "quarter",
    "quarters",
    "references",
    "rename",
    "replace",
    "respect",
    "returning",
    "right",
    "second",
    "seconds",
    "select",
    "semi",
    "show",
    "similar",
    "some",
    "summarize",
    "symmetric",
    "table",
    "tablesample",
    "then",
    "to",
    "trailing",
    "true",
    "union",
    "unique",
    "unpack",
    "unpivot",
    "using",
    "variadic",
    "varying",
    "verbose",
    "week",
    "weeks",
    "when",
    "where",
    "window",
    "with",
    "within",
    "without",
    "year",
    "years",
];

/// DuckDB 2.0.1, every word of `duckdb_keywords()` tried as `select W, id from (select 1
/// as "W", 2 as id) t` and as the last item before `from` on the next line: these
/// failed with `syntax error at or near`.
const DUCKDB_BARE_COLUMN: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "anti",
    "any",
    "array",
    "as",
    "asc",
    "asof",
    "asymmetric",
    "at",
    "authorization",
    "binary",
    "both",
    "by",
    "case",
    "cast",
    "check",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "deferrable",
    "desc",
    "describe",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "fetch",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "glob",
    "group",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "intersect",
    "into",
    "is",
    "isnull",
    "join",
    "lambda",
    "lateral",
    "leading",
    "left",
    "like",
    "limit",
    "natural",
    "not",
    "notnull",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "outer",
    "overlaps",
    "pivot",
    "pivot_longer",
    "pivot_wider",
    "placing",
    "positional",
    "primary",
    "qualify",
    "references",
    "returning",
    "right",
    "select",
    "semi",
    "show",
    "similar",
    "some",
    "summarize",
    "symmetric",
    "table",
    "tablesample",
    "then",
    "to",
    "trailing",
    "union",
    "unique",
    "unpack",
    "unpivot",
    "using",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
];

/// PostgreSQL 15, every word of `pg_get_keywords()` tried as DuckDB's were: exactly its
/// keywords whose `barelabel` is false.
const POSTGRES_BARE_ALIAS: &[&str] = &[
    "array",
    "as",
    "char",
    "character",
    "create",
    "day",
    "except",
    "fetch",
    "filter",
    "for",
    "from",
    "grant",
    "group",
    "having",
    "hour",
    "intersect",
    "into",
    "limit",
    "minute",
    "month",
    "offset",
    "on",
    "order",
    "over",
    "overlaps",
    "precision",
    "returning",
    "second",
    "to",
    "union",
    "varying",
    "where",
    "window",
    "with",
    "within",
    "without",
    "year",
];

/// PostgreSQL 15, as a column read by its name alone. `user`, `current_date` and their
/// kind are not here: they read as functions and fail nothing.
const POSTGRES_BARE_COLUMN: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "binary",
    "both",
    "case",
    "cast",
    "check",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "fetch",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "group",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "intersect",
    "into",
    "is",
    "isnull",
    "join",
    "lateral",
    "leading",
    "left",
    "like",
    "limit",
    "natural",
    "not",
    "notnull",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "outer",
    "overlaps",
    "placing",
    "primary",
    "references",
    "returning",
    "right",
    "select",
    "similar",
    "some",
    "symmetric",
    "table",
    "tablesample",
    "then",
    "to",
    "trailing",
    "union",
    "unique",
    "using",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
];

/// The measured tables of the adapters this rule answers.
fn reserved_for(adapter: &str) -> Option<Reserved> {
    match adapter.to_ascii_lowercase().as_str() {
        "duckdb" | "motherduck" => Some(Reserved {
            bare_alias: DUCKDB_BARE_ALIAS,
            bare_column: DUCKDB_BARE_COLUMN,
            folds_to_lower: false,
        }),
        "postgres" | "postgresql" => Some(Reserved {
            bare_alias: POSTGRES_BARE_ALIAS,
            bare_column: POSTGRES_BARE_COLUMN,
            folds_to_lower: true,
        }),
        _ => None,
    }
}

/// Refused words that, ending a select item, far more likely join or continue an
/// expression left unfinished (`a > 1 and`, `x is null`, `case … then`, `x::double
/// precision`, `select distinct,`) or end the select (`union`) than name a column:
/// quoting one would turn a half-written expression into an alias.
const NEVER_A_NAME: &[&str] = &[
    "all",
    "and",
    "any",
    "array",
    "as",
    "at",
    "between",
    "by",
    "case",
    "cast",
    "collate",
    "distinct",
    "else",
    "escape",
    "except",
    "false",
    "glob",
    "ignore",
    "ilike",
    "in",
    "intersect",
    "is",
    "isnull",
    "like",
    "minus",
    "not",
    "notnull",
    "null",
    "or",
    "overlaps",
    "precision",
    "respect",
    "similar",
    "some",
    "then",
    "true",
    "union",
    "varying",
    "when",
    "with",
    "within",
    "without",
];

/// Words that, right after a call's `)`, start its window or filter (`count(*) over
/// (…)`): there the spec may be what is missing, not a name.
const CALL_SUFFIXES: &[&str] = &["over", "filter"];

/// Same-depth words that end a select list: a word found after one is not in a list.
const LIST_ENDS: &[&str] = &[
    "from",
    "where",
    "having",
    "qualify",
    "window",
    "limit",
    "offset",
    "fetch",
    "union",
    "intersect",
    "except",
    "join",
    "on",
];

/// How a reserved word stands in its select item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The whole item: a column read by that name (`select id, order, …`).
    Column,
    /// An alias without `AS` after the item's expression (`sum(amount) order`).
    Alias,
}

/// Quotes the reserved word that names a select item where the parser stopped — and any
/// other word of the model standing the same way, which the warehouse would stop at
/// next (`min(d) from, max(d) to`).
///
/// Fires when all of these hold:
/// - the adapter is DuckDB or PostgreSQL and the error is a parser error naming a token;
/// - that token (the one the echoed line points at, when the line is found in the
///   model), or the token right before a `,` or `from` it names, is a word the
///   warehouse was measured to refuse in the place it stands ([`role_of`]): a whole
///   select item, or an alias without `AS` right after an expression;
/// - as an alias right after a bare name, the word is no column of a parent (`amount
///   year` may then be a missing comma);
/// - the other words quoted with it stand as the measurements did — a whole item, or an
///   alias right after a name or a call's `)` — and are no parent's column either;
/// - the quoted model parses in the adapter's dialect, and only one such text does.
pub fn reserved_alias(input: &RuleInput) -> Option<RuleFix> {
    let reserved = reserved_for(input.adapter)?;
    let error = parse_syntax_error(input.error_message)?;
    let sql = input.model_sql;
    let tokens = tokenize(sql);
    let named = |at: usize| named_by_reserved_word(input, &tokens, at, &reserved);
    let mut anchors: Vec<usize> = Vec::new();
    for stop in stopped_at(&tokens, sql, &error) {
        let stop_token = &tokens[stop];
        // The parser reads `order,` as the start of `ORDER BY` and trips on the comma,
        // or on the `from` after the item.
        let before = (stop_token.is_punct(sql, ',') || stop_token.is_keyword(sql, "from"))
            .then(|| stop.checked_sub(1))
            .flatten();
        for at in [Some(stop), before].into_iter().flatten() {
            if !anchors.contains(&at) && named(at).is_some() {
                anchors.push(at);
            }
        }
    }
    // Others only where the measurements stood: not after a literal or Jinja, whose
    // rendering is unknown (`interval '1' day`).
    let others: Vec<usize> = (0..tokens.len())
        .filter(|&i| {
            named(i).is_some_and(|role| {
                role == Role::Column
                    || i.checked_sub(1).is_some_and(|p| {
                        tokens[p].kind == TokenKind::Word || tokens[p].is_punct(sql, ')')
                    })
            })
        })
        .collect();
    let mut fixes: Vec<(String, usize, usize)> = Vec::new();
    for &anchor in &anchors {
        let mut quoted: Vec<usize> = others.clone();
        if !quoted.contains(&anchor) {
            quoted.push(anchor);
        }
        let edits: Vec<Edit> = quoted
            .iter()
            .map(|&at| Edit {
                range: tokens[at].range.clone(),
                replacement: quote(tokens[at].text(sql), &reserved),
            })
            .collect();
        let Some(text) = apply_edits(sql, &edits) else {
            continue;
        };
        if !fixes.iter().any(|(t, _, _)| *t == text) && parse_model(&text, input.adapter).is_ok() {
            fixes.push((text, anchor, quoted.len()));
        }
    }
    let [(fixed_sql, anchor, count)] = <[(String, usize, usize); 1]>::try_from(fixes).ok()?;
    let word = tokens[anchor].text(sql);
    let place = match named(anchor) {
        Some(Role::Column) => "the name of a column read alone in a select list",
        _ => "a column alias written without `as`",
    };
    let also = match count {
        0 | 1 => String::new(),
        2 => " One more reserved word named a column the same way; it is quoted too.".into(),
        n => format!(
            " {} more reserved words named columns the same way; they are quoted too.",
            n - 1
        ),
    };
    let explanation = format!(
        "{} could not parse `{}`: `{word}` is a reserved word, which it does not take as \
         {place}. Quoted as `{}`, it is read as a name and the output column keeps that \
         name; the model parses.{also}",
        warehouse_name(input.adapter),
        input.model_name,
        quote(word, &reserved),
    );
    Some(RuleFix {
        fixed_sql,
        explanation,
        rule: NAME,
        confidence: 0.9,
    })
}

/// `word` as a quoted name equal to what the warehouse makes of it unquoted.
fn quote(word: &str, reserved: &Reserved) -> String {
    if reserved.folds_to_lower {
        format!("\"{}\"", word.to_ascii_lowercase())
    } else {
        format!("\"{word}\"")
    }
}

/// How the word at `at` names its select item when the warehouse refuses it there
/// ([`role_of`]) and it is no missing comma in disguise: an alias right after a bare
/// name that a parent has as a column may be one.
fn named_by_reserved_word(
    input: &RuleInput,
    tokens: &[Token],
    at: usize,
    reserved: &Reserved,
) -> Option<Role> {
    let sql = input.model_sql;
    let role = role_of(tokens, sql, at, reserved)?;
    let after_name = at
        .checked_sub(1)
        .is_some_and(|p| matches!(tokens[p].kind, TokenKind::Word | TokenKind::QuotedIdent));
    let word = tokens[at].text(sql);
    let parent_column = input
        .parents
        .iter()
        .any(|p| p.columns.iter().any(|c| c.eq_ignore_ascii_case(word)));
    (role == Role::Column || !after_name || !parent_column).then_some(role)
}

/// The tokens the parser may have stopped at: those spelled like its `near` token — only
/// the ones the echoed line points at, when the line is found in the model.
fn stopped_at(tokens: &[Token], sql: &str, error: &SyntaxError) -> Vec<usize> {
    let spelled: Vec<usize> = tokens
        .iter()
        .enumerate()
        .filter(|(_, t)| match t.kind {
            TokenKind::Word => t.text(sql).eq_ignore_ascii_case(&error.near),
            TokenKind::Punct => t.text(sql) == error.near,
            _ => false,
        })
        .map(|(i, _)| i)
        .collect();
    let Some(pointed) = error.echo.as_ref().and_then(|echo| locate_echo(sql, echo)) else {
        return spelled;
    };
    let aimed: Vec<usize> = spelled
        .iter()
        .copied()
        .filter(|&i| tokens[i].range.start < pointed.end && pointed.start < tokens[i].range.end)
        .collect();
    if aimed.is_empty() {
        spelled
    } else {
        aimed
    }
}

/// How the word at `at` names its select item, when it is a word the warehouse refuses
/// there; `None` when it is anything else.
fn role_of(tokens: &[Token], sql: &str, at: usize, reserved: &Reserved) -> Option<Role> {
    let token = &tokens[at];
    if token.kind != TokenKind::Word {
        return None;
    }
    let lower = token.text(sql).to_ascii_lowercase();
    if NEVER_A_NAME.contains(&lower.as_str()) {
        return None;
    }
    let next = tokens.get(at + 1)?;
    let ends_item =
        next.depth == token.depth && (next.is_punct(sql, ',') || next.is_keyword(sql, "from"));
    if !ends_item {
        return None;
    }
    // `from from t` on one line: a keyword written twice (`doubled_keyword`'s case), not
    // a column named `from` before the clause, which ends its line.
    if next.text(sql).eq_ignore_ascii_case(&lower)
        && !sql[token.range.end..next.range.start].contains('\n')
    {
        return None;
    }
    let start = item_start(tokens, sql, at)?;
    let item = &tokens[start..at];
    // `interval '1' day` and its kind: the unit is part of the literal.
    if item.iter().any(|t| t.is_keyword(sql, "interval")) {
        return None;
    }
    let (role, table) = if item.is_empty() {
        (Role::Column, reserved.bare_column)
    } else {
        (Role::Alias, reserved.bare_alias)
    };
    if table.binary_search(&lower.as_str()).is_err() {
        return None;
    }
    let Some(before) = item.last() else {
        return Some(role);
    };
    let ends_expression = match before.kind {
        TokenKind::Number | TokenKind::StringLit | TokenKind::QuotedIdent | TokenKind::Jinja => {
            true
        }
        TokenKind::Punct => before.is_punct(sql, ')') && !CALL_SUFFIXES.contains(&lower.as_str()),
        // A name: not a keyword an expression continues after (`is`, `then`, `not`), nor
        // one the warehouse refuses as a name.
        TokenKind::Word => {
            let word = before.text(sql).to_ascii_lowercase();
            !NEVER_A_NAME.contains(&word.as_str())
                && reserved.bare_column.binary_search(&word.as_str()).is_err()
        }
        TokenKind::Operator | TokenKind::JinjaStatement => false,
    };
    if !ends_expression {
        return None;
    }
    // `case … end end`: the word may close a `case` the item opened.
    if lower == "end" {
        let count = |w: &str| item.iter().filter(|t| t.is_keyword(sql, w)).count();
        if count("case") > count("end") {
            return None;
        }
    }
    Some(role)
}

/// The first token of the select item that ends at `at`, when that item is in a select
/// list: scanning back at the word's depth reaches a `,` and then `select` (or `select`
/// directly) before anything that ends a list.
fn item_start(tokens: &[Token], sql: &str, at: usize) -> Option<usize> {
    let depth = tokens[at].depth;
    let mut start = None;
    for i in (0..at).rev() {
        let t = &tokens[i];
        if t.depth > depth {
            continue;
        }
        if t.depth < depth || t.is_punct(sql, ';') {
            return None;
        }
        if t.is_punct(sql, ',') {
            start.get_or_insert(i + 1);
            continue;
        }
        if t.is_keyword(sql, "select") {
            let mut first = i + 1;
            // `select distinct order, …`: the modifier is not part of the item.
            if tokens
                .get(first)
                .is_some_and(|m| m.is_keyword(sql, "distinct") || m.is_keyword(sql, "all"))
            {
                first += 1;
            }
            return Some(start.unwrap_or(first).min(at));
        }
        // `… as from` and `… from,` name an earlier item; no clause starts that way.
        let after_as = i > 0 && tokens[i - 1].is_keyword(sql, "as");
        let before_comma = tokens.get(i + 1).is_some_and(|n| n.is_punct(sql, ','));
        let by_follows = tokens.get(i + 1).is_some_and(|n| n.is_keyword(sql, "by"));
        let ends_list = LIST_ENDS.iter().any(|w| t.is_keyword(sql, w))
            || ((t.is_keyword(sql, "group") || t.is_keyword(sql, "order")) && by_follows);
        if ends_list && !after_as && !before_comma {
            return None;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ErrorClass, ParentColumns};

    fn input<'a>(
        sql: &'a str,
        message: &'a str,
        adapter: &'a str,
        parents: &'a [ParentColumns<'a>],
    ) -> RuleInput<'a> {
        RuleInput {
            error_class: ErrorClass::SqlSyntax,
            error_message: message,
            model_name: "m",
            model_sql: sql,
            adapter,
            parents,
            ..RuleInput::default()
        }
    }

    fn fix_on(adapter: &str, sql: &str, message: &str) -> Option<String> {
        reserved_alias(&input(sql, message, adapter, &[])).map(|f| f.fixed_sql)
    }

    /// A message shaped as the warehouse words it, the echo pointing at the last `near`
    /// on the line `line` of `sql`.
    fn message(sql: &str, line: usize, near: &str) -> String {
        let text = sql
            .lines()
            .nth(line)
            .unwrap_or_else(|| panic!("no line {line}"));
        let at = text
            .rfind(near)
            .unwrap_or_else(|| panic!("{near:?} not on {text:?}"));
        let prefix = "LINE 9: ";
        format!(
            "Parser Error: syntax error at or near \"{near}\"\n\n{prefix}{text}\n{}^",
            " ".repeat(prefix.len() + at)
        )
    }

    #[test]
    fn the_tables_are_sorted_for_binary_search() {
        for table in [
            DUCKDB_BARE_ALIAS,
            DUCKDB_BARE_COLUMN,
            POSTGRES_BARE_ALIAS,
            POSTGRES_BARE_COLUMN,
        ] {
            assert!(table.windows(2).all(|w| w[0] < w[1]), "{table:?}");
        }
    }

    #[test]
    fn every_measured_alias_word_is_quoted_where_the_parser_stops() {
        for adapter in ["duckdb", "postgres"] {
            let Some(reserved) = reserved_for(adapter) else {
                panic!("{adapter} has no table");
            };
            let mut fired = 0;
            for word in reserved.bare_alias {
                if NEVER_A_NAME.contains(word) {
                    continue;
                }
                // The warehouses stop at the word or at the comma after it. After a call's
                // `)`, `over` and `filter` may start what is missing: tried after a name.
                let call = if CALL_SUFFIXES.contains(word) {
                    "amount"
                } else {
                    "sum(amount)"
                };
                for near in [*word, ","] {
                    let sql = format!("select\n    id,\n    {call} {word},\n    n\nfrom t\n");
                    let got = fix_on(adapter, &sql, &message(&sql, 2, near));
                    let want = format!("select\n    id,\n    {call} \"{word}\",\n    n\nfrom t\n");
                    assert_eq!(got, Some(want), "{adapter} {word} near {near}");
                }
                // The last item: the parser stops at the word or at `from` on the next line.
                let sql = format!("select\n    id,\n    amount {word}\nfrom t\n");
                let want = format!("select\n    id,\n    amount \"{word}\"\nfrom t\n");
                for (line, near) in [(2, *word), (3, "from")] {
                    let got = fix_on(adapter, &sql, &message(&sql, line, near));
                    assert_eq!(got.as_ref(), Some(&want), "{adapter} {word} near {near}");
                }
                fired += 1;
            }
            assert!(fired > 20, "{adapter}: {fired}");
        }
    }

    #[test]
    fn every_measured_column_word_is_quoted_where_the_parser_stops() {
        for adapter in ["duckdb", "postgres"] {
            let Some(reserved) = reserved_for(adapter) else {
                panic!("{adapter} has no table");
            };
            for word in reserved.bare_column {
                if NEVER_A_NAME.contains(word) {
                    continue;
                }
                let sql = format!("select\n    id,\n    {word},\n    n\nfrom t\n");
                let want = format!("select\n    id,\n    \"{word}\",\n    n\nfrom t\n");
                for near in [*word, ","] {
                    let got = fix_on(adapter, &sql, &message(&sql, 2, near));
                    assert_eq!(got.as_ref(), Some(&want), "{adapter} {word} near {near}");
                }
            }
        }
    }

    #[test]
    fn the_quoted_name_is_the_one_the_warehouse_would_have_given() {
        // DuckDB keeps the case of a name as written; PostgreSQL folds it to lower case.
        let sql = "SELECT\n    order_id,\n    SUM(quantity) Order,\n    COUNT(*) AS n\nFROM t\n";
        let m = message(sql, 2, ",");
        assert_eq!(
            fix_on("duckdb", sql, &m).as_deref(),
            Some(
                "SELECT\n    order_id,\n    SUM(quantity) \"Order\",\n    COUNT(*) AS n\nFROM t\n"
            )
        );
        assert_eq!(
            fix_on("postgres", sql, &m).as_deref(),
            Some(
                "SELECT\n    order_id,\n    SUM(quantity) \"order\",\n    COUNT(*) AS n\nFROM t\n"
            )
        );
    }

    #[test]
    fn everything_but_the_word_stays_byte_for_byte() {
        let sql = "{{ config(materialized='table') }}\nwith x as (\n    select id, amount as group from {{ ref('a') }} -- the group\n)\n\nselect\n    id,   group ,\n    'group' as label\nfrom x\n";
        let m = message(sql, 6, ",");
        let got = fix_on("duckdb", sql, &m).unwrap_or_else(|| panic!("no fix"));
        assert_eq!(got, sql.replacen("id,   group ,", "id,   \"group\" ,", 1));
    }

    #[test]
    fn words_the_warehouse_takes_are_left_alone() {
        // `date` is no keyword anywhere; `user`, `end` and `select` are bare labels on
        // PostgreSQL; `year` reads as a column on DuckDB.
        let cases = [
            (
                "duckdb",
                "select\n    id,\n    created_at::date date,\n    n\nfrom t\n",
                "date",
            ),
            (
                "postgres",
                "select\n    id,\n    customer_id user,\n    n\nfrom t\n",
                "user",
            ),
            (
                "postgres",
                "select\n    id,\n    max(at) end,\n    n\nfrom t\n",
                "end",
            ),
            (
                "postgres",
                "select\n    id,\n    status select,\n    n\nfrom t\n",
                "select",
            ),
            (
                "duckdb",
                "select\n    id,\n    year,\n    n\nfrom t\n",
                "year",
            ),
        ];
        for (adapter, sql, word) in cases {
            assert_eq!(fix_on(adapter, sql, &message(sql, 2, word)), None, "{word}");
            assert_eq!(fix_on(adapter, sql, &message(sql, 2, ",")), None, "{word}");
        }
    }

    #[test]
    fn a_word_that_is_no_select_item_name_is_left_alone() {
        let refused = [
            // After `as` every keyword is taken: the error is something else.
            (
                "select\n    id,\n    sum(x) as order\n    count(*) as n\nfrom t\n",
                3,
                "count",
            ),
            // A table alias.
            ("select\n    order.id\nfrom t as order\n", 1, "."),
            // A clause, not a select list.
            ("select id\nfrom t\norder, x\n", 2, ","),
            // An unfinished condition or expression.
            ("select\n    id,\n    a > 1 and\nfrom t\n", 3, "from"),
            ("select\n    id,\n    a is null,\n    n\nfrom t\n", 2, ","),
            ("select\n    id,\n    a + order,\n    n\nfrom t\n", 2, ","),
            (
                "select\n    id,\n    count(*) over,\n    n\nfrom t\n",
                2,
                ",",
            ),
            // A select modifier with a stray comma.
            ("select distinct,\n    id\nfrom t\n", 0, ","),
            // A keyword written twice: `doubled_keyword`'s, not a column named `from`.
            ("select id, name\nfrom from t\n", 1, "from"),
            // The unit of an interval literal.
            (
                "select\n    id,\n    interval '1' day,\n    n\nfrom t\n",
                2,
                ",",
            ),
            // The `end` of a `case`.
            (
                "select\n    id,\n    case when a then b end,\n    n\nfrom t\n",
                2,
                ",",
            ),
            // The parser stopped elsewhere.
            (
                "select\n    id,\n    sum(x) order,\n    n n2 n3\nfrom t\n",
                3,
                "n3",
            ),
        ];
        for (sql, line, near) in refused {
            assert_eq!(
                fix_on("duckdb", sql, &message(sql, line, near)),
                None,
                "{sql}"
            );
        }
    }

    #[test]
    fn a_parent_column_after_a_bare_name_may_be_a_missing_comma() {
        let sql = "select\n    id,\n    amount year,\n    n\nfrom t\n";
        let m = message(sql, 2, "year");
        let parents = [ParentColumns {
            name: "t",
            columns: &["id", "amount", "year", "n"],
        }];
        assert_eq!(reserved_alias(&input(sql, &m, "postgres", &parents)), None);
        assert!(reserved_alias(&input(sql, &m, "postgres", &[])).is_some());
    }

    #[test]
    fn only_the_measured_adapters_are_answered() {
        let sql = "select\n    id,\n    sum(amount) order,\n    n\nfrom t\n";
        let m = message(sql, 2, ",");
        assert!(fix_on("duckdb", sql, &m).is_some());
        assert!(fix_on("postgres", sql, &m).is_some());
        for adapter in ["snowflake", "bigquery", "redshift", "databricks"] {
            assert_eq!(fix_on(adapter, sql, &m), None, "{adapter}");
        }
    }

    #[test]
    fn other_words_standing_the_same_way_are_quoted_too() {
        // Measured: DuckDB and PostgreSQL stop at the comma after `from`; with it quoted,
        // they stop at `to`.
        let sql = "select\n    customer_id,\n    min(order_date) from,\n    max(order_date) to\nfrom t\ngroup by customer_id\n";
        let m = message(sql, 2, ",");
        let want = "select\n    customer_id,\n    min(order_date) \"from\",\n    max(order_date) \"to\"\nfrom t\ngroup by customer_id\n";
        for adapter in ["duckdb", "postgres"] {
            assert_eq!(fix_on(adapter, sql, &m).as_deref(), Some(want), "{adapter}");
        }
        // Without the echo every comma may be where the parser stopped: the same text.
        let bare = "Parser Error: syntax error at or near \",\"";
        assert_eq!(fix_on("duckdb", sql, bare).as_deref(), Some(want));
        // Words the warehouse takes, and the `end` of a `case`, stay as they are.
        let sql = "select\n    sum(a) order,\n    case when b then 1 end,\n    c as group,\n    d date\nfrom t\n";
        assert_eq!(
            fix_on("postgres", sql, &message(sql, 1, ",")).as_deref(),
            Some("select\n    sum(a) \"order\",\n    case when b then 1 end,\n    c as group,\n    d date\nfrom t\n")
        );
        // The unit of an interval literal is no alias.
        let sql = "select\n    sum(a) order,\n    interval '1' day,\n    n\nfrom t\n";
        assert_eq!(
            fix_on("duckdb", sql, &message(sql, 1, ",")).as_deref(),
            Some("select\n    sum(a) \"order\",\n    interval '1' day,\n    n\nfrom t\n")
        );
    }
}
