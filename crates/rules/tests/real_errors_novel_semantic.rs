//! The semantic rules `double_quoted_string`, `alias_in_where`, `aggregate_in_where` and
//! `window_in_where` against error texts captured from real runs, each expected fix
//! proven by building it.
//!
//! How the texts were produced:
//!
//! - **DuckDB**: copies of `examples/coffee_shop` and `examples/bike_rentals` in a temp
//!   dir, dbt-core 1.11 with dbt-duckdb 1.11.1, built once; then each model was broken as
//!   its test shows, `dbt build --select <model> --profiles-dir .
//!   --exclude-resource-type test` run, and the `message` of the failed result in
//!   `target/run_results.json` copied verbatim. Every expected fix was then written into
//!   the model and built with `dbt build --select <model>` (data tests included): each
//!   one built and its tests passed.
//! - **PostgreSQL**: PostgreSQL 15.20 with dbt-postgres 1.11, a throwaway project (seed
//!   `raw_orders(order_id, customer_id, order_date, amount, status)`, a view
//!   `stg_orders` selecting all five, and a view `completed_flags(order_id, completed)`)
//!   on schema `semantic_probe_dbt`; each model is the one in its test, run with `dbt
//!   build`, and the message copied verbatim from `run_results.json`. Every expected fix
//!   was built the same way: each one built.
//!
//! Where a rule must refuse, the test says why: every case is one where a fix would be
//! a guess, or the adapter lacks what the fix needs. Every fix is also checked to leave
//! the model's Jinja untouched and not to come back once rejected.

mod common;

use common::Case;
use dbtops_rules::{ErrorClass, ParentColumns};

/// `revenue_daily` with `where order_status = "completed"`. The fix is the original model, which built.
#[test]
fn duckdb_double_quoted_value_becomes_a_string_literal() {
    let case = Case {
        class: ErrorClass::MissingColumn,
        adapter: "duckdb",
        model: "revenue_daily",
        message: "Runtime Error in model revenue_daily (models/marts/finance/revenue_daily.sql)\n  Binder Error: Referenced column \"completed\" not found in FROM clause!\n  Candidate bindings: \"customer_id\", \"ordered_at\", \"order_date\", \"order_total_cents\", \"coffee_amount\"\n  \n  LINE 19: where order_status = \"completed\"\n                                ^^^^^^^^^^^",
        sql: "select\n    order_date,\n    dayname(order_date) as day_of_week,\n    strftime(order_date, '%Y-%m') as order_month,\n    count(distinct order_id) as order_count,\n    sum(item_count) as items_sold,\n    sum(order_total) as revenue,\n    round(sum(order_total) / count(distinct order_id), 2) as average_order_value\nfrom {{ ref('orders') }}\nwhere order_status = \"completed\"\ngroup by order_date\n",
        parents: &[ParentColumns { name: "orders", columns: &["order_id", "customer_id", "store_id", "ordered_at", "order_date", "order_status", "item_count", "coffee_amount", "tea_amount", "pastry_amount", "order_total_cents", "order_total"] }],
    };
    case.fixes_to("double_quoted_string", "select\n    order_date,\n    dayname(order_date) as day_of_week,\n    strftime(order_date, '%Y-%m') as order_month,\n    count(distinct order_id) as order_count,\n    sum(item_count) as items_sold,\n    sum(order_total) as revenue,\n    round(sum(order_total) / count(distinct order_id), 2) as average_order_value\nfrom {{ ref('orders') }}\nwhere order_status = 'completed'\ngroup by order_date\n");
}

/// `revenue_daily` with `where order_status in ("completed", "returned")`: DuckDB names the first; the second is no column of `orders` either, so both become strings. The fixed SQL built with `dbt build`.
#[test]
fn duckdb_double_quoted_in_list_becomes_string_literals() {
    let case = Case {
        class: ErrorClass::MissingColumn,
        adapter: "duckdb",
        model: "revenue_daily",
        message: "Runtime Error in model revenue_daily (models/marts/finance/revenue_daily.sql)\n  Binder Error: Referenced column \"completed\" not found in FROM clause!\n  Candidate bindings: \"customer_id\", \"ordered_at\", \"order_date\", \"order_total_cents\", \"coffee_amount\"\n  \n  LINE 19: where order_status in (\"completed\", \"returned\")\n                                  ^^^^^^^^^^^",
        sql: "select\n    order_date,\n    dayname(order_date) as day_of_week,\n    strftime(order_date, '%Y-%m') as order_month,\n    count(distinct order_id) as order_count,\n    sum(item_count) as items_sold,\n    sum(order_total) as revenue,\n    round(sum(order_total) / count(distinct order_id), 2) as average_order_value\nfrom {{ ref('orders') }}\nwhere order_status in (\"completed\", \"returned\")\ngroup by order_date\n",
        parents: &[ParentColumns { name: "orders", columns: &["order_id", "customer_id", "store_id", "ordered_at", "order_date", "order_status", "item_count", "coffee_amount", "tea_amount", "pastry_amount", "order_total_cents", "order_total"] }],
    };
    case.fixes_to("double_quoted_string", "select\n    order_date,\n    dayname(order_date) as day_of_week,\n    strftime(order_date, '%Y-%m') as order_month,\n    count(distinct order_id) as order_count,\n    sum(item_count) as items_sold,\n    sum(order_total) as revenue,\n    round(sum(order_total) / count(distinct order_id), 2) as average_order_value\nfrom {{ ref('orders') }}\nwhere order_status in ('completed', 'returned')\ngroup by order_date\n");
}

