//! The rules against error texts captured from real runs.
//!
//! How the texts were produced:
//!
//! - **DuckDB**: a throwaway dbt project (`coffee_shop`) with dbt-core 1.11.16,
//!   dbt-duckdb 1.11.1 (duckdb 2.0.1), a seed `raw_orders(order_id, customer_id,
//!   order_date, amount)`, a seed `codes(id, code_a, code_b)`, a view model
//!   `stg_orders` (`select order_id, customer_id, order_date, amount from
//!   {{ ref('raw_orders') }}`) and a model `orders` whose SQL was broken as shown in each
//!   test; `dbt build --profiles-dir . --select orders`, then the `message` of the failed
//!   result in `target/run_results.json`, verbatim.
//! - **dbt parse errors** (`ref`, `source`): the same project with a `sources.yml`
//!   declaring source `raw` with tables `raw_orders` and `raw_customers`; these fail at
//!   parse time (exit 2, no run_results.json), so the text is from dbt's console output
//!   after `Encountered an error:`.
//! - **Postgres**: PostgreSQL 15.20, a table `rules_probe.stg_orders(order_id int,
//!   customer_id int, order_date date, amount numeric)`, each statement run with
//!   `psql -h 127.0.0.1 -U postgres -d test -c "…"`; the text is psql's output minus its
//!   `ERROR:  ` prefix. The model SQL in each test is the dbt form of that statement.

use dbtops_rules::{propose_fix, ErrorClass, ParentColumns, RuleFix, RuleInput, SourceTable};

const STG_ORDERS_COLUMNS: &[&str] = &["order_id", "customer_id", "order_date", "amount"];
const RAW_ORDERS_COLUMNS: &[&str] = &["order_id", "customer_id", "order_date", "amount"];
const CODES_COLUMNS: &[&str] = &["id", "code_a", "code_b"];

const STG_ORDERS: &[ParentColumns<'static>] = &[ParentColumns {
    name: "stg_orders",
    columns: STG_ORDERS_COLUMNS,
}];
const RAW_ORDERS: &[ParentColumns<'static>] = &[ParentColumns {
    name: "raw_orders",
    columns: RAW_ORDERS_COLUMNS,
}];
const CODES: &[ParentColumns<'static>] = &[ParentColumns {
    name: "codes",
    columns: CODES_COLUMNS,
}];

const NODES: &[&str] = &["raw_orders", "codes", "stg_orders", "orders"];
const SOURCES: &[SourceTable<'static>] = &[
    SourceTable {
        source_name: "raw",
        table_name: "raw_orders",
    },
    SourceTable {
        source_name: "raw",
        table_name: "raw_customers",
    },
];

/// An `orders` model input with the project above.
fn input<'a>(
    class: ErrorClass,
    adapter: &'a str,
    message: &'a str,
    sql: &'a str,
    parents: &'a [ParentColumns<'a>],
) -> RuleInput<'a> {
    RuleInput {
        error_class: class,
        error_message: message,
        model_name: "orders",
        model_sql: sql,
        parents,
        project_node_names: NODES,
        project_macro_names: &[],
        macro_signatures: &[],
        source_tables: SOURCES,
        adapter,
        rejected_sql: &[],
    }
}

fn fixed(input: &RuleInput) -> RuleFix {
    match propose_fix(input) {
        Some(fix) => fix,
        None => panic!("expected a fix for {:?}", input.error_message),
    }
}

// ---------------------------------------------------------------------------------------
// misspelt_column, DuckDB

/// `select o.order_id, o.ordr_date, o.amount from {{ ref('stg_orders') }} as o`
const DUCKDB_VALUES_LIST: &str = "Runtime Error in model orders (models/orders.sql)\n  Binder Error: Values list \"o\" does not have a column named \"ordr_date\"\n  \n  LINE 6: select o.order_id, o.ordr_date, o.amount from \"dev\".\"main\".\"stg_orders\" as o\n                             ^^^^^^^^^^^";

#[test]
fn duckdb_qualified_column_keeps_its_qualifier() {
    let sql = "-- orders mart\nselect o.order_id, o.ordr_date, o.amount from {{ ref('stg_orders') }} as o\n";
    let fix = fixed(&input(
        ErrorClass::MissingColumn,
        "duckdb",
        DUCKDB_VALUES_LIST,
        sql,
        STG_ORDERS,
    ));
    assert_eq!(
        fix.fixed_sql,
        "-- orders mart\nselect o.order_id, o.order_date, o.amount from {{ ref('stg_orders') }} as o\n"
    );
    assert_eq!(fix.rule, "misspelt_column");
    assert!(fix.confidence >= 0.9, "{}", fix.confidence);
    assert!(
        fix.explanation.contains("`o.ordr_date`"),
        "{}",
        fix.explanation
    );
    assert!(
        fix.explanation.contains("`order_date`"),
        "{}",
        fix.explanation
    );
    assert!(
        fix.explanation.contains("`stg_orders`"),
        "{}",
        fix.explanation
    );
}

