//! The expressions the type rules rewrite, read off the tokens: casts (`cast(x as t)`,
//! `x::t`) and binary operations (`a >= b`, `a + b`, `a between b and c`), each with
//! the byte ranges of its operands.
//!
//! An operand is what binds tighter than any binary operator: a name (`o.order_date`), a
//! literal, a Jinja expression, a function call, a parenthesized expression, each with
//! any `::type` suffixes. Anything else next to an operator — a unary sign, `case … end`,
//! a keyword — makes the reader give up on that operation rather than guess its extent.

use std::ops::Range;

use crate::tokens::{matching_close, tokenize, Token, TokenKind};

/// A cast in the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cast {
    /// The whole expression: `cast(x as integer)` or `x::int`.
    pub range: Range<usize>,
    /// The value cast: `x`.
    pub value: Range<usize>,
    /// The target type as written: `integer`, `int`, `decimal(18, 2)`.
    pub type_name: Range<usize>,
    /// `cast(…)` (the keyword's range) or `::`.
    pub form: CastForm,
}

/// How a cast is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CastForm {
    /// `cast(x as t)`; the range of the word `cast`.
    Function(Range<usize>),
    /// `x::t`.
    DoubleColon,
}

/// A binary operation, or a `between`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// The operator as written, lower-cased: `>=`, `=`, `+`, `between`.
    pub operator: String,
    /// The operator token's range.
    pub operator_range: Range<usize>,
    /// The left operand (the subject of a `between`).
    pub left: Range<usize>,
    /// The right operands: one, or a `between`'s two bounds.
    pub right: Vec<Range<usize>>,
}

impl Operation {
    /// From the left operand's start to the last right operand's end.
    pub fn range(&self) -> Range<usize> {
        let end = self.right.last().map_or(self.operator_range.end, |r| r.end);
        self.left.start..end
    }
}

/// Words that end an operand search: they are syntax, not values.
const NOT_OPERANDS: &[&str] = &[
    "select",
    "from",
    "where",
    "and",
    "or",
    "not",
    "on",
    "as",
    "case",
    "when",
    "then",
    "else",
    "end",
    "in",
    "is",
    "like",
    "ilike",
    "between",
    "having",
    "group",
    "order",
    "by",
    "join",
    "union",
    "all",
    "distinct",
    "limit",
    "with",
    "using",
    "interval",
    "date",
    "timestamp",
];

/// Comparison operators.
pub const COMPARISONS: &[&str] = &["=", "==", "<>", "!=", "<", "<=", ">", ">="];

/// Arithmetic and concatenation operators.
pub const ARITHMETIC: &[&str] = &["+", "-", "*", "/", "//", "%", "||"];

fn is_name(t: &Token) -> bool {
    matches!(t.kind, TokenKind::Word | TokenKind::QuotedIdent)
}

fn is_value_word(t: &Token, sql: &str) -> bool {
    is_name(t) && !NOT_OPERANDS.iter().any(|k| t.is_keyword(sql, k))
}

/// The index of the token that opens the parenthesis closed at `close`.
fn matching_open(tokens: &[Token], sql: &str, close: usize) -> Option<usize> {
    let closer = tokens.get(close)?;
    if !(closer.is_punct(sql, ')') || closer.is_punct(sql, ']')) {
        return None;
    }
    (0..close).rev().find(|&i| {
        tokens[i].depth == closer.depth
            && tokens[i].kind == TokenKind::Punct
            && matches!(tokens[i].text(sql), "(" | "[")
    })
}

