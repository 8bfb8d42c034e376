//! The type rules (`type_mismatch`, `bad_cast`) against error texts of real dbt runs.
//!
//! How the texts were produced: a copy of `examples/coffee_shop` with a folder
//! `models/probe` of one-statement models (materialized as tables), each broken as its
//! test says, built with dbt-core 1.11.16:
//!
//! - **DuckDB**: dbt-duckdb 1.11.1 (duckdb 2.0.1), `dbt seed`, `dbt run -s stg_orders`,
//!   `dbt run -s probe`; the text is the failed result's `message` in
//!   `target/run_results.json`, verbatim. The seeds keep `raw_customers.loyalty_points`
//!   as VARCHAR (one row holds `n/a`).
//! - **PostgreSQL**: PostgreSQL 15.20 with dbt-postgres 1.11.0 (`--target postgres`, a
//!   fresh `DBT_PG_SCHEMA`), the same seeds and probes with `stg_orders` replaced by the
//!   seed `raw_orders` (no `try_cast` in PostgreSQL), the message as above.
//!
//! Every fix asserted here was written back into the probe and built again with dbt:
//! each built, except where the fixed SQL met the dirty value `n/a` next — those
//! failed again with a conversion error, and that second error is a case below too
//! (`…_then_the_dirty_value`), whose fix built. A `None` is a case the rules must leave
//! to a person or an LLM.

use dbtops_rules::{propose_fix, ErrorClass, RuleInput};

struct Case {
    adapter: &'static str,
    class: ErrorClass,
    sql: &'static str,
    message: &'static str,
}

fn fix(case: &Case) -> Option<(String, &'static str)> {
    propose_fix(&RuleInput {
        error_class: case.class,
        error_message: case.message,
        model_name: "probe",
        model_sql: case.sql,
        adapter: case.adapter,
        ..RuleInput::default()
    })
    .map(|fix| {
        assert!(!fix.explanation.is_empty());
        assert!((0.0..=1.0).contains(&fix.confidence));
        (fix.fixed_sql, fix.rule)
    })
}

/// a VARCHAR column plus an integer literal.
#[test]
fn duckdb_arith() {
    let case = Case {
        adapter: "duckdb",
        class: ErrorClass::TypeMismatch,
        sql: "select id, loyalty_points + 10 as boosted\nfrom {{ ref('raw_customers') }}\n",
        message: "Runtime Error in model p_arith (models/probe/p_arith.sql)\n  Binder Error: No function matches the given name and argument types '+(VARCHAR, INTEGER_LITERAL)'. You might need to add explicit type casts.\n  \tCandidate functions:\n  \t\"+\"(x TINYINT, /) -> TINYINT\n  \t\"+\"(\"left\" TINYINT, \"right\" TINYINT, /) -> TINYINT\n  \t\"+\"(x SMALLINT, /) -> SMALLINT\n  \t\"+\"(\"left\" SMALLINT, \"right\" SMALLINT, /) -> SMALLINT\n  \t\"+\"(x INTEGER, /) -> INTEGER\n  \t\"+\"(\"left\" INTEGER, \"right\" INTEGER, /) -> INTEGER\n  \t\"+\"(x BIGINT, /) -> BIGINT\n  \t\"+\"(\"left\" BIGINT, \"right\" BIGINT, /) -> BIGINT\n  \t\"+\"(x HUGEINT, /) -> HUGEINT\n  \t\"+\"(\"left\" HUGEINT, \"right\" HUGEINT, /) -> HUGEINT\n  \t\"+\"(x FLOAT, /) -> FLOAT\n  \t\"+\"(\"left\" FLOAT, \"right\" FLOAT, /) -> FLOAT\n  \t\"+\"(x DOUBLE, /) -> DOUBLE\n  \t\"+\"(\"left\" DOUBLE, \"right\" DOUBLE, /) -> DOUBLE\n  \t\"+\"(x DECIMAL, /) -> DECIMAL\n  \t\"+\"(\"left\" DECIMAL, \"right\" DECIMAL, /) -> DECIMAL\n  \t\"+\"(x UTINYINT, /) -> UTINYINT\n  \t\"+\"(\"left\" UTINYINT, \"right\" UTINYINT, /) -> UTINYINT\n  \t\"+\"(x USMALLINT, /) -> USMALLINT\n  \t\"+\"(\"left\" USMALLINT, \"right\" USMALLINT, /) -> USMALLINT\n  \t\"+\"(x UINTEGER, /) -> UINTEGER\n  \t\"+\"(\"left\" UINTEGER, \"right\" UINTEGER, /) -> UINTEGER\n  \t\"+\"(x UBIGINT, /) -> UBIGINT\n  \t\"+\"(\"left\" UBIGINT, \"right\" UBIGINT, /) -> UBIGINT\n  \t\"+\"(x UHUGEINT, /) -> UHUGEINT\n  \t\"+\"(\"left\" UHUGEINT, \"right\" UHUGEINT, /) -> UHUGEINT\n  \t\"+\"(\"left\" DATE, \"right\" INTEGER, /) -> DATE\n  \t\"+\"(\"left\" INTEGER, \"right\" DATE, /) -> DATE\n  \t\"+\"(\"left\" INTERVAL, \"right\" INTERVAL, /) -> INTERVAL\n  \t\"+\"(\"left\" DATE, \"right\" INTERVAL, /) -> TIMESTAMP\n  \t\"+\"(\"left\" INTERVAL, \"right\" DATE, /) -> TIMESTAMP\n  \t\"+\"(\"left\" TIME, \"right\" INTERVAL, /) -> TIME\n  \t\"+\"(\"left\" INTERVAL, \"right\" TIME, /) -> TIME\n  \t\"+\"(\"left\" TIMESTAMP_S, \"right\" INTERVAL, /) -> TIMESTAMP\n  \t\"+\"(\"left\" INTERVAL, \"right\" TIMESTAMP_S, /) -> TIMESTAMP\n  \t\"+\"(\"left\" TIMESTAMP_MS, \"right\" INTERVAL, /) -> TIMESTAMP\n  \t\"+\"(\"left\" INTERVAL, \"right\" TIMESTAMP_MS, /) -> TIMESTAMP\n  \t\"+\"(\"left\" TIMESTAMP, \"right\" INTERVAL, /) -> TIMESTAMP\n  \t\"+\"(\"left\" INTERVAL, \"right\" TIMESTAMP, /) -> TIMESTAMP\n  \t\"+\"(\"left\" TIMESTAMP_NS, \"right\" INTERVAL, /) -> TIMESTAMP_NS\n  \t\"+\"(\"left\" INTERVAL, \"right\" TIMESTAMP_NS, /) -> TIMESTAMP_NS\n  \t\"+\"(\"left\" TIME WITH TIME ZONE, \"right\" INTERVAL, /) -> TIME WITH TIME ZONE\n  \t\"+\"(\"left\" INTERVAL, \"right\" TIME WITH TIME ZONE, /) -> TIME WITH TIME ZONE\n  \t\"+\"(\"left\" TIME, \"right\" DATE, /) -> TIMESTAMP\n  \t\"+\"(\"left\" DATE, \"right\" TIME, /) -> TIMESTAMP\n  \t\"+\"(\"left\" TIME WITH TIME ZONE, \"right\" DATE, /) -> TIMESTAMP WITH TIME ZONE\n  \t\"+\"(\"left\" DATE, \"right\" TIME WITH TIME ZONE, /) -> TIMESTAMP WITH TIME ZONE\n  \t\"+\"(*args ANY[]) -> ANY[]\n  \t\"+\"(\"left\" BIGNUM, \"right\" BIGNUM, /) -> BIGNUM\n  \t\"+\"(\"left\" TIMESTAMP WITH TIME ZONE, \"right\" INTERVAL, /) -> TIMESTAMP WITH TIME ZONE\n  \t\"+\"(\"left\" INTERVAL, \"right\" TIMESTAMP WITH TIME ZONE, /) -> TIMESTAMP WITH TIME ZONE\n  \t\"+\"(\"left\" TIMESTAMPTZ_NS, \"right\" INTERVAL, /) -> TIMESTAMPTZ_NS\n  \t\"+\"(\"left\" INTERVAL, \"right\" TIMESTAMPTZ_NS, /) -> TIMESTAMPTZ_NS\n  \n  \n  LINE 10:       select id, loyalty_points + 10 as boosted\n                                           ^",
    };
    assert_eq!(
        fix(&case),
        Some((
            "select id, cast(loyalty_points as integer) + 10 as boosted\nfrom {{ ref('raw_customers') }}\n".to_owned(),
            "type_mismatch"
        ))
    );
}

