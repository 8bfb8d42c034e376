//! Rules against error texts of real dbt runs on probe models: a stray comma, a name
//! the warehouse suggests a spelling for, a `GROUP BY` deleted whole, a column read
//! through the wrong table alias.
//!
//! How the texts were produced: a copy of `examples/coffee_shop` with a folder
//! `models/probe` (materialized as tables) of models broken as each test shows, built
//! with dbt-core 1.11.16:
//!
//! - **DuckDB**: dbt-duckdb 1.11.1 (duckdb 2.0.1): `dbt seed`, `dbt run -s stg_orders
//!   stg_order_items`, `dbt run -s probe`; the text is the failed result's `message` in
//!   `target/run_results.json`, verbatim.
//! - **PostgreSQL**: PostgreSQL 15 with dbt-postgres 1.11.0 (`--target postgres`, a
//!   fresh `DBT_PG_SCHEMA`), the same seeds, staging views and probes.
//!
//! Every fix asserted here was written back into the probe and built again with dbt on
//! the adapter of its test: each one built. A `refused` case is one the rules must
//! leave to a person or an LLM; the test says why.

mod common;

use common::Case;
use dbtops_rules::{ErrorClass, ParentColumns};

/// The columns of the staging models the probes read, as the detector reports them.
const STG_ORDERS: ParentColumns<'static> = ParentColumns {
    name: "stg_orders",
    columns: &[
        "order_id",
        "customer_id",
        "store_id",
        "ordered_at",
        "order_date",
        "order_status",
    ],
};
const STG_ORDER_ITEMS: ParentColumns<'static> = ParentColumns {
    name: "stg_order_items",
    columns: &["order_item_id", "order_id", "product_sku", "quantity"],
};
const RAW_ORDER_ITEMS: ParentColumns<'static> = ParentColumns {
    name: "raw_order_items",
    columns: &["id", "order_id", "sku", "quantity"],
};

// ---------------------------------------------------------------------------------------
// A doubled or stray comma.

const DOUBLED_COMMA_SQL: &str = "select\n    customer_id,\n    count(*) as n,,\n    min(order_date) as first_order_date\nfrom {{ ref('stg_orders') }}\ngroup by customer_id\n";
const DOUBLED_COMMA_FIXED: &str = "select\n    customer_id,\n    count(*) as n,\n    min(order_date) as first_order_date\nfrom {{ ref('stg_orders') }}\ngroup by customer_id\n";

/// `count(*) as n,,`.
#[test]
fn duckdb_doubled_comma() {
    Case {
        class: ErrorClass::SqlSyntax,
        adapter: "duckdb",
        model: "p_double_comma",
        message: "Runtime Error in model p_double_comma (models/probe/p_double_comma.sql)\n  Parser Error: syntax error at or near \",\"\n  \n  LINE 12:     count(*) as n,,\n                             ^",
        sql: DOUBLED_COMMA_SQL,
        parents: &[],
    }
    .fixes_to("stray_comma", DOUBLED_COMMA_FIXED);
}

/// `count(*) as n,,`.
#[test]
fn postgres_doubled_comma() {
    Case {
        class: ErrorClass::SqlSyntax,
        adapter: "postgres",
        model: "p_double_comma",
        message: "Database Error in model p_double_comma (models/probe/p_double_comma.sql)\n  syntax error at or near \",\"\n  LINE 14:     count(*) as n,,\n                             ^\n  compiled code at target/run/coffee_shop/models/probe/p_double_comma.sql",
        sql: DOUBLED_COMMA_SQL,
        parents: &[],
    }
    .fixes_to("stray_comma", DOUBLED_COMMA_FIXED);
}

const STRAY_COMMA_SQL: &str = "select\n    customer_id,\n    count(*) as completed_orders\nfrom {{ ref('stg_orders') }}\nwhere order_status = 'completed',\ngroup by customer_id\n";
const STRAY_COMMA_FIXED: &str = "select\n    customer_id,\n    count(*) as completed_orders\nfrom {{ ref('stg_orders') }}\nwhere order_status = 'completed'\ngroup by customer_id\n";

