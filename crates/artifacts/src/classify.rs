//! Error classification: a table of `(adapter, regex, class)` rows, first match wins.
//!
//! The table is data so that a new warehouse (Snowflake, BigQuery, …) is a list of rows,
//! not new code. Rows are ordered from the most specific to the most general: dbt's own
//! texts that name exactly what went wrong, then each adapter's database texts, then
//! texts any driver may print (connection, permission, timeout), then dbt's catch-all
//! headers ("Compilation Error"), then a generic syntax fallback.

use std::sync::OnceLock;

use dbtops_proto::v1::ErrorClass;
use regex::Regex;

/// One classification row.
#[derive(Debug, Clone, Copy)]
pub struct ClassRule {
    /// dbt adapter type the text comes from (`duckdb`, `postgres`, …), several joined by
    /// `|`, or `*` for texts any adapter (or dbt itself) prints.
    pub adapter: &'static str,
    /// A regular expression (Rust `regex` syntax) searched in the ANSI-stripped message.
    pub pattern: &'static str,
    /// The class a match means.
    pub class: ErrorClass,
}

const fn row(adapter: &'static str, pattern: &'static str, class: ErrorClass) -> ClassRule {
    ClassRule {
        adapter,
        pattern,
        class,
    }
}

use ErrorClass as C;

