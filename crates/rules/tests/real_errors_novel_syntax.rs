//! The rules for syntax breakages no earlier rule fixed — a semicolon that ends the
//! model (`trailing_semicolon`), an `and`/`or` joining a condition to nothing
//! (`dangling_connector`), `==` for `=` on PostgreSQL (`double_equals`) — against error
//! texts captured from real runs, each fix proven by running it; and a missing comma
//! between two CTEs, which `missing_comma` already fixed when this was probed.
//!
//! How the texts were produced:
//!
//! - **DuckDB**: a copy of `examples/coffee_shop` in a temp dir, built once, dbt-core
//!   1.11 with dbt-duckdb 1.11 from the repository's `.venv`. Each model below was added
//!   as `models/probe2/<model>.sql` exactly as its `sql` shows, then
//!   `dbt run --profiles-dir . --select path:models/probe2`, and the `message` of each
//!   failed result in `target/run_results.json` copied verbatim.
//! - **PostgreSQL**: PostgreSQL 15 on 127.0.0.1:5432, the same copy ported as
//!   `scripts/gen-fixtures.py --adapter postgres` ports it (sources in the target schema,
//!   no `try_cast`), seeds and staging models built with `--target postgres` into schema
//!   `nsx_probe`, then the same models run with `--target postgres`; messages verbatim
//!   from `run_results.json`. Where PostgreSQL's wording differs from DuckDB's (no
//!   `Parser Error:` prefix, one caret, `compiled code at …`) a case runs on both.
//!
//! Every expected fix below was written as a model of its own into the same projects
//! and run with `dbt run` on the adapter of its test: each one built. A `==` model built
//! on DuckDB as it was, which is why that rule is PostgreSQL's only.
//!
//! Where the rules must refuse, the test says why. Every fix is also checked to leave
//! the model's Jinja and string literals untouched and not to come back once rejected.

mod common;

use common::Case;
use dbtops_rules::ErrorClass;

/// A select ending in `;`: dbt's `create view … as (` wrapper then ends inside its parenthesis.
#[test]
fn duckdb_semicolon_at_the_end_of_a_view() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "duckdb",
        model: "p_semi_end",
        message: "Runtime Error in model p_semi_end (models/probe2/p_semi_end.sql)\n  Parser Error: syntax error at or near \";\"\n  \n  LINE 8: from \"coffee_shop\".\"main\".\"stg_orders\";\n                                                ^",
        sql: "select\n    order_id,\n    customer_id\nfrom {{ ref('stg_orders') }};\n",
        parents: &[],
    };
    case.fixes_to(
        "trailing_semicolon",
        "select\n    order_id,\n    customer_id\nfrom {{ ref('stg_orders') }}\n",
    );
}

/// `;` after the last select of a model with CTEs, a comment after it.
#[test]
fn duckdb_semicolon_after_the_final_select_of_ctes_with_a_comment_after_it() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "duckdb",
        model: "p_semi_cte",
        message: "Runtime Error in model p_semi_cte (models/probe2/p_semi_cte.sql)\n  Parser Error: syntax error at or near \";\"\n  \n  LINE 10: where customer_id > 1;\n                                ^",
        sql: "with o as (\n    select order_id, customer_id from {{ ref('stg_orders') }}\n)\n\nselect order_id from o\nwhere customer_id > 1;\n\n-- trailing comment\n",
        parents: &[],
    };
    case.fixes_to("trailing_semicolon", "with o as (\n    select order_id, customer_id from {{ ref('stg_orders') }}\n)\n\nselect order_id from o\nwhere customer_id > 1\n\n-- trailing comment\n");
}

/// `{% endif %};`: the semicolon is SQL, the tag renders nothing; the echo is only `;`.
#[test]
fn duckdb_semicolon_after_a_jinja_block() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "duckdb",
        model: "p_semi_jinja",
        message: "Runtime Error in model p_semi_jinja (models/probe2/p_semi_jinja.sql)\n  Parser Error: syntax error at or near \";\"\n  \n  LINE 7: ;\n          ^",
        sql: "select order_id\nfrom {{ ref('stg_orders') }}\n{% if is_incremental() %}\nwhere order_id > 1\n{% endif %};\n",
        parents: &[],
    };
    case.fixes_to("trailing_semicolon", "select order_id\nfrom {{ ref('stg_orders') }}\n{% if is_incremental() %}\nwhere order_id > 1\n{% endif %}\n");
}