/// `where order_status = 'completed',` before `group by`: the comma left behind when a
/// second condition was deleted.
#[test]
fn duckdb_comma_ending_a_where() {
    Case {
        class: ErrorClass::SqlSyntax,
        adapter: "duckdb",
        model: "p_stray_comma",
        message: "Runtime Error in model p_stray_comma (models/probe/p_stray_comma.sql)\n  Parser Error: syntax error at or near \",\"\n  \n  LINE 14: where order_status = 'completed',\n                                           ^",
        sql: STRAY_COMMA_SQL,
        parents: &[],
    }
    .fixes_to("stray_comma", STRAY_COMMA_FIXED);
}

/// The same on PostgreSQL.
#[test]
fn postgres_comma_ending_a_where() {
    Case {
        class: ErrorClass::SqlSyntax,
        adapter: "postgres",
        model: "p_stray_comma",
        message: "Database Error in model p_stray_comma (models/probe/p_stray_comma.sql)\n  syntax error at or near \",\"\n  LINE 16: where order_status = 'completed',\n                                           ^\n  compiled code at target/run/coffee_shop/models/probe/p_stray_comma.sql",
        sql: STRAY_COMMA_SQL,
        parents: &[],
    }
    .fixes_to("stray_comma", STRAY_COMMA_FIXED);
}

// ---------------------------------------------------------------------------------------
// A name the warehouse suggests a spelling for.

/// `day_name(order_date)`: DuckDB suggests `dayname`.
#[test]
fn duckdb_function_the_warehouse_suggests() {
    Case {
        class: ErrorClass::UnknownFunction,
        adapter: "duckdb",
        model: "p_day_name",
        message: "Runtime Error in model p_day_name (models/probe/p_day_name.sql)\n  Catalog Error: Scalar Function with name day_name does not exist!\n  Did you mean \"dayname\"?\n  \n  LINE 12:     day_name(order_date) as order_weekday\n               ^^^^^^^^^^^^^^^^^^^^",
        sql: "select\n    order_id,\n    day_name(order_date) as order_weekday\nfrom {{ ref('stg_orders') }}\n",
        parents: &[STG_ORDERS],
    }
    .fixes_to(
        "suggested_name",
        "select\n    order_id,\n    dayname(order_date) as order_weekday\nfrom {{ ref('stg_orders') }}\n",
    );
}

/// `day_name(order_date)` on PostgreSQL: no suggestion, and no table row.
#[test]
fn postgres_function_without_a_suggestion_is_refused() {
    Case {
        class: ErrorClass::UnknownFunction,
        adapter: "postgres",
        model: "p_day_name",
        message: "Database Error in model p_day_name (models/probe/p_day_name.sql)\n  function day_name(date) does not exist\n  LINE 14:     day_name(order_date) as order_weekday\n               ^\n  HINT:  No function matches the given name and argument types. You might need to add explicit type casts.\n  compiled code at target/run/coffee_shop/models/probe/p_day_name.sql",
        sql: "select\n    order_id,\n    day_name(order_date) as order_weekday\nfrom {{ ref('stg_orders') }}\n",
        parents: &[STG_ORDERS],
    }
    .refused();
}

/// `to_char(order_date, 'Q')` on DuckDB: the hint `to_hours` is another word, and the
/// format has no exact `strftime` code, so `unknown_function`'s table refuses too.
#[test]
fn duckdb_a_misleading_suggestion_is_not_taken() {
    Case {
        class: ErrorClass::UnknownFunction,
        adapter: "duckdb",
        model: "p_to_char",
        message: "Runtime Error in model p_to_char (models/probe/p_to_char.sql)\n  Catalog Error: Scalar Function with name to_char does not exist!\n  Did you mean \"to_hours\"?\n  \n  LINE 12:     to_char(order_date, 'Q') as weekday\n               ^^^^^^^^^^^^^^^^^^^^^^^^",
        sql: "select\n    order_id,\n    to_char(order_date, 'Q') as weekday\nfrom {{ ref('stg_orders') }}\n",
        parents: &[STG_ORDERS],
    }
    .refused();
}