/// `cast(loyalty_points as integer)` over a column holding 'n/a'.
#[test]
fn duckdb_bad_cast() {
    let case = Case {
        adapter: "duckdb",
        class: ErrorClass::RuntimeData,
        sql: "select\n    id as customer_id,\n    cast(loyalty_points as integer) as loyalty_points\nfrom {{ ref('raw_customers') }}\n",
        message: "Runtime Error in model p_bad_cast (models/probe/p_bad_cast.sql)\n  Conversion Error: Could not convert string 'n/a' to INT32 when casting from source column loyalty_points\n  \n  LINE 12:     cast(loyalty_points as integer) as loyalty_points\n               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
    };
    assert_eq!(
        fix(&case),
        Some((
            "select\n    id as customer_id,\n    try_cast(loyalty_points as integer) as loyalty_points\nfrom {{ ref('raw_customers') }}\n".to_owned(),
            "bad_cast"
        ))
    );
}

/// `loyalty_points::int` over a column holding 'n/a'.
#[test]
fn duckdb_bad_cast_colon() {
    let case = Case {
        adapter: "duckdb",
        class: ErrorClass::RuntimeData,
        sql: "select\n    id as customer_id,\n    loyalty_points::int as loyalty_points\nfrom {{ ref('raw_customers') }}\n",
        message: "Runtime Error in model p_bad_cast_colon (models/probe/p_bad_cast_colon.sql)\n  Conversion Error: Could not convert string 'n/a' to INT32 when casting from source column loyalty_points\n  \n  LINE 12:     loyalty_points::int as loyalty_points\n                             ^^^^^",
    };
    assert_eq!(
        fix(&case),
        Some((
            "select\n    id as customer_id,\n    try_cast(loyalty_points as int) as loyalty_points\nfrom {{ ref('raw_customers') }}\n".to_owned(),
            "bad_cast"
        ))
    );
}

/// a name cast to a date.
#[test]
fn duckdb_bad_cast_date() {
    let case = Case {
        adapter: "duckdb",
        class: ErrorClass::RuntimeData,
        sql: "select\n    id as customer_id,\n    cast(first_name as date) as signup\nfrom {{ ref('raw_customers') }}\n",
        message: "Runtime Error in model p_bad_cast_date (models/probe/p_bad_cast_date.sql)\n  Conversion Error: invalid date field format: \"Ada\", expected format is (YYYY-MM-DD) when casting from source column first_name\n  \n  LINE 12:     cast(first_name as date) as signup\n               ^^^^^^^^^^^^^^^^^^^^^^^^",
    };
    // 'Ada' is a name, not dirt in a date column: the wrong column is cast, and
    // try_cast would build a column of NULLs.
    assert_eq!(fix(&case), None);
}

/// `cast(loyalty_points as double)` over 'n/a'.
#[test]
fn duckdb_bad_cast_double() {
    let case = Case {
        adapter: "duckdb",
        class: ErrorClass::RuntimeData,
        sql: "select\n    id as customer_id,\n    cast(loyalty_points as double) as loyalty_points\nfrom {{ ref('raw_customers') }}\n",
        message: "Runtime Error in model p_bad_cast_double (models/probe/p_bad_cast_double.sql)\n  Conversion Error: Could not convert string 'n/a' to DOUBLE when casting from source column loyalty_points\n  \n  LINE 12:     cast(loyalty_points as double) as loyalty_points\n               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
    };
    assert_eq!(
        fix(&case),
        Some((
            "select\n    id as customer_id,\n    try_cast(loyalty_points as double) as loyalty_points\nfrom {{ ref('raw_customers') }}\n".to_owned(),
            "bad_cast"
        ))
    );
}

