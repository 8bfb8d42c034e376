//! Where a warehouse says its parser stopped: the token it names (`syntax error at or
//! near "status"`) and the echoed source line with its caret.
//!
//! DuckDB and PostgreSQL word this the same way and both echo the failing line as
//! `LINE n: <text>` with a caret line under the token. The line number counts the
//! statement dbt executed (its `create … as (` wrapper and rendered Jinja included), so
//! it is never mapped back to the model file; the echoed *text* is what helps.

use std::sync::OnceLock;

use regex::Regex;

/// The echoed line of a parser error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Echo {
    /// The echoed text after `LINE n: `, as printed (it may start or end with `...`
    /// where the warehouse cut a long line).
    pub line: String,
    /// Character index in [`Echo::line`] where the caret points.
    pub caret: usize,
    /// How many carets there are: DuckDB underlines the whole expression it means
    /// (`^^^^^^^^`), PostgreSQL points with one.
    pub width: usize,
}

impl Echo {
    /// The echoed text before the caret, with a leading `...` cut marker removed;
    /// `None` when the line was cut at its start (the text before is then partial).
    pub fn before_caret(&self) -> Option<String> {
        let before: String = self.line.chars().take(self.caret).collect();
        (!before.starts_with("...")).then_some(before)
    }
}

/// A parser error read from an error text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// The token the parser stopped at, as printed (`status`, `'web'`, `from`).
    pub near: String,
    /// The echoed line and caret, when the message has them.
    pub echo: Option<Echo>,
}

