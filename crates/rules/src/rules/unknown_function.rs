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
            " It lacks {} too, which the model also calls; rewrote those the same way.",
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
