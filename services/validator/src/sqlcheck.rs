//! The compiled SQL, parsed with sqlparser for the adapter's dialect.
//!
//! **What stops the ladder here, and what does not.** sqlparser does not know every
//! construct of every warehouse (DuckDB's `PIVOT`, `COLUMNS(*)`, Snowflake's lateral
//! flatten…), and dbt has already compiled the model, so a parse error alone proves
//! nothing: the warehouse, in the next step, is the judge. The parse is a hard stop only
//! for a statement no warehouse can run, found lexically:
//!
//! - the compiled SQL is empty (only whitespace and comments);
//! - it does not even tokenize — an unterminated string, quoted identifier or block
//!   comment — in the adapter's dialect *and* in the generic one;
//! - its parentheses do not balance;
//! - it holds a `;` outside strings and comments: dbt wraps the model in its own DDL
//!   (`create table … as (…)`), so a semicolon always breaks the run (seen with
//!   dbt-duckdb 1.11: `Parser Error: syntax error at or near ";"`).
//!
//! Anything else that fails to parse passes this step with a note saying so.

use sqlparser::dialect::{self, Dialect, GenericDialect};
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

/// What the parse concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlVerdict {
    /// sqlparser parsed it.
    Parsed {
        /// The dialect used.
        dialect: String,
        /// How many statements (a model is one).
        statements: usize,
    },
    /// sqlparser could not parse it, but nothing says the warehouse cannot: passes.
    Unparsed {
        /// The dialect used.
        dialect: String,
        /// sqlparser's error.
        error: String,
    },
    /// No warehouse can run it: the ladder stops.
    Hopeless(String),
}

impl SqlVerdict {
    /// The step's output.
    pub fn describe(&self) -> String {
        match self {
            Self::Parsed {
                dialect,
                statements,
            } => format!("parsed with sqlparser's {dialect} dialect ({statements} statement)"),
            Self::Unparsed { dialect, error } => format!(
                "sqlparser's {dialect} dialect cannot parse it ({error}); not a stop: it tokenizes and its parentheses balance, so the warehouse judges it in the next step"
            ),
            Self::Hopeless(reason) => reason.clone(),
        }
    }
}

/// sqlparser's dialect for a dbt adapter type: DuckDB and Postgres by name, the other
/// dialects sqlparser knows by their usual adapter names, else the generic one.
pub fn dialect_for(adapter: &str) -> (Box<dyn Dialect>, &'static str) {
    let name = match adapter.to_ascii_lowercase().as_str() {
        "duckdb" | "motherduck" => "duckdb",
        "postgres" | "postgresql" | "materialize" | "alloydb" => "postgres",
        "redshift" => "redshift",
        "snowflake" => "snowflake",
        "bigquery" => "bigquery",
        "databricks" => "databricks",
        "spark" => "spark",
        "mysql" | "tidb" | "singlestore" => "mysql",
        "sqlserver" | "fabric" | "synapse" => "mssql",
        "clickhouse" => "clickhouse",
        "sqlite" => "sqlite",
        "oracle" => "oracle",
        "teradata" => "teradata",
        _ => "generic",
    };
    match dialect::dialect_from_str(name) {
        Some(dialect) => (dialect, name),
        None => (Box::new(GenericDialect {}), "generic"),
    }
}

/// Parses `sql` (the model's compiled SQL) for `adapter`.
pub fn check_compiled_sql(adapter: &str, sql: &str) -> SqlVerdict {
    let (dialect, name) = dialect_for(adapter);
    let tokens = match Tokenizer::new(dialect.as_ref(), sql).tokenize_with_location() {
        Ok(tokens) => tokens,
        Err(own_error) => match Tokenizer::new(&GenericDialect {}, sql).tokenize_with_location() {
            Ok(tokens) => tokens,
            Err(_) => {
                return SqlVerdict::Hopeless(format!(
                    "the compiled SQL does not tokenize ({own_error}): an unterminated string, quoted identifier or comment"
                ));
            }
        },
    };
    if let Some(reason) = lexical_stop(&tokens) {
        return SqlVerdict::Hopeless(reason);
    }
    match Parser::parse_sql(dialect.as_ref(), sql) {
        Ok(statements) => SqlVerdict::Parsed {
            dialect: name.into(),
            statements: statements.len(),
        },
        Err(error) => SqlVerdict::Unparsed {
            dialect: name.into(),
            error: error.to_string(),
        },
    }
}