/// three casts, two of them to integer; the error names the column.
#[test]
fn duckdb_bad_cast_two() {
    let case = Case {
        adapter: "duckdb",
        class: ErrorClass::RuntimeData,
        sql: "select\n    cast(id as bigint) as customer_id,\n    cast(home_store_id as integer) as home_store_id,\n    cast(loyalty_points as integer) as loyalty_points\nfrom {{ ref('raw_customers') }}\n",
        message: "Runtime Error in model p_bad_cast_two (models/probe/p_bad_cast_two.sql)\n  Conversion Error: Could not convert string 'n/a' to INT32 when casting from source column loyalty_points\n  \n  LINE 13:     cast(loyalty_points as integer) as loyalty_points\n               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
    };
    assert_eq!(
        fix(&case),
        Some((
            "select\n    cast(id as bigint) as customer_id,\n    cast(home_store_id as integer) as home_store_id,\n    try_cast(loyalty_points as integer) as loyalty_points\nfrom {{ ref('raw_customers') }}\n".to_owned(),
            "bad_cast"
        ))
    );
}

/// a date between two integer literals.
#[test]
fn duckdb_between() {
    let case = Case {
        adapter: "duckdb",
        class: ErrorClass::TypeMismatch,
        sql: "select order_id\nfrom {{ ref('stg_orders') }}\nwhere order_date between 20240101 and 20241231\n",
        message: "Runtime Error in model p_between (models/probe/p_between.sql)\n  Binder Error: Cannot mix values of type DATE and INTEGER_LITERAL in BETWEEN clause - an explicit cast is required\n  \n  LINE 12: where order_date between 20240101 and 20241231\n                            ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
    };
    assert_eq!(
        fix(&case),
        Some((
            "select order_id\nfrom {{ ref('stg_orders') }}\nwhere order_date between date '2024-01-01' and date '2024-12-31'\n".to_owned(),
            "type_mismatch"
        ))
    );
}

/// a date compared with the integer 20240101 (the corpus case `type_mismatch`).
#[test]
fn duckdb_date_int() {
    let case = Case {
        adapter: "duckdb",
        class: ErrorClass::TypeMismatch,
        sql: "select order_id, order_date\nfrom {{ ref('stg_orders') }}\nwhere order_status = 'completed'\n  and order_date >= 20240101\n",
        message: "Runtime Error in model p_date_int (models/probe/p_date_int.sql)\n  Binder Error: Cannot compare values of type DATE and type INTEGER_LITERAL - an explicit cast is required\n  \n  LINE 13:   and order_date >= 20240101\n                 ^^^^^^^^^^^^^^^^^^^^^^",
    };
    assert_eq!(
        fix(&case),
        Some((
            "select order_id, order_date\nfrom {{ ref('stg_orders') }}\nwhere order_status = 'completed'\n  and order_date >= date '2024-01-01'\n".to_owned(),
            "type_mismatch"
        ))
    );
}

/// a VARCHAR column compared with a decimal literal.
#[test]
fn duckdb_dec_lit() {
    let case = Case {
        adapter: "duckdb",
        class: ErrorClass::TypeMismatch,
        sql: "select id\nfrom {{ ref('raw_customers') }}\nwhere loyalty_points >= 99.5\n",
        message: "Runtime Error in model p_dec_lit (models/probe/p_dec_lit.sql)\n  Binder Error: Cannot compare values of type VARCHAR and type DECIMAL(3,1) - an explicit cast is required\n  \n  LINE 12: where loyalty_points >= 99.5\n                 ^^^^^^^^^^^^^^^^^^^^^^",
    };
    assert_eq!(
        fix(&case),
        Some((
            "select id\nfrom {{ ref('raw_customers') }}\nwhere cast(loyalty_points as double) >= 99.5\n".to_owned(),
            "type_mismatch"
        ))
    );
}

/// a VARCHAR column equal to an integer literal.
#[test]
fn duckdb_eq_lit() {
    let case = Case {
        adapter: "duckdb",
        class: ErrorClass::RuntimeData,
        sql: "select id\nfrom {{ ref('raw_customers') }}\nwhere loyalty_points = 120\n",
        message: "Runtime Error in model p_eq_lit (models/probe/p_eq_lit.sql)\n  Conversion Error: Could not convert string 'n/a' to INT32 when casting from source column loyalty_points\n  \n  LINE 12: where loyalty_points = 120\n                 ^^^^^^^^^^^^^^",
    };
    assert_eq!(
        fix(&case),
        Some((
            "select id\nfrom {{ ref('raw_customers') }}\nwhere try_cast(loyalty_points as integer) = 120\n".to_owned(),
            "bad_cast"
        ))
    );
}

/// a VARCHAR status column equal to an integer literal: DuckDB casts the column
/// implicitly and meets the word 'completed'. The column holds categories, so the
/// literal (or the comparison) is the mistake: a `try_cast` would build and filter out
/// every row. Left to a person or an LLM (`duckdb_eq_lit` is the other side: 'n/a').
#[test]
fn duckdb_status_int() {
    let case = Case {
        adapter: "duckdb",
        class: ErrorClass::RuntimeData,
        sql: "select order_id, order_date\nfrom {{ ref('stg_orders') }}\nwhere order_status = 1\n",
        message: "Runtime Error in model p_status_int (models/probe/p_status_int.sql)\n  Conversion Error: Could not convert string 'completed' to INT32 when casting from source column order_status\n  \n  LINE 12: where order_status = 1\n                 ^^^^^^^^^^^^",
    };
    assert_eq!(fix(&case), None);
}

