//! `division_by_zero`: a division fails on a zero divisor, and the model has exactly one
//! division that can be the culprit: its divisor becomes `nullif(<divisor>, 0)`, so a
//! zero divisor gives NULL instead of an error.

use std::ops::Range;
use std::sync::OnceLock;

use regex::Regex;

use crate::rewrite::{apply_edits, Edit};
use crate::tokens::{matching_close, tokenize, Token, TokenKind};
use crate::{RuleFix, RuleInput};

use super::{snippet, warehouse_name};

/// The rule's name.
pub(super) const NAME: &str = "division_by_zero";

/// DuckDB names the failing expression: `Invalid Input Error: Division by zero in
/// expression (#5 // CAST(seat_count AS HUGEINT)). Use TRY(...) …`.
const DUCKDB_PATTERN: &str = r"Division by zero in expression \((?P<expr>.+)\)\. Use TRY";

/// PostgreSQL says only `division by zero`.
const GENERIC_PATTERN: &str = r"(?i)\bdivision by zero\b";

/// What the error says about the failing division.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailingDivision {
    /// DuckDB: the divisor is this column (casts removed), lower-cased.
    Divisor(String),
    /// The error does not say which division.
    Unknown,
}

/// Reads a division-by-zero error; `None` when the message is not one, or when DuckDB
/// named a divisor that is not a plain column.
pub fn parse_division_by_zero(message: &str) -> Option<FailingDivision> {
    static DUCKDB: OnceLock<Option<Regex>> = OnceLock::new();
    static GENERIC: OnceLock<Option<Regex>> = OnceLock::new();
    if let Some(caps) = DUCKDB
        .get_or_init(|| Regex::new(DUCKDB_PATTERN).ok())
        .as_ref()?
        .captures(message)
    {
        let expr = caps.name("expr")?.as_str();
        return divisor_column(expr).map(FailingDivision::Divisor);
    }
    GENERIC
        .get_or_init(|| Regex::new(GENERIC_PATTERN).ok())
        .as_ref()?
        .is_match(message)
        .then_some(FailingDivision::Unknown)
}

/// The column DuckDB's echoed expression divides by: the text after the last top-level
/// `//`, `/` or `%`, with `CAST(… AS …)` and parentheses removed; `None` unless that is a
/// plain (possibly qualified, possibly quoted) name.
fn divisor_column(expr: &str) -> Option<String> {
    let bytes = expr.as_bytes();
    let mut depth = 0usize;
    let mut split = None;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'(' => depth += 1,
            b')' => depth = depth.saturating_sub(1),
            b'/' | b'%' if depth == 0 => split = Some(i + 1),
            _ => {}
        }
    }
    let mut divisor = expr[split?..].trim();
    loop {
        let lower = divisor.to_ascii_lowercase();
        if lower.starts_with("cast(") && divisor.ends_with(')') {
            let inner = &divisor[5..divisor.len() - 1];
            let as_at = inner.to_ascii_lowercase().rfind(" as ")?;
            divisor = inner[..as_at].trim();
        } else if let Some(at) = divisor.find("::").filter(|at| depth_zero(&divisor[..*at])) {
            divisor = divisor[..at].trim();
        } else if divisor.starts_with('(') && divisor.ends_with(')') {
            divisor = divisor[1..divisor.len() - 1].trim();
        } else {
            break;
        }
    }
    let last = divisor.rsplit('.').next()?.trim_matches('"');
    let plain = last
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && last
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$');
    plain.then(|| last.to_ascii_lowercase())
}

/// True when every parenthesis `text` opens it also closes.
fn depth_zero(text: &str) -> bool {
    text.matches('(').count() == text.matches(')').count()
}

/// One division in the model.
#[derive(Debug)]
struct Division {
    /// Byte range of the divisor operand.
    divisor: Range<usize>,
    /// The divisor's column, when it is a name (under casts, parentheses): lower-cased.
    column: Option<String>,
    /// The divisor cannot be zero: a non-zero number, or already a `nullif(…)`.
    safe: bool,
}

/// Every `/`, `//` and `%` outside Jinja, strings and comments, with its divisor; `None`
/// when some divisor's extent cannot be read (a unary sign, a keyword, …).
fn divisions(sql: &str) -> Option<Vec<Division>> {
    let tokens = tokenize(sql);
    let mut out = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if t.kind != TokenKind::Operator || !matches!(t.text(sql), "/" | "//" | "%") {
            continue;
        }
        let (start, end) = operand(&tokens, sql, i + 1)?;
        let range = tokens[start].range.start..tokens[end].range.end;
        let first = &tokens[start];
        let safe = (first.kind == TokenKind::Number
            && start == end
            && first.text(sql).parse::<f64>().is_ok_and(|v| v != 0.0))
            || (first.is_keyword(sql, "nullif") && end > start);
        out.push(Division {
            column: divisor_column(&format!("x / {}", &sql[range.clone()])),
            divisor: range,
            safe,
        });
    }
    Some(out)
}