/// The same breakage with no parent columns known (a parent without a catalog): the error proves `"completed"` no column, and `"returned"` sits in the same list of literals, so both become strings.
#[test]
fn duckdb_double_quoted_in_list_without_parent_columns() {
    let case = Case {
        class: ErrorClass::MissingColumn,
        adapter: "duckdb",
        model: "revenue_daily",
        message: "Runtime Error in model revenue_daily (models/marts/finance/revenue_daily.sql)\n  Binder Error: Referenced column \"completed\" not found in FROM clause!\n  Candidate bindings: \"customer_id\", \"ordered_at\", \"order_date\", \"order_total_cents\", \"coffee_amount\"\n  \n  LINE 19: where order_status in (\"completed\", \"returned\")\n                                  ^^^^^^^^^^^",
        sql: "select\n    order_date,\n    dayname(order_date) as day_of_week,\n    strftime(order_date, '%Y-%m') as order_month,\n    count(distinct order_id) as order_count,\n    sum(item_count) as items_sold,\n    sum(order_total) as revenue,\n    round(sum(order_total) / count(distinct order_id), 2) as average_order_value\nfrom {{ ref('orders') }}\nwhere order_status in (\"completed\", \"returned\")\ngroup by order_date\n",
        parents: &[],
    };
    case.fixes_to("double_quoted_string", "select\n    order_date,\n    dayname(order_date) as day_of_week,\n    strftime(order_date, '%Y-%m') as order_month,\n    count(distinct order_id) as order_count,\n    sum(item_count) as items_sold,\n    sum(order_total) as revenue,\n    round(sum(order_total) / count(distinct order_id), 2) as average_order_value\nfrom {{ ref('orders') }}\nwhere order_status in ('completed', 'returned')\ngroup by order_date\n");
}

/// dbt-postgres: `where status = "completed"`. The fixed SQL built with `dbt build`.
#[test]
fn postgres_double_quoted_value_becomes_a_string_literal() {
    let case = Case {
        class: ErrorClass::MissingColumn,
        adapter: "postgres",
        model: "completed_orders",
        message: "Database Error in model completed_orders (models/completed_orders.sql)\n  column \"completed\" does not exist\n  LINE 11: where status = \"completed\"\n                          ^\n  compiled code at target/run/pgprobe/models/completed_orders.sql",
        sql: "select\n    order_id,\n    amount\nfrom {{ ref('stg_orders') }}\nwhere status = \"completed\"\n",
        parents: &[ParentColumns { name: "stg_orders", columns: &["order_id", "customer_id", "order_date", "amount", "status"] }],
    };
    case.fixes_to("double_quoted_string", "select\n    order_id,\n    amount\nfrom {{ ref('stg_orders') }}\nwhere status = 'completed'\n");
}

/// dbt-postgres: `where f.completed = "complete"` next to a column `completed` (PostgreSQL even hints it): a value or a misspelt column — the rule cannot tell, and no rule may make it `f.completed = "completed"`, which compares the column with itself.
#[test]
fn postgres_double_quoted_word_near_a_column_is_refused() {
    let case = Case {
        class: ErrorClass::MissingColumn,
        adapter: "postgres",
        model: "flagged_orders",
        message: "Database Error in model flagged_orders (models/flagged_orders.sql)\n  column \"complete\" does not exist\n  LINE 10: where f.completed = \"complete\"\n                               ^\n  HINT:  Perhaps you meant to reference the column \"f.completed\".\n  compiled code at target/run/pgprobe/models/flagged_orders.sql",
        sql: "select\n    f.order_id\nfrom {{ ref('completed_flags') }} as f\nwhere f.completed = \"complete\"\n",
        parents: &[ParentColumns { name: "completed_flags", columns: &["order_id", "completed"] }],
    };
    case.refused();
}

/// dbt-postgres: `where o."completed" = true`: a qualified name is a column read through a relation, never a string.
#[test]
fn postgres_qualified_double_quoted_name_is_refused() {
    let case = Case {
        class: ErrorClass::MissingColumn,
        adapter: "postgres",
        model: "qualified_quoted",
        message: "Database Error in model qualified_quoted (models/qualified_quoted.sql)\n  column o.completed does not exist\n  LINE 10: where o.\"completed\" = true\n                 ^\n  compiled code at target/run/pgprobe/models/qualified_quoted.sql",
        sql: "select\n    o.order_id\nfrom {{ ref('stg_orders') }} as o\nwhere o.\"completed\" = true\n",
        parents: &[ParentColumns { name: "stg_orders", columns: &["order_id", "customer_id", "order_date", "amount", "status"] }],
    };
    case.refused();
}

