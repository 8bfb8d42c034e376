//! `suggested_name`: the warehouse says a function, type or table does not exist and
//! suggests the one it has (DuckDB: `Scalar Function with name day_name does not
//! exist!` / `Did you mean "dayname"?`); the model writes the bad name once, in a place
//! where that kind of name goes, and the suggestion is a plausible spelling of it.
//!
//! The suggestion is the database's, so it knows what exists; but DuckDB proposes its
//! nearest name by its own measure, which is often a different word (`to_char` →
//! `to_hours`, `replicate` → `replace`, `nullifzero` → `nullif`). So the suggestion must
//! be a slip of the keyboard ([`is_slip`]): one edit, two in long names, and a slip
//! inside words rather than a word swapped ([`crate::nearest`]). A function the
//! adapter's table of equivalents knows (`iff`, `nullifzero`) is that table's, right or
//! refused, never the hint's. PostgreSQL suggests no types; for `type "dat" does not
//! exist` the candidates are the adapter's type names in [`crate::sql_types`].
//!
//! Columns are not here: `misspelt_column` already scores DuckDB's `Candidate bindings`
//! and PostgreSQL's `Perhaps you meant to reference the column` hints alongside the
//! parents' columns. Functions the adapter lacks under another dialect's name are
//! `unknown_function`'s, tried first.

use std::sync::OnceLock;

use regex::Regex;

use crate::nearest::{self, Choice};
use crate::rewrite::{apply_edits, recase_like, Edit};
use crate::rules::unknown_function::FUNCTION_EQUIVALENTS;
use crate::segment::{is_ident_byte, segment, SegmentKind};
use crate::sql_types::written_type_names;
use crate::sqlcheck::breaks_parse;
use crate::tokens::{separated, tokenize, Token, TokenKind};
use crate::{RuleFix, RuleInput};

use super::{edits_phrase, warehouse_name};

/// The rule's name.
pub(super) const NAME: &str = "suggested_name";

/// What kind of name does not exist: where in the SQL it can stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// Called: `day_name(order_date)`.
    Function,
    /// Cast to: `cast(x as dat)`, `x::dat`.
    Type,
    /// Read from: `from main.stg_ordrs`.
    Table,
}

impl NameKind {
    fn noun(self) -> &'static str {
        match self {
            NameKind::Function => "function",
            NameKind::Type => "type",
            NameKind::Table => "table",
        }
    }
}

/// One wording of "this name does not exist", with or without a suggestion.
#[derive(Debug, Clone, Copy)]
pub struct UnknownNamePattern {
    /// A short name for tests and logs.
    pub name: &'static str,
    /// A regex with a `name` group and, when the warehouse suggests one, a `suggestion`
    /// group.
    pub regex: &'static str,
    /// What kind of name it is.
    pub kind: NameKind,
}

/// The wordings, all seen in real dbt runs (`tests/real_errors_probes.rs`) or with the
/// DuckDB client of the same version. DuckDB prints its suggestion on the next line.
pub const UNKNOWN_NAME_PATTERNS: &[UnknownNamePattern] = &[
    UnknownNamePattern {
        // `Catalog Error: Scalar Function with name day_name does not exist!\n  Did you
        // mean "dayname"?`; also Table, Aggregate and Macro functions.
        name: "duckdb_function",
        regex: r#"(?:Scalar |Aggregate |Table |Macro )?Function with name "?(?P<name>[^\s"!]+)"? does not exist!\s*Did you mean "(?P<suggestion>[^"\n]+)"\?"#,
        kind: NameKind::Function,
    },
    UnknownNamePattern {
        // `Catalog Error: Type with name dat does not exist!\n  Did you mean "date"?`
        name: "duckdb_type",
        regex: r#"Type with name "?(?P<name>[^\s"!]+)"? does not exist!\s*Did you mean "(?P<suggestion>[^"\n]+)"\?"#,
        kind: NameKind::Type,
    },
    UnknownNamePattern {
        // `Catalog Error: Table with name stg_ordrs does not exist!\n  Did you mean
        // "stg_orders"?` (a name in another schema comes qualified: `"s2.custs"`).
        name: "duckdb_table",
        regex: r#"Table with name "?(?P<name>[^\s"!]+)"? does not exist!\s*Did you mean "(?P<suggestion>[^"\n]+)"\?"#,
        kind: NameKind::Table,
    },
    UnknownNamePattern {
        // `type "dat" does not exist`: no suggestion.
        name: "postgres_type",
        regex: r#"\btype "(?P<name>[^"]+)" does not exist"#,
        kind: NameKind::Type,
    },
];