/// `select order_id, cust_id, amount from {{ ref('stg_orders') }}`
const DUCKDB_REFERENCED_CUST_ID: &str = "Runtime Error in model orders (models/orders.sql)\n  Binder Error: Referenced column \"cust_id\" not found in FROM clause!\n  Candidate bindings: \"customer_id\", \"order_id\", \"amount\"\n  \n  LINE 5:     select order_id, cust_id, amount from \"dev\".\"main\".\"stg_orders\"\n                               ^^^^^^^";

#[test]
fn duckdb_abbreviated_column() {
    let sql = "select order_id, cust_id, amount from {{ ref('stg_orders') }}\n";
    let fix = fixed(&input(
        ErrorClass::MissingColumn,
        "duckdb",
        DUCKDB_REFERENCED_CUST_ID,
        sql,
        STG_ORDERS,
    ));
    assert_eq!(
        fix.fixed_sql,
        "select order_id, customer_id, amount from {{ ref('stg_orders') }}\n"
    );
}

/// `select order_id, customer_id, amount from {{ ref('raw_orders') }} as r where r.ordr_date > '2024-01-01'`
/// — note DuckDB's `Candidate bindings: : ` with a doubled colon after this wording.
const DUCKDB_TABLE_NO_COLUMN: &str = "Runtime Error in model orders (models/orders.sql)\n  Binder Error: Table \"r\" does not have a column named \"ordr_date\"\n  \n  Candidate bindings: : \"order_date\", \"order_id\"\n  \n  LINE 5: ... customer_id, amount from \"dev\".\"main\".\"raw_orders\" as r where r.ordr_date > '2024-01-01'\n                                                                            ^^^^^^^^^^^";

#[test]
fn duckdb_table_wording_with_parents() {
    let sql = "select order_id, customer_id, amount from {{ ref('raw_orders') }} as r where r.ordr_date > '2024-01-01'\n";
    let fix = fixed(&input(
        ErrorClass::MissingColumn,
        "duckdb",
        DUCKDB_TABLE_NO_COLUMN,
        sql,
        RAW_ORDERS,
    ));
    assert_eq!(
        fix.fixed_sql,
        "select order_id, customer_id, amount from {{ ref('raw_orders') }} as r where r.order_date > '2024-01-01'\n"
    );
}

#[test]
fn duckdb_candidate_bindings_alone_are_enough() {
    // No parent columns in the evidence: DuckDB's own bindings are the candidates.
    let sql = "select order_id, customer_id, amount from {{ ref('raw_orders') }} as r where r.ordr_date > '2024-01-01'\n";
    let fix = fixed(&input(
        ErrorClass::MissingColumn,
        "duckdb",
        DUCKDB_TABLE_NO_COLUMN,
        sql,
        &[],
    ));
    assert!(fix.fixed_sql.contains("r.order_date >"));
    assert!(
        fix.explanation.contains("suggested by the warehouse"),
        "{}",
        fix.explanation
    );
}

/// `select o.order_id, ordr_date from {{ ref('stg_orders') }} o join {{ ref('raw_orders') }} c on o.order_id = c.order_id`
/// — with two tables in scope DuckDB qualifies its bindings.
const DUCKDB_JOIN_BINDINGS: &str = "Runtime Error in model orders (models/orders.sql)\n  Binder Error: Referenced column \"ordr_date\" not found in FROM clause!\n  Candidate bindings: \"c.order_date\", \"o.order_date\", \"c.order_id\", \"o.order_id\", \"c.customer_id\"\n  \n  LINE 5:     select o.order_id, ordr_date from \"dev\".\"main\".\"stg_orders\" o join \"dev\".\"main...\n                                 ^^^^^^^^^";

#[test]
fn a_column_both_joined_relations_have_is_not_renamed_unqualified() {
    // Renaming to `order_date` was tried in that project: DuckDB then fails with
    // `Ambiguous reference to column name "order_date" (use: 'o.order_date' or
    // 'c.order_date')`. Which relation was meant is a decision, not a spelling fix.
    let sql = "select o.order_id, ordr_date from {{ ref('stg_orders') }} o join {{ ref('raw_orders') }} c on o.order_id = c.order_id\n";
    assert_eq!(
        propose_fix(&input(
            ErrorClass::MissingColumn,
            "duckdb",
            DUCKDB_JOIN_BINDINGS,
            sql,
            &[],
        )),
        None
    );
}