/// A table materialization (`create table … as (`) fails the same way.
#[test]
fn duckdb_semicolon_at_the_end_of_a_table() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "duckdb",
        model: "q_semi_table",
        message: "Runtime Error in model q_semi_table (models/probe2/q_semi_table.sql)\n  Parser Error: syntax error at or near \";\"\n  \n  LINE 12: from \"coffee_shop\".\"main\".\"stg_orders\";\n                                                 ^",
        sql: "{{ config(materialized='table') }}\nselect order_id\nfrom {{ ref('stg_orders') }};\n",
        parents: &[],
    };
    case.fixes_to(
        "trailing_semicolon",
        "{{ config(materialized='table') }}\nselect order_id\nfrom {{ ref('stg_orders') }}\n",
    );
}

/// A query pasted into a CTE with its `;`, right before the CTE's `)`.
#[test]
fn duckdb_semicolon_inside_a_cte() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "duckdb",
        model: "r_semi_in_cte",
        message: "Runtime Error in model r_semi_in_cte (models/probe2/r_semi_in_cte.sql)\n  Parser Error: syntax error at or near \";\"\n  \n  LINE 6:     select order_id from \"coffee_shop\".\"main\".\"stg_orders\";\n                                                                    ^",
        sql: "with o as (\n    select order_id from {{ ref('stg_orders') }};\n)\nselect * from o\n",
        parents: &[],
    };
    case.fixes_to(
        "trailing_semicolon",
        "with o as (\n    select order_id from {{ ref('stg_orders') }}\n)\nselect * from o\n",
    );
}

/// The last condition deleted, its `and` left alone on the last line: DuckDB stops at dbt's `);`.
#[test]
fn duckdb_and_at_the_end_of_the_model() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "duckdb",
        model: "p_dangling_and",
        message: "Runtime Error in model p_dangling_and (models/probe2/p_dangling_and.sql)\n  Parser Error: syntax error at or near \")\"\n  \n  LINE 9:   );\n            ^",
        sql: "select order_id\nfrom {{ ref('stg_orders') }}\nwhere order_status = 'completed'\n  and\n",
        parents: &[],
    };
    case.fixes_to(
        "dangling_connector",
        "select order_id\nfrom {{ ref('stg_orders') }}\nwhere order_status = 'completed'\n",
    );
}

/// `where … and` right before `group by`.
#[test]
fn duckdb_and_before_group_by() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "duckdb",
        model: "p_dangling_and_group",
        message: "Runtime Error in model p_dangling_and_group (models/probe2/p_dangling_and_group.sql)\n  Parser Error: syntax error at or near \"group\"\n  \n  LINE 8: group by customer_id\n          ^^^^^",
        sql: "select customer_id, count(*) as n\nfrom {{ ref('stg_orders') }}\nwhere order_status = 'completed' and\ngroup by customer_id\n",
        parents: &[],
    };
    case.fixes_to("dangling_connector", "select customer_id, count(*) as n\nfrom {{ ref('stg_orders') }}\nwhere order_status = 'completed'\ngroup by customer_id\n");
}

/// `on a = b and` right before `where`.
#[test]
fn duckdb_and_at_the_end_of_a_join_condition() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "duckdb",
        model: "p_dangling_on",
        message: "Runtime Error in model p_dangling_on (models/probe2/p_dangling_on.sql)\n  Parser Error: syntax error at or near \"where\"\n  \n  LINE 8: where o.order_id > 0\n          ^^^^^",
        sql: "select o.order_id, c.customer_name\nfrom {{ ref('stg_orders') }} as o\nleft join {{ ref('stg_customers') }} as c on o.customer_id = c.customer_id and\nwhere o.order_id > 0\n",
        parents: &[],
    };
    case.fixes_to("dangling_connector", "select o.order_id, c.customer_name\nfrom {{ ref('stg_orders') }} as o\nleft join {{ ref('stg_customers') }} as c on o.customer_id = c.customer_id\nwhere o.order_id > 0\n");
}

/// `where … or` right before the `)` that closes a CTE.
#[test]
fn duckdb_or_before_the_closing_parenthesis_of_a_cte() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "duckdb",
        model: "p_dangling_or_paren",
        message: "Runtime Error in model p_dangling_or_paren (models/probe2/p_dangling_or_paren.sql)\n  Parser Error: syntax error at or near \")\"\n  \n  LINE 8: )\n          ^",
        sql: "with o as (\n    select order_id from {{ ref('stg_orders') }}\n    where order_status = 'completed' or\n)\nselect * from o\n",
        parents: &[],
    };
    case.fixes_to("dangling_connector", "with o as (\n    select order_id from {{ ref('stg_orders') }}\n    where order_status = 'completed'\n)\nselect * from o\n");
}

