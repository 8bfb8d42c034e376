//! `bad_cast`: a cast of a string fails on a value that is not of the target type (dirty
//! data: `'n/a'` in a points column), and exactly one cast in the model can be the one
//! that failed. It becomes the warehouse's safe cast — `try_cast` (DuckDB, Snowflake),
//! `safe_cast` (BigQuery), a cast guarded by a pattern match (PostgreSQL, which has
//! none) — so a value that does not convert gives NULL instead of failing the model.
//! Only when the value that failed looks like dirty data ([`looks_like_dirty_value`]): a
//! word such as `'Ada'` cast to a date means the wrong column is cast.
//!
//! DuckDB also casts implicitly (`loyalty_points = 120` with a VARCHAR column) and then
//! points its carets at the column it was casting: that column, when the error names it
//! as the source column, gets the safe cast written out — but only when the value that
//! failed looks like dirty data (see [`looks_like_dirty_value`]). An implicit cast is the
//! warehouse's guess, not the writer's: `where order_status = 1` over `'completed'` says
//! the literal (or the comparison) is wrong, and a safe cast there would validate and
//! then silently filter out every row.
//!
//! A literal that does not convert (`home_store_id = 'abc'`) is a mistake in the SQL,
//! not dirty data: left alone.

use std::sync::OnceLock;

use regex::Regex;

use crate::error_spot::{locate_echo, parse_echo};
use crate::expressions::{casts, column_name, operand_kind, Cast, CastForm, OperandKind};
use crate::patterns::{self, AdapterRow};
use crate::rewrite::{apply_edits, Edit};
use crate::sql_types::{adapter_family, error_type, written_type, Family, SqlType};
use crate::tokens::{tokenize, TokenKind};
use crate::{sqlcheck, RuleFix, RuleInput};

use super::{snippet, warehouse_name};

/// The rule's name.
pub(super) const NAME: &str = "bad_cast";

/// One way a warehouse reports a string that does not convert.
#[derive(Debug, Clone, Copy)]
pub struct ConversionPattern {
    /// A short name for tests and logs.
    pub name: &'static str,
    /// The adapters that word it this way, tried first for them.
    pub adapters: &'static [&'static str],
    /// A regex with a `value` group, a `type` group (unless [`Self::fixed_type`]) and
    /// optionally a `column` group (the column being cast).
    pub regex: &'static str,
    /// The target type when the wording implies it.
    pub fixed_type: Option<SqlType>,
}

/// The wordings. The DuckDB and PostgreSQL rows were seen in real dbt runs
/// (`tests/real_type_errors.rs`); the BigQuery and Snowflake rows follow their error
/// references.
pub const CONVERSION_PATTERNS: &[ConversionPattern] = &[
    ConversionPattern {
        // `Conversion Error: Could not convert string 'n/a' to INT32 when casting from
        // source column loyalty_points`.
        name: "duckdb_could_not_convert",
        adapters: &["duckdb", "motherduck"],
        regex: r"Could not convert string '(?P<value>(?:[^']|'')*)' to (?P<type>[A-Z][A-Z0-9_]*(?:\(\d+,\s*\d+\))?)(?: when casting from source column (?P<column>[^\s]+))?",
        fixed_type: None,
    },
    ConversionPattern {
        // `Conversion Error: invalid date field format: "Ada", expected format is
        // (YYYY-MM-DD) when casting from source column first_name`.
        name: "duckdb_invalid_date",
        adapters: &["duckdb", "motherduck"],
        regex: r#"invalid date field format: "(?P<value>[^"]*)", expected format is \(YYYY-MM-DD\)(?: when casting from source column (?P<column>[^\s]+))?"#,
        fixed_type: Some(SqlType::Date),
    },
    ConversionPattern {
        // `invalid input syntax for type integer: "n/a"`.
        name: "postgres_invalid_input_syntax",
        adapters: &["postgres", "postgresql", "redshift"],
        regex: r#"invalid input syntax for type (?P<type>[a-z][a-z0-9 ]*?): "(?P<value>[^"]*)""#,
        fixed_type: None,
    },
    ConversionPattern {
        // `Bad int64 value: n/a`.
        name: "bigquery_bad_value",
        adapters: &["bigquery"],
        regex: r"Bad (?P<type>int64|double|numeric|bool) value: (?P<value>[^\n]*)",
        fixed_type: None,
    },
    ConversionPattern {
        // `Numeric value 'n/a' is not recognized`.
        name: "snowflake_numeric_not_recognized",
        adapters: &["snowflake"],
        regex: r"Numeric value '(?P<value>[^']*)' is not recognized",
        fixed_type: Some(SqlType::Decimal(None)),
    },
];