/// `select o.order_id, c.cust_id from {{ ref('stg_orders') }} o join {{ ref('raw_orders') }} c on o.order_id = c.order_id`
const DUCKDB_JOIN_QUALIFIED: &str = "Runtime Error in model orders (models/orders.sql)\n  Binder Error: Table \"c\" does not have a column named \"cust_id\"\n  \n  Candidate bindings: : \"customer_id\"\n  \n  LINE 5:     select o.order_id, c.cust_id from \"dev\".\"main\".\"stg_orders\" o join \"dev\".\"main...\n                                 ^^^^^^^^^";

#[test]
fn a_qualified_column_in_a_join() {
    let sql = "select o.order_id, c.cust_id from {{ ref('stg_orders') }} o join {{ ref('raw_orders') }} c on o.order_id = c.order_id\n";
    let parents = [STG_ORDERS[0], RAW_ORDERS[0]];
    let fix = fixed(&input(
        ErrorClass::MissingColumn,
        "duckdb",
        DUCKDB_JOIN_QUALIFIED,
        sql,
        &parents,
    ));
    assert_eq!(
        fix.fixed_sql,
        "select o.order_id, c.customer_id from {{ ref('stg_orders') }} o join {{ ref('raw_orders') }} c on o.order_id = c.order_id\n"
    );
}

/// The SQL below, verbatim; DuckDB stops at the first occurrence.
const DUCKDB_STRING_AND_COMMENTS: &str = "Runtime Error in model orders (models/orders.sql)\n  Binder Error: Values list \"o\" does not have a column named \"ordr_date\"\n  \n  LINE 5:     select o.order_id, o.ordr_date from \"dev\".\"main\".\"stg_orders\" as o where o...\n                                 ^^^^^^^^^^^";

#[test]
fn strings_jinja_comments_and_sql_comments_are_not_touched() {
    let sql = "select o.order_id, o.ordr_date from {{ ref('stg_orders') }} as o where o.amount > 0 -- o.ordr_date is not used here\n{# ordr_date was renamed #}\nand 'ordr_date' <> ''\n";
    let fix = fixed(&input(
        ErrorClass::MissingColumn,
        "duckdb",
        DUCKDB_STRING_AND_COMMENTS,
        sql,
        STG_ORDERS,
    ));
    assert_eq!(
        fix.fixed_sql,
        "select o.order_id, o.order_date from {{ ref('stg_orders') }} as o where o.amount > 0 -- o.ordr_date is not used here\n{# ordr_date was renamed #}\nand 'ordr_date' <> ''\n"
    );
    assert!(fix.explanation.contains("1 place"), "{}", fix.explanation);
}

#[test]
fn a_name_only_in_strings_and_comments_gives_no_fix() {
    // Same error, but the model's only code use is gone (e.g. it comes from a macro):
    // nothing we can see to rename.
    let sql = "select {{ my_cols() }} from {{ ref('stg_orders') }} as o -- o.ordr_date\nwhere 'ordr_date' <> '' {# ordr_date #}\n";
    assert_eq!(
        propose_fix(&input(
            ErrorClass::MissingColumn,
            "duckdb",
            DUCKDB_STRING_AND_COMMENTS,
            sql,
            STG_ORDERS,
        )),
        None
    );
}

/// `select ORDR_DATE from {{ ref('stg_orders') }}` — DuckDB's bindings list only its
/// own nearest guess, `order_id`; the parent's columns supply `order_date`.
const DUCKDB_UPPER_CASE: &str = "Runtime Error in model orders (models/orders.sql)\n  Binder Error: Referenced column \"ORDR_DATE\" not found in FROM clause!\n  Candidate bindings: \"order_id\"\n  \n  LINE 5:     select ORDR_DATE from \"dev\".\"main\".\"stg_orders\"\n                     ^^^^^^^^^";

#[test]
fn duckdb_case_insensitive_match_keeps_the_writers_case() {
    let sql = "select ORDR_DATE from {{ ref('stg_orders') }}\n";
    let fix = fixed(&input(
        ErrorClass::MissingColumn,
        "duckdb",
        DUCKDB_UPPER_CASE,
        sql,
        STG_ORDERS,
    ));
    assert_eq!(
        fix.fixed_sql,
        "select ORDER_DATE from {{ ref('stg_orders') }}\n"
    );
}

