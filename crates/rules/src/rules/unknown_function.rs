//! `unknown_function`: the model calls a function this warehouse does not have, and the
//! warehouse has an exact equivalent.
//!
//! The knowledge is data: [`FUNCTION_EQUIVALENTS`] lists, per adapter, the functions
//! other dialects have and this one lacks, each with its rewrite; the two format tables
//! translate date-format strings between PostgreSQL/Oracle `to_char` patterns and
//! `strftime` codes. A row is added only when the rewrite means the same thing for every
//! argument of the types the original accepts.

use std::ops::Range;
use std::sync::OnceLock;

use regex::Regex;

use crate::rewrite::{apply_edits, Edit};
use crate::sqlcheck::breaks_parse;
use crate::tokens::{matching_close, separated, tokenize, Token, TokenKind};
use crate::{RuleFix, RuleInput};

use super::{snippet, warehouse_name};

/// The rule's name.
pub(super) const NAME: &str = "unknown_function";

/// How a call is rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewrite {
    /// The same arguments under another name: `nvl(a, b)` → `coalesce(a, b)`.
    Rename(&'static str),
    /// A template over the argument texts, `{0}`, `{1}`, …, copied verbatim:
    /// `charindex(s, t)` → `strpos({1}, {0})`, `getdate()` → `current_timestamp`.
    Template(&'static str),
    /// Renamed, with the date-format argument (a string literal) translated from
    /// PostgreSQL/Oracle patterns to `strftime` codes: `to_char(d, 'YYYY-MM')` →
    /// `strftime(d, '%Y-%m')`.
    FormatToStrftime {
        /// The new function name.
        name: &'static str,
        /// Which argument is the format.
        format_arg: usize,
    },
    /// Renamed, with the format literal translated from `strftime` codes to PostgreSQL
    /// patterns; the format may be either argument (DuckDB accepts both orders), and the
    /// value goes first: `strftime(d, '%Y-%m')` → `to_char(d, 'YYYY-MM')`.
    StrftimeToPostgres {
        /// The new function name.
        name: &'static str,
    },
    /// A day difference whose first argument is the literal `'day'`:
    /// `datediff('day', a, b)` → `(cast(b as date) - cast(a as date))`.
    DayDifference,
    /// SQL Server's `datename(<date part>, d)`, its part a bare keyword:
    /// `datename(weekday, d)` → `dayname(d)`, `datename(year, d)` →
    /// `cast(date_part('year', d) as varchar)`. See [`DATENAME_PARTS`].
    DateName,
    /// A SQL Server call whose first argument is a bare date-part keyword, renamed and
    /// the part quoted: `datediff(day, a, b)` → `date_diff('day', a, b)`. A call whose
    /// part is already a string literal is the warehouse's own form and stays as it is.
    /// See [`SQL_SERVER_DATE_PARTS`].
    QuotedDatePart {
        /// The new function name.
        name: &'static str,
    },
}

/// One function an adapter lacks and its equivalent there.
#[derive(Debug, Clone, Copy)]
pub struct FunctionEquivalent {
    /// The adapters (dbt `type`) that lack the function.
    pub adapters: &'static [&'static str],
    /// The function's name, lower case.
    pub function: &'static str,
    /// The argument counts the rewrite is right for.
    pub arities: &'static [usize],
    /// The rewrite.
    pub rewrite: Rewrite,
}

const DUCKDB: &[&str] = &["duckdb", "motherduck"];
const POSTGRES: &[&str] = &["postgres", "postgresql"];