/// `station_utilization`'s `ends` CTE with `and count(*) > 0` added to its WHERE. The fixed SQL built with `dbt build`.
#[test]
fn duckdb_aggregate_term_moves_to_a_new_having() {
    let case = Case {
        class: ErrorClass::MissingGroupBy,
        adapter: "duckdb",
        model: "station_utilization",
        message: "Runtime Error in model station_utilization (models/marts/ops/station_utilization.sql)\n  Binder Error: WHERE clause cannot contain aggregates!\n  \n  LINE 32:     where end_station_id is not null and count(*) > 0\n                                                    ^^^^^^^^",
        sql: "with stations as (\n    select\n        station_id,\n        station_name,\n        city,\n        dock_count\n    from {{ ref('stg_stations') }}\n),\n\nstarts as (\n    select\n        start_station_id as station_id,\n        count(*) as rentals_started\n    from {{ ref('fct_rentals') }}\n    group by start_station_id\n),\n\nends as (\n    select\n        end_station_id as station_id,\n        count(*) as rentals_ended\n    from {{ ref('fct_rentals') }}\n    where end_station_id is not null and count(*) > 0\n    group by end_station_id\n)\n\nselect\n    s.station_id,\n    s.station_name,\n    s.city,\n    s.dock_count,\n    coalesce(st.rentals_started, 0) as rentals_started,\n    coalesce(en.rentals_ended, 0) as rentals_ended,\n    coalesce(en.rentals_ended, 0) - coalesce(st.rentals_started, 0) as net_bike_flow,\n    -- the festival pop-up has no docks: bikes are left in a fenced corral\n    100 * coalesce(st.rentals_started, 0) // nullif(s.dock_count, 0) as starts_per_100_docks\nfrom stations as s\nleft join starts as st on s.station_id = st.station_id\nleft join ends as en on s.station_id = en.station_id\n",
        parents: &[ParentColumns { name: "stg_stations", columns: &["station_id", "station_name", "city", "dock_count"] }, ParentColumns { name: "fct_rentals", columns: &["rental_id", "bike_id", "bike_type", "member_id", "start_station_id", "start_station_name", "end_station_id", "end_station_name", "started_at", "ended_at", "rental_date", "duration_minutes", "is_round_trip", "rental_status", "payment_count", "paid_pence", "paid_amount", "used_voucher"] }],
    };
    case.fixes_to("aggregate_in_where", "with stations as (\n    select\n        station_id,\n        station_name,\n        city,\n        dock_count\n    from {{ ref('stg_stations') }}\n),\n\nstarts as (\n    select\n        start_station_id as station_id,\n        count(*) as rentals_started\n    from {{ ref('fct_rentals') }}\n    group by start_station_id\n),\n\nends as (\n    select\n        end_station_id as station_id,\n        count(*) as rentals_ended\n    from {{ ref('fct_rentals') }}\n    where end_station_id is not null\n    group by end_station_id\n    having count(*) > 0\n)\n\nselect\n    s.station_id,\n    s.station_name,\n    s.city,\n    s.dock_count,\n    coalesce(st.rentals_started, 0) as rentals_started,\n    coalesce(en.rentals_ended, 0) as rentals_ended,\n    coalesce(en.rentals_ended, 0) - coalesce(st.rentals_started, 0) as net_bike_flow,\n    -- the festival pop-up has no docks: bikes are left in a fenced corral\n    100 * coalesce(st.rentals_started, 0) // nullif(s.dock_count, 0) as starts_per_100_docks\nfrom stations as s\nleft join starts as st on s.station_id = st.station_id\nleft join ends as en on s.station_id = en.station_id\n");
}