/// `select id, code_c from {{ ref('codes') }}`
const DUCKDB_TWO_EQUAL_CANDIDATES: &str = "Runtime Error in model orders (models/orders.sql)\n  Binder Error: Referenced column \"code_c\" not found in FROM clause!\n  Candidate bindings: \"code_a\", \"code_b\", \"id\"\n  \n  LINE 5:     select id, code_c from \"dev\".\"main\".\"codes\"\n                         ^^^^^^";

#[test]
fn two_equally_near_candidates_give_no_fix() {
    let sql = "select id, code_c from {{ ref('codes') }}\n";
    assert_eq!(
        propose_fix(&input(
            ErrorClass::MissingColumn,
            "duckdb",
            DUCKDB_TWO_EQUAL_CANDIDATES,
            sql,
            CODES,
        )),
        None
    );
}

/// `select order_id, shipping_total from {{ ref('stg_orders') }}`
const DUCKDB_TOO_FAR: &str = "Runtime Error in model orders (models/orders.sql)\n  Binder Error: Referenced column \"shipping_total\" not found in FROM clause!\n  Candidate bindings: \"amount\"\n  \n  LINE 5:     select order_id, shipping_total from \"dev\".\"main\".\"stg_orders\"\n                               ^^^^^^^^^^^^^^";

#[test]
fn a_candidate_too_far_away_gives_no_fix() {
    let sql = "select order_id, shipping_total from {{ ref('stg_orders') }}\n";
    assert_eq!(
        propose_fix(&input(
            ErrorClass::MissingColumn,
            "duckdb",
            DUCKDB_TOO_FAR,
            sql,
            STG_ORDERS,
        )),
        None
    );
}

#[test]
fn a_rejected_fix_is_never_proposed_again() {
    let sql = "-- orders mart\nselect o.order_id, o.ordr_date, o.amount from {{ ref('stg_orders') }} as o\n";
    let would_be = "-- orders mart\nselect o.order_id, o.order_date, o.amount from {{ ref('stg_orders') }} as o\n";
    let mut with_rejection = input(
        ErrorClass::MissingColumn,
        "duckdb",
        DUCKDB_VALUES_LIST,
        sql,
        STG_ORDERS,
    );
    assert_eq!(fixed(&with_rejection).fixed_sql, would_be);
    let rejected = [would_be];
    with_rejection.rejected_sql = &rejected;
    assert_eq!(propose_fix(&with_rejection), None);
}

#[test]
fn a_column_error_under_another_class_is_not_handled() {
    let sql = "-- orders mart\nselect o.order_id, o.ordr_date, o.amount from {{ ref('stg_orders') }} as o\n";
    for class in [ErrorClass::SqlSyntax, ErrorClass::Other, ErrorClass::BadRef] {
        assert_eq!(
            propose_fix(&input(class, "duckdb", DUCKDB_VALUES_LIST, sql, STG_ORDERS)),
            None,
            "{class}"
        );
    }
}

#[test]
fn a_column_that_exists_upstream_is_not_a_misspelling() {
    // `customer_ix` is one edit from `customer_id`, but if the parent really had a
    // `customer_ix` the problem is elsewhere (e.g. a CTE that drops it).
    const DUCKDB_CUSTOMER_IX: &str = "Runtime Error in model orders (models/orders.sql)\n  Binder Error: Referenced column \"customer_ix\" not found in FROM clause!\n  Candidate bindings: \"customer_id\", \"order_id\", \"order_date\", \"amount\"\n  \n  LINE 5:     select order_id, customer_ix from \"dev\".\"main\".\"stg_orders\"\n                               ^^^^^^^^^^^";
    let sql = "select order_id, customer_ix from {{ ref('stg_orders') }}\n";
    let parent = [ParentColumns {
        name: "stg_orders",
        columns: &["order_id", "customer_ix", "customer_id"],
    }];
    assert_eq!(
        propose_fix(&input(
            ErrorClass::MissingColumn,
            "duckdb",
            DUCKDB_CUSTOMER_IX,
            sql,
            &parent,
        )),
        None
    );
    // With the real parent it is a plain typo.
    let fix = fixed(&input(
        ErrorClass::MissingColumn,
        "duckdb",
        DUCKDB_CUSTOMER_IX,
        sql,
        STG_ORDERS,
    ));
    assert_eq!(
        fix.fixed_sql,
        "select order_id, customer_id from {{ ref('stg_orders') }}\n"
    );
}

// ---------------------------------------------------------------------------------------
// misspelt_column, Postgres

/// `select order_id, ordr_date from rules_probe.stg_orders`
const POSTGRES_COLUMN: &str = "column \"ordr_date\" does not exist\nLINE 1: select order_id, ordr_date from rules_probe.stg_orders\n                         ^\nHINT:  Perhaps you meant to reference the column \"stg_orders.order_date\".";