/// What the error says about the failed conversion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedConversion {
    /// The target type.
    pub ty: SqlType,
    /// The value that did not convert.
    pub value: String,
    /// The column being cast, when the warehouse names it (DuckDB).
    pub column: Option<String>,
}

impl AdapterRow for ConversionPattern {
    fn adapters(&self) -> &'static [&'static str] {
        self.adapters
    }
    fn regex(&self) -> &'static str {
        self.regex
    }
}

fn compiled() -> &'static [(ConversionPattern, Regex)] {
    static COMPILED: OnceLock<Vec<(ConversionPattern, Regex)>> = OnceLock::new();
    COMPILED.get_or_init(|| patterns::compile(CONVERSION_PATTERNS))
}

/// Reads a failed conversion; the adapter's own rows first.
pub fn parse_failed_conversion(message: &str, adapter: &str) -> Option<FailedConversion> {
    patterns::own_adapter_first(compiled(), adapter).find_map(|(pattern, re)| {
        let caps = re.captures(message)?;
        let dialect = pattern.adapters.first().copied().unwrap_or("");
        let ty = match pattern.fixed_type {
            Some(ty) => ty,
            None => error_type(dialect, caps.name("type")?.as_str())?.ty,
        };
        Some(FailedConversion {
            ty,
            value: caps.name("value")?.as_str().to_owned(),
            column: caps
                .name("column")
                .map(|c| c.as_str().trim_matches('"').to_owned()),
        })
    })
}

/// PostgreSQL's stand-in for a safe cast: the pattern a string must match to convert.
/// Only where the pattern is the whole story (integers and plain decimals); a date's
/// validity is not a pattern, so those are left alone.
fn postgres_guard(ty: SqlType) -> Option<&'static str> {
    if ty.is_integer() {
        Some("^[[:space:]]*[+-]?[0-9]+[[:space:]]*$")
    } else if ty.is_number() {
        Some("^[[:space:]]*[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?[[:space:]]*$")
    } else {
        None
    }
}

/// The safe form of a cast of `value` to `type_name`. `original` is the cast as it
/// stands — its text, form and byte offset in the model — or `None` for an implicit cast.
fn safe_cast(
    adapter: &str,
    ty: SqlType,
    value: &str,
    type_name: &str,
    original: Option<(&str, &CastForm, usize)>,
) -> Option<String> {
    let function = match adapter_family(adapter) {
        Family::DuckDb | Family::Snowflake => "try_cast",
        Family::BigQuery => "safe_cast",
        Family::Postgres => {
            let guard = postgres_guard(ty)?;
            let cast = match original {
                Some((text, _, _)) => text.to_owned(),
                None => format!("cast({value} as {type_name})"),
            };
            return Some(format!("case when {value} ~ '{guard}' then {cast} end"));
        }
        Family::Other => return None,
    };
    Some(match original {
        // `cast(` → `try_cast(`, keeping the writer's case.
        Some((text, CastForm::Function(keyword), start)) => {
            let at = keyword.start.checked_sub(start)?;
            let word = text.get(at..at + 4)?;
            let function = if word.chars().all(|c| c.is_ascii_uppercase()) {
                function.to_ascii_uppercase()
            } else {
                function.to_owned()
            };
            format!("{}{function}{}", &text[..at], &text[at + 4..])
        }
        _ => format!("{function}({value} as {type_name})"),
    })
}

/// Spellings of "no value" in hand-kept data, compared without case. Only markers that
/// are hardly ever a category of their own: `unknown` or `missing` may well be a status.
const MISSING_VALUE_MARKERS: &[&str] = &[
    "n/a", "na", "n.a.", "#n/a", "none", "null", "nil", "nan", "inf", "-inf", "infinity",
];

/// True when a value that failed to convert looks like dirt in a column of numbers (or
/// dates) rather than a word of a column of categories: empty or blank, punctuation only
/// (`-`, `?`, `--`), a marker of [`MISSING_VALUE_MARKERS`], or mostly digits (`12a`,
/// `1,234`, `$4.50`, `2024-13-01`: more than half of its letters and digits are
/// digits). `completed`, `Ada`, `v2` are not.
pub fn looks_like_dirty_value(value: &str) -> bool {
    let value = value.trim();
    if value.is_empty() || !value.chars().any(char::is_alphanumeric) {
        return true;
    }
    if MISSING_VALUE_MARKERS
        .iter()
        .any(|m| m.eq_ignore_ascii_case(value))
    {
        return true;
    }
    let alphanumeric = value.chars().filter(|c| c.is_alphanumeric()).count();
    let digits = value.chars().filter(char::is_ascii_digit).count();
    digits * 2 > alphanumeric
}

