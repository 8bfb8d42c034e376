//! `reserved_alias` against error texts captured from real runs: a select item named
//! with a word the warehouse reserves — an alias written without `as`, or a column read
//! by that name alone — quoted so that the output column keeps its name.
//!
//! How the texts were produced:
//!
//! - **DuckDB**: a copy of `examples/coffee_shop` in a temp dir, built once, dbt-core
//!   1.11 with dbt-duckdb 1.11 (DuckDB 2.0.1) from the repository's `.venv`. Each model
//!   below was added as `models/probe/<model>.sql` exactly as its `sql` shows, then
//!   `dbt build --profiles-dir . --select path:models/probe`, and the `message` of each
//!   failed result in `target/run_results.json` copied verbatim.
//! - **PostgreSQL**: PostgreSQL 15 on 127.0.0.1:5432, the same copy ported as
//!   `scripts/gen-fixtures.py --adapter postgres` ports it, built with `--target
//!   postgres` into a schema of its own (dropped afterwards), then the same models;
//!   messages verbatim from `run_results.json`.
//!
//! Every expected fix below was written as a model of its own into the same projects
//! and built with `dbt build` on the adapter of its test: each one built, and its
//! columns, read back from the warehouse's catalog, carry the reserved word as the name
//! (`Order` on DuckDB, which keeps a name's case; `group` on PostgreSQL, which folds it).
//!
//! Measured on the way, and why some words have no case here: both warehouses take
//! every keyword after `as` (`sum(amount) as order` builds); PostgreSQL also takes
//! `user`, `end`, `select` and `date` as bare aliases (`customer_id user` builds — and
//! a bare `user` read as a column is `current_user`, silently); `date` is reserved
//! nowhere.

mod common;

use common::Case;
use dbtops_rules::{propose_fix, ErrorClass, ParentColumns};

const STG_ORDERS: &[ParentColumns<'static>] = &[ParentColumns {
    name: "stg_orders",
    columns: &[
        "order_id",
        "customer_id",
        "store_id",
        "ordered_at",
        "order_date",
        "order_status",
    ],
}];

const STG_CUSTOMERS: &[ParentColumns<'static>] = &[ParentColumns {
    name: "stg_customers",
    columns: &[
        "customer_id",
        "customer_name",
        "email",
        "signup_date",
        "home_store_id",
        "loyalty_points",
    ],
}];

const STG_ORDER_ITEMS: &[ParentColumns<'static>] = &[ParentColumns {
    name: "stg_order_items",
    columns: &["order_item_id", "order_id", "product_sku", "quantity"],
}];

/// An interval unit as an alias: DuckDB stops at the word itself.
#[test]
fn duckdb_day_as_a_bare_alias() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "duckdb",
        model: "d_day_alias",
        message: "Runtime Error in model d_day_alias (models/probe/d_day_alias.sql)\n  Parser Error: syntax error at or near \"day\"\n  \n  LINE 7:     cast(ordered_at as date) day,\n                                       ^^^",
        sql: "select\n    order_id,\n    cast(ordered_at as date) day,\n    order_status\nfrom {{ ref('stg_orders') }}\n",
        parents: STG_ORDERS,
    };
    case.fixes_to(
        "reserved_alias",
        "select\n    order_id,\n    cast(ordered_at as date) \"day\",\n    order_status\nfrom {{ ref('stg_orders') }}\n",
    );
}

/// `order` after a window: DuckDB reads it as `ORDER BY` and stops at the comma; the
/// echoed line is cut at its start.
#[test]
fn duckdb_order_after_a_window() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "duckdb",
        model: "d_order_alias",
        message: "Runtime Error in model d_order_alias (models/probe/d_order_alias.sql)\n  Parser Error: syntax error at or near \",\"\n  \n  LINE 8: ...() over (partition by customer_id order by ordered_at) order,\n                                                                         ^",
        sql: "select\n    order_id,\n    customer_id,\n    row_number() over (partition by customer_id order by ordered_at) order,\n    ordered_at\nfrom {{ ref('stg_orders') }}\n",
        parents: STG_ORDERS,
    };
    case.fixes_to(
        "reserved_alias",
        "select\n    order_id,\n    customer_id,\n    row_number() over (partition by customer_id order by ordered_at) \"order\",\n    ordered_at\nfrom {{ ref('stg_orders') }}\n",
    );
}