/// The classification table. Where each text was seen is noted next to its group; the unit
/// tests below carry one captured text per row.
#[rustfmt::skip]
pub static CLASS_RULES: &[ClassRule] = &[
    // dbt-core 1.11's own texts (captured from real `dbt build` runs on DuckDB).
    row("*", r"depends on a node named '[^']*'.* which was not found", C::BadRef),
    row("*", r"depends on a source named '[^']*' which was not found", C::UnknownSource),
    row("*", r"'[\w.]+' is undefined", C::UndefinedMacro),
    row("*", r"Required var '[^']*' not found in config", C::JinjaCompilation),
    row("*", r"Got \d+ results?, configured to (?:fail|warn) if", C::DataTestFailure),
    row("*", r"Parsing Error", C::YamlConfig),
    row("*", r"Error reading \S+: \S+\.ya?ml", C::YamlConfig),
    row("*", r"Invalid \w+ config given in", C::YamlConfig),
    // `materialized='incremntal'`: dbt parses it and fails the model when it runs, under
    // a "Compilation Error" header; the mistake is a configuration value.
    row("*", r"No materialization '[^']*' was found for adapter", C::YamlConfig),
    // DuckDB 1.x texts (dbt-duckdb 1.11.1 and the duckdb Python client).
    row("duckdb", r#"Binder Error: Referenced column "[^"]*" not found"#, C::MissingColumn),
    row("duckdb", r#"Binder Error: Values list "[^"]*" does not have a column named"#, C::MissingColumn),
    row("duckdb", r#"Binder Error: Table "[^"]*" does not have a column named"#, C::MissingColumn),
    row("duckdb", r#"Binder Error: Referenced table "[^"]*" not found"#, C::MissingColumn),
    row("duckdb", r"Binder Error: Ambiguous reference to column name", C::AmbiguousColumn),
    row("duckdb", r"Catalog Error: (?:Table|View|Schema) with name .* does not exist", C::UnknownRelation),
    row("duckdb", r"Catalog Error: (?:Scalar |Table |Aggregate |Macro )?Function with name \S+ does not exist", C::UnknownFunction),
    // `cast(x as dat)`: a misspelt type name is a slip in the SQL text, like a misspelt
    // keyword, not a clash of two types.
    row("duckdb", r"Catalog Error: Type with name \S+ does not exist", C::SqlSyntax),
    // `between 20240101 and 20241231` on a date, `coalesce(d, 1)`, `greatest(d, 1)`.
    row("duckdb", r"Binder Error: (?:No function matches the given name and argument types|Could not choose a best candidate function|Cannot compare values of type|Cannot mix values of type|Cannot combine types of)", C::TypeMismatch),
    // An aggregate in WHERE, GROUP BY or a JOIN's ON (DuckDB words the last as WHERE):
    // a grouping mistake, as PostgreSQL's SQLSTATE 42803 (grouping_error) files it.
    row("duckdb", r"Binder Error: (?:WHERE|GROUP BY|HAVING) clause cannot contain aggregates", C::MissingGroupBy),
    // A window function in WHERE, HAVING or GROUP BY: the query must be written with
    // another clause (QUALIFY, a subquery), not a value problem.
    row("duckdb", r"Binder Error: (?:WHERE|GROUP BY|HAVING) clause cannot contain window functions", C::SqlSyntax),
    row("duckdb", r"Parser Error:", C::SqlSyntax),
    // A value that does not convert (`'n/a'` to INT32) is bad data, not a bad expression.
    row("duckdb", r"Conversion Error:", C::RuntimeData),
    row("duckdb", r"Division by zero", C::DivisionByZero),
    row("duckdb", r"(?:Out of Range|Constraint|Invalid Input) Error:", C::RuntimeData),
    // The database file cannot be opened, or another process holds its lock: no SQL edit helps.
    row("duckdb", r"IO Error: (?:Cannot open file|Could not set lock on file)", C::Connection),
    // Both DuckDB and Postgres word this the same way.
    row("duckdb|postgres|redshift", r"must appear in the GROUP BY clause", C::MissingGroupBy),
    // PostgreSQL server texts (captured with psql, and in the pg_* fixtures from real
    // dbt-postgres 1.11.0 runs on PostgreSQL 15, which wrap them in "Database Error in
    // model x (path)").
    // The server refused the login before any SQL ran: credentials, not SQL.
    row("postgres|redshift", r#"FATAL:\s+role "[^"]*" does not exist|password authentication failed"#, C::Permission),
    row("postgres|redshift", r#"FATAL:\s+database "[^"]*" does not exist"#, C::Connection),
    row("postgres|redshift", r#"column reference "[^"]*" is ambiguous"#, C::AmbiguousColumn),
    row("postgres|redshift", r#"column (?:"[^"]*"|[\w.]+) does not exist"#, C::MissingColumn),
    // `o.x` with no `o` in FROM: DuckDB's "Referenced table not found", the same class.
    row("postgres|redshift", r#"missing FROM-clause entry for table "[^"]*""#, C::MissingColumn),
    row("postgres|redshift", r#"(?:relation|schema) "[^"]*" does not exist"#, C::UnknownRelation),
    // `cast(x as dat)`, as for DuckDB above.
    row("postgres|redshift", r#"\btype "[^"]*" does not exist"#, C::SqlSyntax),
    // The same two placement mistakes as DuckDB's above, in PostgreSQL's words.
    row("postgres|redshift", r"aggregate functions are not allowed in (?:WHERE|GROUP BY|JOIN conditions)", C::MissingGroupBy),
    row("postgres|redshift", r"window functions are not allowed in (?:WHERE|HAVING|GROUP BY|JOIN conditions)", C::SqlSyntax),
    row("postgres|redshift", r"syntax error at (?:or near|end of input)|subquery in FROM must have an alias", C::SqlSyntax),
    row("postgres|redshift", r"function \S+\(.*\) does not exist", C::UnknownFunction),
    row("postgres|redshift", r"operator does not exist|is of type \w+ but expression is of type|cannot cast type|UNION types \S+ and \S+ cannot be matched|argument of \S+ must be type boolean", C::TypeMismatch),
    row("postgres|redshift", r"invalid input syntax for type", C::RuntimeData),
    row("postgres|redshift", r"division by zero", C::DivisionByZero),
    row("postgres|redshift", r"out of range|violates (?:not-null|unique|check|foreign key) constraint|value too long for type", C::RuntimeData),
    row("postgres|redshift", r"canceling statement due to (?:statement|lock) timeout", C::Timeout),
    // dbt replaces a table by renaming it, which only its owner may do.
    row("postgres|redshift", r"must be owner of (?:table|view|materialized view|relation|schema|sequence|function) ", C::Permission),
    // Any driver.
    row("*", r"(?i)permission denied|access denied|insufficient privileges|not authorized", C::Permission),
    row("*", r"(?i)connection refused|could not connect|failed to connect|connection to server at .* failed|server closed the connection unexpectedly|could not translate host name|name or service not known", C::Connection),
    row("*", r"(?i)statement timeout|query timeout|timed out|timeout expired", C::Timeout),
    // dbt's catch-all headers, after every text that says more.
    row("*", r"Compilation Error", C::JinjaCompilation),
    row("*", r"(?i)\bsyntax error\b", C::SqlSyntax),
];

/// What the classifier decided about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    /// The class of the first matching row, or `Other`.
    pub class: ErrorClass,
    /// The message line the row matched on (ANSI stripped), used for the signature.
    pub matched_line: Option<String>,
}

fn compiled() -> &'static [Option<Regex>] {
    static COMPILED: OnceLock<Vec<Option<Regex>>> = OnceLock::new();
    // A row whose pattern fails to compile is skipped rather than panicking; the unit test
    // `every_row_compiles` keeps that from ever shipping.
    COMPILED.get_or_init(|| {
        CLASS_RULES
            .iter()
            .map(|r| Regex::new(r.pattern).ok())
            .collect()
    })
}

fn adapter_applies(rule: &ClassRule, adapter: Option<&str>) -> bool {
    match adapter {
        _ if rule.adapter == "*" => true,
        // Unknown adapter: every row may apply; the texts rarely collide.
        None => true,
        Some(a) => rule.adapter.split('|').any(|r| r.eq_ignore_ascii_case(a)),
    }
}

/// Classifies an error message. `adapter` is dbt's adapter type (`duckdb`, `postgres`…)
/// when known; `resource_type` is the failing node's (a failing `test` is always a data
/// test failure, whatever its text).
pub fn classify(adapter: Option<&str>, resource_type: &str, message: &str) -> Classification {
    let clean = crate::text::strip_ansi(message);
    let found = CLASS_RULES
        .iter()
        .zip(compiled())
        .filter(|(rule, _)| adapter_applies(rule, adapter))
        .find_map(|(rule, re)| {
            let m = re.as_ref()?.find(&clean)?;
            Some((rule.class, line_at(&clean, m.start())))
        });
    let (class, matched_line) = match found {
        Some((class, line)) => (class, Some(line)),
        None => (C::Other, None),
    };
    let class = if matches!(resource_type, "test" | "unit_test") {
        C::DataTestFailure
    } else {
        class
    };
    Classification {
        class,
        matched_line,
    }
}

/// The classes no edit of the model's SQL can fix: a person has to act.
pub fn class_needs_human(class: ErrorClass) -> bool {
    matches!(
        class,
        C::DataTestFailure | C::Connection | C::Permission | C::Timeout
    )
}

fn line_at(text: &str, offset: usize) -> String {
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    text[start..end].trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_compiles() {
        for (rule, re) in CLASS_RULES.iter().zip(compiled()) {
            assert!(re.is_some(), "pattern does not compile: {}", rule.pattern);
        }
    }

    fn class_of(adapter: Option<&str>, message: &str) -> ErrorClass {
        classify(adapter, "model", message).class
    }

    /// Texts captured from real `dbt build` runs (dbt-core 1.11.16, dbt-duckdb 1.11.1,
    /// DuckDB 1.x) on a throwaway project in /tmp: run_results.json `message` fields and
    /// `dbt.log` summaries, copied verbatim.
    #[test]
    fn dbt_and_duckdb_texts() {
        let duck = Some("duckdb");
        let cases: &[(&str, ErrorClass)] = &[
            // ref('stg_ordrs') for ref('stg_orders'): parse time, exit 2.
            (
                "Compilation Error\n  Model 'model.shop.orders' (models/marts/orders.sql) depends on a node named 'stg_ordrs' which was not found",
                C::BadRef,
            ),
            // source('ext', 'raw_paymnts') for an undeclared table: parse time, exit 2.
            (
                "Compilation Error\n  Model 'model.shop.orders' (models/marts/orders.sql) depends on a source named 'ext.raw_paymnts' which was not found",
                C::UnknownSource,
            ),
            // `{{ ref('stg_orders') }` : parse time, exit 2.
            (
                "Compilation Error in model orders (models/marts/orders.sql)\n  unexpected '}'\n    line 2\n      select * from {{ ref('stg_orders') }",
                C::JinjaCompilation,
            ),
            // An unterminated `{% endmacro %` in macros/cents.sql: no path at all.
            (
                "Compilation Error\n  unexpected EOF, expected tag close (\"%}\"), got \" %\"",
                C::JinjaCompilation,
            ),
            // `{{ cents_to_dollars('o.amount') }}` with no such macro: run time, exit 1.
            (
                "Compilation Error in model orders (models/marts/orders.sql)\n  'cents_to_dollars' is undefined. This can happen when calling a macro that does not exist. Check for typos and/or install package dependencies with \"dbt deps\".",
                C::UndefinedMacro,
            ),
            // `{{ var('fx_rate') }}` with no such var.
            (
                "Compilation Error in model orders (models/marts/orders.sql)\n  Required var 'fx_rate' not found in config:\n  Vars supplied to orders = {}",
                C::JinjaCompilation,
            ),
            // An unterminated quoted scalar in models/marts/schema.yml.
            (
                "Parsing Error\n  Error reading shop: marts/schema.yml - Runtime Error\n    Syntax error near line 14\n    ------------------------------\n    11 |       - name: amount",
                C::YamlConfig,
            ),
            // o.amout for o.amount, `o` a CTE.
            (
                "Runtime Error in model orders (models/marts/orders.sql)\n  Binder Error: Values list \"o\" does not have a column named \"amout\"\n  \n  LINE 12:     o.amout\n               ^^^^^^^",
                C::MissingColumn,
            ),
            // first_nme for first_name, unqualified.
            (
                "Runtime Error in model stg_customers (models/staging/stg_customers.sql)\n  Binder Error: Referenced column \"first_nme\" not found in FROM clause!\n  Candidate bindings: \"first_name\", \"last_name\", \"id\"",
                C::MissingColumn,
            ),
            // duckdb client: select t.nosuch from t
            (
                "Binder Error: Table \"t\" does not have a column named \"nosuch\"\n\nCandidate bindings: : \"s\"",
                C::MissingColumn,
            ),
            // `selec` for `select`.
            (
                "Runtime Error in model orders (models/marts/orders.sql)\n  Parser Error: syntax error at or near \"selec\"\n  \n  LINE 8: selec\n          ^^^^^",
                C::SqlSyntax,
            ),
            // from main.stg_ordrs_raw (a hard-coded relation that does not exist).
            (
                "Runtime Error in model orders (models/marts/orders.sql)\n  Catalog Error: Table with name stg_ordrs_raw does not exist!\n  Did you mean \"stg_orders\"?",
                C::UnknownRelation,
            ),
            // duckdb client: select count(*) from nosuch_schema.t
            (
                "Catalog Error: Table with name \"nosuch_schema.t\" does not exist because schema \"nosuch_schema\" does not exist.",
                C::UnknownRelation,
            ),
            // to_char (Postgres) on DuckDB.
            (
                "Runtime Error in model orders (models/marts/orders.sql)\n  Catalog Error: Scalar Function with name to_char does not exist!\n  Did you mean \"to_hours\"?",
                C::UnknownFunction,
            ),
            // cast('abc' as integer) in a table model.
            (
                "Runtime Error in model orders (models/marts/orders.sql)\n  Conversion Error: Could not convert string 'abc' to INT32\n  \n  LINE 18:     cast('abc' as integer) as amount",
                C::RuntimeData,
            ),
            // duckdb client: select s + 1 from t (s varchar)
            (
                "Binder Error: No function matches the given name and argument types '+(VARCHAR, INTEGER_LITERAL)'. You might need to add explicit type casts.",
                C::TypeMismatch,
            ),
            // 10 // o.amount with a zero amount, table model.
            (
                "Runtime Error in model orders (models/marts/orders.sql)\n  Invalid Input Error: Division by zero in expression (10 // amount). Use TRY(...) to return NULL for this expression, or SET error_on_division_by_zero=false to return NULL for all divisions by zero.",
                C::DivisionByZero,
            ),
            // group by 1 with two plain columns.
            (
                "Runtime Error in model customer_orders (models/marts/customer_orders.sql)\n  Binder Error: column \"first_name\" must appear in the GROUP BY clause or must be part of an aggregate function.\n  Either add it to the GROUP BY list, or use ANY_VALUE(\"first_name\") if the exact value of \"first_name\" is not important.",
                C::MissingGroupBy,
            ),
            // customer_id in both joined relations.
            (
                "Runtime Error in model customer_orders (models/marts/customer_orders.sql)\n  Binder Error: Ambiguous reference to column name \"customer_id\" (use: 'c.customer_id' or 'o.customer_id')",
                C::AmbiguousColumn,
            ),
            // A date compared with an integer literal (examples/coffee_shop, fixture
            // type_mismatch).
            (
                "Runtime Error in model customers (models/marts/customers.sql)\n  Binder Error: Cannot compare values of type DATE and type INTEGER_LITERAL - an explicit cast is required",
                C::TypeMismatch,
            ),
            // `order_date between 20240101 and 20241231` (a date), table model.
            (
                "Runtime Error in model p_between (models/probe/p_between.sql)\n  Binder Error: Cannot mix values of type DATE and INTEGER_LITERAL in BETWEEN clause - an explicit cast is required\n  \n  LINE 12: where order_date between 20240101 and 20241231\n                            ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
                C::TypeMismatch,
            ),
            // duckdb client: select coalesce(d, 1) from t (d a date)
            (
                "Binder Error: Cannot mix values of type DATE and INTEGER_LITERAL in COALESCE operator - an explicit cast is required",
                C::TypeMismatch,
            ),
            // duckdb client: select greatest(d, 1) from t
            (
                "Binder Error: Cannot combine types of DATE and INTEGER_LITERAL - an explicit cast is required",
                C::TypeMismatch,
            ),
            // `cast(ordered_at as dat)`, table model.
            (
                "Runtime Error in model p_type_typo (models/probe/p_type_typo.sql)\n  Catalog Error: Type with name dat does not exist!\n  Did you mean \"date\"?\n  \n  LINE 12:     cast(ordered_at as dat) as order_day\n                                  ^^^",
                C::SqlSyntax,
            ),
            // The profile points at a directory that does not exist: dbt exits 2 with
            // "Encountered an error:" and no node.
            (
                "IO Error: Cannot open file \"/nonexistent_dir/x/shop.duckdb\": No such file or directory",
                C::Connection,
            ),
            // A unique test on a duplicated id.
            (
                "Got 1 result, configured to fail if != 0",
                C::DataTestFailure,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(class_of(duck, text), *want, "{text}");
            // With the adapter unknown the same texts classify the same.
            assert_eq!(class_of(None, text), *want, "{text}");
        }
    }

    /// An aggregate or a window function in a clause that cannot hold it, as real runs
    /// print it: dbt-duckdb 1.11.1 and dbt-postgres 1.11 (`run_results.json` messages),
    /// and the duckdb client and psql for the other clauses (query in the comment).
    #[test]
    fn misplaced_aggregates_and_windows() {
        let cases: &[(&str, &str, ErrorClass)] = &[
            (
                "duckdb",
                "Runtime Error in model station_utilization (models/marts/ops/station_utilization.sql)\n  Binder Error: WHERE clause cannot contain aggregates!\n  \n  LINE 32:     where end_station_id is not null and count(*) > 0\n                                                    ^^^^^^^^",
                C::MissingGroupBy,
            ),
            // select a from t group by sum(b)
            (
                "duckdb",
                "Binder Error: GROUP BY clause cannot contain aggregates!\n\nLINE 1: select a from t group by sum(b)",
                C::MissingGroupBy,
            ),
            (
                "duckdb",
                "Runtime Error in model orders (models/marts/orders.sql)\n  Binder Error: WHERE clause cannot contain window functions!\n  \n  LINE 19:     where row_number() over (partition by order_id order by ordered_at...",
                C::SqlSyntax,
            ),
            // select a, count(*) from t group by a having row_number() over () = 1
            (
                "duckdb",
                "Binder Error: HAVING clause cannot contain window functions!",
                C::SqlSyntax,
            ),
            (
                "postgres",
                "Database Error in model customer_totals (models/customer_totals.sql)\n  aggregate functions are not allowed in WHERE\n  LINE 12: where status = 'completed' and sum(amount) > 100\n                                          ^",
                C::MissingGroupBy,
            ),
            // select 1 from t a join t b on sum(a.amount) > 1
            (
                "postgres",
                "aggregate functions are not allowed in JOIN conditions",
                C::MissingGroupBy,
            ),
            (
                "postgres",
                "Database Error in model first_orders (models/first_orders.sql)\n  window functions are not allowed in WHERE\n  LINE 12: where row_number() over (partition by customer_id order by o...\n                 ^",
                C::SqlSyntax,
            ),
            // select customer_id from t group by customer_id having row_number() over () = 1
            ("postgres", "window functions are not allowed in HAVING", C::SqlSyntax),
        ];
        for (adapter, text, want) in cases {
            assert_eq!(class_of(Some(adapter), text), *want, "{text}");
        }
    }

    /// Texts captured from PostgreSQL with `psql -h 127.0.0.1 -U postgres -d test -c "…"`
    /// (the query is in the comment), wrapped the way dbt-postgres reports a database error.
    #[test]
    fn postgres_texts() {
        let pg = Some("postgres");
        let wrap = |s: &str| format!("Database Error in model orders (models/orders.sql)\n  {s}");
        let cases: &[(&str, ErrorClass)] = &[
            // select nosuch from (select 1 as a) t
            (
                "column \"nosuch\" does not exist\n  LINE 1: select nosuch from (select 1 as a) t",
                C::MissingColumn,
            ),
            // select t.a from (select 1 b) t
            ("column t.a does not exist", C::MissingColumn),
            // select * from nosuch_tbl
            ("relation \"nosuch_tbl\" does not exist", C::UnknownRelation),
            // selec 1
            ("syntax error at or near \"selec\"", C::SqlSyntax),
            // select nosuch_fn(1)
            (
                "function nosuch_fn(integer) does not exist\n  HINT:  No function matches the given name and argument types. You might need to add explicit type casts.",
                C::UnknownFunction,
            ),
            // select a, count(*) from (select 1 a, 2 b) t group by b
            (
                "column \"t.a\" must appear in the GROUP BY clause or be used in an aggregate function",
                C::MissingGroupBy,
            ),
            // select 1/0
            ("division by zero", C::DivisionByZero),
            // select 'abc'::integer
            (
                "invalid input syntax for type integer: \"abc\"",
                C::RuntimeData,
            ),
            // select 'x'::text + 1
            ("operator does not exist: text + integer", C::TypeMismatch),
            // select a from (select 1 a) x, (select 2 a) y
            ("column reference \"a\" is ambiguous", C::AmbiguousColumn),
            // insert into tt values (99999999999)
            ("integer out of range", C::RuntimeData),
            // set role lowpriv; select * from secret_t
            ("permission denied for table secret_t", C::Permission),
            // set statement_timeout=500; select pg_sleep(2)
            ("canceling statement due to statement timeout", C::Timeout),
            // psql -p 1 …
            (
                "connection to server at \"127.0.0.1\", port 1 failed: Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?",
                C::Connection,
            ),
            // select o.x from (select 1 as x) t
            (
                "missing FROM-clause entry for table \"o\"\n  LINE 1: select o.x from (select 1 as x) t",
                C::MissingColumn,
            ),
            // select 1 union select 'a'::text
            (
                "UNION types integer and text cannot be matched",
                C::TypeMismatch,
            ),
            // select 1 from (select 1 as a) t where a
            (
                "argument of WHERE must be type boolean, not type integer",
                C::TypeMismatch,
            ),
            // select * from (select 1)
            (
                "subquery in FROM must have an alias\n  HINT:  For example, FROM (SELECT ...) [AS] foo.",
                C::SqlSyntax,
            ),
            // psql -U dbtops_nosuch_role …
            (
                "connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  role \"dbtops_nosuch_role\" does not exist",
                C::Permission,
            ),
            // psql -d dbtops_nosuch_db …
            (
                "connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  database \"dbtops_nosuch_db\" does not exist",
                C::Connection,
            ),
            // set role r (usage and create on the schema); alter table s.t rename to t2
            ("must be owner of table t", C::Permission),
            // another session holds `lock table s.t`; set lock_timeout='200ms'; select * from s.t
            (
                "canceling statement due to lock timeout\n  LINE 1: set lock_timeout='200ms'; select * from dbtops_cap.t",
                C::Timeout,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(class_of(pg, &wrap(text)), *want, "{text}");
        }
    }

    /// run_results.json messages of the pg_* fixtures (dbt-core 1.11.16, dbt-postgres
    /// 1.11.0, PostgreSQL 15.20), verbatim but for the `compiled code at …` tail.
    #[test]
    fn dbt_postgres_texts() {
        let pg = Some("postgres");
        let cases: &[(&str, ErrorClass)] = &[
            (
                "Database Error in model stg_orders (models/staging/stg_orders.sql)\n  column \"custmer_id\" does not exist\n  LINE 9:     custmer_id,\n              ^\n  HINT:  Perhaps you meant to reference the column \"raw_orders.customer_id\".",
                C::MissingColumn,
            ),
            (
                "Database Error in model stg_order_items (models/staging/stg_order_items.sql)\n  relation \"dbtops_fx_2298_2.raw_order_item\" does not exist\n  LINE 12: from dbtops_fx_2298_2.raw_order_item",
                C::UnknownRelation,
            ),
            (
                "Database Error in model stg_orders (models/staging/stg_orders.sql)\n  syntax error at or near \"status\"\n  LINE 13:     status as order_status",
                C::SqlSyntax,
            ),
            (
                "Database Error in model customers (models/marts/customers.sql)\n  operator does not exist: date >= integer\n  LINE 31:       and order_date >= 20240101\n  HINT:  No operator matches the given name and argument types. You might need to add explicit type casts.",
                C::TypeMismatch,
            ),
            (
                "Database Error in model orders (models/marts/orders.sql)\n  operator does not exist: integer = text\n  LINE 47:     inner join products as p on oi.order_id = p.product_sku",
                C::TypeMismatch,
            ),
            (
                "Database Error in model customers (models/marts/customers.sql)\n  invalid input syntax for type integer: \"n/a\"",
                C::RuntimeData,
            ),
            (
                "Database Error in model store_revenue (models/marts/finance/store_revenue.sql)\n  division by zero",
                C::DivisionByZero,
            ),
            (
                "Database Error in model store_revenue (models/marts/finance/store_revenue.sql)\n  column \"s.city\" must appear in the GROUP BY clause or be used in an aggregate function\n  LINE 33:     s.city,",
                C::MissingGroupBy,
            ),
            (
                "Database Error in model revenue_daily (models/marts/finance/revenue_daily.sql)\n  function strftime(date, unknown) does not exist\n  LINE 15:     strftime(order_date, '%Y-%m') as order_month,\n  HINT:  No function matches the given name and argument types. You might need to add explicit type casts.",
                C::UnknownFunction,
            ),
            (
                "Database Error in model store_revenue (models/marts/finance/store_revenue.sql)\n  column reference \"store_id\" is ambiguous\n  LINE 31:     store_id,",
                C::AmbiguousColumn,
            ),
            (
                "Database Error in model stg_customer_pii (models/staging/stg_customer_pii.sql)\n  permission denied for table customer_pii",
                C::Permission,
            ),
            (
                "Database Error in model stg_customer_pii (models/staging/stg_customer_pii.sql)\n  permission denied for schema dbtops_fx_2298_13_locked\n  LINE 15: from dbtops_fx_2298_13_locked.customer_pii",
                C::Permission,
            ),
            (
                "Database Error in model slow_report (models/marts/slow_report.sql)\n  canceling statement due to statement timeout",
                C::Timeout,
            ),
            // `cast(ordered_at as dat)` in a probe model of a copy of examples/coffee_shop
            // (not a fixture; the same versions).
            (
                "Database Error in model p_type_typo (models/probe/p_type_typo.sql)\n  type \"dat\" does not exist\n  LINE 14:     cast(ordered_at as dat) as order_day\n                                  ^\n  compiled code at target/run/coffee_shop/models/probe/p_type_typo.sql",
                C::SqlSyntax,
            ),
            // No node: dbt's "Encountered an error:" before the first node ran.
            (
                "Database Error\n  connection to server at \"127.0.0.1\", port 39521 failed: Connection refused\n  \tIs the server running on that host and accepting TCP/IP connections?",
                C::Connection,
            ),
        ];
        for (text, want) in cases {
            let got = class_of(pg, text);
            assert_eq!(got, *want, "{text}");
            assert_eq!(
                class_needs_human(got),
                matches!(want, C::Permission | C::Timeout | C::Connection),
                "{text}"
            );
        }
    }

    /// `materialized='incremntal'` in fct_rentals' `config()`, a copy of
    /// examples/bike_rentals built with dbt-core 1.11.16: dbt-duckdb 1.11.1 and
    /// dbt-postgres 1.11.0 (`run_results.json` messages, verbatim). The "Compilation Error"
    /// header must not win.
    #[test]
    fn unknown_materialization_is_a_configuration_error() {
        let cases = [
            (
                "duckdb",
                "Compilation Error in model fct_rentals (models/marts/core/fct_rentals.sql)\n  No materialization 'incremntal' was found for adapter duckdb! (searched types 'default' and 'duckdb')",
            ),
            (
                "postgres",
                "Compilation Error in model fct_rentals (models/marts/core/fct_rentals.sql)\n  No materialization 'incremntal' was found for adapter postgres! (searched types 'default' and 'postgres')",
            ),
        ];
        for (adapter, text) in cases {
            let c = classify(Some(adapter), "model", text);
            assert_eq!(c.class, C::YamlConfig, "{text}");
            assert!(!class_needs_human(c.class));
            assert_eq!(
                c.matched_line.as_deref(),
                Some(
                    format!(
                        "No materialization 'incremntal' was found for adapter {adapter}! (searched types 'default' and '{adapter}')"
                    )
                    .as_str()
                )
            );
            assert_eq!(class_of(None, text), C::YamlConfig, "{text}");
        }
    }

    #[test]
    fn adapter_rows_stay_with_their_adapter() {
        // A Postgres text seen from a Snowflake run is not read as a Postgres error…
        assert_eq!(
            class_of(Some("snowflake"), "column \"x\" does not exist"),
            C::Other
        );
        // …but texts any driver prints still are.
        assert_eq!(
            class_of(Some("snowflake"), "Connection refused"),
            C::Connection
        );
    }

    #[test]
    fn tests_are_data_test_failures_and_need_a_human() {
        let c = classify(
            Some("duckdb"),
            "test",
            "Runtime Error in test x\n  Binder Error: Referenced column \"a\" not found in FROM clause!",
        );
        assert_eq!(c.class, C::DataTestFailure);
        assert!(class_needs_human(c.class));
        assert!(class_needs_human(C::Timeout));
        assert!(!class_needs_human(C::MissingColumn));
    }

    #[test]
    fn the_matched_line_is_reported() {
        let c = classify(
            Some("duckdb"),
            "model",
            "Runtime Error in model a (models/a.sql)\n  Binder Error: Referenced column \"x\" not found in FROM clause!\n  Candidate bindings: \"y\"",
        );
        assert_eq!(
            c.matched_line.as_deref(),
            Some("Binder Error: Referenced column \"x\" not found in FROM clause!")
        );
    }
}