#[test]
fn postgres_unqualified_column() {
    let sql = "select order_id, ordr_date from {{ ref('stg_orders') }}\n";
    let fix = fixed(&input(
        ErrorClass::MissingColumn,
        "postgres",
        POSTGRES_COLUMN,
        sql,
        STG_ORDERS,
    ));
    assert_eq!(
        fix.fixed_sql,
        "select order_id, order_date from {{ ref('stg_orders') }}\n"
    );
}

/// `select o.order_id, o.ordr_date from rules_probe.stg_orders o`
const POSTGRES_QUALIFIED: &str = "column o.ordr_date does not exist\nLINE 1: select o.order_id, o.ordr_date from rules_probe.stg_orders o\n                           ^\nHINT:  Perhaps you meant to reference the column \"o.order_date\".";

#[test]
fn postgres_qualified_column_hint_only() {
    // No parents: the HINT's "o.order_date" is the candidate, qualifier stripped.
    let sql = "select o.order_id, o.ordr_date from {{ ref('stg_orders') }} o\n";
    let fix = fixed(&input(
        ErrorClass::MissingColumn,
        "postgres",
        POSTGRES_QUALIFIED,
        sql,
        &[],
    ));
    assert_eq!(
        fix.fixed_sql,
        "select o.order_id, o.order_date from {{ ref('stg_orders') }} o\n"
    );
    assert!(
        fix.explanation.contains("`o.ordr_date`"),
        "{}",
        fix.explanation
    );
}

/// `select cust_id from rules_probe.stg_orders` — Postgres gives no hint here.
const POSTGRES_NO_HINT: &str = "column \"cust_id\" does not exist\nLINE 1: select cust_id from rules_probe.stg_orders\n               ^";

#[test]
fn postgres_without_hint_uses_parents() {
    let sql = "select cust_id from {{ ref('stg_orders') }}\n";
    let fix = fixed(&input(
        ErrorClass::MissingColumn,
        "postgres",
        POSTGRES_NO_HINT,
        sql,
        STG_ORDERS,
    ));
    assert_eq!(
        fix.fixed_sql,
        "select customer_id from {{ ref('stg_orders') }}\n"
    );
    // Nothing upstream: no candidates, no fix.
    assert_eq!(
        propose_fix(&input(
            ErrorClass::MissingColumn,
            "postgres",
            POSTGRES_NO_HINT,
            sql,
            &[]
        )),
        None
    );
}

/// `select ORDR_DATE from rules_probe.stg_orders` — Postgres folds the unquoted name to
/// lower case in its message; the SQL still says `ORDR_DATE`.
const POSTGRES_FOLDED: &str = "column \"ordr_date\" does not exist\nLINE 1: select ORDR_DATE from rules_probe.stg_orders\n               ^\nHINT:  Perhaps you meant to reference the column \"stg_orders.order_date\".";

#[test]
fn postgres_folded_name_matches_case_insensitively() {
    let sql = "select ORDR_DATE from {{ ref('stg_orders') }}\n";
    let fix = fixed(&input(
        ErrorClass::MissingColumn,
        "postgres",
        POSTGRES_FOLDED,
        sql,
        STG_ORDERS,
    ));
    assert_eq!(
        fix.fixed_sql,
        "select ORDER_DATE from {{ ref('stg_orders') }}\n"
    );
}

/// `select "Ordr_Date" from rules_probe.stg_orders`
const POSTGRES_QUOTED: &str = "column \"Ordr_Date\" does not exist\nLINE 1: select \"Ordr_Date\" from rules_probe.stg_orders\n               ^\nHINT:  Perhaps you meant to reference the column \"stg_orders.order_date\".";

#[test]
fn postgres_quoted_identifier_gets_the_exact_name() {
    let sql = "select \"Ordr_Date\" from {{ ref('stg_orders') }}\n";
    let fix = fixed(&input(
        ErrorClass::MissingColumn,
        "postgres",
        POSTGRES_QUOTED,
        sql,
        STG_ORDERS,
    ));
    assert_eq!(
        fix.fixed_sql,
        "select \"order_date\" from {{ ref('stg_orders') }}\n"
    );
}

// ---------------------------------------------------------------------------------------
// misspelt_ref

/// `select * from {{ ref('stg_ordrs') }}`
const DBT_BAD_REF: &str = "Compilation Error\n  Model 'model.coffee_shop.orders' (models/orders.sql) depends on a node named 'stg_ordrs' which was not found";

