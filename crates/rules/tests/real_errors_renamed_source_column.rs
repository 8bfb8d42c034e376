//! `renamed_column` when the evidence knows no columns of the relation the model reads (a
//! seed read through `source()` whose YAML declares none of its columns): the
//! warehouse's own candidate list names the new column. Error texts captured from real
//! runs, each expected fix proven by building it.
//!
//! How the texts were produced:
//!
//! - **DuckDB**: copies of `examples/bike_rentals` in a temp dir, dbt-core 1.11 with
//!   dbt-duckdb 1.11.1 (duckdb 2.0.1), the corpus case `bikes_renamed_source_column`'s
//!   edit applied to the seed (`raw_members.csv`'s `plan` header is now `plan_name`);
//!   for the refusals, a copy whose seed has `plan_name` and a new `plan_code`, and one
//!   whose `plan` became `plans`. Each `stg_members` was written as its test shows,
//!   `dbt build --select stg_members --exclude-resource-type test` run, and the `message`
//!   of the failed result in `target/run_results.json` copied verbatim. The parents are
//!   what the detector's evidence holds for these runs: the seed `raw_members` (its
//!   header; `source()` is no parent in the evidence) and DuckDB's candidate bindings.
//!   Every expected fix was written into the model and built with `dbt build --select
//!   stg_members` (data tests included, except where a test says otherwise); the corpus
//!   fix also built with the whole project and yields the clean project's rows of
//!   `stg_members` and `dim_members`.
//! - **PostgreSQL**: PostgreSQL 15.20 with dbt-postgres 1.11, a throwaway project: a
//!   seed `raw_orders(order_id, customer_id, created_at, amount, status)` declared as the
//!   source table `shop_raw.raw_orders` with no columns, and a view `stg_orders` as in
//!   each test; `dbt build`, the message copied verbatim from `run_results.json`. Every
//!   expected fix was built the same way. PostgreSQL hints only names within three edits
//!   (`amount` → `amount_usd` and `order_date` → `order_date_utc` came with no hint at
//!   all), so it names a renamed column only when the added word is short.

mod common;

use common::Case;
use dbtops_rules::{ErrorClass, ParentColumns};

/// The corpus case `bikes_renamed_source_column`: the fix is the case's accepted one, which built and yields the clean project's rows.
#[test]
fn duckdb_renamed_source_column_from_candidate_bindings() {
    let case = Case {
        class: ErrorClass::MissingColumn,
        adapter: "duckdb",
        model: "stg_members",
        message: "Runtime Error in model stg_members (models/staging/stg_members.sql)\n  Binder Error: Referenced column \"plan\" not found in FROM clause!\n  Candidate bindings: \"plan_name\", \"full_name\"\n  \n  LINE 12:     plan as membership_plan,\n               ^^^^",
        sql: "-- The raw tables are seeds; source() does not know that, so declare the edge.\n-- depends_on: {{ ref('raw_members') }}\n\nselect\n    id as member_id,\n    full_name as member_name,\n    lower(email) as email,\n    plan as membership_plan,\n    cast(joined_at as date) as joined_on,\n    -- the app lets riders type anything here: `unknown`, or nothing\n    try_cast(birth_year as integer) as birth_year\nfrom {{ source('bike_share_raw', 'raw_members') }}\n",
        parents: &[ParentColumns { name: "raw_members", columns: &["id", "full_name", "email", "plan_name", "joined_at", "birth_year"] }, ParentColumns { name: "candidate_bindings", columns: &["plan_name", "full_name"] }],
    };
    case.fixes_to("renamed_column", "-- The raw tables are seeds; source() does not know that, so declare the edge.\n-- depends_on: {{ ref('raw_members') }}\n\nselect\n    id as member_id,\n    full_name as member_name,\n    lower(email) as email,\n    plan_name as membership_plan,\n    cast(joined_at as date) as joined_on,\n    -- the app lets riders type anything here: `unknown`, or nothing\n    try_cast(birth_year as integer) as birth_year\nfrom {{ source('bike_share_raw', 'raw_members') }}\n");
}