/// The table of equivalents. Every DuckDB row was checked against DuckDB 1.x (the
/// function is missing, the rewrite runs and gives the original's result), every
/// PostgreSQL row against PostgreSQL 15 — see `tests/real_errors.rs`.
pub const FUNCTION_EQUIVALENTS: &[FunctionEquivalent] = &[
    // DuckDB.
    FunctionEquivalent {
        adapters: DUCKDB,
        function: "to_char",
        arities: &[2],
        rewrite: Rewrite::FormatToStrftime {
            name: "strftime",
            format_arg: 1,
        },
    },
    FunctionEquivalent {
        adapters: DUCKDB,
        function: "to_varchar",
        arities: &[2],
        rewrite: Rewrite::FormatToStrftime {
            name: "strftime",
            format_arg: 1,
        },
    },
    FunctionEquivalent {
        adapters: DUCKDB,
        function: "nvl",
        arities: &[2],
        rewrite: Rewrite::Rename("coalesce"),
    },
    FunctionEquivalent {
        adapters: DUCKDB,
        function: "isnull",
        arities: &[2],
        rewrite: Rewrite::Rename("coalesce"),
    },
    FunctionEquivalent {
        adapters: DUCKDB,
        function: "getdate",
        arities: &[0],
        rewrite: Rewrite::Template("current_timestamp"),
    },
    FunctionEquivalent {
        adapters: DUCKDB,
        function: "datename",
        arities: &[2],
        rewrite: Rewrite::DateName,
    },
    // DuckDB has these two, but its part is a string: SQL Server's bare `day` reads as a
    // column and fails. Reached only along with another row's function (the error names
    // that one), so that one proposal translates the whole model.
    FunctionEquivalent {
        adapters: DUCKDB,
        function: "datediff",
        arities: &[3],
        rewrite: Rewrite::QuotedDatePart { name: "date_diff" },
    },
    FunctionEquivalent {
        adapters: DUCKDB,
        function: "datepart",
        arities: &[2],
        rewrite: Rewrite::QuotedDatePart { name: "date_part" },
    },
    FunctionEquivalent {
        adapters: DUCKDB,
        function: "charindex",
        arities: &[2],
        rewrite: Rewrite::Template("strpos({1}, {0})"),
    },
    FunctionEquivalent {
        adapters: DUCKDB,
        function: "nvl2",
        arities: &[3],
        rewrite: Rewrite::Template("case when ({0}) is not null then {1} else {2} end"),
    },
    FunctionEquivalent {
        adapters: DUCKDB,
        function: "iff",
        arities: &[3],
        rewrite: Rewrite::Template("case when {0} then {1} else {2} end"),
    },
    FunctionEquivalent {
        adapters: DUCKDB,
        function: "zeroifnull",
        arities: &[1],
        rewrite: Rewrite::Template("coalesce({0}, 0)"),
    },
    FunctionEquivalent {
        adapters: DUCKDB,
        function: "nullifzero",
        arities: &[1],
        rewrite: Rewrite::Template("nullif({0}, 0)"),
    },
    FunctionEquivalent {
        adapters: DUCKDB,
        function: "replicate",
        arities: &[2],
        rewrite: Rewrite::Rename("repeat"),
    },
    FunctionEquivalent {
        adapters: DUCKDB,
        function: "space",
        arities: &[1],
        rewrite: Rewrite::Template("repeat(' ', {0})"),
    },
    // PostgreSQL.
    FunctionEquivalent {
        adapters: POSTGRES,
        function: "ifnull",
        arities: &[2],
        rewrite: Rewrite::Rename("coalesce"),
    },
    FunctionEquivalent {
        adapters: POSTGRES,
        function: "nvl",
        arities: &[2],
        rewrite: Rewrite::Rename("coalesce"),
    },
    FunctionEquivalent {
        adapters: POSTGRES,
        function: "isnull",
        arities: &[2],
        rewrite: Rewrite::Rename("coalesce"),
    },
    FunctionEquivalent {
        adapters: POSTGRES,
        function: "len",
        arities: &[1],
        rewrite: Rewrite::Rename("length"),
    },
    FunctionEquivalent {
        adapters: POSTGRES,
        function: "getdate",
        arities: &[0],
        rewrite: Rewrite::Template("current_timestamp"),
    },
    FunctionEquivalent {
        adapters: POSTGRES,
        function: "datediff",
        arities: &[3],
        rewrite: Rewrite::DayDifference,
    },
    FunctionEquivalent {
        adapters: POSTGRES,
        function: "date_diff",
        arities: &[3],
        rewrite: Rewrite::DayDifference,
    },
    FunctionEquivalent {
        adapters: POSTGRES,
        function: "strftime",
        arities: &[2],
        rewrite: Rewrite::StrftimeToPostgres { name: "to_char" },
    },
    FunctionEquivalent {
        adapters: POSTGRES,
        function: "instr",
        arities: &[2],
        rewrite: Rewrite::Rename("strpos"),
    },
    FunctionEquivalent {
        adapters: POSTGRES,
        function: "charindex",
        arities: &[2],
        rewrite: Rewrite::Template("strpos({1}, {0})"),
    },
    FunctionEquivalent {
        adapters: POSTGRES,
        function: "nvl2",
        arities: &[3],
        rewrite: Rewrite::Template("case when ({0}) is not null then {1} else {2} end"),
    },
    FunctionEquivalent {
        adapters: POSTGRES,
        function: "iff",
        arities: &[3],
        rewrite: Rewrite::Template("case when {0} then {1} else {2} end"),
    },
    FunctionEquivalent {
        adapters: POSTGRES,
        function: "zeroifnull",
        arities: &[1],
        rewrite: Rewrite::Template("coalesce({0}, 0)"),
    },
    FunctionEquivalent {
        adapters: POSTGRES,
        function: "nullifzero",
        arities: &[1],
        rewrite: Rewrite::Template("nullif({0}, 0)"),
    },
    FunctionEquivalent {
        adapters: POSTGRES,
        function: "dayname",
        arities: &[1],
        rewrite: Rewrite::Template("to_char({0}, 'FMDay')"),
    },
    FunctionEquivalent {
        adapters: POSTGRES,
        function: "monthname",
        arities: &[1],
        rewrite: Rewrite::Template("to_char({0}, 'FMMonth')"),
    },
];