#[test]
fn ref_happy_path() {
    let sql = "select * from {{ ref('stg_ordrs') }}\n";
    let fix = fixed(&input(ErrorClass::BadRef, "duckdb", DBT_BAD_REF, sql, &[]));
    assert_eq!(fix.fixed_sql, "select * from {{ ref('stg_orders') }}\n");
    assert_eq!(fix.rule, "misspelt_ref");
    assert!(
        fix.explanation.contains("`stg_orders`"),
        "{}",
        fix.explanation
    );
}

#[test]
fn ref_in_comments_and_other_functions_is_left_alone() {
    // Same error; the Jinja comment and the look-alike macro are not the failing call.
    let sql = "{# was ref('stg_ordrs') #}\nselect * from {{ ref(\"stg_ordrs\") }} where x = '{{ my_ref(\"stg_ordrs\") }}'\n";
    let fix = fixed(&input(ErrorClass::BadRef, "duckdb", DBT_BAD_REF, sql, &[]));
    assert_eq!(
        fix.fixed_sql,
        "{# was ref('stg_ordrs') #}\nselect * from {{ ref(\"stg_orders\") }} where x = '{{ my_ref(\"stg_ordrs\") }}'\n"
    );
}

#[test]
fn ref_shaped_error_under_unknown_relation() {
    let sql = "select * from {{ ref('stg_ordrs') }}\n";
    let fix = fixed(&input(
        ErrorClass::UnknownRelation,
        "duckdb",
        DBT_BAD_REF,
        sql,
        &[],
    ));
    assert_eq!(fix.fixed_sql, "select * from {{ ref('stg_orders') }}\n");
}

/// `select * from main.stg_ordrs` — a hard-coded relation, not a ref.
const DUCKDB_CATALOG_ERROR: &str = "Runtime Error in model orders (models/orders.sql)\n  Catalog Error: Table with name stg_ordrs does not exist!\n  Did you mean \"stg_orders\"?\n  \n  LINE 5:     select * from main.stg_ordrs\n                            ^^^^^^^^^^^^^^";

/// The warehouse's "does not exist" is not dbt's bad-ref error, so `misspelt_ref` stays
/// out of it; `hardcoded_relation` turns the hard-coded name into a `ref()` of the
/// nearest node.
#[test]
fn warehouse_unknown_relation_becomes_a_ref() {
    let sql = "select * from main.stg_ordrs\n";
    let fix = fixed(&input(
        ErrorClass::UnknownRelation,
        "duckdb",
        DUCKDB_CATALOG_ERROR,
        sql,
        &[],
    ));
    assert_eq!(fix.rule, "hardcoded_relation");
    assert_eq!(fix.fixed_sql, "select * from {{ ref('stg_orders') }}\n");
}

/// PostgreSQL 15.20 via psql, `select * from "main"."stg_ordrs"` (the same text for
/// `main.stg_ordrs`; `relation "stg_ordrs" does not exist` without a schema).
const POSTGRES_MISSING_RELATION: &str = "relation \"main.stg_ordrs\" does not exist\nLINE 1: select * from \"main\".\"stg_ordrs\"\n                      ^";

#[test]
fn postgres_quoted_hardcoded_relation_becomes_a_ref() {
    let sql = "select o.* from \"main\".\"stg_ordrs\" as o\n";
    let fix = fixed(&input(
        ErrorClass::UnknownRelation,
        "postgres",
        POSTGRES_MISSING_RELATION,
        sql,
        &[],
    ));
    assert_eq!(fix.rule, "hardcoded_relation");
    assert_eq!(
        fix.fixed_sql,
        "select o.* from {{ ref('stg_orders') }} as o\n"
    );
}

/// Two nodes equally near (`stg_ordrs` is one edit from `stg_orders` and from a
/// `stg_ordes`): no fix.
#[test]
fn hardcoded_relation_with_two_near_nodes_is_left_alone() {
    let nodes: &[&str] = &["stg_orders", "stg_ordes", "orders"];
    let sql = "select * from main.stg_ordrs\n";
    let mut i = input(
        ErrorClass::UnknownRelation,
        "duckdb",
        DUCKDB_CATALOG_ERROR,
        sql,
        &[],
    );
    i.project_node_names = nodes;
    assert_eq!(propose_fix(&i), None);
}

/// `select * from {{ ref('coffee_shop', 'stg_ordrs') }}`
const DBT_BAD_REF_WITH_PACKAGE: &str = "Compilation Error\n  Model 'model.coffee_shop.orders' (models/orders.sql) depends on a node named 'stg_ordrs' in package or project 'coffee_shop' which was not found";

