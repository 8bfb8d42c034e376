//! Two syntax slips no rule fixed before — a keyword written twice in a row
//! (`doubled_keyword`) and a join's `using` without its parentheses
//! (`using_without_parentheses`) — against error texts captured from real runs, each
//! expected fix proven by building it.
//!
//! How the texts were produced:
//!
//! - **DuckDB**: a copy of `examples/coffee_shop` in a temp dir, built once with dbt-core
//!   1.11 and dbt-duckdb 1.11 from the repository's `.venv`. For each case one line of
//!   `models/marts/customers.sql` was broken as the test's [`customers`] call shows, then
//!   `dbt build --profiles-dir . --select customers+`, and the `message` of `customers`
//!   in `target/run_results.json` copied verbatim. Every expected fix was written back
//!   into the copy and built the same way: each one passed, its tests too.
//! - **PostgreSQL**: PostgreSQL on 127.0.0.1:5432, a throwaway dbt project with two
//!   views of literal rows (`base_customers`, `base_orders`) in its own schema (dropped
//!   afterwards), the broken models run with `dbt run` (dbt-postgres 1.11) and their
//!   messages copied verbatim; each expected fix built there.
//!
//! Where a rule must refuse, the test says why. Every fix is also checked to leave the
//! model's Jinja and string literals untouched and not to come back once rejected.

mod common;

use common::Case;
use dbtops_rules::ErrorClass;

/// `models/marts/customers.sql` of `examples/coffee_shop` as the texts were captured.
const CUSTOMERS: &str = "with customers as (\n    select\n        customer_id,\n        customer_name,\n        email,\n        signup_date,\n        home_store_id,\n        loyalty_points\n    from {{ ref('stg_customers') }}\n),\n\ncompleted_orders as (\n    select\n        order_id,\n        customer_id,\n        order_date,\n        order_total\n    from {{ ref('orders') }}\n    where order_status = 'completed'\n),\n\ncustomer_orders as (\n    select\n        customer_id,\n        min(order_date) as first_order_date,\n        max(order_date) as last_order_date,\n        count(*) as number_of_orders,\n        sum(order_total) as lifetime_value\n    from completed_orders\n    group by customer_id\n)\n\nselect\n    c.customer_id,\n    c.customer_name,\n    c.email,\n    c.signup_date,\n    c.home_store_id,\n    c.loyalty_points,\n    co.first_order_date,\n    co.last_order_date,\n    coalesce(co.number_of_orders, 0) as number_of_orders,\n    coalesce(co.lifetime_value, 0) as lifetime_value\nfrom customers as c\nleft join customer_orders as co on c.customer_id = co.customer_id\n";

/// The customers model with `line` written as `broken`; `line` occurs once.
fn customers(line: &str, broken: &str) -> &'static str {
    assert_eq!(CUSTOMERS.matches(line).count(), 1, "{line}");
    // A test's case outlives it only by the test: leaking is the simple way to `'static`.
    CUSTOMERS.replacen(line, broken, 1).leak()
}

fn duckdb(message: &'static str, sql: &'static str) -> Case {
    Case {
        class: ErrorClass::SqlSyntax,
        adapter: "duckdb",
        model: "customers",
        message,
        sql,
        parents: &[],
    }
}

fn postgres(model: &'static str, message: &'static str, sql: &'static str) -> Case {
    Case {
        class: ErrorClass::SqlSyntax,
        adapter: "postgres",
        model,
        message,
        sql,
        parents: &[],
    }
}

/// `min(order_date) as as first_order_date`: the parser stops at the alias.
#[test]
fn duckdb_as_written_twice_before_an_alias() {
    let case = duckdb(
        "Runtime Error in model customers (models/marts/customers.sql)\n  Parser Error: syntax error at or near \"first_order_date\"\n  \n  LINE 34:         min(order_date) as as first_order_date,\n                                         ^^^^^^^^^^^^^^^^",
        customers("        min(order_date) as first_order_date,", "        min(order_date) as as first_order_date,"),
    );
    case.fixes_to("doubled_keyword", CUSTOMERS);
}

/// `from from completed_orders`: the parser stops at the second `from`.
#[test]
fn duckdb_from_written_twice() {
    let case = duckdb(
        "Runtime Error in model customers (models/marts/customers.sql)\n  Parser Error: syntax error at or near \"from\"\n  \n  LINE 38:     from from completed_orders\n                    ^^^^",
        customers("    from completed_orders", "    from from completed_orders"),
    );
    case.fixes_to("doubled_keyword", CUSTOMERS);
}