const TYPE_TYPO_SQL: &str = "select\n    order_id,\n    cast(ordered_at as dat) as order_day\nfrom {{ ref('stg_orders') }}\n";
const TYPE_TYPO_FIXED: &str = "select\n    order_id,\n    cast(ordered_at as date) as order_day\nfrom {{ ref('stg_orders') }}\n";

/// `cast(ordered_at as dat)`: DuckDB suggests `date` (classified as a syntax error).
#[test]
fn duckdb_type_the_warehouse_suggests() {
    Case {
        class: ErrorClass::SqlSyntax,
        adapter: "duckdb",
        model: "p_type_typo",
        message: "Runtime Error in model p_type_typo (models/probe/p_type_typo.sql)\n  Catalog Error: Type with name dat does not exist!\n  Did you mean \"date\"?\n  \n  LINE 12:     cast(ordered_at as dat) as order_day\n                                  ^^^",
        sql: TYPE_TYPO_SQL,
        parents: &[STG_ORDERS],
    }
    .fixes_to("suggested_name", TYPE_TYPO_FIXED);
}

/// `cast(ordered_at as dat)`: PostgreSQL suggests nothing; `date` is the one type name
/// of its table within reach.
#[test]
fn postgres_type_nearest_in_the_type_table() {
    Case {
        class: ErrorClass::SqlSyntax,
        adapter: "postgres",
        model: "p_type_typo",
        message: "Database Error in model p_type_typo (models/probe/p_type_typo.sql)\n  type \"dat\" does not exist\n  LINE 14:     cast(ordered_at as dat) as order_day\n                                  ^\n  compiled code at target/run/coffee_shop/models/probe/p_type_typo.sql",
        sql: TYPE_TYPO_SQL,
        parents: &[STG_ORDERS],
    }
    .fixes_to("suggested_name", TYPE_TYPO_FIXED);
}

/// `from {{ target.schema }}.stg_ordrs`: not a `ref()` the hard-coded-relation rule can
/// write (the schema is Jinja), so DuckDB's suggestion is taken.
#[test]
fn duckdb_table_the_warehouse_suggests() {
    Case {
        class: ErrorClass::UnknownRelation,
        adapter: "duckdb",
        model: "p_table_typo",
        message: "Runtime Error in model p_table_typo (models/probe/p_table_typo.sql)\n  Catalog Error: Table with name stg_ordrs does not exist!\n  Did you mean \"stg_orders\"?\n  \n  LINE 11: from main.stg_ordrs\n                ^^^^^^^^^^^^^^",
        sql: "select order_id\nfrom {{ target.schema }}.stg_ordrs\n",
        parents: &[],
    }
    .fixes_to(
        "suggested_name",
        "select order_id\nfrom {{ target.schema }}.stg_orders\n",
    );
}

/// `o.ordr_status` with no parents known: PostgreSQL's one hint is enough for
/// `misspelt_column`, which scores hints like parent columns.
#[test]
fn postgres_column_hint_alone() {
    Case {
        class: ErrorClass::MissingColumn,
        adapter: "postgres",
        model: "p_col_typo",
        message: "Database Error in model p_col_typo (models/probe/p_col_typo.sql)\n  column o.ordr_status does not exist\n  LINE 15: select o.order_id, o.ordr_status\n                              ^\n  HINT:  Perhaps you meant to reference the column \"o.order_status\".\n  compiled code at target/run/coffee_shop/models/probe/p_col_typo.sql",
        sql: "with o as (\n    select order_id, order_status from {{ ref('stg_orders') }}\n)\nselect o.order_id, o.ordr_status\nfrom o\n",
        parents: &[],
    }
    .fixes_to(
        "misspelt_column",
        "with o as (\n    select order_id, order_status from {{ ref('stg_orders') }}\n)\nselect o.order_id, o.order_status\nfrom o\n",
    );
}

