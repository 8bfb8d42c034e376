//! `type_mismatch`: the warehouse refuses an operator between two types and asks for an
//! explicit cast, and exactly one operation in the model can be the one it means. Two
//! repairs are unambiguous:
//!
//! - a date or timestamp compared with an integer literal written as an ISO 8601 basic
//!   date (`order_date >= 20240101`): the literal becomes that date
//!   (`date '2024-01-01'`);
//! - a string compared with (or added to) a number, a date or a boolean: the string side
//!   is cast to the other side's type (`cast(loyalty_points as integer) > 100`), the cast
//!   the warehouse asks for.
//!
//! Anything else — two non-string types, an integer that is not a date, a string literal
//! — is a decision about the data, left to a person or an LLM.

use std::ops::Range;
use std::sync::OnceLock;

use regex::Regex;

use crate::error_spot::{locate_echo, parse_echo};
use crate::expressions::{
    operand_kind, operations, OperandKind, Operation, ARITHMETIC, COMPARISONS,
};
use crate::patterns::{self, AdapterRow};
use crate::rewrite::{apply_edits, Edit};
use crate::sql_types::{adapter_family, error_type, ErrorType, Family, SqlType};
use crate::{sqlcheck, RuleFix, RuleInput};

use super::{snippet, warehouse_name};

/// The rule's name.
pub(super) const NAME: &str = "type_mismatch";

/// One way a warehouse refuses an operator between two types.
#[derive(Debug, Clone, Copy)]
pub struct MismatchPattern {
    /// A short name for tests and logs.
    pub name: &'static str,
    /// The adapters that word it this way, tried first for them.
    pub adapters: &'static [&'static str],
    /// A regex with `left` and `right` groups (the operand types, in operand order) and
    /// an `op` group when the text names the operator.
    pub regex: &'static str,
    /// The operators meant when the text names none.
    pub operators: &'static [&'static str],
}

/// The wordings, each seen in a real dbt run (`tests/real_type_errors.rs`).
pub const MISMATCH_PATTERNS: &[MismatchPattern] = &[
    MismatchPattern {
        // `Binder Error: Cannot compare values of type DATE and type INTEGER_LITERAL -
        // an explicit cast is required`.
        name: "duckdb_cannot_compare",
        adapters: &["duckdb", "motherduck"],
        regex: r"Cannot compare values of type (?P<left>[A-Z][A-Z0-9_ ]*(?:\(\d+,\s*\d+\))?) and type (?P<right>[A-Z][A-Z0-9_ ]*(?:\(\d+,\s*\d+\))?) - an explicit cast is required",
        operators: COMPARISONS,
    },
    MismatchPattern {
        // `Binder Error: Cannot mix values of type DATE and INTEGER_LITERAL in BETWEEN
        // clause - an explicit cast is required`.
        name: "duckdb_between",
        adapters: &["duckdb", "motherduck"],
        regex: r"Cannot mix values of type (?P<left>[A-Z][A-Z0-9_ ]*(?:\(\d+,\s*\d+\))?) and (?P<right>[A-Z][A-Z0-9_ ]*(?:\(\d+,\s*\d+\))?) in BETWEEN clause",
        operators: &["between"],
    },
    MismatchPattern {
        // `Binder Error: No function matches the given name and argument types
        // '+(VARCHAR, INTEGER_LITERAL)'. You might need to add explicit type casts.`
        name: "duckdb_operator_function",
        adapters: &["duckdb", "motherduck"],
        regex: r"No function matches the given name and argument types '(?P<op>\+|-|\*|/|//|%)\((?P<left>[A-Z][A-Z0-9_ ]*(?:\(\d+,\s*\d+\))?), (?P<right>[A-Z][A-Z0-9_ ]*(?:\(\d+,\s*\d+\))?)\)'",
        operators: &[],
    },
    MismatchPattern {
        // `operator does not exist: timestamp without time zone < integer` (with a
        // `HINT: … You might need to add explicit type casts.`).
        name: "postgres_operator_does_not_exist",
        adapters: &["postgres", "postgresql", "redshift"],
        regex: r"(?m)operator does not exist: (?P<left>[a-z][a-z0-9_ ]*?) (?P<op>[<>=!+*/%-]+) (?P<right>[a-z][a-z0-9_ ]*?)\s*$",
        operators: &[],
    },
];