/// an integer column equal to the string 'abc' (the literal is the mistake).
#[test]
fn duckdb_str_lit_int_col() {
    let case = Case {
        adapter: "duckdb",
        class: ErrorClass::RuntimeData,
        sql: "select id\nfrom {{ ref('raw_customers') }}\nwhere home_store_id = 'abc'\n",
        message: "Runtime Error in model p_str_lit_int_col (models/probe/p_str_lit_int_col.sql)\n  Conversion Error: Could not convert string 'abc' to INT32\n  \n  LINE 12: where home_store_id = 'abc'\n                                 ^^^^^",
    };
    assert_eq!(fix(&case), None);
}

/// an integer literal compared with a VARCHAR column, literal first.
#[test]
fn duckdb_swap() {
    let case = Case {
        adapter: "duckdb",
        class: ErrorClass::TypeMismatch,
        sql: "select id\nfrom {{ ref('raw_customers') }}\nwhere 100 < loyalty_points\n",
        message: "Runtime Error in model p_swap (models/probe/p_swap.sql)\n  Binder Error: Cannot compare values of type INTEGER_LITERAL and type VARCHAR - an explicit cast is required\n  \n  LINE 12: where 100 < loyalty_points\n                 ^^^^^^^^^^^^^^^^^^^^",
    };
    assert_eq!(
        fix(&case),
        Some((
            "select id\nfrom {{ ref('raw_customers') }}\nwhere 100 < cast(loyalty_points as integer)\n".to_owned(),
            "type_mismatch"
        ))
    );
}

/// a timestamp compared with the integer 20240302.
#[test]
fn duckdb_ts_int() {
    let case = Case {
        adapter: "duckdb",
        class: ErrorClass::TypeMismatch,
        sql: "select order_id\nfrom {{ ref('stg_orders') }}\nwhere ordered_at < 20240302\n",
        message: "Runtime Error in model p_ts_int (models/probe/p_ts_int.sql)\n  Binder Error: Cannot compare values of type TIMESTAMP and type INTEGER_LITERAL - an explicit cast is required\n  \n  LINE 12: where ordered_at < 20240302\n                 ^^^^^^^^^^^^^^^^^^^^^",
    };
    assert_eq!(
        fix(&case),
        Some((
            "select order_id\nfrom {{ ref('stg_orders') }}\nwhere ordered_at < timestamp '2024-03-02'\n".to_owned(),
            "type_mismatch"
        ))
    );
}

/// a VARCHAR column joined to an integer column.
#[test]
fn duckdb_varchar_int_col() {
    let case = Case {
        adapter: "duckdb",
        class: ErrorClass::RuntimeData,
        sql: "select c.id, s.name\nfrom {{ ref('raw_customers') }} as c\ninner join {{ ref('raw_stores') }} as s on c.loyalty_points = s.seat_count\n",
        message: "Runtime Error in model p_varchar_int_col (models/probe/p_varchar_int_col.sql)\n  Conversion Error: Could not convert string 'n/a' to INT32 when casting from source column loyalty_points\n  \n  LINE 12: inner join \"coffee_shop\".\"main\".\"raw_stores\" as s on c.loyalty_points = s.seat_count\n                                                                ^^^^^^^^^^^^^^^^",
    };
    assert_eq!(
        fix(&case),
        Some((
            "select c.id, s.name\nfrom {{ ref('raw_customers') }} as c\ninner join {{ ref('raw_stores') }} as s on try_cast(c.loyalty_points as integer) = s.seat_count\n".to_owned(),
            "bad_cast"
        ))
    );
}

/// a VARCHAR column compared with an integer literal.
#[test]
fn duckdb_varchar_int_lit() {
    let case = Case {
        adapter: "duckdb",
        class: ErrorClass::TypeMismatch,
        sql: "select id, loyalty_points\nfrom {{ ref('raw_customers') }}\nwhere loyalty_points > 100\n",
        message: "Runtime Error in model p_varchar_int_lit (models/probe/p_varchar_int_lit.sql)\n  Binder Error: Cannot compare values of type VARCHAR and type INTEGER_LITERAL - an explicit cast is required\n  \n  LINE 12: where loyalty_points > 100\n                 ^^^^^^^^^^^^^^^^^^^^",
    };
    assert_eq!(
        fix(&case),
        Some((
            "select id, loyalty_points\nfrom {{ ref('raw_customers') }}\nwhere cast(loyalty_points as integer) > 100\n".to_owned(),
            "type_mismatch"
        ))
    );
}

/// a VARCHAR column plus an integer literal.
#[test]
fn postgres_arith() {
    let case = Case {
        adapter: "postgres",
        class: ErrorClass::TypeMismatch,
        sql: "select id, loyalty_points + 10 as boosted\nfrom {{ ref('raw_customers') }}\n",
        message: "Database Error in model p_arith (models/probe/p_arith.sql)\n  operator does not exist: text + integer\n  LINE 12:     select id, loyalty_points + 10 as boosted\n                                         ^\n  HINT:  No operator matches the given name and argument types. You might need to add explicit type casts.\n  compiled code at target/run/coffee_shop/models/probe/p_arith.sql",
    };
    assert_eq!(
        fix(&case),
        Some((
            "select id, cast(loyalty_points as integer) + 10 as boosted\nfrom {{ ref('raw_customers') }}\n".to_owned(),
            "type_mismatch"
        ))
    );
}

/// `cast(loyalty_points as integer)` over a column holding 'n/a'.
#[test]
fn postgres_bad_cast() {
    let case = Case {
        adapter: "postgres",
        class: ErrorClass::RuntimeData,
        sql: "select\n    id as customer_id,\n    cast(loyalty_points as integer) as loyalty_points\nfrom {{ ref('raw_customers') }}\n",
        message: "Database Error in model p_bad_cast (models/probe/p_bad_cast.sql)\n  invalid input syntax for type integer: \"n/a\"\n  compiled code at target/run/coffee_shop/models/probe/p_bad_cast.sql",
    };
    assert_eq!(
        fix(&case),
        Some((
            "select\n    id as customer_id,\n    case when loyalty_points ~ '^[[:space:]]*[+-]?[0-9]+[[:space:]]*$' then cast(loyalty_points as integer) end as loyalty_points\nfrom {{ ref('raw_customers') }}\n".to_owned(),
            "bad_cast"
        ))
    );
}