/// `where`, the first condition commented out, then `and …`.
#[test]
fn duckdb_and_after_a_commented_out_first_condition() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "duckdb",
        model: "q_leading_and",
        message: "Runtime Error in model q_leading_and (models/probe2/q_leading_and.sql)\n  Parser Error: syntax error at or near \"and\"\n  \n  LINE 9:     and order_status = 'completed'\n              ^^^",
        sql: "select order_id\nfrom {{ ref('stg_orders') }}\nwhere\n    -- order_id > 0\n    and order_status = 'completed'\n",
        parents: &[],
    };
    case.fixes_to("dangling_connector", "select order_id\nfrom {{ ref('stg_orders') }}\nwhere\n    -- order_id > 0\n    order_status = 'completed'\n");
}

/// `… and and …`: the second goes.
#[test]
fn duckdb_and_typed_twice() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "duckdb",
        model: "q_double_and",
        message: "Runtime Error in model q_double_and (models/probe2/q_double_and.sql)\n  Parser Error: syntax error at or near \"and\"\n  \n  LINE 7: where order_id > 0 and and order_status = 'completed'\n                                 ^^^",
        sql: "select order_id\nfrom {{ ref('stg_orders') }}\nwhere order_id > 0 and and order_status = 'completed'\n",
        parents: &[],
    };
    case.fixes_to("dangling_connector", "select order_id\nfrom {{ ref('stg_orders') }}\nwhere order_id > 0 and order_status = 'completed'\n");
}

/// `having … or` right before `order by`.
#[test]
fn duckdb_or_at_the_end_of_having() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "duckdb",
        model: "q_or_having",
        message: "Runtime Error in model q_or_having (models/probe2/q_or_having.sql)\n  Parser Error: syntax error at or near \"order\"\n  \n  LINE 9: order by customer_id\n          ^^^^^",
        sql: "select customer_id, count(*) as n\nfrom {{ ref('stg_orders') }}\ngroup by customer_id\nhaving count(*) > 1 or\norder by customer_id\n",
        parents: &[],
    };
    case.fixes_to("dangling_connector", "select customer_id, count(*) as n\nfrom {{ ref('stg_orders') }}\ngroup by customer_id\nhaving count(*) > 1\norder by customer_id\n");
}

/// `with o as (…) c as (…)`: the existing `missing_comma` rule already restores the comma.
#[test]
fn duckdb_missing_comma_between_ctes_is_already_fixed() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "duckdb",
        model: "p_cte_comma",
        message: "Runtime Error in model p_cte_comma (models/probe2/p_cte_comma.sql)\n  Parser Error: syntax error at or near \"c\"\n  \n  LINE 9: c as (\n          ^",
        sql: "with o as (\n    select order_id, customer_id from {{ ref('stg_orders') }}\n)\n\nc as (\n    select customer_id, customer_name from {{ ref('stg_customers') }}\n)\n\nselect o.order_id, c.customer_name from o left join c on o.customer_id = c.customer_id\n",
        parents: &[],
    };
    case.fixes_to("missing_comma", "with o as (\n    select order_id, customer_id from {{ ref('stg_orders') }}\n),\n\nc as (\n    select customer_id, customer_name from {{ ref('stg_customers') }}\n)\n\nselect o.order_id, c.customer_name from o left join c on o.customer_id = c.customer_id\n");
}

/// PostgreSQL's wording of the same: one caret, the line as rendered.
#[test]
fn postgres_semicolon_at_the_end_of_a_view() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "postgres",
        model: "p_semi_end",
        message: "Database Error in model p_semi_end (models/probe2/p_semi_end.sql)\n  syntax error at or near \";\"\n  LINE 10: from \"test\".\"nsx_probe\".\"stg_orders\";\n                                               ^\n  compiled code at target/run/coffee_shop/models/probe2/p_semi_end.sql",
        sql: "select\n    order_id,\n    customer_id\nfrom {{ ref('stg_orders') }};\n",
        parents: &[],
    };
    case.fixes_to(
        "trailing_semicolon",
        "select\n    order_id,\n    customer_id\nfrom {{ ref('stg_orders') }}\n",
    );
}