/// SQL Server's date-part keywords and abbreviations and the DuckDB part each means,
/// for `datediff` (both count the part's boundaries crossed: `datediff(day, '23:00',
/// '01:00 next day')` is 1 in both) and `datepart`. Left out on purpose: `week` and
/// `weekday` (SQL Server's depend on `SET DATEFIRST`, DuckDB's are ISO or Sunday-zero),
/// `dayofyear` (DuckDB's `date_diff` has no such part), the sub-second parts (not
/// verified), and the one-letter abbreviations (`d`, `m`, `s`, …), which in a warehouse
/// that has these functions are more likely a column than a part — and DuckDB reads
/// `m` as minute.
pub const SQL_SERVER_DATE_PARTS: &[(&str, &str)] = &[
    ("year", "year"),
    ("yyyy", "year"),
    ("yy", "year"),
    ("quarter", "quarter"),
    ("qq", "quarter"),
    ("month", "month"),
    ("mm", "month"),
    ("day", "day"),
    ("dd", "day"),
    ("hour", "hour"),
    ("hh", "hour"),
    ("minute", "minute"),
    ("mi", "minute"),
    ("second", "second"),
    ("ss", "second"),
];

/// SQL Server's `datename` parts that have an exact DuckDB expression, `{0}` the date.
/// Names are SQL Server's under its default language (`us_english`), which DuckDB's
/// `dayname`/`monthname` print; the numeric parts come back as unpadded text in both.
/// `datename` does not exist in DuckDB, so a bare word there is always a part and the
/// one-letter abbreviations are safe. Refused: `week` and `iso_week` (numbering
/// differs), the sub-second parts and `tzoffset`.
pub const DATENAME_PARTS: &[(&[&str], &str)] = &[
    (&["weekday", "dw"], "dayname({0})"),
    (&["month", "mm", "m"], "monthname({0})"),
    (
        &["year", "yyyy", "yy"],
        "cast(date_part('year', {0}) as varchar)",
    ),
    (
        &["quarter", "qq", "q"],
        "cast(date_part('quarter', {0}) as varchar)",
    ),
    (
        &["dayofyear", "dy", "y"],
        "cast(date_part('dayofyear', {0}) as varchar)",
    ),
    (
        &["day", "dd", "d"],
        "cast(date_part('day', {0}) as varchar)",
    ),
    (&["hour", "hh"], "cast(date_part('hour', {0}) as varchar)"),
    (
        &["minute", "mi", "n"],
        "cast(date_part('minute', {0}) as varchar)",
    ),
    (
        &["second", "ss", "s"],
        "cast(date_part('second', {0}) as varchar)",
    ),
];

/// The argument when it is one bare word (a SQL Server date-part keyword), lower-cased;
/// `None` for a literal, a qualified name, Jinja or an expression.
fn bare_word_arg(tokens: &[Token], sql: &str, arg: &Range<usize>) -> Option<String> {
    let [t] = tokens.get(arg.clone())? else {
        return None;
    };
    (t.kind == TokenKind::Word).then(|| t.text(sql).to_ascii_lowercase())
}