/// What the error says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The left operand's type (a `between`'s subject).
    pub left: ErrorType,
    /// The right operand's type (a `between`'s bounds).
    pub right: ErrorType,
    /// The operators it can be about.
    pub operators: Vec<&'static str>,
}

impl AdapterRow for MismatchPattern {
    fn adapters(&self) -> &'static [&'static str] {
        self.adapters
    }
    fn regex(&self) -> &'static str {
        self.regex
    }
}

fn compiled() -> &'static [(MismatchPattern, Regex)] {
    static COMPILED: OnceLock<Vec<(MismatchPattern, Regex)>> = OnceLock::new();
    COMPILED.get_or_init(|| patterns::compile(MISMATCH_PATTERNS))
}

/// Reads a type-mismatch error; `None` when no row's wording matches or a type is
/// unknown. The adapter's own rows are tried first.
pub fn parse_mismatch(message: &str, adapter: &str) -> Option<Mismatch> {
    patterns::own_adapter_first(compiled(), adapter).find_map(|(pattern, re)| {
        let caps = re.captures(message)?;
        // Read the types in the dialect of the row that matched: the text is the
        // authority on whose wording it is.
        let dialect = pattern.adapters.first().copied().unwrap_or("");
        let left = error_type(dialect, caps.name("left")?.as_str())?;
        let right = error_type(dialect, caps.name("right")?.as_str())?;
        let operators: Vec<&'static str> = match caps.name("op") {
            Some(op) => {
                let op = COMPARISONS
                    .iter()
                    .chain(ARITHMETIC)
                    .find(|known| **known == op.as_str())?;
                // PostgreSQL reports `a between b and c` as `a >= b` or `a <= c`.
                if matches!(*op, ">=" | "<=") {
                    vec![op, "between"]
                } else {
                    vec![op]
                }
            }
            None => pattern.operators.to_vec(),
        };
        Some(Mismatch {
            left,
            right,
            operators,
        })
    })
}