/// `end` as the last alias; PostgreSQL takes this model as it is.
#[test]
fn duckdb_end_as_the_last_alias() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "duckdb",
        model: "d_end_last",
        message: "Runtime Error in model d_end_last (models/probe/d_end_last.sql)\n  Parser Error: syntax error at or near \"end\"\n  \n  LINE 8:     max(ordered_at) end\n                              ^^^",
        sql: "select\n    customer_id,\n    min(ordered_at) as first_order_at,\n    max(ordered_at) end\nfrom {{ ref('stg_orders') }}\ngroup by customer_id\n",
        parents: STG_ORDERS,
    };
    case.fixes_to(
        "reserved_alias",
        "select\n    customer_id,\n    min(ordered_at) as first_order_at,\n    max(ordered_at) \"end\"\nfrom {{ ref('stg_orders') }}\ngroup by customer_id\n",
    );
}

/// A CTE names a column `group` with `as` (which builds); the final select reads it by
/// that name alone. The CTE's `as group` and its `case … end` stay as they are.
#[test]
fn duckdb_group_read_as_a_column() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "duckdb",
        model: "d_group_colref",
        message: "Runtime Error in model d_group_colref (models/probe/d_group_colref.sql)\n  Parser Error: syntax error at or near \",\"\n  \n  LINE 14:     group,\n                    ^",
        sql: "with grouped as (\n    select\n        customer_id,\n        case when customer_id % 2 = 0 then 'even' else 'odd' end as group\n    from {{ ref('stg_customers') }}\n)\n\nselect\n    customer_id,\n    group,\n    1 as weight\nfrom grouped\n",
        parents: STG_CUSTOMERS,
    };
    case.fixes_to(
        "reserved_alias",
        "with grouped as (\n    select\n        customer_id,\n        case when customer_id % 2 = 0 then 'even' else 'odd' end as group\n    from {{ ref('stg_customers') }}\n)\n\nselect\n    customer_id,\n    \"group\",\n    1 as weight\nfrom grouped\n",
    );
}

/// `limit` read as the last column: DuckDB stops at the `from` of the next line.
#[test]
fn duckdb_limit_read_as_the_last_column() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "duckdb",
        model: "d_limit_colref_last",
        message: "Runtime Error in model d_limit_colref_last (models/probe/d_limit_colref_last.sql)\n  Parser Error: syntax error at or near \"from\"\n  \n  LINE 15: from credit\n           ^^^^",
        sql: "with credit as (\n    select\n        customer_id,\n        loyalty_points * 10 as limit\n    from {{ ref('stg_customers') }}\n)\n\nselect\n    customer_id,\n    limit\nfrom credit\n",
        parents: STG_CUSTOMERS,
    };
    case.fixes_to(
        "reserved_alias",
        "with credit as (\n    select\n        customer_id,\n        loyalty_points * 10 as limit\n    from {{ ref('stg_customers') }}\n)\n\nselect\n    customer_id,\n    \"limit\"\nfrom credit\n",
    );
}

/// `offset` as the last alias: the echoed `from` line is the rendered `ref()`, which
/// the model does not hold; every `from` of the model is then a candidate stop.
#[test]
fn duckdb_offset_as_the_last_alias_before_a_rendered_ref() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "duckdb",
        model: "d_offset_alias_last",
        message: "Runtime Error in model d_offset_alias_last (models/probe/d_offset_alias_last.sql)\n  Parser Error: syntax error at or near \"from\"\n  \n  LINE 8: from \"coffee_shop\".\"main\".\"stg_orders\"\n          ^^^^",
        sql: "select\n    order_id,\n    order_id - 1000 offset\nfrom {{ ref('stg_orders') }}\n",
        parents: STG_ORDERS,
    };
    case.fixes_to(
        "reserved_alias",
        "select\n    order_id,\n    order_id - 1000 \"offset\"\nfrom {{ ref('stg_orders') }}\n",
    );
}

/// `from` and `to`: the warehouse stops at the first; the second, standing the same
/// way, would fail next, so both are quoted — the fix with only `from` quoted fails on
/// `to` when built.
#[test]
fn duckdb_from_and_to_are_quoted_together() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "duckdb",
        model: "d_from_to",
        message: "Runtime Error in model d_from_to (models/probe/d_from_to.sql)\n  Parser Error: syntax error at or near \",\"\n  \n  LINE 7:     min(order_date) from,\n                                  ^",
        sql: "select\n    customer_id,\n    min(order_date) from,\n    max(order_date) to\nfrom {{ ref('stg_orders') }}\ngroup by customer_id\n",
        parents: STG_ORDERS,
    };
    case.fixes_to(
        "reserved_alias",
        "select\n    customer_id,\n    min(order_date) \"from\",\n    max(order_date) \"to\"\nfrom {{ ref('stg_orders') }}\ngroup by customer_id\n",
    );
}