/// PostgreSQL/Oracle `to_char` patterns and their `strftime` codes, longest first. The
/// flag says whether the pattern matches in any case (the numeric ones do in
/// PostgreSQL; the text ones are case-sensitive: `Mon` is `Jan`, `MON` is `JAN`).
/// `Month` and `Day` are blank-padded to nine characters in PostgreSQL and so have no
/// `strftime` code; only their `FM` (fill mode) forms are listed.
pub const POSTGRES_TO_STRFTIME: &[(&str, &str, bool)] = &[
    ("FMMonth", "%B", false),
    ("FMDay", "%A", false),
    ("HH24", "%H", true),
    ("HH12", "%I", true),
    ("IYYY", "%G", true),
    ("YYYY", "%Y", true),
    ("DDD", "%j", true),
    ("HH", "%I", true),
    ("YY", "%y", true),
    ("MM", "%m", true),
    ("MI", "%M", true),
    ("MS", "%g", true),
    ("US", "%f", true),
    ("SS", "%S", true),
    ("DD", "%d", true),
    ("IW", "%V", true),
    ("Mon", "%b", false),
    ("Dy", "%a", false),
    ("AM", "%p", false),
    ("PM", "%p", false),
];

/// Characters copied as they are in both format languages.
const FORMAT_SEPARATORS: &[char] = &['-', '/', ':', ' ', '.', ',', '_'];

/// Translates a PostgreSQL/Oracle date format into `strftime` codes; `None` when any
/// part has no exact equivalent.
pub fn postgres_format_to_strftime(format: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = format;
    'outer: while !rest.is_empty() {
        for &(pattern, code, any_case) in POSTGRES_TO_STRFTIME {
            let head = rest.get(..pattern.len());
            let matches = head.is_some_and(|h| {
                if any_case {
                    h.eq_ignore_ascii_case(pattern)
                } else {
                    h == pattern
                }
            });
            if matches {
                out.push_str(code);
                rest = &rest[pattern.len()..];
                continue 'outer;
            }
        }
        let c = rest.chars().next()?;
        if !FORMAT_SEPARATORS.contains(&c) {
            return None;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    Some(out)
}

/// `strftime` codes and their PostgreSQL `to_char` patterns.
pub const STRFTIME_TO_POSTGRES: &[(char, &str)] = &[
    ('Y', "YYYY"),
    ('y', "YY"),
    ('m', "MM"),
    ('d', "DD"),
    ('H', "HH24"),
    ('I', "HH12"),
    ('M', "MI"),
    ('S', "SS"),
    ('j', "DDD"),
    ('b', "Mon"),
    ('B', "FMMonth"),
    ('a', "Dy"),
    ('A', "FMDay"),
    ('p', "AM"),
    ('f', "US"),
    ('g', "MS"),
    ('G', "IYYY"),
    ('V', "IW"),
];

/// Translates a `strftime` format into PostgreSQL `to_char` patterns; `None` when any
/// part has no exact equivalent.
pub fn strftime_format_to_postgres(format: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            let code = chars.next()?;
            let (_, pattern) = STRFTIME_TO_POSTGRES.iter().find(|(k, _)| *k == code)?;
            out.push_str(pattern);
        } else if FORMAT_SEPARATORS.contains(&c) {
            out.push(c);
        } else {
            return None;
        }
    }
    Some(out)
}

/// The function an error says does not exist, lower-cased.
///
/// DuckDB: `Catalog Error: Scalar Function with name to_char does not exist!`;
/// PostgreSQL: `function nvl(integer, integer) does not exist`. A schema-qualified name
/// (`public.nvl`) is returned qualified, and no call site matches it.
pub fn parse_unknown_function(message: &str) -> Option<String> {
    static RES: OnceLock<Vec<Regex>> = OnceLock::new();
    let res = RES.get_or_init(|| {
        [
            r#"(?:Scalar |Aggregate |Table |Macro )?Function with name "?(?P<name>[^\s"!]+)"? does not exist"#,
            r#"function (?P<name>[^\s(]+)\([^)\n]*\) does not exist"#,
        ]
        .iter()
        .filter_map(|p| Regex::new(p).ok())
        .collect()
    });
    res.iter()
        .find_map(|re| re.captures(message))
        .and_then(|c| c.name("name"))
        .map(|m| m.as_str().trim_matches('"').to_ascii_lowercase())
}

/// Which adapter's table applies: the input's adapter, or — when it is not given — the
/// one whose wording the message has.
fn table_adapter<'a>(adapter: &'a str, message: &str) -> &'a str {
    if !adapter.is_empty() {
        return adapter;
    }
    if message.contains("Function with name") {
        "duckdb"
    } else if message.contains("No function matches the given name") {
        "postgres"
    } else {
        ""
    }
}