/// A query pasted into a CTE with its `;`.
#[test]
fn postgres_semicolon_inside_a_cte() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "postgres",
        model: "r_semi_in_cte",
        message: "Database Error in model r_semi_in_cte (models/probe2/r_semi_in_cte.sql)\n  syntax error at or near \";\"\n  LINE 8:     select order_id from \"test\".\"nsx_probe\".\"stg_orders\";\n                                                                  ^\n  compiled code at target/run/coffee_shop/models/probe2/r_semi_in_cte.sql",
        sql: "with o as (\n    select order_id from {{ ref('stg_orders') }};\n)\nselect * from o\n",
        parents: &[],
    };
    case.fixes_to(
        "trailing_semicolon",
        "with o as (\n    select order_id from {{ ref('stg_orders') }}\n)\nselect * from o\n",
    );
}

/// A table materialization.
#[test]
fn postgres_semicolon_at_the_end_of_a_table() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "postgres",
        model: "q_semi_table",
        message: "Database Error in model q_semi_table (models/probe2/q_semi_table.sql)\n  syntax error at or near \";\"\n  LINE 14: from \"test\".\"nsx_probe\".\"stg_orders\";\n                                               ^\n  compiled code at target/run/coffee_shop/models/probe2/q_semi_table.sql",
        sql: "{{ config(materialized='table') }}\nselect order_id\nfrom {{ ref('stg_orders') }};\n",
        parents: &[],
    };
    case.fixes_to(
        "trailing_semicolon",
        "{{ config(materialized='table') }}\nselect order_id\nfrom {{ ref('stg_orders') }}\n",
    );
}

/// PostgreSQL stops at dbt's `);` too.
#[test]
fn postgres_and_at_the_end_of_the_model() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "postgres",
        model: "p_dangling_and",
        message: "Database Error in model p_dangling_and (models/probe2/p_dangling_and.sql)\n  syntax error at or near \")\"\n  LINE 11:   );\n             ^\n  compiled code at target/run/coffee_shop/models/probe2/p_dangling_and.sql",
        sql: "select order_id\nfrom {{ ref('stg_orders') }}\nwhere order_status = 'completed'\n  and\n",
        parents: &[],
    };
    case.fixes_to(
        "dangling_connector",
        "select order_id\nfrom {{ ref('stg_orders') }}\nwhere order_status = 'completed'\n",
    );
}

/// PostgreSQL stops at the `and`.
#[test]
fn postgres_and_after_a_commented_out_first_condition() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "postgres",
        model: "q_leading_and",
        message: "Database Error in model q_leading_and (models/probe2/q_leading_and.sql)\n  syntax error at or near \"and\"\n  LINE 11:     and order_status = 'completed'\n               ^\n  compiled code at target/run/coffee_shop/models/probe2/q_leading_and.sql",
        sql: "select order_id\nfrom {{ ref('stg_orders') }}\nwhere\n    -- order_id > 0\n    and order_status = 'completed'\n",
        parents: &[],
    };
    case.fixes_to("dangling_connector", "select order_id\nfrom {{ ref('stg_orders') }}\nwhere\n    -- order_id > 0\n    order_status = 'completed'\n");
}

/// `where … and` right before `group by`.
#[test]
fn postgres_and_before_group_by() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "postgres",
        model: "p_dangling_and_group",
        message: "Database Error in model p_dangling_and_group (models/probe2/p_dangling_and_group.sql)\n  syntax error at or near \"group\"\n  LINE 10: group by customer_id\n           ^\n  compiled code at target/run/coffee_shop/models/probe2/p_dangling_and_group.sql",
        sql: "select customer_id, count(*) as n\nfrom {{ ref('stg_orders') }}\nwhere order_status = 'completed' and\ngroup by customer_id\n",
        parents: &[],
    };
    case.fixes_to("dangling_connector", "select customer_id, count(*) as n\nfrom {{ ref('stg_orders') }}\nwhere order_status = 'completed'\ngroup by customer_id\n");
}

/// `where … or` right before a CTE's `)`.
#[test]
fn postgres_or_before_the_closing_parenthesis_of_a_cte() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "postgres",
        model: "p_dangling_or_paren",
        message: "Database Error in model p_dangling_or_paren (models/probe2/p_dangling_or_paren.sql)\n  syntax error at or near \")\"\n  LINE 10: )\n           ^\n  compiled code at target/run/coffee_shop/models/probe2/p_dangling_or_paren.sql",
        sql: "with o as (\n    select order_id from {{ ref('stg_orders') }}\n    where order_status = 'completed' or\n)\nselect * from o\n",
        parents: &[],
    };
    case.fixes_to("dangling_connector", "with o as (\n    select order_id from {{ ref('stg_orders') }}\n    where order_status = 'completed'\n)\nselect * from o\n");
}