/// `plan` selected bare and filtered on: the item keeps its output name, the filter reads the new column. The fixed SQL built with `dbt build --exclude-resource-type test`: this probe's model already outputs `plan`, not the `membership_plan` that `_staging.yml` tests.
#[test]
fn duckdb_bare_item_keeps_its_name_and_where_is_renamed() {
    let case = Case {
        class: ErrorClass::MissingColumn,
        adapter: "duckdb",
        model: "stg_members",
        message: "Runtime Error in model stg_members (models/staging/stg_members.sql)\n  Binder Error: Referenced column \"plan\" not found in FROM clause!\n  Candidate bindings: \"plan_name\", \"full_name\"\n  \n  LINE 17: where plan is not null\n                 ^^^^",
        sql: "-- The raw tables are seeds; source() does not know that, so declare the edge.\n-- depends_on: {{ ref('raw_members') }}\n\nselect\n    id as member_id,\n    full_name as member_name,\n    lower(email) as email,\n    plan,\n    cast(joined_at as date) as joined_on,\n    -- the app lets riders type anything here: `unknown`, or nothing\n    try_cast(birth_year as integer) as birth_year\nfrom {{ source('bike_share_raw', 'raw_members') }}\nwhere plan is not null\n",
        parents: &[ParentColumns { name: "raw_members", columns: &["id", "full_name", "email", "plan_name", "joined_at", "birth_year"] }, ParentColumns { name: "candidate_bindings", columns: &["plan_name", "full_name"] }],
    };
    case.fixes_to("renamed_column", "-- The raw tables are seeds; source() does not know that, so declare the edge.\n-- depends_on: {{ ref('raw_members') }}\n\nselect\n    id as member_id,\n    full_name as member_name,\n    lower(email) as email,\n    plan_name as plan,\n    cast(joined_at as date) as joined_on,\n    -- the app lets riders type anything here: `unknown`, or nothing\n    try_cast(birth_year as integer) as birth_year\nfrom {{ source('bike_share_raw', 'raw_members') }}\nwhere plan_name is not null\n");
}

/// `m.plan` with the source aliased `m`: DuckDB's `Table "m"` wording lists that relation's columns only. The fixed SQL built with `dbt build`.
#[test]
fn duckdb_qualified_column_of_an_aliased_source() {
    let case = Case {
        class: ErrorClass::MissingColumn,
        adapter: "duckdb",
        model: "stg_members",
        message: "Runtime Error in model stg_members (models/staging/stg_members.sql)\n  Binder Error: Table \"m\" does not have a column named \"plan\"\n  \n  Candidate bindings: : \"plan_name\"\n  \n  LINE 12:     m.plan as membership_plan,\n               ^^^^^^",
        sql: "-- The raw tables are seeds; source() does not know that, so declare the edge.\n-- depends_on: {{ ref('raw_members') }}\n\nselect\n    m.id as member_id,\n    m.full_name as member_name,\n    lower(m.email) as email,\n    m.plan as membership_plan,\n    cast(m.joined_at as date) as joined_on,\n    -- the app lets riders type anything here: `unknown`, or nothing\n    try_cast(m.birth_year as integer) as birth_year\nfrom {{ source('bike_share_raw', 'raw_members') }} as m\n",
        parents: &[ParentColumns { name: "raw_members", columns: &["id", "full_name", "email", "plan_name", "joined_at", "birth_year"] }, ParentColumns { name: "candidate_bindings", columns: &["plan_name"] }],
    };
    case.fixes_to("renamed_column", "-- The raw tables are seeds; source() does not know that, so declare the edge.\n-- depends_on: {{ ref('raw_members') }}\n\nselect\n    m.id as member_id,\n    m.full_name as member_name,\n    lower(m.email) as email,\n    m.plan_name as membership_plan,\n    cast(m.joined_at as date) as joined_on,\n    -- the app lets riders type anything here: `unknown`, or nothing\n    try_cast(m.birth_year as integer) as birth_year\nfrom {{ source('bike_share_raw', 'raw_members') }} as m\n");
}