/// Rewrites every call of the missing function with the adapter's equivalent.
///
/// Fires when the error names a function, the adapter's table has a row for it, the
/// model calls it (unqualified, in SQL code — never inside strings, comments or Jinja)
/// at least once, and *every* such call has an argument count the row covers and, where
/// the rewrite needs it, a literal it can translate (a date format made only of
/// patterns with an exact equivalent; the date part `'day'`). Argument text is copied
/// verbatim, Jinja included. One call it cannot rewrite and the rule refuses: the model
/// would still fail. Calls of *other* functions of the same adapter's table are
/// rewritten along, under the same all-or-nothing condition per function (they would
/// be the next error); one that cannot be is left as it is.
pub fn unknown_function(input: &RuleInput) -> Option<RuleFix> {
    let function = parse_unknown_function(input.error_message)?;
    let adapter = table_adapter(input.adapter, input.error_message).to_ascii_lowercase();
    let row = FUNCTION_EQUIVALENTS
        .iter()
        .find(|r| r.function == function && r.adapters.contains(&adapter.as_str()))?;
    let sql = input.model_sql;
    let tokens = tokenize(sql);
    let (calls, per_call) = rewrite_all_calls(&tokens, sql, row)?;
    let mut edits: Vec<Edit> = per_call.iter().flatten().cloned().collect();
    // Other functions of the table that the model calls will fail next, just as surely:
    // rewrite them too when every one of their calls can be, and the edits do not
    // overlap (a call nested in a rewritten template's arguments).
    let mut also = Vec::new();
    for other in FUNCTION_EQUIVALENTS
        .iter()
        .filter(|r| r.function != function && r.adapters.contains(&adapter.as_str()))
    {
        let Some((_, other_edits)) = rewrite_all_calls(&tokens, sql, other) else {
            continue;
        };
        // Calls already in the warehouse's own form need nothing.
        if other_edits.iter().all(Vec::is_empty) {
            continue;
        }
        let mut with_other = edits.clone();
        with_other.extend(other_edits.into_iter().flatten());
        if apply_edits(sql, &with_other).is_some() {
            edits = with_other;
            also.push(other.function);
        }
    }
    let fixed_sql = apply_edits(sql, &edits)?;
    if breaks_parse(sql, &fixed_sql, input.adapter) {
        return None;
    }
    // The first call before and after, for the explanation.
    let first = &calls[0];
    let start = tokens[first.name].range.start;
    let end = tokens[first.close].range.end;
    let first_fixed = apply_edits(sql, &per_call[0])?;
    let after_end = (end + first_fixed.len()).checked_sub(sql.len())?;
    let example = match first_fixed.get(start..after_end) {
        Some(after) => format!(
            "{} `{}` → `{}`",
            if calls.len() == 1 { ":" } else { ", e.g." },
            snippet(&sql[start..end]),
            snippet(after)
        ),
        None => String::new(),
    };
    let also = if also.is_empty() {
        String::new()
    } else {
        let names: Vec<String> = also.iter().map(|f| format!("`{f}`")).collect();
        format!(
            " The model also calls {} in a form it lacks too; rewrote those the same way.",
            names.join(", ")
        )
    };
    let count = if calls.len() == 1 {
        "its call".to_owned()
    } else {
        format!("its {} calls", calls.len())
    };
    let explanation = format!(
        "{} has no function `{function}`; rewrote {count} in `{}` with the equivalent it does have{example}.{also}",
        warehouse_name(&adapter),
        input.model_name,
    );
    Some(RuleFix {
        fixed_sql,
        explanation,
        rule: NAME,
        confidence: 0.9,
    })
}

/// Every call of `row`'s function in SQL code and the edits that rewrite each; `None`
/// when there is none or any one of them cannot be rewritten.
fn rewrite_all_calls(
    tokens: &[Token],
    sql: &str,
    row: &FunctionEquivalent,
) -> Option<(Vec<Call>, Vec<Vec<Edit>>)> {
    let calls = call_sites(tokens, sql, row.function);
    if calls.is_empty() {
        return None;
    }
    let mut per_call = Vec::new();
    for call in &calls {
        if !row.arities.contains(&call.args.len()) {
            return None;
        }
        per_call.push(rewrite_call(tokens, sql, call, row.rewrite)?);
    }
    Some((calls, per_call))
}

