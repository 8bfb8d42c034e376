//! SQL Server date functions on DuckDB, from a probe of dbt 1.11 + DuckDB on a copy of
//! `examples/coffee_shop`: `datename(weekday, …)` in `revenue_daily`, and
//! `datediff(day, …, getdate())` in `stg_stores`. Each message is `run_results.json`'s,
//! verbatim; each expected fix was written into the copy and built with `dbt build`
//! (23 of 23 passed; `revenue_daily` and `store_revenue` equal the clean build's rows,
//! `days_open` equals `current_date - opened_on`).

mod common;

use common::Case;
use dbtops_rules::ErrorClass;

/// DuckDB has no `datename`; SQL Server's weekday name is DuckDB's `dayname`. The fix is
/// the clean model exactly. DuckDB's hint (`datepart`) is ignored.
#[test]
fn duckdb_sql_server_datename_weekday_becomes_dayname() {
    let case = Case {
        class: ErrorClass::UnknownFunction,
        adapter: "duckdb",
        model: "revenue_daily",
        message: "Runtime Error in model revenue_daily (models/marts/finance/revenue_daily.sql)\n  Catalog Error: Scalar Function with name datename does not exist!\n  Did you mean \"datepart\"?\n  \n  LINE 12:     datename(weekday, order_date) as day_of_week,\n               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
        sql: "select\n    order_date,\n    datename(weekday, order_date) as day_of_week,\n    strftime(order_date, '%Y-%m') as order_month,\n    count(distinct order_id) as order_count,\n    sum(item_count) as items_sold,\n    sum(order_total) as revenue,\n    round(sum(order_total) / count(distinct order_id), 2) as average_order_value\nfrom {{ ref('orders') }}\nwhere order_status = 'completed'\ngroup by order_date\n",
        parents: &[],
    };
    case.fixes_to("unknown_function", "select\n    order_date,\n    dayname(order_date) as day_of_week,\n    strftime(order_date, '%Y-%m') as order_month,\n    count(distinct order_id) as order_count,\n    sum(item_count) as items_sold,\n    sum(order_total) as revenue,\n    round(sum(order_total) / count(distinct order_id), 2) as average_order_value\nfrom {{ ref('orders') }}\nwhere order_status = 'completed'\ngroup by order_date\n");
}

/// The error names `getdate` only, but rewriting it alone left `datediff(day, …)`, whose
/// bare `day` DuckDB reads as a column (the next test's error): one proposal translates
/// both.
#[test]
fn duckdb_sql_server_datediff_and_getdate_are_translated_together() {
    let case = Case {
        class: ErrorClass::UnknownFunction,
        adapter: "duckdb",
        model: "stg_stores",
        message: "Runtime Error in model stg_stores (models/staging/stg_stores.sql)\n  Catalog Error: Scalar Function with name getdate does not exist!\n  Did you mean \"get_type\"?\n  \n  LINE 13:     datediff(day, cast(opened_at as date), getdate()) as days_open,\n                                                      ^^^^^^^^^",
        sql: "-- The raw tables are seeds; source() does not know that, so declare the edge.\n-- depends_on: {{ ref('raw_stores') }}\n\nselect\n    id as store_id,\n    name as store_name,\n    city,\n    cast(opened_at as date) as opened_on,\n    datediff(day, cast(opened_at as date), getdate()) as days_open,\n    seat_count\nfrom {{ source('coffee_shop_raw', 'raw_stores') }}\n",
        parents: &[],
    };
    case.fixes_to("unknown_function", "-- The raw tables are seeds; source() does not know that, so declare the edge.\n-- depends_on: {{ ref('raw_stores') }}\n\nselect\n    id as store_id,\n    name as store_name,\n    city,\n    cast(opened_at as date) as opened_on,\n    date_diff('day', cast(opened_at as date), current_timestamp) as days_open,\n    seat_count\nfrom {{ source('coffee_shop_raw', 'raw_stores') }}\n");
}

/// The model with `getdate()` alone replaced, as the earlier attempt left it: DuckDB now
/// reads `day` as a column and offers `city` and `name`. No rule may take one of those.
#[test]
fn duckdb_bare_datediff_part_read_as_a_column_is_refused() {
    let case = Case {
        class: ErrorClass::MissingColumn,
        adapter: "duckdb",
        model: "stg_stores",
        message: "Runtime Error in model stg_stores (models/staging/stg_stores.sql)\n  Binder Error: Referenced column \"day\" not found in FROM clause!\n  Candidate bindings: \"city\", \"name\"\n  \n  LINE 13:     datediff(day, cast(opened_at as date), current_timestamp) as days_open...\n                        ^^^",
        sql: "-- The raw tables are seeds; source() does not know that, so declare the edge.\n-- depends_on: {{ ref('raw_stores') }}\n\nselect\n    id as store_id,\n    name as store_name,\n    city,\n    cast(opened_at as date) as opened_on,\n    datediff(day, cast(opened_at as date), current_timestamp) as days_open,\n    seat_count\nfrom {{ source('coffee_shop_raw', 'raw_stores') }}\n",
        parents: &[],
    };
    case.refused();
}

/// SQL Server's `week` numbering has no exact DuckDB part: refused. The wording is the
/// real one's, for the edited line.
#[test]
fn duckdb_sql_server_datename_week_is_refused() {
    let case = Case {
        class: ErrorClass::UnknownFunction,
        adapter: "duckdb",
        model: "revenue_daily",
        message: "Runtime Error in model revenue_daily (models/marts/finance/revenue_daily.sql)\n  Catalog Error: Scalar Function with name datename does not exist!\n  Did you mean \"datepart\"?\n  \n  LINE 12:     datename(week, order_date) as day_of_week,\n               ^^^^^^^^^^^^^^^^^^^^^^^^^^",
        sql: "select\n    order_date,\n    datename(week, order_date) as day_of_week,\n    strftime(order_date, '%Y-%m') as order_month,\n    count(distinct order_id) as order_count,\n    sum(item_count) as items_sold,\n    sum(order_total) as revenue,\n    round(sum(order_total) / count(distinct order_id), 2) as average_order_value\nfrom {{ ref('orders') }}\nwhere order_status = 'completed'\ngroup by order_date\n",
        parents: &[],
    };
    case.refused();
}