/// The source read through an import CTE (`select *`). The fixed SQL built with `dbt build`.
#[test]
fn duckdb_renamed_column_through_an_import_cte_of_a_source() {
    let case = Case {
        class: ErrorClass::MissingColumn,
        adapter: "duckdb",
        model: "stg_members",
        message: "Runtime Error in model stg_members (models/staging/stg_members.sql)\n  Binder Error: Referenced column \"plan\" not found in FROM clause!\n  Candidate bindings: \"plan_name\", \"full_name\"\n  \n  LINE 16:     plan as membership_plan,\n               ^^^^",
        sql: "-- The raw tables are seeds; source() does not know that, so declare the edge.\n-- depends_on: {{ ref('raw_members') }}\n\nwith members as (\n    select * from {{ source('bike_share_raw', 'raw_members') }}\n)\n\nselect\n    id as member_id,\n    full_name as member_name,\n    lower(email) as email,\n    plan as membership_plan,\n    cast(joined_at as date) as joined_on,\n    -- the app lets riders type anything here: `unknown`, or nothing\n    try_cast(birth_year as integer) as birth_year\nfrom members\n",
        parents: &[ParentColumns { name: "raw_members", columns: &["id", "full_name", "email", "plan_name", "joined_at", "birth_year"] }, ParentColumns { name: "candidate_bindings", columns: &["plan_name", "full_name"] }],
    };
    case.fixes_to("renamed_column", "-- The raw tables are seeds; source() does not know that, so declare the edge.\n-- depends_on: {{ ref('raw_members') }}\n\nwith members as (\n    select * from {{ source('bike_share_raw', 'raw_members') }}\n)\n\nselect\n    id as member_id,\n    full_name as member_name,\n    lower(email) as email,\n    plan_name as membership_plan,\n    cast(joined_at as date) as joined_on,\n    -- the app lets riders type anything here: `unknown`, or nothing\n    try_cast(birth_year as integer) as birth_year\nfrom members\n");
}

/// The seed now has `plan_name` and `plan_code`: both extend `plan`, and which one the model meant is a decision.
#[test]
fn duckdb_two_extensions_of_the_name_are_refused() {
    let case = Case {
        class: ErrorClass::MissingColumn,
        adapter: "duckdb",
        model: "stg_members",
        message: "Runtime Error in model stg_members (models/staging/stg_members.sql)\n  Binder Error: Referenced column \"plan\" not found in FROM clause!\n  Candidate bindings: \"plan_code\", \"plan_name\", \"full_name\"\n  \n  LINE 12:     plan as membership_plan,\n               ^^^^",
        sql: "-- The raw tables are seeds; source() does not know that, so declare the edge.\n-- depends_on: {{ ref('raw_members') }}\n\nselect\n    id as member_id,\n    full_name as member_name,\n    lower(email) as email,\n    plan as membership_plan,\n    cast(joined_at as date) as joined_on,\n    -- the app lets riders type anything here: `unknown`, or nothing\n    try_cast(birth_year as integer) as birth_year\nfrom {{ source('bike_share_raw', 'raw_members') }}\n",
        parents: &[ParentColumns { name: "raw_members", columns: &["id", "full_name", "email", "plan_name", "plan_code", "joined_at", "birth_year"] }, ParentColumns { name: "candidate_bindings", columns: &["plan_code", "plan_name", "full_name"] }],
    };
    case.refused();
}

/// The seed's `plan` became `plans`: one edit, no added word. `renamed_column` leaves it to `misspelt_column`, which keeps the alias as written. The fixed SQL built with `dbt build`.
#[test]
fn duckdb_a_misspelling_is_misspelt_columns_not_a_rename() {
    let case = Case {
        class: ErrorClass::MissingColumn,
        adapter: "duckdb",
        model: "stg_members",
        message: "Runtime Error in model stg_members (models/staging/stg_members.sql)\n  Binder Error: Referenced column \"plan\" not found in FROM clause!\n  Candidate bindings: \"plans\", \"full_name\"\n  \n  LINE 12:     plan as membership_plan,\n               ^^^^",
        sql: "-- The raw tables are seeds; source() does not know that, so declare the edge.\n-- depends_on: {{ ref('raw_members') }}\n\nselect\n    id as member_id,\n    full_name as member_name,\n    lower(email) as email,\n    plan as membership_plan,\n    cast(joined_at as date) as joined_on,\n    -- the app lets riders type anything here: `unknown`, or nothing\n    try_cast(birth_year as integer) as birth_year\nfrom {{ source('bike_share_raw', 'raw_members') }}\n",
        parents: &[ParentColumns { name: "raw_members", columns: &["id", "full_name", "email", "plans", "joined_at", "birth_year"] }, ParentColumns { name: "candidate_bindings", columns: &["plans", "full_name"] }],
    };
    case.fixes_to("misspelt_column", "-- The raw tables are seeds; source() does not know that, so declare the edge.\n-- depends_on: {{ ref('raw_members') }}\n\nselect\n    id as member_id,\n    full_name as member_name,\n    lower(email) as email,\n    plans as membership_plan,\n    cast(joined_at as date) as joined_on,\n    -- the app lets riders type anything here: `unknown`, or nothing\n    try_cast(birth_year as integer) as birth_year\nfrom {{ source('bike_share_raw', 'raw_members') }}\n");
}