/// One call of the function in SQL code.
struct Call {
    /// Token index of the name.
    name: usize,
    /// Token index of `)`.
    close: usize,
    /// Token ranges of the arguments; empty for `f()`.
    args: Vec<Range<usize>>,
}

fn call_sites(tokens: &[Token], sql: &str, function: &str) -> Vec<Call> {
    let mut calls = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if t.kind != TokenKind::Word || !t.text(sql).eq_ignore_ascii_case(function) {
            continue;
        }
        // Qualified (`x.f(`) or glued to a name or Jinja (`{{ p }}f(`): not this
        // function.
        if i > 0 {
            let prev = &tokens[i - 1];
            let glued_to_name = !separated(tokens, i)
                && matches!(
                    prev.kind,
                    TokenKind::Word | TokenKind::QuotedIdent | TokenKind::Jinja | TokenKind::Number
                );
            if glued_to_name || prev.is_punct(sql, '.') {
                continue;
            }
        }
        let Some(open_token) = tokens.get(i + 1) else {
            continue;
        };
        if !open_token.is_punct(sql, '(') {
            continue;
        }
        let Some(close) = matching_close(tokens, sql, i + 1) else {
            continue;
        };
        let inner = i + 2..close;
        let args = if inner.is_empty() {
            Vec::new()
        } else {
            crate::structure::split_commas(tokens, sql, inner, open_token.depth + 1)
        };
        calls.push(Call {
            name: i,
            close,
            args,
        });
    }
    calls
}

/// The argument's text as written; `None` for an empty argument.
fn arg_text<'s>(tokens: &[Token], sql: &'s str, arg: &Range<usize>) -> Option<&'s str> {
    if arg.is_empty() {
        return None;
    }
    Some(&sql[tokens[arg.start].range.start..tokens[arg.end - 1].range.end])
}

/// The content of a plain `'…'` literal argument (no Jinja, no escapes); `None` for
/// anything else.
fn literal_arg<'s>(tokens: &[Token], sql: &'s str, arg: &Range<usize>) -> Option<&'s str> {
    let [t] = tokens.get(arg.clone())? else {
        return None;
    };
    if t.kind != TokenKind::StringLit {
        return None;
    }
    let text = t.text(sql);
    let inner = text.strip_prefix('\'')?.strip_suffix('\'')?;
    if inner.contains('\'') || inner.contains("{{") || inner.contains("{%") || inner.contains("{#")
    {
        return None;
    }
    Some(inner)
}

fn rewrite_call(tokens: &[Token], sql: &str, call: &Call, rewrite: Rewrite) -> Option<Vec<Edit>> {
    let name_range = tokens[call.name].range.clone();
    let whole = name_range.start..tokens[call.close].range.end;
    let args: Vec<&str> = call
        .args
        .iter()
        .map(|a| arg_text(tokens, sql, a))
        .collect::<Option<_>>()?;
    match rewrite {
        Rewrite::Rename(new) => Some(vec![Edit {
            range: name_range,
            replacement: new.to_owned(),
        }]),
        Rewrite::Template(template) => Some(vec![Edit {
            range: whole,
            replacement: fill(template, &args),
        }]),
        Rewrite::FormatToStrftime { name, format_arg } => {
            let arg = call.args.get(format_arg)?;
            let translated = postgres_format_to_strftime(literal_arg(tokens, sql, arg)?)?;
            let literal = &tokens[arg.start];
            Some(vec![
                Edit {
                    range: name_range,
                    replacement: name.to_owned(),
                },
                Edit {
                    range: literal.range.clone(),
                    replacement: format!("'{translated}'"),
                },
            ])
        }
        Rewrite::StrftimeToPostgres { name } => {
            let formats: Vec<usize> = (0..call.args.len())
                .filter(|&i| {
                    literal_arg(tokens, sql, &call.args[i]).is_some_and(|f| f.contains('%'))
                })
                .collect();
            let [format_index] = formats[..] else {
                return None;
            };
            let value_index = 1 - format_index;
            let translated =
                strftime_format_to_postgres(literal_arg(tokens, sql, &call.args[format_index])?)?;
            Some(vec![Edit {
                range: whole,
                replacement: format!("{name}({}, '{translated}')", args[value_index]),
            }])
        }
        Rewrite::DayDifference => {
            let part = literal_arg(tokens, sql, &call.args[0])?;
            if !part.eq_ignore_ascii_case("day") && !part.eq_ignore_ascii_case("days") {
                return None;
            }
            Some(vec![Edit {
                range: whole,
                replacement: format!("(cast({} as date) - cast({} as date))", args[2], args[1]),
            }])
        }
        Rewrite::DateName => {
            let part = bare_word_arg(tokens, sql, &call.args[0])?;
            let (_, template) = DATENAME_PARTS
                .iter()
                .find(|(names, _)| names.contains(&part.as_str()))?;
            Some(vec![Edit {
                range: whole,
                replacement: fill(template, &args[1..]),
            }])
        }
        Rewrite::QuotedDatePart { name } => {
            if literal_arg(tokens, sql, &call.args[0]).is_some() {
                return Some(Vec::new());
            }
            let part = bare_word_arg(tokens, sql, &call.args[0])?;
            let (_, duckdb_part) = SQL_SERVER_DATE_PARTS.iter().find(|(k, _)| *k == part)?;
            let part_arg = &call.args[0];
            Some(vec![
                Edit {
                    range: name_range,
                    replacement: name.to_owned(),
                },
                Edit {
                    range: tokens[part_arg.start].range.clone(),
                    replacement: format!("'{duckdb_part}'"),
                },
            ])
        }
    }
}