/// DuckDB keeps a name's case: `Order` stays `Order` inside the quotes (the built
/// model's column is `Order`).
#[test]
fn duckdb_keeps_the_case_of_the_word() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "duckdb",
        model: "d_upper_order",
        message: "Runtime Error in model d_upper_order (models/probe/d_upper_order.sql)\n  Parser Error: syntax error at or near \",\"\n  \n  LINE 7:     SUM(quantity) Order,\n                                 ^",
        sql: "SELECT\n    order_id,\n    SUM(quantity) Order,\n    COUNT(*) AS line_count\nFROM {{ ref('stg_order_items') }}\nGROUP BY order_id\n",
        parents: STG_ORDER_ITEMS,
    };
    case.fixes_to(
        "reserved_alias",
        "SELECT\n    order_id,\n    SUM(quantity) \"Order\",\n    COUNT(*) AS line_count\nFROM {{ ref('stg_order_items') }}\nGROUP BY order_id\n",
    );
}

/// `order` after a window on PostgreSQL: one caret on the comma.
#[test]
fn postgres_order_after_a_window() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "postgres",
        model: "p_order_alias",
        message: "Database Error in model p_order_alias (models/probe/p_order_alias.sql)\n  syntax error at or near \",\"\n  LINE 10: ...) over (partition by customer_id order by ordered_at) order,\n                                                                         ^\n  compiled code at target/run/coffee_shop/models/probe/p_order_alias.sql",
        sql: "select\n    order_id,\n    customer_id,\n    row_number() over (partition by customer_id order by ordered_at) order,\n    ordered_at\nfrom {{ ref('stg_orders') }}\n",
        parents: STG_ORDERS,
    };
    case.fixes_to(
        "reserved_alias",
        "select\n    order_id,\n    customer_id,\n    row_number() over (partition by customer_id order by ordered_at) \"order\",\n    ordered_at\nfrom {{ ref('stg_orders') }}\n",
    );
}

/// `year` is no bare label on PostgreSQL: it stops at the word.
#[test]
fn postgres_year_as_a_bare_alias() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "postgres",
        model: "p_year_alias",
        message: "Database Error in model p_year_alias (models/probe/p_year_alias.sql)\n  syntax error at or near \"year\"\n  LINE 9:     extract(year from ordered_at) year,\n                                            ^\n  compiled code at target/run/coffee_shop/models/probe/p_year_alias.sql",
        sql: "select\n    order_id,\n    extract(year from ordered_at) year,\n    order_status\nfrom {{ ref('stg_orders') }}\n",
        parents: STG_ORDERS,
    };
    case.fixes_to(
        "reserved_alias",
        "select\n    order_id,\n    extract(year from ordered_at) \"year\",\n    order_status\nfrom {{ ref('stg_orders') }}\n",
    );
}

/// `offset` read as the last column: PostgreSQL stops at the word (DuckDB at the
/// `from` after it).
#[test]
fn postgres_offset_read_as_the_last_column() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "postgres",
        model: "p_offset_colref_last",
        message: "Database Error in model p_offset_colref_last (models/probe/p_offset_colref_last.sql)\n  syntax error at or near \"offset\"\n  LINE 16:     offset\n               ^\n  compiled code at target/run/coffee_shop/models/probe/p_offset_colref_last.sql",
        sql: "with shifted as (\n    select\n        order_id,\n        order_id - 1000 as offset\n    from {{ ref('stg_orders') }}\n)\n\nselect\n    order_id,\n    offset\nfrom shifted\n",
        parents: STG_ORDERS,
    };
    case.fixes_to(
        "reserved_alias",
        "with shifted as (\n    select\n        order_id,\n        order_id - 1000 as offset\n    from {{ ref('stg_orders') }}\n)\n\nselect\n    order_id,\n    \"offset\"\nfrom shifted\n",
    );
}