/// The token index range `[start, end]` of the operand that starts at `start`.
pub fn operand_from(tokens: &[Token], sql: &str, start: usize) -> Option<(usize, usize)> {
    let first = tokens.get(start)?;
    let mut end = match first.kind {
        TokenKind::Number | TokenKind::StringLit | TokenKind::Jinja => start,
        TokenKind::Punct if first.is_punct(sql, '(') => matching_close(tokens, sql, start)?,
        TokenKind::Word | TokenKind::QuotedIdent => {
            if !is_value_word(first, sql) {
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
    // `::type`, `::type(p, s)`, `::double precision`.
    while tokens
        .get(end + 1)
        .is_some_and(|t| t.kind == TokenKind::Operator && t.text(sql) == "::")
    {
        end = type_end(tokens, sql, end + 2)?;
    }
    Some((start, end))
}

/// The last token of a type name starting at `start`: a word, its multi-word tail
/// (`double precision`, `timestamp with time zone`) and a parenthesized argument list.
fn type_end(tokens: &[Token], sql: &str, start: usize) -> Option<usize> {
    let first = tokens.get(start)?;
    if first.kind != TokenKind::Word {
        return None;
    }
    let mut end = start;
    let followed_by = |at: usize, words: &[&str]| {
        words
            .iter()
            .enumerate()
            .all(|(k, w)| tokens.get(at + 1 + k).is_some_and(|t| t.is_keyword(sql, w)))
    };
    let two_words = (first.is_keyword(sql, "double") && followed_by(end, &["precision"]))
        || (first.is_keyword(sql, "character") && followed_by(end, &["varying"]));
    let zoned = (first.is_keyword(sql, "timestamp") || first.is_keyword(sql, "time"))
        && (followed_by(end, &["with", "time", "zone"])
            || followed_by(end, &["without", "time", "zone"]));
    if two_words {
        end += 1;
    } else if zoned {
        end += 3;
    }
    if tokens.get(end + 1).is_some_and(|t| t.is_punct(sql, '(')) {
        end = matching_close(tokens, sql, end + 1)?;
    }
    Some(end)
}

/// The token index range `[start, end]` of the operand that ends at `end`.
pub fn operand_to(tokens: &[Token], sql: &str, end: usize) -> Option<(usize, usize)> {
    let mut at = end;
    // Peel `::type` suffixes from the right.
    loop {
        let last = tokens.get(at)?;
        let type_start = if last.is_punct(sql, ')') {
            let open = matching_open(tokens, sql, at)?;
            open.checked_sub(1)
        } else {
            Some(at)
        };
        let Some(type_start) = type_start else { break };
        // Multi-word type names: walk back over their words.
        let mut word = type_start;
        while word > 0
            && tokens[word].kind == TokenKind::Word
            && tokens[word - 1].kind == TokenKind::Word
            && [
                "precision",
                "varying",
                "zone",
                "time",
                "with",
                "without",
                "timestamp",
                "double",
                "character",
            ]
            .iter()
            .any(|w| tokens[word].is_keyword(sql, w))
        {
            word -= 1;
        }
        if word > 0
            && tokens[word].kind == TokenKind::Word
            && tokens[word - 1].kind == TokenKind::Operator
            && tokens[word - 1].text(sql) == "::"
            && word >= 2
        {
            at = word - 2;
        } else {
            break;
        }
    }
    let last = tokens.get(at)?;
    let start = match last.kind {
        TokenKind::Number | TokenKind::StringLit | TokenKind::Jinja => at,
        TokenKind::Punct if last.is_punct(sql, ')') => {
            let open = matching_open(tokens, sql, at)?;
            match open.checked_sub(1).map(|i| &tokens[i]) {
                // A function call: `sum(x)`, `cast(x as int)`; not `in (…)`.
                Some(t) if is_value_word(t, sql) => {
                    let mut start = open - 1;
                    while start >= 2
                        && tokens[start - 1].is_punct(sql, '.')
                        && is_name(&tokens[start - 2])
                    {
                        start -= 2;
                    }
                    start
                }
                _ => open,
            }
        }
        TokenKind::Word | TokenKind::QuotedIdent => {
            if !is_value_word(last, sql) {
                return None;
            }
            let mut start = at;
            while start >= 2 && tokens[start - 1].is_punct(sql, '.') && is_name(&tokens[start - 2])
            {
                start -= 2;
            }
            start
        }
        _ => return None,
    };
    Some((start, end))
}

/// Every binary operation whose operator is one of `operators` (and every `between` when
/// `between` is among them), outside strings, comments and Jinja, whose operands can be
/// delimited.
pub fn operations(sql: &str, operators: &[&str]) -> Vec<Operation> {
    let tokens = tokenize(sql);
    let mut out = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        let text = t.text(sql).to_ascii_lowercase();
        let range = |(s, e): (usize, usize)| tokens[s].range.start..tokens[e].range.end;
        // An operator right outside the operands (`a * b = c`, `-b = c`, `a = b + 1`)
        // binds them differently than read here: leave such an operation alone.
        let operator_at = |k: Option<usize>| {
            k.and_then(|k| tokens.get(k))
                .is_some_and(|t| t.kind == TokenKind::Operator)
        };
        if t.kind == TokenKind::Operator && operators.contains(&text.as_str()) && i > 0 {
            let (Some(left), Some(right)) = (
                operand_to(&tokens, sql, i - 1),
                operand_from(&tokens, sql, i + 1),
            ) else {
                continue;
            };
            if operator_at(left.0.checked_sub(1)) || operator_at(Some(right.1 + 1)) {
                continue;
            }
            out.push(Operation {
                operator: text,
                operator_range: t.range.clone(),
                left: range(left),
                right: vec![range(right)],
            });
        } else if t.is_keyword(sql, "between") && operators.contains(&"between") && i > 0 {
            let Some(left) = operand_to(&tokens, sql, i - 1) else {
                continue;
            };
            let Some(low) = operand_from(&tokens, sql, i + 1) else {
                continue;
            };
            if !tokens
                .get(low.1 + 1)
                .is_some_and(|t| t.is_keyword(sql, "and"))
            {
                continue;
            }
            let Some(high) = operand_from(&tokens, sql, low.1 + 2) else {
                continue;
            };
            if operator_at(left.0.checked_sub(1)) || operator_at(Some(high.1 + 1)) {
                continue;
            }
            out.push(Operation {
                operator: "between".to_owned(),
                operator_range: t.range.clone(),
                left: range(left),
                right: vec![range(low), range(high)],
            });
        }
    }
    out
}

/// Every cast outside strings, comments and Jinja: `cast(x as t)` (not `try_cast`,
/// `safe_cast`) and `x::t`.
pub fn casts(sql: &str) -> Vec<Cast> {
    let tokens = tokenize(sql);
    let mut out = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if t.is_keyword(sql, "cast") && tokens.get(i + 1).is_some_and(|p| p.is_punct(sql, '(')) {
            let Some(close) = matching_close(&tokens, sql, i + 1) else {
                continue;
            };
            let inner = tokens[i + 1].depth + 1;
            let Some(as_at) = (i + 2..close)
                .rev()
                .find(|&k| tokens[k].depth == inner && tokens[k].is_keyword(sql, "as"))
            else {
                continue;
            };
            if as_at == i + 2 || as_at + 1 >= close {
                continue;
            }
            out.push(Cast {
                range: t.range.start..tokens[close].range.end,
                value: tokens[i + 2].range.start..tokens[as_at - 1].range.end,
                type_name: tokens[as_at + 1].range.start..tokens[close - 1].range.end,
                form: CastForm::Function(t.range.clone()),
            });
        } else if t.kind == TokenKind::Operator && t.text(sql) == "::" && i > 0 {
            let Some((start, _)) = operand_to(&tokens, sql, i - 1) else {
                continue;
            };
            let Some(end) = type_end(&tokens, sql, i + 1) else {
                continue;
            };
            out.push(Cast {
                range: tokens[start].range.start..tokens[end].range.end,
                value: tokens[start].range.start..tokens[i - 1].range.end,
                type_name: tokens[i + 1].range.start..tokens[end].range.end,
                form: CastForm::DoubleColon,
            });
        }
    }
    out
}

/// What an operand is, for checking it against the type an error gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperandKind {
    /// An integer literal: `20240101`.
    IntegerLiteral,
    /// Another number literal: `99.5`, `1e3`.
    NumberLiteral,
    /// A string literal.
    StringLiteral,
    /// A (possibly qualified) column name.
    Column,
    /// Anything else: a call, a parenthesized expression, Jinja, a cast.
    Expression,
}