/// `station_utilization`'s `starts` CTE given `where count(*) > 1`: the WHERE keeps nothing, so HAVING follows the GROUP BY and the WHERE goes. The fixed SQL built with `dbt build`.
#[test]
fn duckdb_lone_aggregate_condition_turns_where_into_having() {
    let case = Case {
        class: ErrorClass::MissingGroupBy,
        adapter: "duckdb",
        model: "station_utilization",
        message: "Runtime Error in model station_utilization (models/marts/ops/station_utilization.sql)\n  Binder Error: WHERE clause cannot contain aggregates!\n  \n  LINE 24:     where count(*) > 1\n                     ^^^^^^^^",
        sql: "with stations as (\n    select\n        station_id,\n        station_name,\n        city,\n        dock_count\n    from {{ ref('stg_stations') }}\n),\n\nstarts as (\n    select\n        start_station_id as station_id,\n        count(*) as rentals_started\n    from {{ ref('fct_rentals') }}\n    where count(*) > 1\n    group by start_station_id\n),\n\nends as (\n    select\n        end_station_id as station_id,\n        count(*) as rentals_ended\n    from {{ ref('fct_rentals') }}\n    where end_station_id is not null\n    group by end_station_id\n)\n\nselect\n    s.station_id,\n    s.station_name,\n    s.city,\n    s.dock_count,\n    coalesce(st.rentals_started, 0) as rentals_started,\n    coalesce(en.rentals_ended, 0) as rentals_ended,\n    coalesce(en.rentals_ended, 0) - coalesce(st.rentals_started, 0) as net_bike_flow,\n    -- the festival pop-up has no docks: bikes are left in a fenced corral\n    100 * coalesce(st.rentals_started, 0) // nullif(s.dock_count, 0) as starts_per_100_docks\nfrom stations as s\nleft join starts as st on s.station_id = st.station_id\nleft join ends as en on s.station_id = en.station_id\n",
        parents: &[ParentColumns { name: "stg_stations", columns: &["station_id", "station_name", "city", "dock_count"] }, ParentColumns { name: "fct_rentals", columns: &["rental_id", "bike_id", "bike_type", "member_id", "start_station_id", "start_station_name", "end_station_id", "end_station_name", "started_at", "ended_at", "rental_date", "duration_minutes", "is_round_trip", "rental_status", "payment_count", "paid_pence", "paid_amount", "used_voucher"] }],
    };
    case.fixes_to("aggregate_in_where", "with stations as (\n    select\n        station_id,\n        station_name,\n        city,\n        dock_count\n    from {{ ref('stg_stations') }}\n),\n\nstarts as (\n    select\n        start_station_id as station_id,\n        count(*) as rentals_started\n    from {{ ref('fct_rentals') }}\n    group by start_station_id\n    having count(*) > 1\n),\n\nends as (\n    select\n        end_station_id as station_id,\n        count(*) as rentals_ended\n    from {{ ref('fct_rentals') }}\n    where end_station_id is not null\n    group by end_station_id\n)\n\nselect\n    s.station_id,\n    s.station_name,\n    s.city,\n    s.dock_count,\n    coalesce(st.rentals_started, 0) as rentals_started,\n    coalesce(en.rentals_ended, 0) as rentals_ended,\n    coalesce(en.rentals_ended, 0) - coalesce(st.rentals_started, 0) as net_bike_flow,\n    -- the festival pop-up has no docks: bikes are left in a fenced corral\n    100 * coalesce(st.rentals_started, 0) // nullif(s.dock_count, 0) as starts_per_100_docks\nfrom stations as s\nleft join starts as st on s.station_id = st.station_id\nleft join ends as en on s.station_id = en.station_id\n");
}

/// `revenue_daily` with `and sum(order_total) > 0`. The fixed SQL built with `dbt build`.
#[test]
fn duckdb_aggregate_after_a_row_filter_in_a_top_level_select() {
    let case = Case {
        class: ErrorClass::MissingGroupBy,
        adapter: "duckdb",
        model: "revenue_daily",
        message: "Runtime Error in model revenue_daily (models/marts/finance/revenue_daily.sql)\n  Binder Error: WHERE clause cannot contain aggregates!\n  \n  LINE 19: where order_status = 'completed' and sum(order_total) > 0\n                                                ^^^^^^^^^^^^^^^^",
        sql: "select\n    order_date,\n    dayname(order_date) as day_of_week,\n    strftime(order_date, '%Y-%m') as order_month,\n    count(distinct order_id) as order_count,\n    sum(item_count) as items_sold,\n    sum(order_total) as revenue,\n    round(sum(order_total) / count(distinct order_id), 2) as average_order_value\nfrom {{ ref('orders') }}\nwhere order_status = 'completed' and sum(order_total) > 0\ngroup by order_date\n",
        parents: &[ParentColumns { name: "orders", columns: &["order_id", "customer_id", "store_id", "ordered_at", "order_date", "order_status", "item_count", "coffee_amount", "tea_amount", "pastry_amount", "order_total_cents", "order_total"] }],
    };
    case.fixes_to("aggregate_in_where", "select\n    order_date,\n    dayname(order_date) as day_of_week,\n    strftime(order_date, '%Y-%m') as order_month,\n    count(distinct order_id) as order_count,\n    sum(item_count) as items_sold,\n    sum(order_total) as revenue,\n    round(sum(order_total) / count(distinct order_id), 2) as average_order_value\nfrom {{ ref('orders') }}\nwhere order_status = 'completed'\ngroup by order_date\nhaving sum(order_total) > 0\n");
}

/// `revenue_daily` with `and order_total > avg(order_total)`: `order_total` is not grouped, so the author compares each row with an average (a window or a subquery), not a group with a bound.
#[test]
fn duckdb_row_compared_with_an_aggregate_is_refused() {
    let case = Case {
        class: ErrorClass::MissingGroupBy,
        adapter: "duckdb",
        model: "revenue_daily",
        message: "Runtime Error in model revenue_daily (models/marts/finance/revenue_daily.sql)\n  Binder Error: WHERE clause cannot contain aggregates!\n  \n  LINE 19: where order_status = 'completed' and order_total > avg(order_total)\n                                                              ^^^^^^^^^^^^^^^^",
        sql: "select\n    order_date,\n    dayname(order_date) as day_of_week,\n    strftime(order_date, '%Y-%m') as order_month,\n    count(distinct order_id) as order_count,\n    sum(item_count) as items_sold,\n    sum(order_total) as revenue,\n    round(sum(order_total) / count(distinct order_id), 2) as average_order_value\nfrom {{ ref('orders') }}\nwhere order_status = 'completed' and order_total > avg(order_total)\ngroup by order_date\n",
        parents: &[ParentColumns { name: "orders", columns: &["order_id", "customer_id", "store_id", "ordered_at", "order_date", "order_status", "item_count", "coffee_amount", "tea_amount", "pastry_amount", "order_total_cents", "order_total"] }],
    };
    case.refused();
}