#[test]
fn ref_with_package_rewrites_only_the_name() {
    let sql = "select * from {{ ref('coffee_shop', 'stg_ordrs') }}\n";
    let fix = fixed(&input(
        ErrorClass::BadRef,
        "duckdb",
        DBT_BAD_REF_WITH_PACKAGE,
        sql,
        &[],
    ));
    assert_eq!(
        fix.fixed_sql,
        "select * from {{ ref('coffee_shop', 'stg_orders') }}\n"
    );
}

#[test]
fn ref_with_two_equal_candidates_gives_no_fix() {
    let sql = "select * from {{ ref('stg_ordrs') }}\n";
    let nodes = ["stg_orders", "stg_ordes"];
    let mut inp = input(ErrorClass::BadRef, "duckdb", DBT_BAD_REF, sql, &[]);
    inp.project_node_names = &nodes;
    assert_eq!(propose_fix(&inp), None);
}

// ---------------------------------------------------------------------------------------
// misspelt_source

/// `select * from {{ source('raw', 'raw_ordrs') }}`
const DBT_BAD_SOURCE_TABLE: &str = "Compilation Error\n  Model 'model.coffee_shop.orders' (models/orders.sql) depends on a source named 'raw.raw_ordrs' which was not found";

#[test]
fn source_table_typo() {
    let sql = "select * from {{ source('raw', 'raw_ordrs') }}\n";
    let fix = fixed(&input(
        ErrorClass::UnknownSource,
        "duckdb",
        DBT_BAD_SOURCE_TABLE,
        sql,
        &[],
    ));
    assert_eq!(
        fix.fixed_sql,
        "select * from {{ source('raw', 'raw_orders') }}\n"
    );
    assert_eq!(fix.rule, "misspelt_source");
}

/// `select * from {{ source('rwa', 'raw_orders') }}`
const DBT_BAD_SOURCE_NAME: &str = "Compilation Error\n  Model 'model.coffee_shop.orders' (models/orders.sql) depends on a source named 'rwa.raw_orders' which was not found";

#[test]
fn source_name_typo() {
    let sql = "select * from {{ source(\"rwa\", \"raw_orders\") }}\n";
    let fix = fixed(&input(
        ErrorClass::UnknownSource,
        "duckdb",
        DBT_BAD_SOURCE_NAME,
        sql,
        &[],
    ));
    assert_eq!(
        fix.fixed_sql,
        "select * from {{ source(\"raw\", \"raw_orders\") }}\n"
    );
}

#[test]
fn source_rejected_or_undeclared_gives_no_fix() {
    let sql = "select * from {{ source('raw', 'raw_ordrs') }}\n";
    let rejected = ["select * from {{ source('raw', 'raw_orders') }}\n"];
    let mut inp = input(
        ErrorClass::UnknownSource,
        "duckdb",
        DBT_BAD_SOURCE_TABLE,
        sql,
        &[],
    );
    inp.rejected_sql = &rejected;
    assert_eq!(propose_fix(&inp), None);

    let mut inp = input(
        ErrorClass::UnknownSource,
        "duckdb",
        DBT_BAD_SOURCE_TABLE,
        sql,
        &[],
    );
    inp.source_tables = &[];
    assert_eq!(propose_fix(&inp), None);
}

// ---------------------------------------------------------------------------------------
// Snowflake and BigQuery: no warehouse here to produce these, so the texts follow the
// wording seen in public dbt issue reports, with this project's names substituted:
// Snowflake `000904 (42000): SQL compilation error: error line L at position P` +
// `invalid identifier 'ALIAS.COLUMN'` (e.g. get-select/dbt-snowflake-monitoring#52),
// BigQuery `Unrecognized name: column at [L:C]` (e.g. cal-itp/data-infra#4229).

const SNOWFLAKE_SHAPED: &str = "Database Error in model orders (models/orders.sql)\n  000904 (42000): SQL compilation error: error line 1 at position 19\n  invalid identifier 'O.ORDR_DATE'\n  compiled code at target/run/coffee_shop/models/orders.sql";

#[test]
fn snowflake_upper_cased_qualified_identifier() {
    let sql = "select o.order_id, o.ordr_date from {{ ref('stg_orders') }} o\n";
    let fix = fixed(&input(
        ErrorClass::MissingColumn,
        "snowflake",
        SNOWFLAKE_SHAPED,
        sql,
        STG_ORDERS,
    ));
    assert_eq!(
        fix.fixed_sql,
        "select o.order_id, o.order_date from {{ ref('stg_orders') }} o\n"
    );
}