/// `group group by`: the parser stops at the second `group`.
#[test]
fn duckdb_group_written_twice() {
    let case = duckdb(
        "Runtime Error in model customers (models/marts/customers.sql)\n  Parser Error: syntax error at or near \"group\"\n  \n  LINE 39:     group group by customer_id\n                     ^^^^^",
        customers("    group by customer_id", "    group group by customer_id"),
    );
    case.fixes_to("doubled_keyword", CUSTOMERS);
}

/// `group by by customer_id`: the parser stops at the column.
#[test]
fn duckdb_by_written_twice() {
    let case = duckdb(
        "Runtime Error in model customers (models/marts/customers.sql)\n  Parser Error: syntax error at or near \"customer_id\"\n  \n  LINE 39:     group by by customer_id\n                           ^^^^^^^^^^^",
        customers("    group by customer_id", "    group by by customer_id"),
    );
    case.fixes_to("doubled_keyword", CUSTOMERS);
}

/// `and and` in the `where` of a CTE: the parser stops at the second `and`. The
/// connector rule owns `and and`; the doubled keyword rule leaves it to it.
#[test]
fn duckdb_and_written_twice() {
    let case = duckdb(
        "Runtime Error in model customers (models/marts/customers.sql)\n  Parser Error: syntax error at or near \"and\"\n  \n  LINE 28:     where order_status = 'completed' and and order_total > 0\n                                                    ^^^",
        customers("    where order_status = 'completed'", "    where order_status = 'completed' and and order_total > 0"),
    );
    case.fixes_to(
        "dangling_connector",
        customers(
            "    where order_status = 'completed'",
            "    where order_status = 'completed' and order_total > 0",
        ),
    );
}

/// `on on` in the final join: the parser stops at the second `on`.
#[test]
fn duckdb_on_written_twice() {
    let case = duckdb(
        "Runtime Error in model customers (models/marts/customers.sql)\n  Parser Error: syntax error at or near \"on\"\n  \n  LINE 54: left join customer_orders as co on on c.customer_id = co.customer_id\n                                              ^^",
        customers("left join customer_orders as co on c.customer_id = co.customer_id", "left join customer_orders as co on on c.customer_id = co.customer_id"),
    );
    case.fixes_to("doubled_keyword", CUSTOMERS);
}

/// `left join join customer_orders`: the parser stops at the table.
#[test]
fn duckdb_join_written_twice() {
    let case = duckdb(
        "Runtime Error in model customers (models/marts/customers.sql)\n  Parser Error: syntax error at or near \"customer_orders\"\n  \n  LINE 54: left join join customer_orders as co on c.customer_id = co.customer_id\n                          ^^^^^^^^^^^^^^^",
        customers("left join customer_orders as co on c.customer_id = co.customer_id", "left join join customer_orders as co on c.customer_id = co.customer_id"),
    );
    case.fixes_to("doubled_keyword", CUSTOMERS);
}

/// Two aliases both written `as as`: removing the copy where the parser stopped leaves
/// the other, so no one removal makes the model parse.
#[test]
fn duckdb_two_doubled_words_are_refused() {
    let sql = customers("        min(order_date) as first_order_date,\n        max(order_date) as last_order_date,", "        min(order_date) as as first_order_date,\n        max(order_date) as as last_order_date,");
    duckdb("Runtime Error in model customers (models/marts/customers.sql)\n  Parser Error: syntax error at or near \"first_order_date\"\n  \n  LINE 34:         min(order_date) as as first_order_date,\n                                         ^^^^^^^^^^^^^^^^", sql).refused();
}

/// `left join customer_orders as co using customer_id`: the parser stops at the column.
#[test]
fn duckdb_using_without_parentheses() {
    let case = duckdb(
        "Runtime Error in model customers (models/marts/customers.sql)\n  Parser Error: syntax error at or near \"customer_id\"\n  \n  LINE 54: left join customer_orders as co using customer_id\n                                                 ^^^^^^^^^^^",
        customers("left join customer_orders as co on c.customer_id = co.customer_id", "left join customer_orders as co using customer_id"),
    );
    case.fixes_to(
        "using_without_parentheses",
        customers(
            "left join customer_orders as co on c.customer_id = co.customer_id",
            "left join customer_orders as co using (customer_id)",
        ),
    );
}