/// dbt-postgres: `where status = 'completed' and sum(amount) > 100`. The fixed SQL built with `dbt build`.
#[test]
fn postgres_aggregate_term_moves_to_a_new_having() {
    let case = Case {
        class: ErrorClass::MissingGroupBy,
        adapter: "postgres",
        model: "customer_totals",
        message: "Database Error in model customer_totals (models/customer_totals.sql)\n  aggregate functions are not allowed in WHERE\n  LINE 12: where status = 'completed' and sum(amount) > 100\n                                          ^\n  compiled code at target/run/pgprobe/models/customer_totals.sql",
        sql: "select\n    customer_id,\n    count(*) as order_count,\n    sum(amount) as total_amount\nfrom {{ ref('stg_orders') }}\nwhere status = 'completed' and sum(amount) > 100\ngroup by customer_id\n",
        parents: &[ParentColumns { name: "stg_orders", columns: &["order_id", "customer_id", "order_date", "amount", "status"] }],
    };
    case.fixes_to("aggregate_in_where", "select\n    customer_id,\n    count(*) as order_count,\n    sum(amount) as total_amount\nfrom {{ ref('stg_orders') }}\nwhere status = 'completed'\ngroup by customer_id\nhaving sum(amount) > 100\n");
}

/// dbt-postgres: `where amount > avg(amount)` in a select grouped by `customer_id`.
#[test]
fn postgres_row_compared_with_an_aggregate_is_refused() {
    let case = Case {
        class: ErrorClass::MissingGroupBy,
        adapter: "postgres",
        model: "grouped_avg",
        message: "Database Error in model grouped_avg (models/grouped_avg.sql)\n  aggregate functions are not allowed in WHERE\n  LINE 11: where amount > avg(amount)\n                          ^\n  compiled code at target/run/pgprobe/models/grouped_avg.sql",
        sql: "select\n    customer_id,\n    count(*) as order_count\nfrom {{ ref('stg_orders') }}\nwhere amount > avg(amount)\ngroup by customer_id\n",
        parents: &[ParentColumns { name: "stg_orders", columns: &["order_id", "customer_id", "order_date", "amount", "status"] }],
    };
    case.refused();
}