/// PostgreSQL folds an unquoted name to lower case: `Group` is quoted as `"group"`
/// (the built model's column is `group`).
#[test]
fn postgres_folds_the_word_to_lower_case() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "postgres",
        model: "p_upper_group",
        message: "Database Error in model p_upper_group (models/probe/p_upper_group.sql)\n  syntax error at or near \",\"\n  LINE 9:     count(*) Group,\n                            ^\n  compiled code at target/run/coffee_shop/models/probe/p_upper_group.sql",
        sql: "select\n    customer_id,\n    count(*) Group,\n    max(ordered_at) as last_order_at\nfrom {{ ref('stg_orders') }}\ngroup by customer_id\n",
        parents: STG_ORDERS,
    };
    case.fixes_to(
        "reserved_alias",
        "select\n    customer_id,\n    count(*) \"group\",\n    max(ordered_at) as last_order_at\nfrom {{ ref('stg_orders') }}\ngroup by customer_id\n",
    );
}

/// `from` and `to` on PostgreSQL.
#[test]
fn postgres_from_and_to_are_quoted_together() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "postgres",
        model: "p_from_to",
        message: "Database Error in model p_from_to (models/probe/p_from_to.sql)\n  syntax error at or near \",\"\n  LINE 9:     min(order_date) from,\n                                  ^\n  compiled code at target/run/coffee_shop/models/probe/p_from_to.sql",
        sql: "select\n    customer_id,\n    min(order_date) from,\n    max(order_date) to\nfrom {{ ref('stg_orders') }}\ngroup by customer_id\n",
        parents: STG_ORDERS,
    };
    case.fixes_to(
        "reserved_alias",
        "select\n    customer_id,\n    min(order_date) \"from\",\n    max(order_date) \"to\"\nfrom {{ ref('stg_orders') }}\ngroup by customer_id\n",
    );
}

/// `limit` as the last alias: PostgreSQL stops at the rendered `from` line.
#[test]
fn postgres_limit_as_the_last_alias() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "postgres",
        model: "p_limit_alias_last",
        message: "Database Error in model p_limit_alias_last (models/probe/p_limit_alias_last.sql)\n  syntax error at or near \"from\"\n  LINE 10: from \"test\".\"ra_reserved_probe\".\"stg_customers\"\n           ^\n  compiled code at target/run/coffee_shop/models/probe/p_limit_alias_last.sql",
        sql: "select\n    customer_id,\n    loyalty_points * 10 limit\nfrom {{ ref('stg_customers') }}\n",
        parents: STG_CUSTOMERS,
    };
    case.fixes_to(
        "reserved_alias",
        "select\n    customer_id,\n    loyalty_points * 10 \"limit\"\nfrom {{ ref('stg_customers') }}\n",
    );
}

/// The same DuckDB text on an adapter whose folding and quoting were not measured:
/// Snowflake would need `"ORDER"` to keep the name, BigQuery backticks.
#[test]
fn unmeasured_adapters_are_refused() {
    for adapter in ["snowflake", "bigquery", "redshift"] {
        let case = Case {
            class: ErrorClass::SqlSyntax,
            adapter,
            model: "d_upper_order",
            message: "Runtime Error in model d_upper_order (models/probe/d_upper_order.sql)\n  Parser Error: syntax error at or near \",\"\n  \n  LINE 7:     SUM(quantity) Order,\n                                 ^",
            sql: "SELECT\n    order_id,\n    SUM(quantity) Order,\n    COUNT(*) AS line_count\nFROM {{ ref('stg_order_items') }}\nGROUP BY order_id\n",
            parents: STG_ORDER_ITEMS,
        };
        assert_ne!(
            propose_fix(&case.input()).map(|f| f.rule),
            Some("reserved_alias"),
            "{adapter}"
        );
    }
}

/// A reserved word as a table alias: the warehouses stop at the `.` after it. That is
/// no select item's name; no rule fires.
#[test]
fn a_table_alias_is_refused() {
    let cases = [
        Case {
            class: ErrorClass::SqlSyntax,
            adapter: "duckdb",
            model: "d_table_alias",
            message: "Runtime Error in model d_table_alias (models/probe/d_table_alias.sql)\n  Parser Error: syntax error at or near \".\"\n  \n  LINE 6:     order.order_id,\n                   ^",
            sql: "select\n    order.order_id,\n    order.order_status\nfrom {{ ref('stg_orders') }} as order\n",
            parents: STG_ORDERS,
        },
        Case {
            class: ErrorClass::SqlSyntax,
            adapter: "postgres",
            model: "p_table_alias",
            message: "Database Error in model p_table_alias (models/probe/p_table_alias.sql)\n  syntax error at or near \".\"\n  LINE 8:     user.order_id\n                  ^\n  compiled code at target/run/coffee_shop/models/probe/p_table_alias.sql",
            sql: "select\n    user.order_id\nfrom {{ ref('stg_orders') }} as user\n",
            parents: STG_ORDERS,
        },
    ];
    for case in cases {
        case.refused();
    }
}