/// True when `text` names `column` as an identifier.
fn mentions(text: &str, column: &str) -> bool {
    tokenize(text).iter().any(|t| {
        let word = t.text(text);
        match t.kind {
            TokenKind::Word => word.eq_ignore_ascii_case(column),
            TokenKind::QuotedIdent => word.trim_matches('"') == column,
            _ => false,
        }
    })
}

/// Makes the one failing cast safe.
///
/// Fires only when: the error is a row of [`CONVERSION_PATTERNS`] with a known type; the
/// casts to that type (by the model's own spelling, per adapter) of something other than
/// a literal — narrowed to those of the column the error names, and to those the echoed
/// line points at when it can be found in the model — are exactly one; or, with none,
/// the echo points at a plain reference to the named column (DuckDB's implicit cast)
/// *and* the value that failed looks like dirty data ([`looks_like_dirty_value`]); and
/// the adapter has a safe cast for the type. When the model parses (Jinja masked), the
/// repaired model must too.
///
/// The criterion, written down because the two sides look alike:
///
/// - **The value that failed decides**, for an explicit cast (`cast(x as T)`, `x::T`) as
///   for an implicit one (a text column compared with or combined with a number or a
///   date). When it is a placeholder for a missing value (`''`, `'n/a'`, `'-'`,
///   `'null'`, `'NaN'`, `'?'`) or a malformed number (`'12a'`, `'1,234'`), the column
///   holds `T`s with dirt in it, and the safe cast is the repair. When it is a
///   categorical word (`'completed'`, `'Ada'`), the column holds words: the wrong column
///   is cast, or the literal or the comparison is the bug — a safe cast would turn every
///   value into NULL and the model would build, silently wrong — so the rule defers.
pub fn bad_cast(input: &RuleInput) -> Option<RuleFix> {
    let failed = parse_failed_conversion(input.error_message, input.adapter)?;
    let sql = input.model_sql;
    let pointed = parse_echo(input.error_message).and_then(|echo| locate_echo(sql, &echo));
    let mut candidates: Vec<Cast> = casts(sql)
        .into_iter()
        .filter(|cast| {
            !matches!(
                operand_kind(&sql[cast.value.clone()]),
                OperandKind::StringLiteral
                    | OperandKind::IntegerLiteral
                    | OperandKind::NumberLiteral
            ) && written_type(input.adapter, &sql[cast.type_name.clone()])
                .is_some_and(|ty| ty.same_as(failed.ty))
        })
        .collect();
    if let Some(column) = &failed.column {
        candidates.retain(|cast| mentions(&sql[cast.value.clone()], column));
    }
    if let Some(pointed) = &pointed {
        candidates.retain(|cast| cast.range.start < pointed.end && pointed.start < cast.range.end);
    }
    let warehouse = warehouse_name(input.adapter);
    if !looks_like_dirty_value(&failed.value) {
        // A word such as 'completed' or 'Ada': the column holds words, and the cast (or
        // the comparison) is the mistake; a safe cast would build and return NULLs.
        return None;
    }
    let (edit, what) = match candidates.as_slice() {
        [cast] => {
            let original = &sql[cast.range.clone()];
            let value = &sql[cast.value.clone()];
            let type_name = &sql[cast.type_name.clone()];
            let replacement = safe_cast(
                input.adapter,
                failed.ty,
                value,
                type_name,
                Some((original, &cast.form, cast.range.start)),
            )?;
            (
                Edit {
                    range: cast.range.clone(),
                    replacement: replacement.clone(),
                },
                format!("`{}` → `{}`", snippet(original), snippet(&replacement)),
            )
        }
        [] => {
            // DuckDB's implicit cast of a column: the carets are on the column.
            let (column, pointed) = (failed.column.as_ref()?, pointed?);
            let text = sql[pointed.clone()].trim();
            if !column_name(text).is_some_and(|name| name.eq_ignore_ascii_case(column)) {
                return None;
            }
            let start = pointed.start
                + (sql[pointed.clone()].len() - sql[pointed.clone()].trim_start().len());
            let range = start..start + text.len();
            let type_name = failed.ty.spelling(input.adapter)?;
            let replacement = safe_cast(input.adapter, failed.ty, text, &type_name, None)?;
            (
                Edit {
                    range,
                    replacement: replacement.clone(),
                },
                format!(
                    "the implicit cast of `{text}` is now written out as `{}`",
                    snippet(&replacement)
                ),
            )
        }
        _ => return None,
    };
    let fixed_sql = apply_edits(sql, &[edit])?;
    if sqlcheck::breaks_parse(sql, &fixed_sql, input.adapter) {
        return None;
    }
    let type_label = failed
        .ty
        .spelling(input.adapter)
        .unwrap_or_else(|| "the target type".to_owned());
    let explanation = format!(
        "{warehouse} could not cast the value '{}' to {type_label} in `{}`: the data holds \
         values that are not {type_label}s. Made the cast safe ({what}): such values now \
         become NULL instead of failing the model.",
        snippet(&failed.value),
        input.model_name,
    );
    Some(RuleFix {
        fixed_sql,
        explanation,
        rule: NAME,
        confidence: if failed.column.is_some() { 0.8 } else { 0.7 },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;

    #[test]
    fn patterns_compile() {
        for pattern in CONVERSION_PATTERNS {
            assert!(Regex::new(pattern.regex).is_ok(), "{}", pattern.name);
        }
        assert_eq!(compiled().len(), CONVERSION_PATTERNS.len());
    }

    fn run(sql: &str, message: &str, adapter: &str) -> Option<String> {
        bad_cast(&RuleInput {
            error_class: ErrorClass::RuntimeData,
            error_message: message,
            model_name: "m",
            model_sql: sql,
            adapter,
            ..RuleInput::default()
        })
        .map(|f| f.fixed_sql)
    }

    #[test]
    fn the_writers_case_and_form_are_kept() {
        let message = "Conversion Error: Could not convert string 'n/a' to INT32";
        assert_eq!(
            run("SELECT CAST(p AS INT) AS p FROM t", message, "duckdb").as_deref(),
            Some("SELECT TRY_CAST(p AS INT) AS p FROM t")
        );
        assert_eq!(
            run("select p::int as p from t", message, "duckdb").as_deref(),
            Some("select try_cast(p as int) as p from t")
        );
        // BigQuery's INTEGER is its INT64.
        assert_eq!(
            run(
                "select cast(p as integer) as p from t",
                "Bad int64 value: n/a",
                "bigquery"
            )
            .as_deref(),
            Some("select safe_cast(p as integer) as p from t")
        );
        assert_eq!(
            run(
                "select cast(p as int64) as p from t",
                "Bad int64 value: n/a",
                "bigquery"
            )
            .as_deref(),
            Some("select safe_cast(p as int64) as p from t")
        );
    }

    #[test]
    fn casts_of_literals_and_unknown_adapters_are_left_alone() {
        let message = "Conversion Error: Could not convert string 'abc' to INT32";
        assert_eq!(
            run("select cast('abc' as integer) as x", message, "duckdb"),
            None
        );
        assert_eq!(
            run("select cast(p as integer) as x from t", message, "oracle"),
            None
        );
        // A date's validity is no pattern: PostgreSQL gets no guarded cast for it.
        assert_eq!(
            run(
                "select cast(d as date) as d from t",
                "invalid input syntax for type date: \"Ada\"",
                "postgres"
            ),
            None
        );
    }

    #[test]
    fn dirty_values_and_categorical_words() {
        for dirty in [
            "",
            " ",
            "n/a",
            "N/A",
            "-",
            "--",
            "?",
            "null",
            "NULL",
            "none",
            "NaN",
            "12a",
            "1,234",
            "$4.50",
            "2024-13-01",
            "#N/A",
        ] {
            assert!(looks_like_dirty_value(dirty), "{dirty:?}");
        }
        for word in ["completed", "Ada", "v2", "returned", "unknown", "store_1"] {
            assert!(!looks_like_dirty_value(word), "{word:?}");
        }
    }

    #[test]
    fn an_implicit_cast_of_a_categorical_word_is_left_alone() {
        let completed = "Conversion Error: Could not convert string 'completed' to INT32 when casting from source column order_status\n\nLINE 3: where order_status = 1\n              ^^^^^^^^^^^^";
        assert_eq!(
            run(
                "select order_id\nfrom t\nwhere order_status = 1",
                completed,
                "duckdb"
            ),
            None
        );
        // The same comparison over a placeholder for a missing value is dirty data.
        let blank = "Conversion Error: Could not convert string '' to INT32 when casting from source column points\n\nLINE 3: where points = 1\n              ^^^^^^";
        assert_eq!(
            run("select id\nfrom t\nwhere points = 1", blank, "duckdb").as_deref(),
            Some("select id\nfrom t\nwhere try_cast(points as integer) = 1")
        );
    }
}