/// The same, a `where` after it: the list ends at the clause.
#[test]
fn duckdb_using_without_parentheses_before_where() {
    let case = duckdb(
        "Runtime Error in model customers (models/marts/customers.sql)\n  Parser Error: syntax error at or near \"customer_id\"\n  \n  LINE 54: left join customer_orders as co using customer_id\n                                                 ^^^^^^^^^^^",
        customers("left join customer_orders as co on c.customer_id = co.customer_id", "left join customer_orders as co using customer_id\nwhere c.loyalty_points >= 0"),
    );
    case.fixes_to(
        "using_without_parentheses",
        customers(
            "left join customer_orders as co on c.customer_id = co.customer_id",
            "left join customer_orders as co using (customer_id)\nwhere c.loyalty_points >= 0",
        ),
    );
}

/// Upper case: the fix adds only the parentheses.
#[test]
fn duckdb_upper_case_using_without_parentheses() {
    let case = duckdb(
        "Runtime Error in model customers (models/marts/customers.sql)\n  Parser Error: syntax error at or near \"customer_id\"\n  \n  LINE 54: LEFT JOIN customer_orders AS co USING customer_id\n                                                 ^^^^^^^^^^^",
        customers("left join customer_orders as co on c.customer_id = co.customer_id", "LEFT JOIN customer_orders AS co USING customer_id"),
    );
    case.fixes_to(
        "using_without_parentheses",
        customers(
            "left join customer_orders as co on c.customer_id = co.customer_id",
            "LEFT JOIN customer_orders AS co USING (customer_id)",
        ),
    );
}

/// PostgreSQL takes `as as` as a column named `as` and stops at the alias; one caret.
#[test]
fn postgres_as_written_twice_before_an_alias() {
    let case = postgres(
        "p_asas",
        "Database Error in model p_asas (models/p_asas.sql)\n  syntax error at or near \"first_order_date\"\n  LINE 10:         min(order_date) as as first_order_date\n                                         ^\n  compiled code at target/run/slips/models/p_asas.sql",
        "with customer_orders as (\n    select\n        customer_id,\n        min(order_date) as as first_order_date\n    from {{ ref('base_orders') }}\n    group by customer_id\n)\n\nselect customer_id, first_order_date\nfrom customer_orders\n",
    );
    case.fixes_to("doubled_keyword", "with customer_orders as (\n    select\n        customer_id,\n        min(order_date) as first_order_date\n    from {{ ref('base_orders') }}\n    group by customer_id\n)\n\nselect customer_id, first_order_date\nfrom customer_orders\n");
}

/// PostgreSQL stops at the second `from`; its echo shows the rendered relation.
#[test]
fn postgres_from_written_twice() {
    let case = postgres(
        "p_fromfrom",
        "Database Error in model p_fromfrom (models/p_fromfrom.sql)\n  syntax error at or near \"from\"\n  LINE 8: from from \"test\".\"slips_probe\".\"base_customers\"\n               ^\n  compiled code at target/run/slips/models/p_fromfrom.sql",
        "select customer_id, customer_name\nfrom from {{ ref('base_customers') }}\n",
    );
    case.fixes_to(
        "doubled_keyword",
        "select customer_id, customer_name\nfrom {{ ref('base_customers') }}\n",
    );
}

/// PostgreSQL stops at the column, as DuckDB does.
#[test]
fn postgres_using_without_parentheses() {
    let case = postgres(
        "p_using",
        "Database Error in model p_using (models/p_using.sql)\n  syntax error at or near \"customer_id\"\n  LINE 15: left join customer_orders as co using customer_id\n                                                 ^\n  compiled code at target/run/slips/models/p_using.sql",
        "with customer_orders as (\n    select customer_id, min(order_date) as first_order_date\n    from {{ ref('base_orders') }}\n    group by customer_id\n)\n\nselect c.customer_id, c.customer_name, co.first_order_date\nfrom {{ ref('base_customers') }} as c\nleft join customer_orders as co using customer_id\n",
    );
    case.fixes_to("using_without_parentheses", "with customer_orders as (\n    select customer_id, min(order_date) as first_order_date\n    from {{ ref('base_orders') }}\n    group by customer_id\n)\n\nselect c.customer_id, c.customer_name, co.first_order_date\nfrom {{ ref('base_customers') }} as c\nleft join customer_orders as co using (customer_id)\n");
}