/// `orders`' `orders` CTE given the usual dedup filter `where row_number() over (partition by order_id order by ordered_at desc) = 1`. The fixed SQL built with `dbt build`, tests included.
#[test]
fn duckdb_dedup_window_moves_to_qualify() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "duckdb",
        model: "orders",
        message: "Runtime Error in model orders (models/marts/orders.sql)\n  Binder Error: WHERE clause cannot contain window functions!\n  \n  LINE 19:     where row_number() over (partition by order_id order by ordered_at...\n                     ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
        sql: "{%- set categories = ['coffee', 'tea', 'pastry'] -%}\n\nwith orders as (\n    select\n        order_id,\n        customer_id,\n        store_id,\n        ordered_at,\n        order_date,\n        order_status\n    from {{ ref('stg_orders') }}\n    where row_number() over (partition by order_id order by ordered_at desc) = 1\n),\n\norder_items as (\n    select\n        order_item_id,\n        order_id,\n        product_sku,\n        quantity\n    from {{ ref('stg_order_items') }}\n),\n\nproducts as (\n    select\n        product_sku,\n        product_category,\n        unit_price_cents\n    from {{ ref('stg_products') }}\n),\n\nitem_amounts as (\n    select\n        oi.order_id,\n        p.product_category,\n        oi.quantity,\n        oi.quantity * p.unit_price_cents as amount_cents\n    from order_items as oi\n    inner join products as p on oi.product_sku = p.product_sku\n),\n\norder_totals as (\n    select\n        order_id,\n        sum(quantity) as item_count,\n        {%- for category in categories %}\n        sum(case when product_category = '{{ category }}' then amount_cents else 0 end) as {{ category }}_amount_cents,\n        {%- endfor %}\n        sum(amount_cents) as order_total_cents\n    from item_amounts\n    group by order_id\n)\n\nselect\n    o.order_id,\n    o.customer_id,\n    o.store_id,\n    o.ordered_at,\n    o.order_date,\n    o.order_status,\n    coalesce(t.item_count, 0) as item_count,\n    {%- for category in categories %}\n    {{ cents_to_dollars('coalesce(t.' ~ category ~ '_amount_cents, 0)') }} as {{ category }}_amount,\n    {%- endfor %}\n    coalesce(t.order_total_cents, 0) as order_total_cents,\n    {{ cents_to_dollars('coalesce(t.order_total_cents, 0)') }} as order_total\nfrom orders as o\nleft join order_totals as t on o.order_id = t.order_id\n",
        parents: &[ParentColumns { name: "stg_orders", columns: &["order_id", "customer_id", "store_id", "ordered_at", "order_date", "order_status"] }, ParentColumns { name: "stg_order_items", columns: &["order_item_id", "order_id", "product_sku", "quantity"] }, ParentColumns { name: "stg_products", columns: &["product_sku", "product_name", "product_category", "unit_price_cents"] }],
    };
    case.fixes_to("window_in_where", "{%- set categories = ['coffee', 'tea', 'pastry'] -%}\n\nwith orders as (\n    select\n        order_id,\n        customer_id,\n        store_id,\n        ordered_at,\n        order_date,\n        order_status\n    from {{ ref('stg_orders') }}\n    qualify row_number() over (partition by order_id order by ordered_at desc) = 1\n),\n\norder_items as (\n    select\n        order_item_id,\n        order_id,\n        product_sku,\n        quantity\n    from {{ ref('stg_order_items') }}\n),\n\nproducts as (\n    select\n        product_sku,\n        product_category,\n        unit_price_cents\n    from {{ ref('stg_products') }}\n),\n\nitem_amounts as (\n    select\n        oi.order_id,\n        p.product_category,\n        oi.quantity,\n        oi.quantity * p.unit_price_cents as amount_cents\n    from order_items as oi\n    inner join products as p on oi.product_sku = p.product_sku\n),\n\norder_totals as (\n    select\n        order_id,\n        sum(quantity) as item_count,\n        {%- for category in categories %}\n        sum(case when product_category = '{{ category }}' then amount_cents else 0 end) as {{ category }}_amount_cents,\n        {%- endfor %}\n        sum(amount_cents) as order_total_cents\n    from item_amounts\n    group by order_id\n)\n\nselect\n    o.order_id,\n    o.customer_id,\n    o.store_id,\n    o.ordered_at,\n    o.order_date,\n    o.order_status,\n    coalesce(t.item_count, 0) as item_count,\n    {%- for category in categories %}\n    {{ cents_to_dollars('coalesce(t.' ~ category ~ '_amount_cents, 0)') }} as {{ category }}_amount,\n    {%- endfor %}\n    coalesce(t.order_total_cents, 0) as order_total_cents,\n    {{ cents_to_dollars('coalesce(t.order_total_cents, 0)') }} as order_total\nfrom orders as o\nleft join order_totals as t on o.order_id = t.order_id\n");
}

/// `customers`' `completed_orders` CTE with `and row_number() over (partition by customer_id order by order_date desc) <= 3`. The fixed SQL built with `dbt build`.
#[test]
fn duckdb_window_term_moves_to_qualify_and_the_row_filter_stays() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "duckdb",
        model: "customers",
        message: "Runtime Error in model customers (models/marts/customers.sql)\n  Binder Error: WHERE clause cannot contain window functions!\n  \n  LINE 28:     where order_status = 'completed' and row_number() over (partition by customer_id order by order_...\n                                                    ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
        sql: "with customers as (\n    select\n        customer_id,\n        customer_name,\n        email,\n        signup_date,\n        home_store_id,\n        loyalty_points\n    from {{ ref('stg_customers') }}\n),\n\ncompleted_orders as (\n    select\n        order_id,\n        customer_id,\n        order_date,\n        order_total\n    from {{ ref('orders') }}\n    where order_status = 'completed' and row_number() over (partition by customer_id order by order_date desc) <= 3\n),\n\ncustomer_orders as (\n    select\n        customer_id,\n        min(order_date) as first_order_date,\n        max(order_date) as last_order_date,\n        count(*) as number_of_orders,\n        sum(order_total) as lifetime_value\n    from completed_orders\n    group by customer_id\n)\n\nselect\n    c.customer_id,\n    c.customer_name,\n    c.email,\n    c.signup_date,\n    c.home_store_id,\n    c.loyalty_points,\n    co.first_order_date,\n    co.last_order_date,\n    coalesce(co.number_of_orders, 0) as number_of_orders,\n    coalesce(co.lifetime_value, 0) as lifetime_value\nfrom customers as c\nleft join customer_orders as co on c.customer_id = co.customer_id\n",
        parents: &[ParentColumns { name: "stg_customers", columns: &["customer_id", "customer_name", "email", "signup_date", "home_store_id", "loyalty_points"] }, ParentColumns { name: "orders", columns: &["order_id", "customer_id", "store_id", "ordered_at", "order_date", "order_status", "item_count", "coffee_amount", "tea_amount", "pastry_amount", "order_total_cents", "order_total"] }],
    };
    case.fixes_to("window_in_where", "with customers as (\n    select\n        customer_id,\n        customer_name,\n        email,\n        signup_date,\n        home_store_id,\n        loyalty_points\n    from {{ ref('stg_customers') }}\n),\n\ncompleted_orders as (\n    select\n        order_id,\n        customer_id,\n        order_date,\n        order_total\n    from {{ ref('orders') }}\n    where order_status = 'completed'\n    qualify row_number() over (partition by customer_id order by order_date desc) <= 3\n),\n\ncustomer_orders as (\n    select\n        customer_id,\n        min(order_date) as first_order_date,\n        max(order_date) as last_order_date,\n        count(*) as number_of_orders,\n        sum(order_total) as lifetime_value\n    from completed_orders\n    group by customer_id\n)\n\nselect\n    c.customer_id,\n    c.customer_name,\n    c.email,\n    c.signup_date,\n    c.home_store_id,\n    c.loyalty_points,\n    co.first_order_date,\n    co.last_order_date,\n    coalesce(co.number_of_orders, 0) as number_of_orders,\n    coalesce(co.lifetime_value, 0) as lifetime_value\nfrom customers as c\nleft join customer_orders as co on c.customer_id = co.customer_id\n");
}