/// `20240101` read as an ISO 8601 basic date (`YYYYMMDD`, a year from 1900 to 2199):
/// `2024-01-01`; `None` for any other integer.
pub fn iso_basic_date(literal: &str) -> Option<String> {
    if literal.len() != 8 || !literal.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year: u32 = literal[..4].parse().ok()?;
    let month: u32 = literal[4..6].parse().ok()?;
    let day: u32 = literal[6..].parse().ok()?;
    let leap = (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    ((1900..=2199).contains(&year) && (1..=days).contains(&day))
        .then(|| format!("{year:04}-{month:02}-{day:02}"))
}

/// A repair of one operation: the edits, and what to say about them.
struct Plan {
    edits: Vec<Edit>,
    explanation: String,
    confidence: f64,
}

/// The repair of `operation` under `mismatch`, if its operands fit the error's types.
fn plan(input: &RuleInput, operation: &Operation, mismatch: &Mismatch) -> Option<Plan> {
    let sql = input.model_sql;
    let warehouse = warehouse_name(input.adapter);
    let text = |r: &Range<usize>| &sql[r.clone()];
    let fits = |r: &Range<usize>, t: &ErrorType| {
        let kind = operand_kind(text(r));
        if t.literal {
            match t.ty {
                SqlType::Text => kind == OperandKind::StringLiteral,
                ty if ty.is_integer() => kind == OperandKind::IntegerLiteral,
                _ => matches!(
                    kind,
                    OperandKind::IntegerLiteral | OperandKind::NumberLiteral
                ),
            }
        } else {
            true
        }
    };
    if !fits(&operation.left, &mismatch.left)
        || !operation.right.iter().all(|r| fits(r, &mismatch.right))
    {
        return None;
    }
    let (left, right) = (mismatch.left.ty, mismatch.right.ty);
    // A date compared with an integer written as a date.
    let temporal_side = if left.is_temporal() && right.is_integer() {
        Some((left, operation.right.clone()))
    } else if right.is_temporal() && left.is_integer() && operation.right.len() == 1 {
        Some((right, vec![operation.left.clone()]))
    } else {
        None
    };
    if let Some((temporal, literals)) = temporal_side {
        let spelling = temporal.spelling(input.adapter)?;
        let mut edits = Vec::new();
        let mut read = Vec::new();
        for range in literals {
            if operand_kind(text(&range)) != OperandKind::IntegerLiteral {
                return None;
            }
            let date = iso_basic_date(text(&range))?;
            read.push(format!("`{}` as {date}", text(&range)));
            edits.push(Edit {
                range,
                replacement: format!("{spelling} '{date}'"),
            });
        }
        let explanation = format!(
            "{warehouse} cannot compare a value of type {} with an integer in `{}` of `{}`. \
             Read {} (ISO 8601 basic form, YYYYMMDD) and wrote {} instead.",
            spelling.to_ascii_uppercase(),
            snippet(text(&operation.range())),
            input.model_name,
            read.join(" and "),
            if edits.len() == 1 {
                format!("a {spelling} literal")
            } else {
                format!("{spelling} literals")
            },
        );
        return Some(Plan {
            edits,
            explanation,
            confidence: 0.8,
        });
    }
    // A string on one side, another type on the other: cast the string side.
    let (string_side, other_side, other_type) = match (left, right) {
        (SqlType::Text, SqlType::Text) => return None,
        (SqlType::Text, other) if !mismatch.left.literal => {
            (vec![operation.left.clone()], operation.right.clone(), other)
        }
        (other, SqlType::Text) if !mismatch.right.literal && operation.operator != "between" => {
            (operation.right.clone(), vec![operation.left.clone()], other)
        }
        _ => return None,
    };
    if string_side.iter().any(|r| {
        !matches!(
            operand_kind(text(r)),
            OperandKind::Column | OperandKind::Expression
        )
    }) {
        return None;
    }
    // The type to cast to: a literal's own (a decimal literal's printed precision is
    // the literal's, too narrow for the column), else the warehouse's.
    let kinds: Vec<OperandKind> = other_side.iter().map(|r| operand_kind(text(r))).collect();
    let target = if kinds.iter().all(|k| *k == OperandKind::IntegerLiteral) {
        let fits_i32 = other_side.iter().all(|r| {
            text(r)
                .parse::<i64>()
                .is_ok_and(|v| i32::try_from(v).is_ok())
        });
        if fits_i32 {
            SqlType::Integer
        } else {
            SqlType::BigInt
        }
    } else if kinds
        .iter()
        .all(|k| matches!(k, OperandKind::IntegerLiteral | OperandKind::NumberLiteral))
    {
        match adapter_family(input.adapter) {
            Family::Postgres => SqlType::Decimal(None),
            _ => SqlType::Double,
        }
    } else {
        other_type
    };
    let spelling = target.spelling(input.adapter)?;
    let edits: Vec<Edit> = string_side
        .iter()
        .map(|r| Edit {
            range: r.clone(),
            replacement: format!("cast({} as {spelling})", text(r)),
        })
        .collect();
    let cast_text = string_side
        .iter()
        .map(|r| format!("`cast({} as {spelling})`", snippet(text(r))))
        .collect::<Vec<_>>()
        .join(", ");
    let explanation = format!(
        "{warehouse} cannot apply `{}` to a string and a value of type {} in `{}` of `{}` \
         without an explicit cast. Cast the string side: {cast_text}. A value that is not a \
         valid {spelling} would now fail the cast at run time.",
        operation.operator,
        spelling.to_ascii_uppercase(),
        snippet(text(&operation.range())),
        input.model_name,
    );
    Some(Plan {
        edits,
        explanation,
        confidence: 0.7,
    })
}

/// Repairs the one operation the warehouse refused.
///
/// Fires only when: the error is a row of [`MISMATCH_PATTERNS`] with two known types;
/// the operations with its operator whose operands fit those types (a `_LITERAL` type
/// needs a literal there) and have a repair (see the module) are exactly one — after
/// keeping only those the echoed line points at, when it can be found in the model; and
/// when the model parses (Jinja masked), the repaired model still does.
pub fn type_mismatch(input: &RuleInput) -> Option<RuleFix> {
    let mismatch = parse_mismatch(input.error_message, input.adapter)?;
    let sql = input.model_sql;
    let pointed = parse_echo(input.error_message).and_then(|echo| locate_echo(sql, &echo));
    let mut planned: Vec<(Operation, Plan)> = operations(sql, &mismatch.operators)
        .into_iter()
        .filter_map(|op| plan(input, &op, &mismatch).map(|p| (op, p)))
        .collect();
    if let Some(pointed) = &pointed {
        let all = operations(sql, &mismatch.operators);
        let aimed_at = |op: &Operation| {
            let range = op.range();
            range.start < pointed.end && pointed.start < range.end
        };
        // The echo points at one operation: it must be the one repaired.
        let targets: Vec<&Operation> = all.iter().filter(|op| aimed_at(op)).collect();
        if targets.len() != 1 {
            return None;
        }
        planned.retain(|(op, _)| aimed_at(op));
    }
    let [(_, plan)] = planned.as_slice() else {
        return None;
    };
    let fixed_sql = apply_edits(sql, &plan.edits)?;
    if sqlcheck::breaks_parse(sql, &fixed_sql, input.adapter) {
        return None;
    }
    Some(RuleFix {
        fixed_sql,
        explanation: plan.explanation.clone(),
        rule: NAME,
        confidence: plan.confidence,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;

    #[test]
    fn patterns_compile() {
        for pattern in MISMATCH_PATTERNS {
            assert!(Regex::new(pattern.regex).is_ok(), "{}", pattern.name);
        }
        assert_eq!(compiled().len(), MISMATCH_PATTERNS.len());
    }

    #[test]
    fn iso_basic_dates() {
        assert_eq!(iso_basic_date("20240101").as_deref(), Some("2024-01-01"));
        assert_eq!(iso_basic_date("20240229").as_deref(), Some("2024-02-29"));
        assert_eq!(iso_basic_date("20230229"), None);
        assert_eq!(iso_basic_date("20241301"), None);
        assert_eq!(iso_basic_date("2024011"), None);
        assert_eq!(iso_basic_date("12345678"), None);
    }

    #[test]
    fn the_error_gives_types_in_operand_order() {
        let m = parse_mismatch(
            "operator does not exist: timestamp without time zone < integer\n  LINE 14: …",
            "postgres",
        )
        .unwrap_or_else(|| panic!("not parsed"));
        assert_eq!(m.left.ty, SqlType::Timestamp);
        assert_eq!(m.right.ty, SqlType::Integer);
        assert_eq!(m.operators, vec!["<"]);
        let m = parse_mismatch(
            "Cannot compare values of type INTEGER_LITERAL and type VARCHAR - an explicit cast is required",
            "duckdb",
        )
        .unwrap_or_else(|| panic!("not parsed"));
        assert!(m.left.literal && m.left.ty == SqlType::Integer);
        assert_eq!(m.right.ty, SqlType::Text);
        assert_eq!(
            parse_mismatch("Cannot compare values of type GEOMETRY and type VARCHAR - an explicit cast is required", "duckdb"),
            None
        );
    }

    fn run(sql: &str, message: &str, adapter: &str) -> Option<String> {
        type_mismatch(&RuleInput {
            error_class: ErrorClass::TypeMismatch,
            error_message: message,
            model_name: "m",
            model_sql: sql,
            adapter,
            ..RuleInput::default()
        })
        .map(|f| f.fixed_sql)
    }

    #[test]
    fn two_candidates_without_an_echo_are_left_alone() {
        let message = "operator does not exist: text = integer";
        assert_eq!(
            run("select a from t where x = 1 and y = 2", message, "postgres"),
            None
        );
        assert_eq!(
            run("select a from t where x = 1", message, "postgres").as_deref(),
            Some("select a from t where cast(x as integer) = 1")
        );
    }

    #[test]
    fn an_integer_that_is_no_date_is_left_alone() {
        let message = "Binder Error: Cannot compare values of type DATE and type INTEGER_LITERAL - an explicit cast is required";
        assert_eq!(
            run("select a from t where d >= 20241301", message, "duckdb"),
            None
        );
        assert_eq!(
            run("select a from t where d >= 2024", message, "duckdb"),
            None
        );
        // A column on the integer side is not a literal to read.
        assert_eq!(run("select a from t where d >= n", message, "duckdb"), None);
    }
}