/// `order_stats` with no parents known: DuckDB's candidate bindings are enough.
#[test]
fn duckdb_candidate_bindings_alone() {
    Case {
        class: ErrorClass::MissingColumn,
        adapter: "duckdb",
        model: "p_col_typo_unq",
        message: "Runtime Error in model p_col_typo_unq (models/probe/p_col_typo_unq.sql)\n  Binder Error: Referenced column \"order_stats\" not found in FROM clause!\n  Candidate bindings: \"order_status\", \"ordered_at\", \"order_date\", \"order_id\", \"store_id\"\n  \n  LINE 10:       select order_id, order_stats\n                                  ^^^^^^^^^^^",
        sql: "select order_id, order_stats\nfrom {{ ref('stg_orders') }}\n",
        parents: &[],
    }
    .fixes_to(
        "misspelt_column",
        "select order_id, order_status\nfrom {{ ref('stg_orders') }}\n",
    );
}

// ---------------------------------------------------------------------------------------
// A column read through the wrong table alias.

const WRONG_ALIAS_CTE_SQL: &str = "with o as (\n    select order_id, customer_id, order_status from {{ ref('stg_orders') }}\n),\n\nt as (\n    select order_id, count(*) as item_count\n    from {{ ref('stg_order_items') }}\n    group by order_id\n)\n\nselect\n    o.order_id,\n    t.order_status,\n    t.item_count\nfrom o\nleft join t on o.order_id = t.order_id\n";
const WRONG_ALIAS_CTE_FIXED: &str = "with o as (\n    select order_id, customer_id, order_status from {{ ref('stg_orders') }}\n),\n\nt as (\n    select order_id, count(*) as item_count\n    from {{ ref('stg_order_items') }}\n    group by order_id\n)\n\nselect\n    o.order_id,\n    o.order_status,\n    t.item_count\nfrom o\nleft join t on o.order_id = t.order_id\n";

/// `t.order_status` where the CTE `t` holds item counts and `o` the orders; the CTEs'
/// select lists say which has the column (no parent columns needed).
#[test]
fn duckdb_wrong_alias_between_ctes() {
    Case {
        class: ErrorClass::MissingColumn,
        adapter: "duckdb",
        model: "p_wrong_alias",
        message: "Runtime Error in model p_wrong_alias (models/probe/p_wrong_alias.sql)\n  Binder Error: Values list \"t\" does not have a column named \"order_status\"\n  \n  LINE 22:     t.order_status,\n               ^^^^^^^^^^^^^^",
        sql: WRONG_ALIAS_CTE_SQL,
        parents: &[],
    }
    .fixes_to("wrong_alias", WRONG_ALIAS_CTE_FIXED);
}

/// The same on PostgreSQL, whose hint agrees.
#[test]
fn postgres_wrong_alias_between_ctes() {
    Case {
        class: ErrorClass::MissingColumn,
        adapter: "postgres",
        model: "p_wrong_alias",
        message: "Database Error in model p_wrong_alias (models/probe/p_wrong_alias.sql)\n  column t.order_status does not exist\n  LINE 24:     t.order_status,\n               ^\n  HINT:  Perhaps you meant to reference the column \"o.order_status\".\n  compiled code at target/run/coffee_shop/models/probe/p_wrong_alias.sql",
        sql: WRONG_ALIAS_CTE_SQL,
        parents: &[],
    }
    .fixes_to("wrong_alias", WRONG_ALIAS_CTE_FIXED);
}

const WRONG_ALIAS_REF_SQL: &str = "select\n    o.order_id,\n    t.order_status,\n    t.quantity\nfrom {{ ref('stg_orders') }} as o\ninner join {{ ref('stg_order_items') }} as t on o.order_id = t.order_id\n";
const WRONG_ALIAS_REF_FIXED: &str = "select\n    o.order_id,\n    o.order_status,\n    t.quantity\nfrom {{ ref('stg_orders') }} as o\ninner join {{ ref('stg_order_items') }} as t on o.order_id = t.order_id\n";

/// `t.order_status` over two `ref()`s (views): the parents' columns say which.
#[test]
fn duckdb_wrong_alias_between_refs() {
    Case {
        class: ErrorClass::MissingColumn,
        adapter: "duckdb",
        model: "p_wrong_alias_tbl",
        message: "Runtime Error in model p_wrong_alias_tbl (models/probe/p_wrong_alias_tbl.sql)\n  Binder Error: Values list \"t\" does not have a column named \"order_status\"\n  \n  LINE 12:     t.order_status,\n               ^^^^^^^^^^^^^^",
        sql: WRONG_ALIAS_REF_SQL,
        parents: &[STG_ORDERS, STG_ORDER_ITEMS],
    }
    .fixes_to("wrong_alias", WRONG_ALIAS_REF_FIXED);
}