/// The word follows `as`, which both warehouses take: the error is the missing comma
/// after it, and that is the fix.
#[test]
fn a_word_after_as_is_left_to_the_missing_comma() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "duckdb",
        model: "d_as_missing_comma",
        message: "Runtime Error in model d_as_missing_comma (models/probe/d_as_missing_comma.sql)\n  Parser Error: syntax error at or near \"count\"\n  \n  LINE 8:     count(*) as line_count\n              ^^^^^",
        sql: "select\n    order_id,\n    sum(quantity) as order\n    count(*) as line_count\nfrom {{ ref('stg_order_items') }}\ngroup by order_id\n",
        parents: STG_ORDER_ITEMS,
    };
    case.fixes_to(
        "missing_comma",
        "select\n    order_id,\n    sum(quantity) as order,\n    count(*) as line_count\nfrom {{ ref('stg_order_items') }}\ngroup by order_id\n",
    );
}

/// An `and` with nothing after it ends the item: a condition left unfinished, not a
/// name.
#[test]
fn a_dangling_and_is_no_alias() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "duckdb",
        model: "d_dangling_and",
        message: "Runtime Error in model d_dangling_and (models/probe/d_dangling_and.sql)\n  Parser Error: syntax error at or near \"from\"\n  \n  LINE 8: from \"coffee_shop\".\"main\".\"stg_orders\"\n          ^^^^",
        sql: "select\n    order_id,\n    order_status = 'completed' and\nfrom {{ ref('stg_orders') }}\n",
        parents: STG_ORDERS,
    };
    assert_ne!(
        propose_fix(&case.input()).map(|f| f.rule),
        Some("reserved_alias")
    );
}

/// `select distinct,` (a stray comma) and `count(*) over,` (the window left out): the
/// warehouses stop at the comma after a reserved word, but quoting it would invent a
/// column.
#[test]
fn a_modifier_or_a_missing_window_is_no_alias() {
    let cases = [
        Case {
            class: ErrorClass::SqlSyntax,
            adapter: "duckdb",
            model: "d_distinct_comma",
            message: "Runtime Error in model d_distinct_comma (models/probe/d_distinct_comma.sql)\n  Parser Error: syntax error at or near \",\"\n  \n  LINE 5:     select distinct,\n                             ^",
            sql: "select distinct,\n    customer_id,\n    store_id\nfrom {{ ref('stg_orders') }}\n",
            parents: STG_ORDERS,
        },
        Case {
            class: ErrorClass::SqlSyntax,
            adapter: "postgres",
            model: "p_distinct_comma",
            message: "Database Error in model p_distinct_comma (models/probe/p_distinct_comma.sql)\n  syntax error at or near \",\"\n  LINE 7:     select distinct,\n                             ^\n  compiled code at target/run/coffee_shop/models/probe/p_distinct_comma.sql",
            sql: "select distinct,\n    customer_id,\n    store_id\nfrom {{ ref('stg_orders') }}\n",
            parents: STG_ORDERS,
        },
        Case {
            class: ErrorClass::SqlSyntax,
            adapter: "duckdb",
            model: "d_over_missing",
            message: "Runtime Error in model d_over_missing (models/probe/d_over_missing.sql)\n  Parser Error: syntax error at or near \",\"\n  \n  LINE 7:     count(*) over,\n                           ^",
            sql: "select\n    order_id,\n    count(*) over,\n    customer_id\nfrom {{ ref('stg_orders') }}\n",
            parents: STG_ORDERS,
        },
        Case {
            class: ErrorClass::SqlSyntax,
            adapter: "postgres",
            model: "p_over_missing",
            message: "Database Error in model p_over_missing (models/probe/p_over_missing.sql)\n  syntax error at or near \",\"\n  LINE 9:     count(*) over,\n                           ^\n  compiled code at target/run/coffee_shop/models/probe/p_over_missing.sql",
            sql: "select\n    order_id,\n    count(*) over,\n    customer_id\nfrom {{ ref('stg_orders') }}\n",
            parents: STG_ORDERS,
        },
    ];
    for case in cases {
        assert_ne!(
            propose_fix(&case.input()).map(|f| f.rule),
            Some("reserved_alias"),
            "{}",
            case.model
        );
    }
}