/// `==` for `=`: DuckDB accepts it (the same model built there), PostgreSQL has no such operator.
#[test]
fn postgres_double_equals() {
    let case = Case {
        class: ErrorClass::TypeMismatch,
        adapter: "postgres",
        model: "p_eqeq",
        message: "Database Error in model p_eqeq (models/probe2/p_eqeq.sql)\n  operator does not exist: text == unknown\n  LINE 9: where order_status == 'completed'\n                             ^\n  HINT:  No operator matches the given name and argument types. You might need to add explicit type casts.\n  compiled code at target/run/coffee_shop/models/probe2/p_eqeq.sql",
        sql: "select order_id\nfrom {{ ref('stg_orders') }}\nwhere order_status == 'completed'\n",
        parents: &[],
    };
    case.fixes_to(
        "double_equals",
        "select order_id\nfrom {{ ref('stg_orders') }}\nwhere order_status = 'completed'\n",
    );
}

/// `with o as (…) c as (…)`: the existing `missing_comma` rule already restores the comma.
#[test]
fn postgres_missing_comma_between_ctes_is_already_fixed() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "postgres",
        model: "p_cte_comma",
        message: "Database Error in model p_cte_comma (models/probe2/p_cte_comma.sql)\n  syntax error at or near \"c\"\n  LINE 11: c as (\n           ^\n  compiled code at target/run/coffee_shop/models/probe2/p_cte_comma.sql",
        sql: "with o as (\n    select order_id, customer_id from {{ ref('stg_orders') }}\n)\n\nc as (\n    select customer_id, customer_name from {{ ref('stg_customers') }}\n)\n\nselect o.order_id, c.customer_name from o left join c on o.customer_id = c.customer_id\n",
        parents: &[],
    };
    case.fixes_to("missing_comma", "with o as (\n    select order_id, customer_id from {{ ref('stg_orders') }}\n),\n\nc as (\n    select customer_id, customer_name from {{ ref('stg_customers') }}\n)\n\nselect o.order_id, c.customer_name from o left join c on o.customer_id = c.customer_id\n");
}

/// Two statements in one model: removing the first `;` would not make one, and which statement was meant is not known.
#[test]
fn duckdb_two_statements_are_not_one_with_a_semicolon_too_many() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "duckdb",
        model: "r_two_statements",
        message: "Runtime Error in model r_two_statements (models/probe2/r_two_statements.sql)\n  Parser Error: syntax error at or near \";\"\n  \n  LINE 5:     select order_id from \"coffee_shop\".\"main\".\"stg_orders\";\n                                                                    ^",
        sql: "select order_id from {{ ref('stg_orders') }};\nselect customer_id from {{ ref('stg_orders') }}\n",
        parents: &[],
    };
    case.refused();
}

/// The same on PostgreSQL.
#[test]
fn postgres_two_statements_are_not_one_with_a_semicolon_too_many() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "postgres",
        model: "r_two_statements",
        message: "Database Error in model r_two_statements (models/probe2/r_two_statements.sql)\n  syntax error at or near \";\"\n  LINE 7:     select order_id from \"test\".\"nsx_probe\".\"stg_orders\";\n                                                                  ^\n  compiled code at target/run/coffee_shop/models/probe2/r_two_statements.sql",
        sql: "select order_id from {{ ref('stg_orders') }};\nselect customer_id from {{ ref('stg_orders') }}\n",
        parents: &[],
    };
    case.refused();
}

/// `and` then a condition inside `{% if %}`: on runs where the block renders, the `and` is needed; the fix belongs inside the block, which the rule does not guess.
#[test]
fn duckdb_and_before_an_if_block_is_left_alone() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "duckdb",
        model: "r_and_before_if",
        message: "Runtime Error in model r_and_before_if (models/probe2/r_and_before_if.sql)\n  Parser Error: syntax error at or near \")\"\n  \n  LINE 9:   );\n            ^",
        sql: "select order_id\nfrom {{ ref('stg_orders') }}\nwhere order_id > 0 and\n{% if var('only_completed', false) %}\n    order_status = 'completed'\n{% endif %}\n",
        parents: &[],
    };
    case.refused();
}