/// The same on PostgreSQL.
#[test]
fn postgres_wrong_alias_between_refs() {
    Case {
        class: ErrorClass::MissingColumn,
        adapter: "postgres",
        model: "p_wrong_alias_tbl",
        message: "Database Error in model p_wrong_alias_tbl (models/probe/p_wrong_alias_tbl.sql)\n  column t.order_status does not exist\n  LINE 14:     t.order_status,\n               ^\n  HINT:  Perhaps you meant to reference the column \"o.order_status\".\n  compiled code at target/run/coffee_shop/models/probe/p_wrong_alias_tbl.sql",
        sql: WRONG_ALIAS_REF_SQL,
        parents: &[STG_ORDERS, STG_ORDER_ITEMS],
    }
    .fixes_to("wrong_alias", WRONG_ALIAS_REF_FIXED);
}

/// Without `stg_orders`' columns in the evidence nothing says that `o` has the column
/// (the error only says that `t` has not): the rule refuses.
#[test]
fn duckdb_wrong_alias_without_parent_columns_is_refused() {
    Case {
        class: ErrorClass::MissingColumn,
        adapter: "duckdb",
        model: "p_wrong_alias_tbl",
        message: "Runtime Error in model p_wrong_alias_tbl (models/probe/p_wrong_alias_tbl.sql)\n  Binder Error: Values list \"t\" does not have a column named \"order_status\"\n  \n  LINE 12:     t.order_status,\n               ^^^^^^^^^^^^^^",
        sql: WRONG_ALIAS_REF_SQL,
        parents: &[STG_ORDER_ITEMS],
    }
    .refused();
}

/// `t` a seed (a table): DuckDB's `Table "t" does not have a column named …`, with
/// `t`'s nearest column as its only candidate binding.
#[test]
fn duckdb_wrong_alias_of_a_table() {
    Case {
        class: ErrorClass::MissingColumn,
        adapter: "duckdb",
        model: "p_wrong_alias_seed",
        message: "Runtime Error in model p_wrong_alias_seed (models/probe/p_wrong_alias_seed.sql)\n  Binder Error: Table \"t\" does not have a column named \"order_status\"\n  \n  Candidate bindings: : \"order_id\"\n  \n  LINE 12:     t.order_status,\n               ^^^^^^^^^^^^^^",
        sql: "select\n    o.order_id,\n    t.order_status,\n    t.quantity\nfrom {{ ref('stg_orders') }} as o\ninner join {{ ref('raw_order_items') }} as t on o.order_id = t.order_id\n",
        parents: &[STG_ORDERS, RAW_ORDER_ITEMS],
    }
    .fixes_to(
        "wrong_alias",
        "select\n    o.order_id,\n    o.order_status,\n    t.quantity\nfrom {{ ref('stg_orders') }} as o\ninner join {{ ref('raw_order_items') }} as t on o.order_id = t.order_id\n",
    );
}

// ---------------------------------------------------------------------------------------
// A GROUP BY deleted whole.

const NO_GROUP_BY_CTE_SQL: &str = "with completed_orders as (\n    select order_id, customer_id, order_date\n    from {{ ref('stg_orders') }}\n    where order_status = 'completed'\n),\n\ncustomer_orders as (\n    select\n        customer_id,\n        min(order_date) as first_order_date,\n        count(*) as number_of_orders\n    from completed_orders\n)\n\nselect * from customer_orders\norder by customer_id\n";
const NO_GROUP_BY_CTE_FIXED: &str = "with completed_orders as (\n    select order_id, customer_id, order_date\n    from {{ ref('stg_orders') }}\n    where order_status = 'completed'\n),\n\ncustomer_orders as (\n    select\n        customer_id,\n        min(order_date) as first_order_date,\n        count(*) as number_of_orders\n    from completed_orders\n    group by customer_id\n)\n\nselect * from customer_orders\norder by customer_id\n";