/// `{0}`, `{1}`, … replaced by the arguments.
fn fill(template: &str, args: &[&str]) -> String {
    let mut out = template.to_owned();
    for (i, arg) in args.iter().enumerate() {
        out = out.replace(&format!("{{{i}}}"), arg);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_formats_translate_exactly_or_not_at_all() {
        assert_eq!(
            postgres_format_to_strftime("YYYY-MM").as_deref(),
            Some("%Y-%m")
        );
        assert_eq!(
            postgres_format_to_strftime("yyyy-mm-dd hh24:mi:ss").as_deref(),
            Some("%Y-%m-%d %H:%M:%S")
        );
        assert_eq!(
            postgres_format_to_strftime("DD Mon YYYY").as_deref(),
            Some("%d %b %Y")
        );
        assert_eq!(
            postgres_format_to_strftime("FMDay, FMMonth DD").as_deref(),
            Some("%A, %B %d")
        );
        // Blank-padded names, upper-case names, numbers, quoted text: no exact code.
        for untranslatable in ["Month", "MON", "9999.99", "\"Q\"Q", "YYYY%", "D"] {
            assert_eq!(
                postgres_format_to_strftime(untranslatable),
                None,
                "{untranslatable}"
            );
        }
    }

    #[test]
    fn strftime_formats_translate_back() {
        assert_eq!(
            strftime_format_to_postgres("%Y-%m").as_deref(),
            Some("YYYY-MM")
        );
        assert_eq!(
            strftime_format_to_postgres("%Y-%m-%d %H:%M:%S").as_deref(),
            Some("YYYY-MM-DD HH24:MI:SS")
        );
        for untranslatable in ["%Q", "%", "week %V of %Y", "%e"] {
            assert_eq!(
                strftime_format_to_postgres(untranslatable),
                None,
                "{untranslatable}"
            );
        }
        // Round trip over every code.
        for (code, _) in STRFTIME_TO_POSTGRES {
            let f = format!("%{code}");
            let there = strftime_format_to_postgres(&f).unwrap_or_default();
            let back = postgres_format_to_strftime(&there).unwrap_or_default();
            assert_eq!(back, f, "{there}");
        }
    }

    #[test]
    fn error_wordings() {
        assert_eq!(
            parse_unknown_function("Catalog Error: Scalar Function with name to_char does not exist!\nDid you mean \"to_hours\"?").as_deref(),
            Some("to_char")
        );
        assert_eq!(
            parse_unknown_function("function nvl(integer, integer) does not exist").as_deref(),
            Some("nvl")
        );
        assert_eq!(
            parse_unknown_function("function getdate() does not exist").as_deref(),
            Some("getdate")
        );
        assert_eq!(
            parse_unknown_function("Table with name x does not exist"),
            None
        );
    }

    fn fix(sql: &str, message: &str, adapter: &str) -> Option<String> {
        unknown_function(&RuleInput {
            error_class: crate::ErrorClass::UnknownFunction,
            error_message: message,
            model_sql: sql,
            adapter,
            ..RuleInput::default()
        })
        .map(|f| f.fixed_sql)
    }

    #[test]
    fn call_sites_it_does_not_touch() {
        let nvl = "function nvl(integer, integer) does not exist";
        // Only in Jinja, or schema-qualified (a user-defined function of that name).
        assert_eq!(
            fix("select {{ nvl('a', 'b') }} from t", nvl, "postgres"),
            None
        );
        assert_eq!(fix("select public.nvl(a, b) from t", nvl, "postgres"), None);
        // One-argument `isnull(x)` is a predicate elsewhere, not `coalesce`.
        let isnull = "function isnull(integer) does not exist";
        assert_eq!(fix("select isnull(a) from t", isnull, "postgres"), None);
        // A function the table does not know for this adapter.
        assert_eq!(fix("select nvl(a, b) from t", nvl, "redshift"), None);
    }

    #[test]
    fn nested_calls_are_all_rewritten() {
        let nvl = "function nvl(integer, integer) does not exist";
        assert_eq!(
            fix("select nvl(nvl(a, b), c) from t", nvl, "postgres").as_deref(),
            Some("select coalesce(coalesce(a, b), c) from t")
        );
    }

    #[test]
    fn the_adapter_can_come_from_the_wording() {
        let message = "Catalog Error: Scalar Function with name nvl does not exist!";
        assert_eq!(
            fix("select nvl(a, 0) from t", message, "").as_deref(),
            Some("select coalesce(a, 0) from t")
        );
    }

    #[test]
    fn sql_server_datename_becomes_duckdb_functions_per_part() {
        let message = "Catalog Error: Scalar Function with name datename does not exist!\nDid you mean \"datepart\"?";
        let cases = [
            ("datename(weekday, d)", "dayname(d)"),
            ("DATENAME(DW, d)", "dayname(d)"),
            ("datename(month, d)", "monthname(d)"),
            ("datename(m, d)", "monthname(d)"),
            ("datename(yyyy, d)", "cast(date_part('year', d) as varchar)"),
            ("datename(dd, d)", "cast(date_part('day', d) as varchar)"),
        ];
        for (call, expected) in cases {
            assert_eq!(
                fix(&format!("select {call} from t"), message, "duckdb"),
                Some(format!("select {expected} from t")),
                "{call}"
            );
        }
        // Week numbering differs; a quoted or Jinja part is not SQL Server's form.
        for call in [
            "datename(week, d)",
            "datename(iso_week, d)",
            "datename('weekday', d)",
            "datename({{ part }}, d)",
        ] {
            assert_eq!(
                fix(&format!("select {call} from t"), message, "duckdb"),
                None,
                "{call}"
            );
        }
        // One untranslatable call and the rule refuses: the model would still fail.
        assert_eq!(
            fix(
                "select datename(weekday, d), datename(week, d) from t",
                message,
                "duckdb"
            ),
            None
        );
    }

    #[test]
    fn bare_date_parts_are_quoted_along_with_the_missing_function() {
        let getdate = "Catalog Error: Scalar Function with name getdate does not exist!";
        assert_eq!(
            fix(
                "select datediff(day, cast(a as date), getdate()) as n, datepart(yyyy, b) as y from t",
                getdate,
                "duckdb"
            )
            .as_deref(),
            Some("select date_diff('day', cast(a as date), current_timestamp) as n, date_part('year', b) as y from t")
        );
        // DuckDB's own string form stays; only `getdate` changes.
        assert_eq!(
            fix(
                "select datediff('day', a, getdate()) from t",
                getdate,
                "duckdb"
            )
            .as_deref(),
            Some("select datediff('day', a, current_timestamp) from t")
        );
        // `week` has no exact part and a one-letter `d` may be a column: left alone.
        for sql in [
            "select datediff(week, a, getdate()) from t",
            "select datediff(d, a, getdate()) from t",
        ] {
            let fixed = fix(sql, getdate, "duckdb").unwrap_or_default();
            assert_eq!(
                fixed,
                sql.replace("getdate()", "current_timestamp"),
                "{sql}"
            );
        }
    }

    #[test]
    fn every_row_is_unique_per_adapter() {
        for (i, a) in FUNCTION_EQUIVALENTS.iter().enumerate() {
            assert_eq!(a.function, a.function.to_ascii_lowercase());
            for b in &FUNCTION_EQUIVALENTS[i + 1..] {
                let shared = a.adapters.iter().any(|x| b.adapters.contains(x));
                assert!(!(shared && a.function == b.function), "{}", a.function);
            }
        }
    }
}