/// dbt-postgres: the seed's `created` is now `created_at`; PostgreSQL's hint qualifies it with the source's table name. The fixed SQL built with `dbt build`.
#[test]
fn postgres_hint_names_the_renamed_column_of_a_source() {
    let case = Case {
        class: ErrorClass::MissingColumn,
        adapter: "postgres",
        model: "stg_orders",
        message: "Database Error in model stg_orders (models/stg_orders.sql)\n  column \"created\" does not exist\n  LINE 11:     created as ordered_at,\n               ^\n  HINT:  Perhaps you meant to reference the column \"raw_orders.created_at\".\n  compiled code at target/run/pgrename/models/stg_orders.sql",
        sql: "-- depends_on: {{ ref('raw_orders') }}\nselect\n    order_id,\n    customer_id,\n    created as ordered_at,\n    amount,\n    status\nfrom {{ source('shop_raw', 'raw_orders') }}\n",
        parents: &[ParentColumns { name: "raw_orders", columns: &["order_id", "customer_id", "created_at", "amount", "status"] }],
    };
    case.fixes_to("renamed_column", "-- depends_on: {{ ref('raw_orders') }}\nselect\n    order_id,\n    customer_id,\n    created_at as ordered_at,\n    amount,\n    status\nfrom {{ source('shop_raw', 'raw_orders') }}\n");
}

/// dbt-postgres: `o.created` with the source aliased `o`; the item had no alias, so the fix gives it its old name. The fixed SQL built with `dbt build`.
#[test]
fn postgres_qualified_column_keeps_its_output_name() {
    let case = Case {
        class: ErrorClass::MissingColumn,
        adapter: "postgres",
        model: "stg_orders",
        message: "Database Error in model stg_orders (models/stg_orders.sql)\n  column o.created does not exist\n  LINE 11:     o.created,\n               ^\n  HINT:  Perhaps you meant to reference the column \"o.created_at\".\n  compiled code at target/run/pgrename/models/stg_orders.sql",
        sql: "-- depends_on: {{ ref('raw_orders') }}\nselect\n    o.order_id,\n    o.customer_id,\n    o.created,\n    o.amount,\n    o.status\nfrom {{ source('shop_raw', 'raw_orders') }} as o\n",
        parents: &[ParentColumns { name: "raw_orders", columns: &["order_id", "customer_id", "created_at", "amount", "status"] }],
    };
    case.fixes_to("renamed_column", "-- depends_on: {{ ref('raw_orders') }}\nselect\n    o.order_id,\n    o.customer_id,\n    o.created_at as created,\n    o.amount,\n    o.status\nfrom {{ source('shop_raw', 'raw_orders') }} as o\n");
}

/// dbt-postgres: the seed has `created_at` and `created_on`, both three edits away; PostgreSQL hints both.
#[test]
fn postgres_two_hinted_extensions_are_refused() {
    let case = Case {
        class: ErrorClass::MissingColumn,
        adapter: "postgres",
        model: "stg_orders",
        message: "Database Error in model stg_orders (models/stg_orders.sql)\n  column \"created\" does not exist\n  LINE 11:     created as ordered_at,\n               ^\n  HINT:  Perhaps you meant to reference the column \"raw_orders.created_at\" or the column \"raw_orders.created_on\".\n  compiled code at target/run/pgrename/models/stg_orders.sql",
        sql: "-- depends_on: {{ ref('raw_orders') }}\nselect\n    order_id,\n    customer_id,\n    created as ordered_at,\n    amount,\n    status\nfrom {{ source('shop_raw', 'raw_orders') }}\n",
        parents: &[ParentColumns { name: "raw_orders", columns: &["order_id", "customer_id", "created_at", "created_on", "amount", "status"] }],
    };
    case.refused();
}
