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
        return Some(Echo {
            line: line[text_start..].to_owned(),
            caret,
        });
    }
    None
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
        assert_eq!(echo.before_caret().as_deref(), Some("    "));
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