/// The token range `[start, end]` of the operand starting at `start`: a number, a Jinja
/// expression, a (qualified) name or function call, or a parenthesized expression, each
/// optionally followed by `::type` casts.
fn operand(tokens: &[Token], sql: &str, start: usize) -> Option<(usize, usize)> {
    let first = tokens.get(start)?;
    let is_name = |t: &Token| matches!(t.kind, TokenKind::Word | TokenKind::QuotedIdent);
    const NOT_OPERANDS: &[&str] = &[
        "case", "select", "not", "from", "where", "and", "or", "as", "end",
    ];
    let mut end = match first.kind {
        TokenKind::Number | TokenKind::Jinja => start,
        TokenKind::Punct if first.is_punct(sql, '(') => matching_close(tokens, sql, start)?,
        TokenKind::Word | TokenKind::QuotedIdent => {
            if NOT_OPERANDS.iter().any(|k| first.is_keyword(sql, k)) {
                return None;
            }
            let mut end = start;
            while end + 2 < tokens.len()
                && tokens[end + 1].is_punct(sql, '.')
                && is_name(&tokens[end + 2])
            {
                end += 2;
            }
            if tokens.get(end + 1).is_some_and(|t| t.is_punct(sql, '(')) {
                end = matching_close(tokens, sql, end + 1)?;
            }
            end
        }
        _ => return None,
    };
    while tokens
        .get(end + 1)
        .is_some_and(|t| t.kind == TokenKind::Operator && t.text(sql) == "::")
        && tokens.get(end + 2).is_some_and(is_name)
    {
        end += 2;
        if tokens.get(end + 1).is_some_and(|t| t.is_punct(sql, '(')) {
            end = matching_close(tokens, sql, end + 1)?;
        }
    }
    Some((start, end))
}

/// Wraps the divisor of the failing division in `nullif(…, 0)`.
///
/// With DuckDB's message, the failing division is the one whose divisor is the column
/// DuckDB names (casts and qualifiers aside); exactly one such division must exist.
/// With a message that names none (PostgreSQL's `division by zero`), the model must have
/// exactly one division whose divisor is not a non-zero number or a `nullif(…)`. Any
/// division whose divisor cannot be delimited makes the rule refuse.
pub fn division_by_zero(input: &RuleInput) -> Option<RuleFix> {
    let failing = parse_division_by_zero(input.error_message)?;
    let all = divisions(input.model_sql)?;
    let candidates: Vec<&Division> = match &failing {
        FailingDivision::Divisor(column) => all
            .iter()
            .filter(|d| d.column.as_deref() == Some(column.as_str()))
            .collect(),
        FailingDivision::Unknown => all.iter().filter(|d| !d.safe).collect(),
    };
    let [division] = candidates.as_slice() else {
        return None;
    };
    if division.safe {
        return None;
    }
    let divisor = &input.model_sql[division.divisor.clone()];
    let fixed_sql = apply_edits(
        input.model_sql,
        &[Edit {
            range: division.divisor.clone(),
            replacement: format!("nullif({divisor}, 0)"),
        }],
    )?;
    let which = match &failing {
        FailingDivision::Divisor(column) => format!("the divisor `{column}`"),
        FailingDivision::Unknown => "the model's only unguarded divisor".to_owned(),
    };
    let explanation = format!(
        "{} hit a division by zero ({which} was 0) in `{}`. Wrapped the divisor as \
         `nullif({}, 0)`: rows whose divisor is zero now give NULL instead of failing the \
         model.",
        warehouse_name(input.adapter),
        input.model_name,
        snippet(divisor),
    );
    Some(RuleFix {
        fixed_sql,
        explanation,
        rule: NAME,
        confidence: match failing {
            FailingDivision::Divisor(_) => 0.85,
            FailingDivision::Unknown => 0.7,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_compile() {
        assert!(Regex::new(DUCKDB_PATTERN).is_ok());
        assert!(Regex::new(GENERIC_PATTERN).is_ok());
    }

    #[test]
    fn duckdb_divisor_is_read_under_casts() {
        assert_eq!(
            divisor_column("#5 // CAST(seat_count AS HUGEINT)"),
            Some("seat_count".into())
        );
        assert_eq!(divisor_column("a / (s.\"Seats\")"), Some("seats".into()));
        assert_eq!(divisor_column("a / (b - c)"), None);
        assert_eq!(divisor_column("a + b"), None);
    }

    #[test]
    fn divisions_and_their_divisors() {
        let sql = "select a // s.seats, b / 2, c % nullif(d, 0), e / {{ var('n') }}, \
                   f / cast(g as int)::double, '1/0' -- x / y\nfrom t";
        let found: Vec<(&str, Option<String>, bool)> = divisions(sql)
            .unwrap_or_default()
            .into_iter()
            .map(|d| (&sql[d.divisor], d.column, d.safe))
            .collect();
        assert_eq!(
            found,
            vec![
                ("s.seats", Some("seats".into()), false),
                ("2", None, true),
                ("nullif(d, 0)", None, true),
                ("{{ var('n') }}", None, false),
                ("cast(g as int)::double", Some("g".into()), false),
            ]
        );
    }
}