/// What an error says does not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    /// Its kind.
    pub kind: NameKind,
    /// The name, as printed.
    pub name: String,
    /// The warehouse's one suggestion, if it made one.
    pub suggestion: Option<String>,
}

fn compiled() -> &'static [(UnknownNamePattern, Regex)] {
    static COMPILED: OnceLock<Vec<(UnknownNamePattern, Regex)>> = OnceLock::new();
    COMPILED.get_or_init(|| {
        UNKNOWN_NAME_PATTERNS
            .iter()
            .filter_map(|p| Regex::new(p.regex).ok().map(|re| (*p, re)))
            .collect()
    })
}

/// Reads the unknown name (and the suggestion) from an error text.
pub fn parse_unknown_name(message: &str) -> Option<UnknownName> {
    compiled().iter().find_map(|(pattern, re)| {
        let caps = re.captures(message)?;
        Some(UnknownName {
            kind: pattern.kind,
            name: caps.name("name")?.as_str().to_owned(),
            suggestion: caps.name("suggestion").map(|s| s.as_str().to_owned()),
        })
    })
}

/// The most edits a slip of the keyboard makes: one, or two when both names have at
/// least [`LONG_NAME`] characters.
const MAX_SLIP: usize = 1;
/// See [`MAX_SLIP`].
const LONG_NAME: usize = 8;

/// `candidate` as a misspelling of `bad`: [`nearest::choose`] accepts it and it is at
/// most [`MAX_SLIP`] edits away (one more for long names). `day_name` → `dayname`,
/// `lenght` → `length`, `dat` → `date` are slips; `replicate` → `replace` is not.
fn is_slip<'c>(bad: &str, candidates: &[&'c str]) -> Option<nearest::Match<'c>> {
    let Choice::Unique { best, .. } = nearest::choose(bad, candidates.iter().copied()) else {
        return None;
    };
    let shortest = bad.chars().count().min(best.name.chars().count());
    let limit = if shortest >= LONG_NAME {
        MAX_SLIP + 1
    } else {
        MAX_SLIP
    };
    (best.distance <= limit).then_some(best)
}

/// A plain, unqualified SQL name: what a suggestion must be to replace one token.
fn is_plain_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// True when `name` occurs as a whole word in `text`, ignoring ASCII case.
fn has_word(text: &str, name: &str) -> bool {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !is_ident_byte(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_ident_byte(bytes[i]) {
            i += 1;
        }
        if text[start..i].eq_ignore_ascii_case(name) {
            return true;
        }
    }
    false
}

/// True when token `i` stands where a name of `kind` goes.
fn in_place_of(kind: NameKind, tokens: &[Token], sql: &str, i: usize) -> bool {
    let next_is_open = tokens.get(i + 1).is_some_and(|t| t.is_punct(sql, '('));
    let prev = i.checked_sub(1).map(|p| &tokens[p]);
    let qualified = prev.is_some_and(|p| p.is_punct(sql, '.'));
    match kind {
        NameKind::Function => {
            // `x.f(` is another function (or a method); `{{ p }}f(` renders longer.
            let glued = i > 0 && !separated(tokens, i);
            next_is_open && !qualified && !glued
        }
        NameKind::Type => {
            let after_colons =
                prev.is_some_and(|p| p.kind == TokenKind::Operator && p.text(sql) == "::");
            let after_as_in_cast = prev.is_some_and(|p| p.is_keyword(sql, "as")) && {
                // The `(` that encloses the token, and the word before it.
                let depth = tokens[i].depth;
                (0..i)
                    .rev()
                    .find(|&k| depth > 0 && tokens[k].depth == depth - 1)
                    .filter(|&k| tokens[k].is_punct(sql, '('))
                    .and_then(|k| k.checked_sub(1))
                    .is_some_and(|k| {
                        ["cast", "try_cast", "safe_cast"]
                            .iter()
                            .any(|w| tokens[k].is_keyword(sql, w))
                    })
            };
            after_colons || after_as_in_cast
        }
        NameKind::Table => {
            // Back over `schema.` / `{{ target.schema }}.` to `from` or `join`.
            let mut start = i;
            while start >= 2
                && tokens[start - 1].is_punct(sql, '.')
                && matches!(
                    tokens[start - 2].kind,
                    TokenKind::Word | TokenKind::QuotedIdent | TokenKind::Jinja
                )
            {
                start -= 2;
            }
            let after_from = start > 0
                && (tokens[start - 1].is_keyword(sql, "from")
                    || tokens[start - 1].is_keyword(sql, "join"));
            after_from && !next_is_open
        }
    }
}