/// `loyalty_points::int` over a column holding 'n/a'.
#[test]
fn postgres_bad_cast_colon() {
    let case = Case {
        adapter: "postgres",
        class: ErrorClass::RuntimeData,
        sql: "select\n    id as customer_id,\n    loyalty_points::int as loyalty_points\nfrom {{ ref('raw_customers') }}\n",
        message: "Database Error in model p_bad_cast_colon (models/probe/p_bad_cast_colon.sql)\n  invalid input syntax for type integer: \"n/a\"\n  compiled code at target/run/coffee_shop/models/probe/p_bad_cast_colon.sql",
    };
    assert_eq!(
        fix(&case),
        Some((
            "select\n    id as customer_id,\n    case when loyalty_points ~ '^[[:space:]]*[+-]?[0-9]+[[:space:]]*$' then loyalty_points::int end as loyalty_points\nfrom {{ ref('raw_customers') }}\n".to_owned(),
            "bad_cast"
        ))
    );
}

/// a name cast to a date.
#[test]
fn postgres_bad_cast_date() {
    let case = Case {
        adapter: "postgres",
        class: ErrorClass::RuntimeData,
        sql: "select\n    id as customer_id,\n    cast(first_name as date) as signup\nfrom {{ ref('raw_customers') }}\n",
        message: "Database Error in model p_bad_cast_date (models/probe/p_bad_cast_date.sql)\n  invalid input syntax for type date: \"Ada\"\n  compiled code at target/run/coffee_shop/models/probe/p_bad_cast_date.sql",
    };
    assert_eq!(fix(&case), None);
}

/// three casts, two of them to integer; the error names the column.
#[test]
fn postgres_bad_cast_two() {
    let case = Case {
        adapter: "postgres",
        class: ErrorClass::RuntimeData,
        sql: "select\n    cast(id as bigint) as customer_id,\n    cast(home_store_id as integer) as home_store_id,\n    cast(loyalty_points as integer) as loyalty_points\nfrom {{ ref('raw_customers') }}\n",
        message: "Database Error in model p_bad_cast_two (models/probe/p_bad_cast_two.sql)\n  invalid input syntax for type integer: \"n/a\"\n  compiled code at target/run/coffee_shop/models/probe/p_bad_cast_two.sql",
    };
    assert_eq!(fix(&case), None);
}

/// a date between two integer literals.
#[test]
fn postgres_between() {
    let case = Case {
        adapter: "postgres",
        class: ErrorClass::TypeMismatch,
        sql: "with o as (\n    select id as order_id, cast(ordered_at as date) as order_date from {{ ref('raw_orders') }}\n)\nselect order_id\nfrom o\nwhere order_date between 20240101 and 20241231\n",
        message: "Database Error in model p_between (models/probe/p_between.sql)\n  operator does not exist: date >= integer\n  LINE 17: where order_date between 20240101 and 20241231\n                            ^\n  HINT:  No operator matches the given name and argument types. You might need to add explicit type casts.\n  compiled code at target/run/coffee_shop/models/probe/p_between.sql",
    };
    assert_eq!(
        fix(&case),
        Some((
            "with o as (\n    select id as order_id, cast(ordered_at as date) as order_date from {{ ref('raw_orders') }}\n)\nselect order_id\nfrom o\nwhere order_date between date '2024-01-01' and date '2024-12-31'\n".to_owned(),
            "type_mismatch"
        ))
    );
}

/// a date compared with the integer 20240101 (the corpus case `type_mismatch`).
#[test]
fn postgres_date_int() {
    let case = Case {
        adapter: "postgres",
        class: ErrorClass::TypeMismatch,
        sql: "with o as (\n    select id as order_id, cast(ordered_at as date) as order_date, status as order_status from {{ ref('raw_orders') }}\n)\nselect order_id, order_date\nfrom o\nwhere order_status = 'completed'\n  and order_date >= 20240101\n",
        message: "Database Error in model p_date_int (models/probe/p_date_int.sql)\n  operator does not exist: date >= integer\n  LINE 18:   and order_date >= 20240101\n                            ^\n  HINT:  No operator matches the given name and argument types. You might need to add explicit type casts.\n  compiled code at target/run/coffee_shop/models/probe/p_date_int.sql",
    };
    assert_eq!(
        fix(&case),
        Some((
            "with o as (\n    select id as order_id, cast(ordered_at as date) as order_date, status as order_status from {{ ref('raw_orders') }}\n)\nselect order_id, order_date\nfrom o\nwhere order_status = 'completed'\n  and order_date >= date '2024-01-01'\n".to_owned(),
            "type_mismatch"
        ))
    );
}

/// a date compared with the integer 20240101 in a CTE.
#[test]
fn postgres_date_int2() {
    let case = Case {
        adapter: "postgres",
        class: ErrorClass::TypeMismatch,
        sql: "with o as (\n    select id as order_id, cast(ordered_at as date) as order_date from {{ ref('raw_orders') }}\n)\nselect order_id\nfrom o\nwhere order_date >= 20240101\n",
        message: "Database Error in model p_date_int2 (models/probe/p_date_int2.sql)\n  operator does not exist: date >= integer\n  LINE 17: where order_date >= 20240101\n                            ^\n  HINT:  No operator matches the given name and argument types. You might need to add explicit type casts.\n  compiled code at target/run/coffee_shop/models/probe/p_date_int2.sql",
    };
    assert_eq!(
        fix(&case),
        Some((
            "with o as (\n    select id as order_id, cast(ordered_at as date) as order_date from {{ ref('raw_orders') }}\n)\nselect order_id\nfrom o\nwhere order_date >= date '2024-01-01'\n".to_owned(),
            "type_mismatch"
        ))
    );
}