/// `customers`' `customer_orders` CTE with its `group by customer_id` deleted: the
/// clause goes back before the CTE's closing parenthesis (the first CTE also selects
/// `customer_id`, but aggregates nothing).
#[test]
fn duckdb_group_by_deleted_from_a_cte() {
    Case {
        class: ErrorClass::MissingGroupBy,
        adapter: "duckdb",
        model: "p_no_group_by",
        message: "Runtime Error in model p_no_group_by (models/probe/p_no_group_by.sql)\n  Binder Error: column \"customer_id\" must appear in the GROUP BY clause or must be part of an aggregate function.\n  Either add it to the GROUP BY list, or use ANY_VALUE(\"customer_id\") if the exact value of \"customer_id\" is not important.\n  \n  LINE 18:         customer_id,\n                   ^^^^^^^^^^^",
        sql: NO_GROUP_BY_CTE_SQL,
        parents: &[],
    }
    .fixes_to("missing_group_by", NO_GROUP_BY_CTE_FIXED);
}

/// The same on PostgreSQL, which qualifies the column with the CTE's name.
#[test]
fn postgres_group_by_deleted_from_a_cte() {
    Case {
        class: ErrorClass::MissingGroupBy,
        adapter: "postgres",
        model: "p_no_group_by",
        message: "Database Error in model p_no_group_by (models/probe/p_no_group_by.sql)\n  column \"completed_orders.customer_id\" must appear in the GROUP BY clause or be used in an aggregate function\n  LINE 20:         customer_id,\n                   ^\n  compiled code at target/run/coffee_shop/models/probe/p_no_group_by.sql",
        sql: NO_GROUP_BY_CTE_SQL,
        parents: &[],
    }
    .fixes_to("missing_group_by", NO_GROUP_BY_CTE_FIXED);
}

const NO_GROUP_BY_HAVING_SQL: &str = "select\n    o.store_id,\n    date_trunc('month', o.order_date) as order_month,\n    count(*) as orders\nfrom {{ ref('stg_orders') }} as o\nhaving count(*) > 1\norder by 1\n";
const NO_GROUP_BY_HAVING_FIXED: &str = "select\n    o.store_id,\n    date_trunc('month', o.order_date) as order_month,\n    count(*) as orders\nfrom {{ ref('stg_orders') }} as o\ngroup by o.store_id, date_trunc('month', o.order_date)\nhaving count(*) > 1\norder by 1\n";

/// Two non-aggregate items, one an expression, and a HAVING: both are grouped, by
/// expression, before the HAVING.
#[test]
fn duckdb_group_by_deleted_before_having() {
    Case {
        class: ErrorClass::MissingGroupBy,
        adapter: "duckdb",
        model: "p_no_group_by2",
        message: "Runtime Error in model p_no_group_by2 (models/probe/p_no_group_by2.sql)\n  Binder Error: column \"store_id\" must appear in the GROUP BY clause or must be part of an aggregate function.\n  Either add it to the GROUP BY list, or use ANY_VALUE(\"store_id\") if the exact value of \"store_id\" is not important.\n  \n  LINE 11:     o.store_id,\n               ^^^^^^^^^^",
        sql: NO_GROUP_BY_HAVING_SQL,
        parents: &[],
    }
    .fixes_to("missing_group_by", NO_GROUP_BY_HAVING_FIXED);
}

/// The same on PostgreSQL.
#[test]
fn postgres_group_by_deleted_before_having() {
    Case {
        class: ErrorClass::MissingGroupBy,
        adapter: "postgres",
        model: "p_no_group_by2",
        message: "Database Error in model p_no_group_by2 (models/probe/p_no_group_by2.sql)\n  column \"o.store_id\" must appear in the GROUP BY clause or be used in an aggregate function\n  LINE 13:     o.store_id,\n               ^\n  compiled code at target/run/coffee_shop/models/probe/p_no_group_by2.sql",
        sql: NO_GROUP_BY_HAVING_SQL,
        parents: &[],
    }
    .fixes_to("missing_group_by", NO_GROUP_BY_HAVING_FIXED);
}