/// `revenue_daily` (grouped by `order_date`) with `and row_number() over (partition by order_date order by order_id) = 1`: QUALIFY would number groups, not the rows the author meant.
#[test]
fn duckdb_window_in_a_grouped_select_is_refused() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "duckdb",
        model: "revenue_daily",
        message: "Runtime Error in model revenue_daily (models/marts/finance/revenue_daily.sql)\n  Binder Error: WHERE clause cannot contain window functions!\n  \n  LINE 19: where order_status = 'completed' and row_number() over (partition by order_date order by order_id...\n                                                ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
        sql: "select\n    order_date,\n    dayname(order_date) as day_of_week,\n    strftime(order_date, '%Y-%m') as order_month,\n    count(distinct order_id) as order_count,\n    sum(item_count) as items_sold,\n    sum(order_total) as revenue,\n    round(sum(order_total) / count(distinct order_id), 2) as average_order_value\nfrom {{ ref('orders') }}\nwhere order_status = 'completed' and row_number() over (partition by order_date order by order_id) = 1\ngroup by order_date\n",
        parents: &[ParentColumns { name: "orders", columns: &["order_id", "customer_id", "store_id", "ordered_at", "order_date", "order_status", "item_count", "coffee_amount", "tea_amount", "pastry_amount", "order_total_cents", "order_total"] }],
    };
    case.refused();
}

/// `station_utilization`'s `ends` CTE with `and rank() over (order by end_station_id) = 1`.
#[test]
fn duckdb_window_in_a_grouped_cte_is_refused() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "duckdb",
        model: "station_utilization",
        message: "Runtime Error in model station_utilization (models/marts/ops/station_utilization.sql)\n  Binder Error: WHERE clause cannot contain window functions!\n  \n  LINE 32:     where end_station_id is not null and rank() over (order by end_station_id) = 1\n                                                    ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
        sql: "with stations as (\n    select\n        station_id,\n        station_name,\n        city,\n        dock_count\n    from {{ ref('stg_stations') }}\n),\n\nstarts as (\n    select\n        start_station_id as station_id,\n        count(*) as rentals_started\n    from {{ ref('fct_rentals') }}\n    group by start_station_id\n),\n\nends as (\n    select\n        end_station_id as station_id,\n        count(*) as rentals_ended\n    from {{ ref('fct_rentals') }}\n    where end_station_id is not null and rank() over (order by end_station_id) = 1\n    group by end_station_id\n)\n\nselect\n    s.station_id,\n    s.station_name,\n    s.city,\n    s.dock_count,\n    coalesce(st.rentals_started, 0) as rentals_started,\n    coalesce(en.rentals_ended, 0) as rentals_ended,\n    coalesce(en.rentals_ended, 0) - coalesce(st.rentals_started, 0) as net_bike_flow,\n    -- the festival pop-up has no docks: bikes are left in a fenced corral\n    100 * coalesce(st.rentals_started, 0) // nullif(s.dock_count, 0) as starts_per_100_docks\nfrom stations as s\nleft join starts as st on s.station_id = st.station_id\nleft join ends as en on s.station_id = en.station_id\n",
        parents: &[ParentColumns { name: "stg_stations", columns: &["station_id", "station_name", "city", "dock_count"] }, ParentColumns { name: "fct_rentals", columns: &["rental_id", "bike_id", "bike_type", "member_id", "start_station_id", "start_station_name", "end_station_id", "end_station_name", "started_at", "ended_at", "rental_date", "duration_minutes", "is_round_trip", "rental_status", "payment_count", "paid_pence", "paid_amount", "used_voucher"] }],
    };
    case.refused();
}

/// dbt-postgres: `where row_number() over (…) = 1`. PostgreSQL has no QUALIFY; the subquery it needs changes the select's shape.
#[test]
fn postgres_window_in_where_is_refused_without_qualify() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "postgres",
        model: "first_orders",
        message: "Database Error in model first_orders (models/first_orders.sql)\n  window functions are not allowed in WHERE\n  LINE 12: where row_number() over (partition by customer_id order by o...\n                 ^\n  compiled code at target/run/pgprobe/models/first_orders.sql",
        sql: "select\n    order_id,\n    customer_id,\n    order_date\nfrom {{ ref('stg_orders') }}\nwhere row_number() over (partition by customer_id order by order_date) = 1\n",
        parents: &[ParentColumns { name: "stg_orders", columns: &["order_id", "customer_id", "order_date", "amount", "status"] }],
    };
    case.refused();
}