/// a VARCHAR column compared with a decimal literal.
#[test]
fn postgres_dec_lit() {
    let case = Case {
        adapter: "postgres",
        class: ErrorClass::TypeMismatch,
        sql: "select id\nfrom {{ ref('raw_customers') }}\nwhere loyalty_points >= 99.5\n",
        message: "Database Error in model p_dec_lit (models/probe/p_dec_lit.sql)\n  operator does not exist: text >= numeric\n  LINE 14: where loyalty_points >= 99.5\n                                ^\n  HINT:  No operator matches the given name and argument types. You might need to add explicit type casts.\n  compiled code at target/run/coffee_shop/models/probe/p_dec_lit.sql",
    };
    assert_eq!(
        fix(&case),
        Some((
            "select id\nfrom {{ ref('raw_customers') }}\nwhere cast(loyalty_points as numeric) >= 99.5\n".to_owned(),
            "type_mismatch"
        ))
    );
}

/// a VARCHAR column equal to an integer literal.
#[test]
fn postgres_eq_lit() {
    let case = Case {
        adapter: "postgres",
        class: ErrorClass::TypeMismatch,
        sql: "select id\nfrom {{ ref('raw_customers') }}\nwhere loyalty_points = 120\n",
        message: "Database Error in model p_eq_lit (models/probe/p_eq_lit.sql)\n  operator does not exist: text = integer\n  LINE 14: where loyalty_points = 120\n                                ^\n  HINT:  No operator matches the given name and argument types. You might need to add explicit type casts.\n  compiled code at target/run/coffee_shop/models/probe/p_eq_lit.sql",
    };
    assert_eq!(
        fix(&case),
        Some((
            "select id\nfrom {{ ref('raw_customers') }}\nwhere cast(loyalty_points as integer) = 120\n".to_owned(),
            "type_mismatch"
        ))
    );
}

/// an integer column equal to the string 'abc' (the literal is the mistake).
#[test]
fn postgres_str_lit_int_col() {
    let case = Case {
        adapter: "postgres",
        class: ErrorClass::RuntimeData,
        sql: "select id\nfrom {{ ref('raw_customers') }}\nwhere home_store_id = 'abc'\n",
        message: "Database Error in model p_str_lit_int_col (models/probe/p_str_lit_int_col.sql)\n  invalid input syntax for type integer: \"abc\"\n  LINE 14: where home_store_id = 'abc'\n                                 ^\n  compiled code at target/run/coffee_shop/models/probe/p_str_lit_int_col.sql",
    };
    assert_eq!(fix(&case), None);
}

/// an integer literal compared with a VARCHAR column, literal first.
#[test]
fn postgres_swap() {
    let case = Case {
        adapter: "postgres",
        class: ErrorClass::TypeMismatch,
        sql: "select id\nfrom {{ ref('raw_customers') }}\nwhere 100 < loyalty_points\n",
        message: "Database Error in model p_swap (models/probe/p_swap.sql)\n  operator does not exist: integer < text\n  LINE 14: where 100 < loyalty_points\n                     ^\n  HINT:  No operator matches the given name and argument types. You might need to add explicit type casts.\n  compiled code at target/run/coffee_shop/models/probe/p_swap.sql",
    };
    assert_eq!(
        fix(&case),
        Some((
            "select id\nfrom {{ ref('raw_customers') }}\nwhere 100 < cast(loyalty_points as integer)\n".to_owned(),
            "type_mismatch"
        ))
    );
}

/// a timestamp compared with the integer 20240302.
#[test]
fn postgres_ts_int() {
    let case = Case {
        adapter: "postgres",
        class: ErrorClass::TypeMismatch,
        sql: "select id\nfrom {{ ref('raw_orders') }}\nwhere ordered_at < 20240302\n",
        message: "Database Error in model p_ts_int (models/probe/p_ts_int.sql)\n  operator does not exist: timestamp without time zone < integer\n  LINE 14: where ordered_at < 20240302\n                            ^\n  HINT:  No operator matches the given name and argument types. You might need to add explicit type casts.\n  compiled code at target/run/coffee_shop/models/probe/p_ts_int.sql",
    };
    assert_eq!(
        fix(&case),
        Some((
            "select id\nfrom {{ ref('raw_orders') }}\nwhere ordered_at < timestamp '2024-03-02'\n"
                .to_owned(),
            "type_mismatch"
        ))
    );
}

/// a VARCHAR column joined to an integer column.
#[test]
fn postgres_varchar_int_col() {
    let case = Case {
        adapter: "postgres",
        class: ErrorClass::TypeMismatch,
        sql: "select c.id, s.name\nfrom {{ ref('raw_customers') }} as c\ninner join {{ ref('raw_stores') }} as s on c.loyalty_points = s.seat_count\n",
        message: "Database Error in model p_varchar_int_col (models/probe/p_varchar_int_col.sql)\n  operator does not exist: text = integer\n  LINE 14: ...robe_types\".\"raw_stores\" as s on c.loyalty_points = s.seat_c...\n                                                                ^\n  HINT:  No operator matches the given name and argument types. You might need to add explicit type casts.\n  compiled code at target/run/coffee_shop/models/probe/p_varchar_int_col.sql",
    };
    assert_eq!(
        fix(&case),
        Some((
            "select c.id, s.name\nfrom {{ ref('raw_customers') }} as c\ninner join {{ ref('raw_stores') }} as s on cast(c.loyalty_points as integer) = s.seat_count\n".to_owned(),
            "type_mismatch"
        ))
    );
}

/// a VARCHAR column compared with an integer literal.
#[test]
fn postgres_varchar_int_lit() {
    let case = Case {
        adapter: "postgres",
        class: ErrorClass::TypeMismatch,
        sql: "select id, loyalty_points\nfrom {{ ref('raw_customers') }}\nwhere loyalty_points > 100\n",
        message: "Database Error in model p_varchar_int_lit (models/probe/p_varchar_int_lit.sql)\n  operator does not exist: text > integer\n  LINE 14: where loyalty_points > 100\n                                ^\n  HINT:  No operator matches the given name and argument types. You might need to add explicit type casts.\n  compiled code at target/run/coffee_shop/models/probe/p_varchar_int_lit.sql",
    };
    assert_eq!(
        fix(&case),
        Some((
            "select id, loyalty_points\nfrom {{ ref('raw_customers') }}\nwhere cast(loyalty_points as integer) > 100\n".to_owned(),
            "type_mismatch"
        ))
    );
}