const BIGQUERY_SHAPED: &str = "Database Error in model orders (models/orders.sql)\n  Unrecognized name: ordr_date at [1:19]\n  compiled code at target/run/coffee_shop/models/orders.sql";

#[test]
fn bigquery_unrecognized_name() {
    let sql = "select order_id, ordr_date from {{ ref('stg_orders') }}\n";
    let fix = fixed(&input(
        ErrorClass::MissingColumn,
        "bigquery",
        BIGQUERY_SHAPED,
        sql,
        STG_ORDERS,
    ));
    assert_eq!(
        fix.fixed_sql,
        "select order_id, order_date from {{ ref('stg_orders') }}\n"
    );
}

#[test]
fn an_alias_with_the_misspelt_name_is_kept() {
    // The DuckDB error of the qualified-column test; here the model also publishes the
    // misspelt name as its output column, which its children may select.
    let sql =
        "select o.order_id, o.ordr_date as ordr_date, o.amount from {{ ref('stg_orders') }} as o\n";
    let fix = fixed(&input(
        ErrorClass::MissingColumn,
        "duckdb",
        DUCKDB_VALUES_LIST,
        sql,
        STG_ORDERS,
    ));
    assert_eq!(
        fix.fixed_sql,
        "select o.order_id, o.order_date as ordr_date, o.amount from {{ ref('stg_orders') }} as o\n"
    );
}

// ---------------------------------------------------------------------------------------
// Division by zero

/// DuckDB 2.0.1 (the `duckdb` Python package of `.venv`), `select amount // o.qty::int from
/// (values (5.0, 0)) o(amount, qty)`, the exception text verbatim; dbt prefixes it with
/// `Runtime Error in model …`.
const DUCKDB_DIVISION_BY_ZERO: &str = "Runtime Error in model orders (models/orders.sql)\n  Invalid Input Error: Division by zero in expression (CAST(amount AS DOUBLE) // CAST(qty AS DOUBLE)). Use TRY(...) to return NULL for this expression, or SET error_on_division_by_zero=false to return NULL for all divisions by zero.";

#[test]
fn duckdb_names_the_divisor_to_guard() {
    let sql = "select amount / 100 as dollars, amount // o.qty::int as per_item, amount % 7 as m\nfrom {{ ref('stg_orders') }} as o\n";
    let fix = fixed(&input(
        ErrorClass::DivisionByZero,
        "duckdb",
        DUCKDB_DIVISION_BY_ZERO,
        sql,
        &[],
    ));
    assert_eq!(fix.rule, "division_by_zero");
    assert_eq!(
        fix.fixed_sql,
        "select amount / 100 as dollars, amount // nullif(o.qty::int, 0) as per_item, amount % 7 as m\nfrom {{ ref('stg_orders') }} as o\n"
    );
    assert!(fix.explanation.contains("NULL"), "{}", fix.explanation);
}

/// Two divisions by `qty`: DuckDB's text does not say which one failed.
#[test]
fn duckdb_divisor_named_twice_is_left_alone() {
    let sql = "select amount // qty as a, amount % qty as b from {{ ref('stg_orders') }}\n";
    assert_eq!(
        propose_fix(&input(
            ErrorClass::DivisionByZero,
            "duckdb",
            DUCKDB_DIVISION_BY_ZERO,
            sql,
            &[],
        )),
        None
    );
}

/// PostgreSQL 15.20 via psql, `select x / seat_count as r from (values (5, 0)) as
/// t(x, seat_count)` (the same for `%`); it names no expression.
const POSTGRES_DIVISION_BY_ZERO: &str = "division by zero";

#[test]
fn postgres_guards_the_only_unguarded_division() {
    let sql = "select amount / 100.0 as dollars, amount / nullif(qty, 0) as per_item,\n    amount / seats as per_seat\nfrom {{ ref('stg_orders') }}\n";
    let fix = fixed(&input(
        ErrorClass::DivisionByZero,
        "postgres",
        POSTGRES_DIVISION_BY_ZERO,
        sql,
        &[],
    ));
    assert_eq!(
        fix.fixed_sql,
        "select amount / 100.0 as dollars, amount / nullif(qty, 0) as per_item,\n    amount / nullif(seats, 0) as per_seat\nfrom {{ ref('stg_orders') }}\n"
    );
}

#[test]
fn postgres_with_two_unguarded_divisions_is_left_alone() {
    let sql = "select amount / qty as a, amount / seats as b from {{ ref('stg_orders') }}\n";
    assert_eq!(
        propose_fix(&input(
            ErrorClass::DivisionByZero,
            "postgres",
            POSTGRES_DIVISION_BY_ZERO,
            sql,
            &[],
        )),
        None
    );
}