/// The same on PostgreSQL.
#[test]
fn postgres_and_before_an_if_block_is_left_alone() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "postgres",
        model: "r_and_before_if",
        message: "Database Error in model r_and_before_if (models/probe2/r_and_before_if.sql)\n  syntax error at or near \")\"\n  LINE 11:   );\n             ^\n  compiled code at target/run/coffee_shop/models/probe2/r_and_before_if.sql",
        sql: "select order_id\nfrom {{ ref('stg_orders') }}\nwhere order_id > 0 and\n{% if var('only_completed', false) %}\n    order_status = 'completed'\n{% endif %}\n",
        parents: &[],
    };
    case.refused();
}

/// `between 1 and` lost its upper bound: removing `and` does not make a condition.
#[test]
fn duckdb_between_without_its_upper_bound_is_left_alone() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "duckdb",
        model: "r_between_dangling",
        message: "Runtime Error in model r_between_dangling (models/probe2/r_between_dangling.sql)\n  Parser Error: syntax error at or near \"order\"\n  \n  LINE 8: order by order_id\n          ^^^^^",
        sql: "select order_id\nfrom {{ ref('stg_orders') }}\nwhere order_id between 1 and\norder by order_id\n",
        parents: &[],
    };
    case.refused();
}

/// `and or`: which connector was meant is not known.
#[test]
fn duckdb_and_or_is_left_alone() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "duckdb",
        model: "r_and_or",
        message: "Runtime Error in model r_and_or (models/probe2/r_and_or.sql)\n  Parser Error: syntax error at or near \"or\"\n  \n  LINE 7: where order_id > 0 and or order_status = 'completed'\n                                 ^^",
        sql: "select order_id\nfrom {{ ref('stg_orders') }}\nwhere order_id > 0 and or order_status = 'completed'\n",
        parents: &[],
    };
    case.refused();
}

/// The same on PostgreSQL.
#[test]
fn postgres_and_or_is_left_alone() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "postgres",
        model: "r_and_or",
        message: "Database Error in model r_and_or (models/probe2/r_and_or.sql)\n  syntax error at or near \"or\"\n  LINE 9: where order_id > 0 and or order_status = 'completed'\n                                 ^\n  compiled code at target/run/coffee_shop/models/probe2/r_and_or.sql",
        sql: "select order_id\nfrom {{ ref('stg_orders') }}\nwhere order_id > 0 and or order_status = 'completed'\n",
        parents: &[],
    };
    case.refused();
}

/// `where order_id >` at the end: the missing operand cannot be known, and dropping the `>` would leave a non-boolean condition.
#[test]
fn duckdb_a_comparison_without_its_right_operand_is_left_alone() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "duckdb",
        model: "p_dangling_cmp",
        message: "Runtime Error in model p_dangling_cmp (models/probe2/p_dangling_cmp.sql)\n  Parser Error: syntax error at or near \")\"\n  \n  LINE 8:   );\n            ^",
        sql: "select order_id\nfrom {{ ref('stg_orders') }}\nwhere order_id >\n",
        parents: &[],
    };
    case.refused();
}

/// The same on PostgreSQL.
#[test]
fn postgres_a_comparison_without_its_right_operand_is_left_alone() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "postgres",
        model: "p_dangling_cmp",
        message: "Database Error in model p_dangling_cmp (models/probe2/p_dangling_cmp.sql)\n  syntax error at or near \")\"\n  LINE 10:   );\n             ^\n  compiled code at target/run/coffee_shop/models/probe2/p_dangling_cmp.sql",
        sql: "select order_id\nfrom {{ ref('stg_orders') }}\nwhere order_id >\n",
        parents: &[],
    };
    case.refused();
}

/// A comma after the last CTE. DuckDB builds it; PostgreSQL stops at the `select`. A real
/// dbt-postgres 1.11 run of this model alone (a one-model project, schema `pgp_probe`);
/// the fix was built there and passed.
#[test]
fn postgres_comma_after_the_last_cte() {
    let case = Case {
        class: ErrorClass::SqlSyntax,
        adapter: "postgres",
        model: "p_cte_trailing",
        message: "Database Error in model p_cte_trailing (models/p_cte_trailing.sql)\n  syntax error at or near \"select\"\n  LINE 11: select order_id from o\n           ^\n  compiled code at target/run/pgp/models/p_cte_trailing.sql",
        sql: "with o as (\n    select 1 as order_id\n),\n\nselect order_id from o\n",
        parents: &[],
    };
    case.fixes_to(
        "trailing_comma",
        "with o as (\n    select 1 as order_id\n)\n\nselect order_id from o\n",
    );
}