/// dbt-postgres: `where amount_cents > 1000 and status_lc = 'completed'`, both aliases of the select list (DuckDB resolves them; PostgreSQL names the first). The parents' columns prove `status_lc` an alias too. The fixed SQL built with `dbt build`.
#[test]
fn postgres_aliases_in_where_become_their_expressions() {
    let case = Case {
        class: ErrorClass::MissingColumn,
        adapter: "postgres",
        model: "big_orders",
        message: "Database Error in model big_orders (models/big_orders.sql)\n  column \"amount_cents\" does not exist\n  LINE 13: where amount_cents > 1000 and status_lc = 'completed'\n                 ^\n  compiled code at target/run/pgprobe/models/big_orders.sql",
        sql: "select\n    order_id,\n    customer_id,\n    amount * 100 as amount_cents,\n    lower(status) as status_lc\nfrom {{ ref('stg_orders') }}\nwhere amount_cents > 1000 and status_lc = 'completed'\n",
        parents: &[ParentColumns { name: "stg_orders", columns: &["order_id", "customer_id", "order_date", "amount", "status"] }],
    };
    case.fixes_to("alias_in_where", "select\n    order_id,\n    customer_id,\n    amount * 100 as amount_cents,\n    lower(status) as status_lc\nfrom {{ ref('stg_orders') }}\nwhere (amount * 100) > 1000 and lower(status) = 'completed'\n");
}

/// dbt-postgres: `where order_month >= '2024-01-01'` with `date_trunc('month', order_date) as order_month`. The fixed SQL built with `dbt build`.
#[test]
fn postgres_alias_of_a_call_in_where_becomes_the_call() {
    let case = Case {
        class: ErrorClass::MissingColumn,
        adapter: "postgres",
        model: "order_days",
        message: "Database Error in model order_days (models/order_days.sql)\n  column \"order_month\" does not exist\n  LINE 11: where order_month >= '2024-01-01'\n                 ^\n  compiled code at target/run/pgprobe/models/order_days.sql",
        sql: "select\n    order_id,\n    date_trunc('month', order_date) as order_month\nfrom {{ ref('stg_orders') }}\nwhere order_month >= '2024-01-01'\n",
        parents: &[ParentColumns { name: "stg_orders", columns: &["order_id", "customer_id", "order_date", "amount", "status"] }],
    };
    case.fixes_to("alias_in_where", "select\n    order_id,\n    date_trunc('month', order_date) as order_month\nfrom {{ ref('stg_orders') }}\nwhere date_trunc('month', order_date) >= '2024-01-01'\n");
}

/// dbt-postgres: `having total_amount > 100` with `sum(amount) as total_amount`. The fixed SQL built with `dbt build`.
#[test]
fn postgres_aggregate_alias_in_having_becomes_the_aggregate() {
    let case = Case {
        class: ErrorClass::MissingColumn,
        adapter: "postgres",
        model: "customer_revenue",
        message: "Database Error in model customer_revenue (models/customer_revenue.sql)\n  column \"total_amount\" does not exist\n  LINE 12: having total_amount > 100\n                  ^\n  compiled code at target/run/pgprobe/models/customer_revenue.sql",
        sql: "select\n    customer_id,\n    sum(amount) as total_amount\nfrom {{ ref('stg_orders') }}\ngroup by customer_id\nhaving total_amount > 100\n",
        parents: &[ParentColumns { name: "stg_orders", columns: &["order_id", "customer_id", "order_date", "amount", "status"] }],
    };
    case.fixes_to("alias_in_where", "select\n    customer_id,\n    sum(amount) as total_amount\nfrom {{ ref('stg_orders') }}\ngroup by customer_id\nhaving sum(amount) > 100\n");
}

/// dbt-postgres: `where total_amount > 100` with `sum(amount) as total_amount`: written out it is an aggregate in WHERE; the fix would be a HAVING, which is a second decision the rule does not take on a missing-column error.
#[test]
fn postgres_aggregate_alias_in_where_is_refused() {
    let case = Case {
        class: ErrorClass::MissingColumn,
        adapter: "postgres",
        model: "customer_revenue_where",
        message: "Database Error in model customer_revenue_where (models/customer_revenue_where.sql)\n  column \"total_amount\" does not exist\n  LINE 11: where total_amount > 100\n                 ^\n  compiled code at target/run/pgprobe/models/customer_revenue_where.sql",
        sql: "select\n    customer_id,\n    sum(amount) as total_amount\nfrom {{ ref('stg_orders') }}\nwhere total_amount > 100\ngroup by customer_id\n",
        parents: &[ParentColumns { name: "stg_orders", columns: &["order_id", "customer_id", "order_date", "amount", "status"] }],
    };
    case.refused();
}