fn near_regex() -> Option<&'static Regex> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    // The token may itself contain quotes (`"'web'"`), so take everything up to the
    // last quote on the line. A literal pattern: the unit tests prove it compiles.
    RE.get_or_init(|| Regex::new(r#"syntax error at or near "(?P<token>[^\n]*)""#).ok())
        .as_ref()
}

/// Reads a parser error (`syntax error at or near "x"`) from `message`.
pub fn parse_syntax_error(message: &str) -> Option<SyntaxError> {
    let near = near_regex()?
        .captures(message)?
        .name("token")?
        .as_str()
        .to_owned();
    if near.is_empty() {
        return None;
    }
    Some(SyntaxError {
        near,
        echo: parse_echo(message),
    })
}

/// The first `LINE n: text` line followed by a caret line.
pub fn parse_echo(message: &str) -> Option<Echo> {
    let lines: Vec<&str> = message.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let Some(at) = line.find("LINE ") else {
            continue;
        };
        let rest = &line[at + 5..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || !rest[digits..].starts_with(": ") {
            continue;
        }
        let text_start = at + 5 + digits + 2;
        let Some(caret_line) = lines.get(i + 1) else {
            continue;
        };
        let Some(caret_byte) = caret_line.find('^') else {
            continue;
        };
        if !caret_line[..caret_byte].chars().all(char::is_whitespace) {
            continue;
        }
        // The caret line is aligned with the LINE line character by character.
        let caret_col = caret_line[..caret_byte].chars().count();
        let prefix_cols = line[..text_start].chars().count();
        let caret = caret_col.checked_sub(prefix_cols)?;
        let width = caret_line[caret_byte..]
            .chars()
            .take_while(|&c| c == '^')
            .count();
        return Some(Echo {
            line: line[text_start..].to_owned(),
            caret,
            width,
        });
    }
    None
}

/// The bytes of `sql` the echo's carets point at, when the echoed line can be found in
/// the model. The echo is the executed statement, so Jinja on that line appears rendered
/// (`"shop"."main"."orders"` for a `ref()`); the line is looked for whole, then from the
/// caret to its end, then from its start to the end of the carets — each piece (less
/// `...` cut markers and surrounding blanks) must occur exactly once in `sql`. `None`
/// when no piece does.
pub fn locate_echo(sql: &str, echo: &Echo) -> Option<std::ops::Range<usize>> {
    let line = echo.line.as_str();
    let cut_start = if line.starts_with("...") { 3 } else { 0 };
    let cut_end = if line.len() > cut_start + 3 && line.ends_with("...") {
        line.len() - 3
    } else {
        line.len()
    };
    let caret = line.char_indices().nth(echo.caret).map(|(i, _)| i)?;
    if caret < cut_start || caret >= cut_end {
        return None;
    }
    let width: usize = line[caret..cut_end]
        .chars()
        .take(echo.width.max(1))
        .map(char::len_utf8)
        .sum();
    let pointed = caret..caret + width;
    // Pieces of the echoed line that hold the carets: the whole, the end, the start.
    let pieces = [cut_start..cut_end, caret..cut_end, cut_start..pointed.end];
    pieces.into_iter().find_map(|piece| {
        let text = &line[piece.clone()];
        let lead = text.len() - text.trim_start().len();
        let trimmed = text.trim();
        let start = piece.start + lead;
        if trimmed.is_empty() || pointed.start < start || pointed.end > start + trimmed.len() {
            return None;
        }
        let mut found = sql.match_indices(trimmed).map(|(at, _)| at);
        let at = found.next()?;
        if found.next().is_some() {
            return None;
        }
        // Checked above: the carets lie inside the piece.
        let from = at + (pointed.start - start);
        Some(from..from + pointed.len())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duckdb_message_with_indented_echo() {
        let m = "Runtime Error in model stg_orders (models/staging/stg_orders.sql)\n  Parser Error: syntax error at or near \"status\"\n  \n  LINE 11:     status as order_status\n               ^^^^^^";
        let e = parse_syntax_error(m).unwrap_or_else(|| panic!("not parsed"));
        assert_eq!(e.near, "status");
        let echo = e.echo.unwrap_or_else(|| panic!("no echo"));
        assert_eq!(echo.line, "    status as order_status");
        assert_eq!(echo.caret, 4);
        assert_eq!(echo.width, 6);
        assert_eq!(echo.before_caret().as_deref(), Some("    "));
    }

    #[test]
    fn an_echo_is_located_in_the_model_when_its_line_is_there_once() {
        // DuckDB 1.4 (dbt-duckdb 1.11.1), real: the carets underline the comparison.
        let message = "Runtime Error in model p_date_int (models/probe/p_date_int.sql)\n  Binder Error: Cannot compare values of type DATE and type INTEGER_LITERAL - an explicit cast is required\n  \n  LINE 13:   and order_date >= 20240101\n                 ^^^^^^^^^^^^^^^^^^^^^^";
        let echo = parse_echo(message).unwrap_or_else(|| panic!("no echo"));
        let sql = "select order_id\nfrom {{ ref('stg_orders') }}\nwhere order_status = 'completed'\n  and order_date >= 20240101\n";
        let range = locate_echo(sql, &echo).unwrap_or_else(|| panic!("not located"));
        assert_eq!(&sql[range], "order_date >= 20240101");
        // PostgreSQL 15, real: one caret on the operator, the line cut at both ends.
        let message = "Database Error in model p_varchar_int_col (models/probe/p_varchar_int_col.sql)\n  operator does not exist: text = integer\n  LINE 14: ...robe_types\".\"raw_stores\" as s on c.loyalty_points = s.seat_c...\n                                                                ^\n  HINT:  No operator matches the given name and argument types. You might need to add explicit type casts.\n  compiled code at target/run/coffee_shop/models/probe/p_varchar_int_col.sql";
        let echo = parse_echo(message).unwrap_or_else(|| panic!("no echo"));
        assert_eq!(echo.width, 1);
        // The line as rendered names the schema; the model has a ref() there.
        let sql = "from {{ ref('raw_customers') }} as c\ninner join {{ ref('raw_stores') }} as s on c.loyalty_points = s.seat_count\n";
        let range = locate_echo(sql, &echo).unwrap_or_else(|| panic!("not located"));
        assert_eq!(&sql[range.clone()], "=");
        assert!(sql[..range.start].ends_with("c.loyalty_points "));
        // A line that is in the model twice says nothing.
        assert_eq!(
            locate_echo(
                "  and order_date >= 20240101\n  and order_date >= 20240101\n",
                &parse_echo("LINE 1:   and order_date >= 20240101\n          ^")
                    .unwrap_or_else(|| panic!("no echo"))
            ),
            None
        );
    }

    #[test]
    fn postgres_cut_line_and_quoted_token() {
        let m = "syntax error at or near \"status\"\nLINE 1: ... order_id, cast(order_date as date) as order_date status as ...\n                                                             ^";
        let e = parse_syntax_error(m).unwrap_or_else(|| panic!("not parsed"));
        let echo = e.echo.unwrap_or_else(|| panic!("no echo"));
        assert!(echo.line[echo.caret..].starts_with("status as"));
        assert_eq!(echo.before_caret(), None);
        let m = "Parser Error: syntax error at or near \"'web'\"";
        assert_eq!(
            parse_syntax_error(m).map(|e| e.near),
            Some("'web'".to_owned())
        );
    }

    #[test]
    fn other_errors_are_not_syntax_errors() {
        assert_eq!(parse_syntax_error("syntax error at end of input"), None);
        assert_eq!(parse_syntax_error("Binder Error: x"), None);
    }
}