/// What the operand text is.
pub fn operand_kind(text: &str) -> OperandKind {
    let tokens = tokenize(text);
    match tokens.as_slice() {
        [t] if t.kind == TokenKind::Number => {
            if t.text(text).bytes().all(|b| b.is_ascii_digit()) {
                OperandKind::IntegerLiteral
            } else {
                OperandKind::NumberLiteral
            }
        }
        [t] if t.kind == TokenKind::StringLit => OperandKind::StringLiteral,
        _ if !tokens.is_empty()
            && tokens.iter().enumerate().all(|(k, t)| {
                if k % 2 == 0 {
                    is_name(t)
                } else {
                    t.is_punct(text, '.')
                }
            })
            && tokens.len() % 2 == 1
            && is_value_word(&tokens[0], text) =>
        {
            OperandKind::Column
        }
        _ => OperandKind::Expression,
    }
}

/// The column a column operand names, unquoted: `o."Order Date"` → `Order Date`.
pub fn column_name(text: &str) -> Option<String> {
    if operand_kind(text) != OperandKind::Column {
        return None;
    }
    let last = tokenize(text).pop()?;
    let name = last.text(text);
    Some(if last.kind == TokenKind::QuotedIdent {
        name.get(1..name.len().saturating_sub(1))?
            .replace("\"\"", "\"")
    } else {
        name.to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops<'a>(sql: &'a str, operators: &[&str]) -> Vec<(String, &'a str, Vec<&'a str>)> {
        operations(sql, operators)
            .into_iter()
            .map(|o| {
                (
                    o.operator,
                    &sql[o.left],
                    o.right.into_iter().map(|r| &sql[r]).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn comparisons_and_their_operands() {
        let sql = "select a from t where o.order_date >= 20240101 and f(x)::date < '2024-01-01'\n  and \"Q\".n <> {{ var('n') }} and x between 20240101 and 20241231 and y = cast(z as int) and w in (1) = v";
        let mut operators = COMPARISONS.to_vec();
        operators.push("between");
        assert_eq!(
            ops(sql, &operators),
            vec![
                (">=".into(), "o.order_date", vec!["20240101"]),
                ("<".into(), "f(x)::date", vec!["'2024-01-01'"]),
                ("<>".into(), "\"Q\".n", vec!["{{ var('n') }}"]),
                ("between".into(), "x", vec!["20240101", "20241231"]),
                ("=".into(), "y", vec!["cast(z as int)"]),
                ("=".into(), "(1)", vec!["v"]),
            ]
        );
        // Operators inside strings, comments and Jinja are not operations.
        assert!(ops("select 'a = b' -- c = d\n{{ x == y }}", COMPARISONS).is_empty());
        // A unary sign or a CASE is not read.
        assert!(ops("select a from t where -b = c", COMPARISONS).is_empty());
        assert!(ops("select case when a then 1 end = 2", COMPARISONS).is_empty());
        assert_eq!(
            ops("select loyalty_points + 10 as boosted", ARITHMETIC),
            vec![("+".into(), "loyalty_points", vec!["10"])]
        );
    }

    #[test]
    fn casts_in_both_forms() {
        let sql = "select cast(a.loyalty_points as integer) as lp, x::double precision, try_cast(y as int), trim(z)::decimal(18, 2), '1'::int, {{ c }}::date\nfrom t";
        let found: Vec<(&str, &str, &str)> = casts(sql)
            .into_iter()
            .map(|c| (&sql[c.range], &sql[c.value], &sql[c.type_name]))
            .collect();
        assert_eq!(
            found,
            vec![
                (
                    "cast(a.loyalty_points as integer)",
                    "a.loyalty_points",
                    "integer"
                ),
                ("x::double precision", "x", "double precision"),
                ("trim(z)::decimal(18, 2)", "trim(z)", "decimal(18, 2)"),
                ("'1'::int", "'1'", "int"),
                ("{{ c }}::date", "{{ c }}", "date"),
            ]
        );
    }

    #[test]
    fn operand_kinds() {
        assert_eq!(operand_kind("20240101"), OperandKind::IntegerLiteral);
        assert_eq!(operand_kind("99.5"), OperandKind::NumberLiteral);
        assert_eq!(operand_kind("'x'"), OperandKind::StringLiteral);
        assert_eq!(operand_kind("c.loyalty_points"), OperandKind::Column);
        assert_eq!(operand_kind("\"Points\""), OperandKind::Column);
        assert_eq!(operand_kind("f(x)"), OperandKind::Expression);
        assert_eq!(operand_kind("x::int"), OperandKind::Expression);
        assert_eq!(
            column_name("c.\"Loyalty Points\"").as_deref(),
            Some("Loyalty Points")
        );
        assert_eq!(column_name("f(x)"), None);
    }
}