fn lexical_stop(tokens: &[TokenWithSpan]) -> Option<String> {
    let significant: Vec<&TokenWithSpan> = tokens
        .iter()
        .filter(|token| !matches!(token.token, Token::Whitespace(_) | Token::EOF))
        .collect();
    if significant.is_empty() {
        return Some("the compiled SQL is empty: a model must select something".into());
    }
    let mut depth: i64 = 0;
    let mut first_unclosed = None;
    for token in &significant {
        match token.token {
            Token::LParen => {
                if depth == 0 {
                    first_unclosed = Some(token.span.start.line);
                }
                depth += 1;
            }
            Token::RParen => {
                depth -= 1;
                if depth < 0 {
                    return Some(format!(
                        "a `)` on line {} of the compiled SQL closes nothing",
                        token.span.start.line
                    ));
                }
            }
            Token::SemiColon => {
                return Some(format!(
                    "a `;` on line {} of the compiled SQL: dbt wraps the model in its own DDL (create … as (…)), so a model must be one statement without a semicolon",
                    token.span.start.line
                ));
            }
            _ => {}
        }
    }
    if depth > 0 {
        return Some(format!(
            "{depth} `(` of the compiled SQL never closed (the first open one on line {})",
            first_unclosed.unwrap_or_default()
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_projects_duckdb_sql_parses() {
        let sql = "select s.store_id, coalesce(sum(o.total), 0) // nullif(s.seat_count, 0) as per_seat,\n  try_cast(x as integer) as y, strftime(d, '%Y-%m') as m\nfrom \"db\".\"main\".\"stg_stores\" as s\nleft join o on s.store_id = o.store_id\ngroup by s.store_id -- the kiosk; has no seats\n";
        assert_eq!(
            check_compiled_sql("duckdb", sql),
            SqlVerdict::Parsed {
                dialect: "duckdb".into(),
                statements: 1
            }
        );
    }

    #[test]
    fn a_statement_sqlparser_does_not_know_passes_with_a_note() {
        let verdict = check_compiled_sql("duckdb", "select * from t where x ==> y");
        assert!(
            matches!(verdict, SqlVerdict::Unparsed { .. }),
            "{verdict:?}"
        );
        assert!(verdict.describe().contains("not a stop"));
    }

    #[test]
    fn hopeless_statements_stop() {
        let cases = [
            ("select 1 as a;", "a `;` on line 1"),
            ("select 1 as a;\nselect 2", "a `;` on line 1"),
            (
                "select (1 + 2 as a",
                "1 `(` of the compiled SQL never closed",
            ),
            (
                "select 1 + 2) as a",
                "a `)` on line 1 of the compiled SQL closes nothing",
            ),
            ("select 'unterminated as a", "does not tokenize"),
            ("  -- only a comment\n", "is empty"),
        ];
        for (sql, expected) in cases {
            match check_compiled_sql("duckdb", sql) {
                SqlVerdict::Hopeless(reason) => {
                    assert!(reason.contains(expected), "{sql:?}: {reason}")
                }
                other => panic!("{sql:?} should be hopeless: {other:?}"),
            }
        }
    }

    #[test]
    fn semicolons_in_comments_and_strings_are_fine() {
        let verdict = check_compiled_sql("postgres", "select 'a;b' as x -- done;\n/* ; */ from t");
        assert!(matches!(verdict, SqlVerdict::Parsed { .. }), "{verdict:?}");
    }

    #[test]
    fn adapters_map_to_dialects() {
        assert_eq!(dialect_for("duckdb").1, "duckdb");
        assert_eq!(dialect_for("postgres").1, "postgres");
        assert_eq!(dialect_for("snowflake").1, "snowflake");
        assert_eq!(dialect_for("something-new").1, "generic");
        assert_eq!(dialect_for("").1, "generic");
    }
}