/// a VARCHAR column plus an integer literal: the first fix met the dirty value.
#[test]
fn duckdb_arith_then_the_dirty_value() {
    let case = Case {
        adapter: "duckdb",
        class: ErrorClass::RuntimeData,
        sql: "select id, cast(loyalty_points as integer) + 10 as boosted\nfrom {{ ref('raw_customers') }}\n",
        message: "Runtime Error in model p_arith (models/probe/p_arith.sql)\n  Conversion Error: Could not convert string 'n/a' to INT32 when casting from source column loyalty_points\n  \n  LINE 10:       select id, cast(loyalty_points as integer) + 10 as boosted\n                            ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
    };
    assert_eq!(
        fix(&case),
        Some((
            "select id, try_cast(loyalty_points as integer) + 10 as boosted\nfrom {{ ref('raw_customers') }}\n".to_owned(),
            "bad_cast"
        ))
    );
}

/// a VARCHAR column compared with a decimal literal: the first fix met the dirty value.
#[test]
fn duckdb_dec_lit_then_the_dirty_value() {
    let case = Case {
        adapter: "duckdb",
        class: ErrorClass::RuntimeData,
        sql: "select id\nfrom {{ ref('raw_customers') }}\nwhere cast(loyalty_points as double) >= 99.5\n",
        message: "Runtime Error in model p_dec_lit (models/probe/p_dec_lit.sql)\n  Conversion Error: Could not convert string 'n/a' to DOUBLE when casting from source column loyalty_points\n  \n  LINE 12: where cast(loyalty_points as double) >= 99.5\n                 ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
    };
    assert_eq!(
        fix(&case),
        Some((
            "select id\nfrom {{ ref('raw_customers') }}\nwhere try_cast(loyalty_points as double) >= 99.5\n".to_owned(),
            "bad_cast"
        ))
    );
}

/// an integer literal compared with a VARCHAR column, literal first: the first fix met the dirty value.
#[test]
fn duckdb_swap_then_the_dirty_value() {
    let case = Case {
        adapter: "duckdb",
        class: ErrorClass::RuntimeData,
        sql: "select id\nfrom {{ ref('raw_customers') }}\nwhere 100 < cast(loyalty_points as integer)\n",
        message: "Runtime Error in model p_swap (models/probe/p_swap.sql)\n  Conversion Error: Could not convert string 'n/a' to INT32 when casting from source column loyalty_points\n  \n  LINE 12: where 100 < cast(loyalty_points as integer)\n                       ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
    };
    assert_eq!(
        fix(&case),
        Some((
            "select id\nfrom {{ ref('raw_customers') }}\nwhere 100 < try_cast(loyalty_points as integer)\n".to_owned(),
            "bad_cast"
        ))
    );
}

/// a VARCHAR column compared with an integer literal: the first fix met the dirty value.
#[test]
fn duckdb_varchar_int_lit_then_the_dirty_value() {
    let case = Case {
        adapter: "duckdb",
        class: ErrorClass::RuntimeData,
        sql: "select id, loyalty_points\nfrom {{ ref('raw_customers') }}\nwhere cast(loyalty_points as integer) > 100\n",
        message: "Runtime Error in model p_varchar_int_lit (models/probe/p_varchar_int_lit.sql)\n  Conversion Error: Could not convert string 'n/a' to INT32 when casting from source column loyalty_points\n  \n  LINE 12: where cast(loyalty_points as integer) > 100\n                 ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
    };
    assert_eq!(
        fix(&case),
        Some((
            "select id, loyalty_points\nfrom {{ ref('raw_customers') }}\nwhere try_cast(loyalty_points as integer) > 100\n".to_owned(),
            "bad_cast"
        ))
    );
}

/// a VARCHAR column plus an integer literal: the first fix met the dirty value.
#[test]
fn postgres_arith_then_the_dirty_value() {
    let case = Case {
        adapter: "postgres",
        class: ErrorClass::RuntimeData,
        sql: "select id, cast(loyalty_points as integer) + 10 as boosted\nfrom {{ ref('raw_customers') }}\n",
        message: "Database Error in model p_arith (models/probe/p_arith.sql)\n  invalid input syntax for type integer: \"n/a\"\n  compiled code at target/run/coffee_shop/models/probe/p_arith.sql",
    };
    assert_eq!(
        fix(&case),
        Some((
            "select id, case when loyalty_points ~ '^[[:space:]]*[+-]?[0-9]+[[:space:]]*$' then cast(loyalty_points as integer) end + 10 as boosted\nfrom {{ ref('raw_customers') }}\n".to_owned(),
            "bad_cast"
        ))
    );
}

/// a VARCHAR column compared with a decimal literal: the first fix met the dirty value.
#[test]
fn postgres_dec_lit_then_the_dirty_value() {
    let case = Case {
        adapter: "postgres",
        class: ErrorClass::RuntimeData,
        sql: "select id\nfrom {{ ref('raw_customers') }}\nwhere cast(loyalty_points as numeric) >= 99.5\n",
        message: "Database Error in model p_dec_lit (models/probe/p_dec_lit.sql)\n  invalid input syntax for type numeric: \"n/a\"\n  compiled code at target/run/coffee_shop/models/probe/p_dec_lit.sql",
    };
    assert_eq!(
        fix(&case),
        Some((
            "select id\nfrom {{ ref('raw_customers') }}\nwhere case when loyalty_points ~ '^[[:space:]]*[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?[[:space:]]*$' then cast(loyalty_points as numeric) end >= 99.5\n".to_owned(),
            "bad_cast"
        ))
    );
}