/// Replaces the one use of a name the warehouse does not have with the name it
/// suggests.
///
/// Fires when all of these hold:
/// - the error is a row of [`UNKNOWN_NAME_PATTERNS`];
/// - a function is not one the adapter's table of equivalents knows (that table answers
///   it, or nothing does);
/// - the replacement is the warehouse's one suggestion — a plain unqualified name other
///   than the bad one — or, for a type without a suggestion, the one type name of the
///   adapter's table nearest to it; either way a slip of the bad name ([`is_slip`]:
///   `to_char` → `to_hours` is refused), and for a table no project node is as near;
/// - the bad name occurs exactly once in the model's SQL code (strings and comments
///   aside) and never inside a Jinja tag, whose rendering we cannot see;
/// - that one occurrence stands where such a name goes: a function call (unqualified),
///   a cast's type (`cast(x as …)`, `try_cast`, `::…`), a relation after `from`/`join`;
/// - when the model parses (Jinja masked), the repaired model does too.
pub fn suggested_name(input: &RuleInput) -> Option<RuleFix> {
    let unknown = parse_unknown_name(input.error_message)?;
    let bad = unknown.name.as_str();
    if unknown.kind == NameKind::Function
        && FUNCTION_EQUIVALENTS.iter().any(|row| {
            row.function.eq_ignore_ascii_case(bad)
                && row
                    .adapters
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(input.adapter))
        })
    {
        return None;
    }
    let (replacement, source, best) = match &unknown.suggestion {
        Some(suggested) => {
            if !is_plain_name(suggested) {
                return None;
            }
            let mut candidates = vec![suggested.as_str()];
            if unknown.kind == NameKind::Table {
                // A project node as near as the suggestion: which one was meant is
                // not the catalog's to say (it may not have built the other yet).
                candidates.extend(input.project_node_names.iter().copied());
            }
            let best = is_slip(bad, &candidates)?;
            if !best.name.eq_ignore_ascii_case(suggested) {
                return None;
            }
            (suggested.clone(), "suggested", best)
        }
        None if unknown.kind == NameKind::Type => {
            let names: Vec<&str> = written_type_names(input.adapter)
                .into_iter()
                .filter(|n| is_plain_name(n))
                .collect();
            let best = is_slip(bad, &names)?;
            (best.name.to_owned(), "nearest", best)
        }
        None => return None,
    };

    let sql = input.model_sql;
    let in_jinja = segment(sql).iter().any(|s| {
        matches!(
            s.kind,
            SegmentKind::JinjaExpression | SegmentKind::JinjaStatement
        ) && has_word(&sql[s.range.clone()], bad)
    });
    if in_jinja {
        return None;
    }
    let tokens = tokenize(sql);
    let uses: Vec<usize> = tokens
        .iter()
        .enumerate()
        .filter(|(_, t)| {
            matches!(t.kind, TokenKind::Word | TokenKind::QuotedIdent)
                && t.unquoted(sql).eq_ignore_ascii_case(bad)
        })
        .map(|(i, _)| i)
        .collect();
    let [at] = uses[..] else {
        return None;
    };
    if !in_place_of(unknown.kind, &tokens, sql, at) {
        return None;
    }
    let token = &tokens[at];
    let quoted = token.kind == TokenKind::QuotedIdent;
    let range = if quoted {
        token.range.start + 1..token.range.end - 1
    } else {
        token.range.clone()
    };
    let written = &sql[range.clone()];
    let new_name = recase_like(written, &replacement, quoted);
    let fixed_sql = apply_edits(
        sql,
        &[Edit {
            range,
            replacement: new_name.clone(),
        }],
    )?;
    if breaks_parse(sql, &fixed_sql, input.adapter) {
        return None;
    }
    let warehouse = warehouse_name(input.adapter);
    let noun = unknown.kind.noun();
    let why = if source == "suggested" {
        format!("{warehouse} has no {noun} `{written}` and suggested `{new_name}`")
    } else {
        format!(
            "{warehouse} has no {noun} `{written}`; `{new_name}` is the one {noun} name it \
             knows within reach"
        )
    };
    let explanation = format!(
        "{why}, {} away. Replaced the one use in `{}`.",
        edits_phrase(best.distance),
        input.model_name,
    );
    Some(RuleFix {
        fixed_sql,
        explanation,
        rule: NAME,
        confidence: nearest::confidence(bad, &best, None).min(0.9),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;

    #[test]
    fn patterns_compile() {
        for pattern in UNKNOWN_NAME_PATTERNS {
            assert!(Regex::new(pattern.regex).is_ok(), "{}", pattern.name);
        }
        assert_eq!(compiled().len(), UNKNOWN_NAME_PATTERNS.len());
    }

    #[test]
    fn wordings() {
        assert_eq!(
            parse_unknown_name(
                "Catalog Error: Table Function with name read_cvs does not exist!\nDid you mean \"read_csv\"?"
            ),
            Some(UnknownName {
                kind: NameKind::Function,
                name: "read_cvs".into(),
                suggestion: Some("read_csv".into())
            })
        );
        assert_eq!(
            parse_unknown_name("type \"dat\" does not exist").map(|u| (u.kind, u.suggestion)),
            Some((NameKind::Type, None))
        );
        // A function without a suggestion is unknown_function's business.
        assert_eq!(
            parse_unknown_name("Catalog Error: Scalar Function with name x does not exist!"),
            None
        );
    }

    fn fix(sql: &str, message: &str, adapter: &str) -> Option<String> {
        suggested_name(&RuleInput {
            error_class: ErrorClass::UnknownFunction,
            error_message: message,
            model_sql: sql,
            adapter,
            ..RuleInput::default()
        })
        .map(|f| f.fixed_sql)
    }

    #[test]
    fn the_suggestion_must_be_a_spelling_of_the_name() {
        // DuckDB client, real: the hint is another word.
        let to_char = "Catalog Error: Scalar Function with name to_char does not exist!\nDid you mean \"to_hours\"?";
        assert_eq!(
            fix("select to_char(d, 'YYYY') from t", to_char, "duckdb"),
            None
        );
        let read_cvs = "Catalog Error: Table Function with name read_cvs does not exist!\nDid you mean \"read_csv\"?";
        assert_eq!(
            fix("select * from read_cvs('x.csv')", read_cvs, "duckdb").as_deref(),
            Some("select * from read_csv('x.csv')")
        );
        // A name in another schema: which schema to read is a decision.
        let custs =
            "Catalog Error: Table with name custs does not exist!\nDid you mean \"s2.custs\"?";
        assert_eq!(fix("select * from custs", custs, "duckdb"), None);
    }

    #[test]
    fn slips_and_other_words() {
        let slip = |bad: &str, good: &'static str| is_slip(bad, &[good]).is_some();
        assert!(slip("day_name", "dayname"));
        assert!(slip("lenght", "length"));
        assert!(slip("dat", "date"));
        assert!(slip("stringagg", "string_agg"));
        assert!(slip("date_trun", "date_trunc"));
        assert!(slip("percentil_cnt", "percentile_cont"));
        assert!(!slip("replicate", "replace"));
        assert!(!slip("nullifzero", "nullif"));
        assert!(!slip("to_char", "to_hours"));
        assert!(!slip("strptm", "strftime"));
    }

    #[test]
    fn one_use_in_the_right_place() {
        let lenght = "Catalog Error: Scalar Function with name lenght does not exist!\nDid you mean \"length\"?";
        // Twice, or also inside Jinja: not the one use.
        assert_eq!(
            fix("select lenght(a), lenght(b) from t", lenght, "duckdb"),
            None
        );
        assert_eq!(
            fix(
                "select lenght(a), {{ m('lenght') }} from t",
                lenght,
                "duckdb"
            ),
            None
        );
        // A column of that name is not a call.
        assert_eq!(fix("select lenght from t", lenght, "duckdb"), None);
        assert_eq!(
            fix("SELECT LENGHT(a) FROM t", lenght, "duckdb").as_deref(),
            Some("SELECT LENGTH(a) FROM t")
        );
        let integr =
            "Catalog Error: Type with name integr does not exist!\nDid you mean \"integer\"?";
        assert_eq!(
            fix("select a::integr as a from t", integr, "duckdb").as_deref(),
            Some("select a::integer as a from t")
        );
        assert_eq!(
            fix("select try_cast(a as integr) as a from t", integr, "duckdb").as_deref(),
            Some("select try_cast(a as integer) as a from t")
        );
        // `as integr` naming a column is no type.
        assert_eq!(fix("select a as integr from t", integr, "duckdb"), None);
    }

    #[test]
    fn postgres_types_come_from_the_type_table() {
        let dat = "type \"dat\" does not exist";
        assert_eq!(
            fix("select cast(d as dat) as d from t", dat, "postgres").as_deref(),
            Some("select cast(d as date) as d from t")
        );
        // Nothing near enough.
        let money = "type \"mony\" does not exist";
        assert_eq!(
            fix("select cast(d as mony) as d from t", money, "postgres"),
            None
        );
    }
}