const NO_GROUP_BY_POSITIONAL_SQL: &str = "with daily as (\n    select order_date, store_id, count(*) as orders\n    from {{ ref('stg_orders') }}\n    group by 1, 2\n)\n\nselect\n    store_id,\n    max(orders) as busiest_day_orders\nfrom daily\norder by 1\n";
const NO_GROUP_BY_POSITIONAL_FIXED: &str = "with daily as (\n    select order_date, store_id, count(*) as orders\n    from {{ ref('stg_orders') }}\n    group by 1, 2\n)\n\nselect\n    store_id,\n    max(orders) as busiest_day_orders\nfrom daily\ngroup by 1\norder by 1\n";

/// The model's other GROUP BY is positional: so is the new one.
#[test]
fn duckdb_group_by_deleted_in_a_positional_model() {
    Case {
        class: ErrorClass::MissingGroupBy,
        adapter: "duckdb",
        model: "p_no_group_by_pos",
        message: "Runtime Error in model p_no_group_by_pos (models/probe/p_no_group_by_pos.sql)\n  Binder Error: column \"store_id\" must appear in the GROUP BY clause or must be part of an aggregate function.\n  Either add it to the GROUP BY list, or use ANY_VALUE(\"store_id\") if the exact value of \"store_id\" is not important.\n  \n  LINE 17:     store_id,\n               ^^^^^^^^",
        sql: NO_GROUP_BY_POSITIONAL_SQL,
        parents: &[],
    }
    .fixes_to("missing_group_by", NO_GROUP_BY_POSITIONAL_FIXED);
}

/// The same on PostgreSQL.
#[test]
fn postgres_group_by_deleted_in_a_positional_model() {
    Case {
        class: ErrorClass::MissingGroupBy,
        adapter: "postgres",
        model: "p_no_group_by_pos",
        message: "Database Error in model p_no_group_by_pos (models/probe/p_no_group_by_pos.sql)\n  column \"daily.store_id\" must appear in the GROUP BY clause or be used in an aggregate function\n  LINE 19:     store_id,\n               ^\n  compiled code at target/run/coffee_shop/models/probe/p_no_group_by_pos.sql",
        sql: NO_GROUP_BY_POSITIONAL_SQL,
        parents: &[],
    }
    .fixes_to("missing_group_by", NO_GROUP_BY_POSITIONAL_FIXED);
}

const NO_GROUP_BY_WINDOW_SQL: &str = "select\n    customer_id,\n    count(*) as n,\n    row_number() over (order by customer_id) as rn\nfrom {{ ref('stg_orders') }}\n";

/// A window function next to the aggregate: what to group by (and whether the window
/// meant the grouped rows) is a decision.
#[test]
fn duckdb_no_group_by_with_a_window_function_is_refused() {
    Case {
        class: ErrorClass::MissingGroupBy,
        adapter: "duckdb",
        model: "p_no_group_by_window",
        message: "Runtime Error in model p_no_group_by_window (models/probe/p_no_group_by_window.sql)\n  Binder Error: column \"customer_id\" must appear in the GROUP BY clause or must be part of an aggregate function.\n  Either add it to the GROUP BY list, or use ANY_VALUE(\"customer_id\") if the exact value of \"customer_id\" is not important.\n  \n  LINE 11:     customer_id,\n               ^^^^^^^^^^^",
        sql: NO_GROUP_BY_WINDOW_SQL,
        parents: &[],
    }
    .refused();
}

/// The same on PostgreSQL.
#[test]
fn postgres_no_group_by_with_a_window_function_is_refused() {
    Case {
        class: ErrorClass::MissingGroupBy,
        adapter: "postgres",
        model: "p_no_group_by_window",
        message: "Database Error in model p_no_group_by_window (models/probe/p_no_group_by_window.sql)\n  column \"stg_orders.customer_id\" must appear in the GROUP BY clause or be used in an aggregate function\n  LINE 13:     customer_id,\n               ^\n  compiled code at target/run/coffee_shop/models/probe/p_no_group_by_window.sql",
        sql: NO_GROUP_BY_WINDOW_SQL,
        parents: &[],
    }
    .refused();
}