/// a VARCHAR column equal to an integer literal: the first fix met the dirty value.
#[test]
fn postgres_eq_lit_then_the_dirty_value() {
    let case = Case {
        adapter: "postgres",
        class: ErrorClass::RuntimeData,
        sql: "select id\nfrom {{ ref('raw_customers') }}\nwhere cast(loyalty_points as integer) = 120\n",
        message: "Database Error in model p_eq_lit (models/probe/p_eq_lit.sql)\n  invalid input syntax for type integer: \"n/a\"\n  compiled code at target/run/coffee_shop/models/probe/p_eq_lit.sql",
    };
    assert_eq!(
        fix(&case),
        Some((
            "select id\nfrom {{ ref('raw_customers') }}\nwhere case when loyalty_points ~ '^[[:space:]]*[+-]?[0-9]+[[:space:]]*$' then cast(loyalty_points as integer) end = 120\n".to_owned(),
            "bad_cast"
        ))
    );
}

/// an integer literal compared with a VARCHAR column, literal first: the first fix met the dirty value.
#[test]
fn postgres_swap_then_the_dirty_value() {
    let case = Case {
        adapter: "postgres",
        class: ErrorClass::RuntimeData,
        sql: "select id\nfrom {{ ref('raw_customers') }}\nwhere 100 < cast(loyalty_points as integer)\n",
        message: "Database Error in model p_swap (models/probe/p_swap.sql)\n  invalid input syntax for type integer: \"n/a\"\n  compiled code at target/run/coffee_shop/models/probe/p_swap.sql",
    };
    assert_eq!(
        fix(&case),
        Some((
            "select id\nfrom {{ ref('raw_customers') }}\nwhere 100 < case when loyalty_points ~ '^[[:space:]]*[+-]?[0-9]+[[:space:]]*$' then cast(loyalty_points as integer) end\n".to_owned(),
            "bad_cast"
        ))
    );
}

/// a VARCHAR column joined to an integer column: the first fix met the dirty value.
#[test]
fn postgres_varchar_int_col_then_the_dirty_value() {
    let case = Case {
        adapter: "postgres",
        class: ErrorClass::RuntimeData,
        sql: "select c.id, s.name\nfrom {{ ref('raw_customers') }} as c\ninner join {{ ref('raw_stores') }} as s on cast(c.loyalty_points as integer) = s.seat_count\n",
        message: "Database Error in model p_varchar_int_col (models/probe/p_varchar_int_col.sql)\n  invalid input syntax for type integer: \"n/a\"\n  compiled code at target/run/coffee_shop/models/probe/p_varchar_int_col.sql",
    };
    assert_eq!(
        fix(&case),
        Some((
            "select c.id, s.name\nfrom {{ ref('raw_customers') }} as c\ninner join {{ ref('raw_stores') }} as s on case when c.loyalty_points ~ '^[[:space:]]*[+-]?[0-9]+[[:space:]]*$' then cast(c.loyalty_points as integer) end = s.seat_count\n".to_owned(),
            "bad_cast"
        ))
    );
}

/// a VARCHAR column compared with an integer literal: the first fix met the dirty value.
#[test]
fn postgres_varchar_int_lit_then_the_dirty_value() {
    let case = Case {
        adapter: "postgres",
        class: ErrorClass::RuntimeData,
        sql: "select id, loyalty_points\nfrom {{ ref('raw_customers') }}\nwhere cast(loyalty_points as integer) > 100\n",
        message: "Database Error in model p_varchar_int_lit (models/probe/p_varchar_int_lit.sql)\n  invalid input syntax for type integer: \"n/a\"\n  compiled code at target/run/coffee_shop/models/probe/p_varchar_int_lit.sql",
    };
    assert_eq!(
        fix(&case),
        Some((
            "select id, loyalty_points\nfrom {{ ref('raw_customers') }}\nwhere case when loyalty_points ~ '^[[:space:]]*[+-]?[0-9]+[[:space:]]*$' then cast(loyalty_points as integer) end > 100\n".to_owned(),
            "bad_cast"
        ))
    );
}

/// Strings joined with `+` (`bikes_string_plus_concat`). The messages are DuckDB's
/// (duckdb 2.0.1 from the project's virtualenv) and PostgreSQL 15's for these statements;
/// each fixed statement ran in the same engine.
#[test]
fn strings_joined_with_plus_become_concatenations() {
    let duckdb = Case {
        adapter: "duckdb",
        class: ErrorClass::TypeMismatch,
        sql: "select\n    s.station_id,\n    s.station_name + ' (' + s.city + ')' as station_label,\n    s.dock_count + 1 as docks_and_one\nfrom {{ ref('stg_stations') }} as s\n",
        message: "Runtime Error in model station_utilization (models/marts/ops/station_utilization.sql)\n  Binder Error: No function matches the given name and argument types '+(VARCHAR, STRING_LITERAL)'. You might need to add explicit type casts.\n  \tCandidate functions:\n  \t\"+\"(x TINYINT, /) -> TINYINT\n",
    };
    assert_eq!(
        fix(&duckdb),
        Some((
            "select\n    s.station_id,\n    s.station_name || ' (' || s.city || ')' as station_label,\n    s.dock_count + 1 as docks_and_one\nfrom {{ ref('stg_stations') }} as s\n".to_owned(),
            "string_concat"
        ))
    );
    let postgres = Case {
        adapter: "postgres",
        class: ErrorClass::TypeMismatch,
        sql: "select s.city + ' (' + s.city + ')' as label from {{ ref('stations') }} s",
        message: "Database Error in model probe (models/probe/probe.sql)\n  operator does not exist: text + unknown\n  LINE 1: select s.city + ' (' + s.city + ')' as label from rules_probe.station...\n                        ^\n  HINT:  No operator matches the given name and argument types. You might need to add explicit type casts.",
    };
    assert_eq!(
        fix(&postgres),
        Some((
            "select s.city || ' (' || s.city || ')' as label from {{ ref('stations') }} s"
                .to_owned(),
            "string_concat"
        ))
    );
    // Two string columns: no literal says which `+` is meant.
    let columns_only = Case {
        adapter: "duckdb",
        class: ErrorClass::TypeMismatch,
        sql: "select s.station_name + s.city as label, s.a + s.b as total from {{ ref('stg_stations') }} as s\n",
        message: "Binder Error: No function matches the given name and argument types '+(VARCHAR, VARCHAR)'. You might need to add explicit type casts.",
    };
    assert_eq!(fix(&columns_only), None);
}
