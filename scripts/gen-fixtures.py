#!/usr/bin/env python3
"""Regenerate the dbt failure fixtures from REAL dbt runs.

For every selected case in CASES below:

  1. copy examples/coffee_shop to a fresh temp dir (never run dbt inside examples/);
     for a Postgres case, port the copy's few DuckDB-only expressions (PG_PORT), give
     the run its own throwaway schema (and, where the case asks, its own login role),
     and run the case's set-up SQL as the admin user;
  2. for parse-time failures (and "it worked yesterday" cases), first run a clean,
     successful `dbt build` there, so the target/ folder keeps the stale
     run_results.json / manifest.json of that good run (this is the real "stale
     run_results" trap: a parse failure writes none);
  3. apply the breakage: literal search/replace edits, each of which must match exactly
     once in its file, or new files (search None);
  4. run `dbt build --profiles-dir .` (`--target postgres` for Postgres cases; some cases
     with `--log-format-file json`), capturing stdout+stderr;
  5. check the outcome is what the case claims (non-zero exit code, the error text
     contains `error_contains`), then save into
     crates/artifacts/tests/fixtures/<case>/ (or --out DIR/<case>/):
        run_results.json   as dbt left it (fresh, or stale from the good run)
        manifest.json      as dbt left it, trimmed (see trim_manifest)
        dbt.log            text debug log (ANSI, appended across runs) or JSON lines
        console.txt        stdout+stderr of the failing invocation
        project_files.json the broken project's models/macros/yml + seed header lines
        case.json          what the detector is expected to find
  6. Postgres: drop every schema the case made (`<run schema>*`, cascade) and its role,
     whether the case passed or not.

Artifacts are kept exactly as dbt wrote them (absolute temp paths and per-run schema
names included) except for the manifest trimming.

Stdlib only. dbt is `$DBT_BIN`, else `<repo>/.venv/bin/dbt`; the Postgres set-up SQL
runs through the psycopg2 that dbt-postgres installs beside it (`<dbt's dir>/python`).

Adapters: DuckDB cases need nothing but the venv. Postgres cases (`pg_*`) need
dbt-postgres (scripts/setup.sh installs it) and a PostgreSQL server the `postgres`
target of examples/coffee_shop/profiles.yml reaches: DBT_PG_HOST, DBT_PG_PORT,
DBT_PG_USER, DBT_PG_PASSWORD, DBT_PG_DBNAME (defaults 127.0.0.1, 5432, postgres, empty,
test). That user must be able to create schemas and roles (the permission cases make a
role without grants); everything a case creates is dropped when it ends.

Usage:
  scripts/gen-fixtures.py                       # all DuckDB cases
  scripts/gen-fixtures.py --adapter postgres    # all Postgres cases
  DBTOPS_FIXTURE_ADAPTER=postgres scripts/gen-fixtures.py   # the same
  scripts/gen-fixtures.py --adapter all         # both
  scripts/gen-fixtures.py --only a,b            # some cases, whatever their adapter
  scripts/gen-fixtures.py --list                # list the cases of --adapter
  scripts/gen-fixtures.py --keep                # keep the temp copies (paths are printed)
  scripts/gen-fixtures.py --out DIR             # write the fixtures under DIR instead

Cases that were tried and dropped:
  * trailing_comma_before_from: DuckDB accepts `select a, b, from t` (trailing commas
    are legal almost everywhere in DuckDB), so the build passes: not a failure case.
  * plain `a / 0`: DuckDB 1.4+/2.x returns inf (float division) or NULL, no error;
    only integer division `//` and modulo `%` by zero raise "Division by zero". The
    division_by_zero case therefore uses `//` on a real zero (a kiosk with 0 seats).
  * missing comma between two bare columns (`order_id customer_id`): DuckDB silently
    aliases; missing_comma drops the comma after an aliased expression instead
    (`... as order_date status as order_status`), which is a parser error.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROJECT = REPO / "examples" / "coffee_shop"
OUT = REPO / "crates" / "artifacts" / "tests" / "fixtures"
DBT_VERSION_FALLBACK = "1.11.16"
PROJECT_NAME = "coffee_shop"

# Manifest top-level keys that are kept; `unit_tests` is kept only if non-empty.
MANIFEST_KEEP = ("metadata", "nodes", "sources", "parent_map", "child_map")

CLASSES = {
    "missing_column", "ambiguous_column", "unknown_relation", "bad_ref",
    "unknown_source", "sql_syntax", "jinja_compilation", "undefined_macro",
    "yaml_config", "type_mismatch", "runtime_data", "division_by_zero",
    "missing_group_by", "unknown_function", "data_test_failure",
    "connection", "permission", "timeout",
}

DUCKDB = "duckdb"
POSTGRES = "postgres"
ADAPTERS = (DUCKDB, POSTGRES)
# Chooses the adapter when --adapter is not given.
ADAPTER_ENV = "DBTOPS_FIXTURE_ADAPTER"

# The connection of the `postgres` target (examples/coffee_shop/profiles.yml), with the
# profile's own defaults. Read from the caller's environment before dbt_env() drops
# every other DBT_* variable.
PG_SETTINGS = {
    "DBT_PG_HOST": "127.0.0.1",
    "DBT_PG_PORT": "5432",
    "DBT_PG_USER": "postgres",
    "DBT_PG_PASSWORD": "",
    "DBT_PG_DBNAME": "test",
}


def model(name: str, path: str, cls: str) -> dict:
    return {"unique_id": f"model.{PROJECT_NAME}.{name}", "path": path, "class": cls}


STG = "models/staging/"
MARTS = "models/marts/"
FIN = "models/marts/finance/"

# examples/coffee_shop is written for DuckDB; these edits make a copy build on
# PostgreSQL 15 (23 of 23 nodes pass) before a Postgres case breaks it. The seeds load
# into the run's schema, so the sources must point there instead of DuckDB's `main`.
PG_PORT: list[tuple[str, str, str]] = [
    (STG + "_sources.yml", "    schema: main\n", "    schema: \"{{ target.schema }}\"\n"),
    # No try_cast in Postgres: only numbers are cast, as try_cast did.
    (STG + "stg_customers.sql", "try_cast(loyalty_points as integer)",
     "case when loyalty_points ~ '^-?[0-9]+$' then cast(loyalty_points as integer) end"),
    (FIN + "revenue_daily.sql", "dayname(order_date)", "trim(to_char(order_date, 'Day'))"),
    (FIN + "revenue_daily.sql", "strftime(order_date, '%Y-%m')",
     "to_char(order_date, 'YYYY-MM')"),
    # Postgres divides integers with `/`; it has no `//`.
    (FIN + "store_revenue.sql", "// nullif(s.seat_count, 0)", "/ nullif(s.seat_count, 0)"),
]

# A dbt 1.8+ unit test on stg_customers (a new YAML file). It passes on the example as it
# is; the unit-test cases change the model so that it fails.
UNIT_TEST_YML = """\
version: 2

unit_tests:
  - name: customer_name_is_first_then_last
    description: The display name is the given name, a space, then the family name.
    model: stg_customers
    given:
      - input: source('coffee_shop_raw', 'raw_customers')
        rows:
          - {id: 1, first_name: Ada, last_name: Marsh, email: ada@example.com, signup_date: '2023-01-14', home_store_id: 1, loyalty_points: '120'}
      - input: ref('raw_customers')
        rows: []
    expect:
      rows:
        - {customer_id: 1, customer_name: Ada Marsh}
"""

# A singular data test (a new file under tests/): every order has at least one line. One
# order of the example has none yet, so it fails with data.
SINGULAR_TEST_SQL = """\
-- Every order has at least one line: an order without any is a till that lost its items.
select order_id, item_count
from {{ ref('orders') }}
where item_count = 0
"""


# A new staging model over a table of a locked schema, for the permission cases. A table,
# not a view: Postgres checks a view's SELECT privileges only when it is read.
PII_MODEL = """\
{{ config(materialized='table') }}

select customer_id, tax_id
from {{ target.schema }}_locked.customer_pii
"""


def unit_test_case(name: str, adapter: str) -> dict:
    return {
        "name": name,
        "adapter": adapter,
        "description": "A unit test (dbt 1.8+ `unit_tests:` in models/staging/_unit_tests.yml) "
                       "says customer_name is 'first last'; the model was changed to 'last, "
                       "first'. dbt build runs the unit test before the model: it fails "
                       "(actual differs from expected), stg_customers and everything below it "
                       "are skipped. Whether the test or the model is right is a person's call.",
        "edits": [
            (STG + "_unit_tests.yml", None, UNIT_TEST_YML),
            (STG + "stg_customers.sql", "first_name || ' ' || last_name as customer_name",
             "last_name || ', ' || first_name as customer_name"),
        ],
        "expected": [{
            "unique_id": f"unit_test.{PROJECT_NAME}.stg_customers.customer_name_is_first_then_last",
            "path": STG + "_unit_tests.yml",
            "class": "data_test_failure",
            "model_path": STG + "stg_customers.sql",
        }],
        "error_contains": ["actual differs from expected"],
        "expected_skipped": [f"model.{PROJECT_NAME}.stg_customers"],
    }


def singular_test_case(name: str, adapter: str) -> dict:
    return {
        "name": name,
        "adapter": adapter,
        "description": "A singular data test (tests/assert_orders_have_items.sql, a new file) "
                       "finds the one order of the example that has no lines: Got 1 result, "
                       "configured to fail if != 0. No model is wrong; the data is.",
        "edits": [("tests/assert_orders_have_items.sql", None, SINGULAR_TEST_SQL)],
        "expected": [{
            "unique_id": f"test.{PROJECT_NAME}.assert_orders_have_items",
            "path": "tests/assert_orders_have_items.sql",
            "class": "data_test_failure",
        }],
        "error_contains": ["assert_orders_have_items", "Got 1 result"],
    }


# Each case:
#   name, description, edits: [(rel file, old, new)] (old None: a new file),
#   expected: [...],
#   error_contains: [substrings that must appear in console.txt or dbt.log],
#   prior_good_run: run a successful build first (parse-time failures),
#   json_log: add `--log-format-file json`,
#   adapter: "duckdb" (the default) or "postgres";
#   Postgres only:
#   pg_role: create a login role `<schema>_role` (no grants) and build as it,
#   pg_setup: SQL run as the admin user before any build ({schema} and {role} are
#             replaced; create nothing outside schemas named `{schema}*`),
#   pg_env: environment of the failing build only ({closed_port}: a free local port).
# An expected unique_id ending in "*" is a prefix resolved against the manifest
# (test node ids end in a hash).
CASES: list[dict] = [
    {
        "name": "misspelt_column_staging",
        "description": "Typo in a staging model's select list: `custmer_id` for `customer_id` "
                       "(raw_orders has customer_id). DuckDB Binder Error: Referenced column "
                       "\"custmer_id\" not found in FROM clause, with candidate bindings. "
                       "Downstream orders, customers, revenue_daily, store_revenue are skipped.",
        "edits": [(STG + "stg_orders.sql", "    customer_id,\n", "    custmer_id,\n")],
        "expected": [model("stg_orders", STG + "stg_orders.sql", "missing_column")],
        "error_contains": ['Referenced column "custmer_id" not found'],
    },
    {
        "name": "misspelt_column_mart",
        "description": "Typo in a mart referencing a column of a CTE over a staging model: "
                       "`o.ordr_date` for `o.order_date`. DuckDB Binder Error: the table "
                       "alias `o` has no column named ordr_date.",
        "edits": [(MARTS + "orders.sql", "    o.order_date,\n", "    o.ordr_date,\n")],
        "expected": [model("orders", MARTS + "orders.sql", "missing_column")],
        "error_contains": ["ordr_date"],
    },
    {
        "name": "misspelt_ref",
        "description": "ref('stg_ordrs') for ref('stg_orders'). A parse-time compilation error "
                       "(the node is not found); dbt writes no run_results.json, so the one "
                       "left from the preceding successful build is stale.",
        "edits": [(MARTS + "orders.sql", "ref('stg_orders')", "ref('stg_ordrs')")],
        "expected": [model("orders", MARTS + "orders.sql", "bad_ref")],
        "error_contains": ["stg_ordrs", "was not found"],
        "prior_good_run": True,
    },
    {
        "name": "misspelt_source_table",
        "description": "source('coffee_shop_raw', 'raw_stors') for 'raw_stores'. Parse-time "
                       "compilation error (source not found); stale run_results.json remains.",
        "edits": [(STG + "stg_stores.sql", "'coffee_shop_raw', 'raw_stores')",
                   "'coffee_shop_raw', 'raw_stors')")],
        "expected": [model("stg_stores", STG + "stg_stores.sql", "unknown_source")],
        "error_contains": ["raw_stors", "was not found"],
        "prior_good_run": True,
    },
    {
        "name": "broken_jinja",
        "description": "Unclosed `{{` in a mart: `{{ ref('orders')` without `}}`. Jinja "
                       "syntax error at parse time; stale run_results.json remains.",
        "edits": [(MARTS + "customers.sql", "{{ ref('orders') }}", "{{ ref('orders')")],
        "expected": [model("customers", MARTS + "customers.sql", "jinja_compilation")],
        "error_contains": ["Compilation Error", "customers"],
        "prior_good_run": True,
    },
    {
        "name": "undefined_macro",
        "description": "Call of a macro that does not exist: cents_to_dolars() for "
                       "cents_to_dollars(). Not a parse-time error in dbt 1.11: the model "
                       "fails at compile time during the run (Compilation Error: "
                       "'cents_to_dolars' is undefined), run_results.json is fresh, exit 1.",
        "edits": [(STG + "stg_products.sql", "cents_to_dollars(", "cents_to_dolars(")],
        "expected": [model("stg_products", STG + "stg_products.sql", "undefined_macro")],
        "error_contains": ["cents_to_dolars", "is undefined"],
    },
    {
        "name": "missing_comma",
        "description": "Missing comma after an aliased select item: `cast(ordered_at as date) "
                       "as order_date status as order_status`. DuckDB Parser Error: syntax "
                       "error at or near \"status\". (A missing comma between two bare columns "
                       "would be silently read as an alias by DuckDB.)",
        "edits": [(STG + "stg_orders.sql", "as order_date,\n", "as order_date\n")],
        "expected": [model("stg_orders", STG + "stg_orders.sql", "sql_syntax")],
        "error_contains": ['syntax error at or near "status"'],
    },
    {
        "name": "unknown_function",
        "description": "Postgres/Oracle-style to_char(order_date, 'YYYY-MM') instead of "
                       "DuckDB's strftime(order_date, '%Y-%m'). DuckDB Catalog Error: Scalar "
                       "Function with name to_char does not exist (its 'Did you mean' hint "
                       "is misleading).",
        "edits": [(FIN + "revenue_daily.sql", "strftime(order_date, '%Y-%m')",
                   "to_char(order_date, 'YYYY-MM')")],
        "expected": [model("revenue_daily", FIN + "revenue_daily.sql", "unknown_function")],
        "error_contains": ["to_char does not exist"],
    },
    {
        "name": "division_by_zero",
        "description": "nullif() guard removed from an integer division: `revenue // "
                       "s.seat_count` where the station kiosk has 0 seats. DuckDB Invalid "
                       "Input Error: Division by zero (only with data: `--empty` passes).",
        "edits": [(FIN + "store_revenue.sql", "// nullif(s.seat_count, 0)", "// s.seat_count")],
        "expected": [model("store_revenue", FIN + "store_revenue.sql", "division_by_zero")],
        "error_contains": ["Division by zero"],
    },
    {
        "name": "bad_cast",
        "description": "try_cast() replaced by cast() in stg_customers, whose raw loyalty "
                       "points contain 'n/a'. stg_customers is a VIEW, so DuckDB only "
                       "evaluates the cast when the downstream TABLE `customers` is built: the "
                       "view builds fine and dbt reports the Conversion Error (Could not "
                       "convert string 'n/a' to INT32 when casting from source column "
                       "loyalty_points) on `customers`, whose own SQL is correct. The root "
                       "cause is upstream (root_cause_*). Only with data: `--empty` passes.",
        "edits": [(STG + "stg_customers.sql", "try_cast(loyalty_points as integer)",
                   "cast(loyalty_points as integer)")],
        "expected": [dict(model("customers", MARTS + "customers.sql", "runtime_data"),
                          root_cause_unique_id=f"model.{PROJECT_NAME}.stg_customers",
                          root_cause_path=STG + "stg_customers.sql")],
        "error_contains": ["Could not convert string 'n/a' to INT32"],
    },
    {
        "name": "missing_group_by",
        "description": "s.city dropped from the GROUP BY while still selected. DuckDB Binder "
                       "Error: column \"city\" must appear in the GROUP BY clause or must be "
                       "part of an aggregate function.",
        "edits": [(FIN + "store_revenue.sql",
                   "group by s.store_id, s.store_name, s.city, s.seat_count",
                   "group by s.store_id, s.store_name, s.seat_count")],
        "expected": [model("store_revenue", FIN + "store_revenue.sql", "missing_group_by")],
        "error_contains": ["must appear in the GROUP BY clause"],
    },
    {
        "name": "ambiguous_column",
        "description": "Unqualified `store_id` in a select over a join of stores and orders, "
                       "which both have store_id. DuckDB Binder Error: Ambiguous reference to "
                       "column name \"store_id\".",
        "edits": [(FIN + "store_revenue.sql", "select\n    s.store_id,\n", "select\n    store_id,\n")],
        "expected": [model("store_revenue", FIN + "store_revenue.sql", "ambiguous_column")],
        "error_contains": ['Ambiguous reference to column name "store_id"'],
    },
    {
        "name": "type_mismatch",
        "description": "A date compared to an integer literal: `order_date >= 20240101`. DuckDB "
                       "Binder Error: Cannot compare values of type DATE and type "
                       "INTEGER_LITERAL - an explicit cast is required.",
        "edits": [(MARTS + "customers.sql", "    where order_status = 'completed'\n",
                   "    where order_status = 'completed'\n      and order_date >= 20240101\n")],
        "expected": [model("customers", MARTS + "customers.sql", "type_mismatch")],
        "error_contains": ["Cannot compare values of type DATE"],
    },
    {
        "name": "unknown_relation",
        "description": "A hard-coded relation with a typo instead of ref(): `from "
                       "main.raw_order_item`. DuckDB Catalog Error: Table with name "
                       "raw_order_item does not exist.",
        "edits": [(STG + "stg_order_items.sql", "from {{ ref('raw_order_items') }}",
                   "from main.raw_order_item")],
        "expected": [model("stg_order_items", STG + "stg_order_items.sql", "unknown_relation")],
        "error_contains": ["raw_order_item does not exist"],
    },
    {
        "name": "data_test_failure",
        "description": "upper(status) in stg_orders: the model builds, but the accepted_values "
                       "test on order_status fails (3 values not in the list). The failing "
                       "node is the test; downstream models are skipped. Only with data: "
                       "`--empty` passes.",
        "edits": [(STG + "stg_orders.sql", "    status as order_status\n",
                   "    upper(status) as order_status\n")],
        "expected": [{
            "unique_id": f"test.{PROJECT_NAME}.accepted_values_stg_orders_order_status__completed__placed__returned.*",
            "path": STG + "_staging.yml",
            "class": "data_test_failure",
            "attached_node": f"model.{PROJECT_NAME}.stg_orders",
            "model_path": STG + "stg_orders.sql",
        }],
        "error_contains": ["accepted_values_stg_orders_order_status"],
    },
    {
        "name": "yaml_config",
        "description": "Broken YAML indentation in models/marts/_marts.yml. Parse-time error "
                       "(not fixable by editing a model's SQL); stale run_results.json remains.",
        "edits": [(MARTS + "_marts.yml", "  - name: customers\n    description:",
                   "  - name: customers\n   description:")],
        "expected": [{"unique_id": None, "path": MARTS + "_marts.yml", "class": "yaml_config"}],
        "error_contains": ["_marts.yml"],
        "prior_good_run": True,
    },
    {
        "name": "json_log_misspelt_column",
        "description": "Same breakage as misspelt_column_staging (`custmer_id`), run with "
                       "`--log-format-file json`: dbt.log is JSON lines, console stays text.",
        "edits": [(STG + "stg_orders.sql", "    customer_id,\n", "    custmer_id,\n")],
        "expected": [model("stg_orders", STG + "stg_orders.sql", "missing_column")],
        "error_contains": ['Referenced column "custmer_id" not found', 'RunResultError'],
        "json_log": True,
    },
    {
        "name": "jinja_loop_missing_column",
        "description": "A Jinja for-loop (with `{%-` whitespace control) adds one column per "
                       "status above a misspelt column (`item_cnt` for `item_count`) in "
                       "revenue_daily: the compiled SQL has a different number of lines than "
                       "the model, so DuckDB's `LINE n` (which also counts dbt's wrapper) "
                       "must be mapped back through the Jinja to the model's own line.",
        "edits": [
            (FIN + "revenue_daily.sql", "as order_month,\n",
             "as order_month,\n"
             "    {%- for status in ['completed', 'placed', 'returned'] %}\n"
             "    sum(case when order_status = '{{ status }}' then 1 else 0 end)\n"
             "        as {{ status }}_orders,\n"
             "    {%- endfor %}\n"),
            (FIN + "revenue_daily.sql", "sum(item_count) as items_sold",
             "sum(item_cnt) as items_sold"),
        ],
        "expected": [model("revenue_daily", FIN + "revenue_daily.sql", "missing_column")],
        "error_contains": ['"item_cnt" not found'],
    },
    {
        "name": "multi_failure",
        "description": "Two independent models broken in one run: a misspelt column in "
                       "stg_stores (`seat_cnt`) and to_char() in revenue_daily. store_revenue "
                       "(downstream of stg_stores) is skipped; it is not an incident.",
        "edits": [
            (STG + "stg_stores.sql", "    seat_count\n", "    seat_cnt\n"),
            (FIN + "revenue_daily.sql", "strftime(order_date, '%Y-%m')",
             "to_char(order_date, 'YYYY-MM')"),
        ],
        "expected": [
            model("stg_stores", STG + "stg_stores.sql", "missing_column"),
            model("revenue_daily", FIN + "revenue_daily.sql", "unknown_function"),
        ],
        "error_contains": ['"seat_cnt" not found', "to_char does not exist"],
        "expected_skipped": [f"model.{PROJECT_NAME}.store_revenue"],
    },
    unit_test_case("unit_test_failure", DUCKDB),
    {
        "name": "unit_test_sql_error",
        "adapter": DUCKDB,
        "description": "stg_customers selects a misspelt column and has a unit test. dbt build "
                       "runs the unit test first: it fails with the model's Binder Error (not "
                       "a row mismatch), and the model is skipped. The failure is the model's.",
        "edits": [
            (STG + "_unit_tests.yml", None, UNIT_TEST_YML),
            (STG + "stg_customers.sql", "lower(email) as email", "lower(emial) as email"),
        ],
        "expected": [model("stg_customers", STG + "stg_customers.sql", "missing_column")],
        "failing_node": {
            f"model.{PROJECT_NAME}.stg_customers":
                f"unit_test.{PROJECT_NAME}.stg_customers.customer_name_is_first_then_last",
        },
        "error_contains": ['"emial" not found'],
    },
    singular_test_case("singular_test_failure", DUCKDB),
    # ----------------------------------------------------------------------------------
    # PostgreSQL 15 (dbt-postgres 1.11.0), the example ported by PG_PORT. The same
    # breakages as above where Postgres fails on them too, in Postgres' words.
    # ----------------------------------------------------------------------------------
    {
        "name": "pg_misspelt_column",
        "adapter": POSTGRES,
        "description": "`custmer_id` for `customer_id` in stg_orders. Postgres: column "
                       "\"custmer_id\" does not exist, with a HINT naming the real column.",
        "edits": [(STG + "stg_orders.sql", "    customer_id,\n", "    custmer_id,\n")],
        "expected": [model("stg_orders", STG + "stg_orders.sql", "missing_column")],
        "error_contains": ['column "custmer_id" does not exist'],
    },
    {
        "name": "pg_misspelt_ref",
        "adapter": POSTGRES,
        "description": "ref('stg_ordrs') for ref('stg_orders'): dbt's own parse-time error, "
                       "before Postgres is asked anything; stale run_results.json remains.",
        "edits": [(MARTS + "orders.sql", "ref('stg_orders')", "ref('stg_ordrs')")],
        "expected": [model("orders", MARTS + "orders.sql", "bad_ref")],
        "error_contains": ["stg_ordrs", "was not found"],
        "prior_good_run": True,
    },
    {
        "name": "pg_unknown_relation",
        "adapter": POSTGRES,
        "description": "A hard-coded relation with a typo instead of ref(): `from "
                       "{{ target.schema }}.raw_order_item`. Postgres: relation "
                       "\"<schema>.raw_order_item\" does not exist.",
        "edits": [(STG + "stg_order_items.sql", "from {{ ref('raw_order_items') }}",
                   "from {{ target.schema }}.raw_order_item")],
        "expected": [model("stg_order_items", STG + "stg_order_items.sql", "unknown_relation")],
        "error_contains": ['raw_order_item" does not exist'],
    },
    {
        "name": "pg_missing_comma",
        "adapter": POSTGRES,
        "description": "Missing comma after an aliased select item (`as order_date status as "
                       "order_status`). Postgres: syntax error at or near \"status\".",
        "edits": [(STG + "stg_orders.sql", "as order_date,\n", "as order_date\n")],
        "expected": [model("stg_orders", STG + "stg_orders.sql", "sql_syntax")],
        "error_contains": ['syntax error at or near "status"'],
    },
    {
        "name": "pg_type_mismatch",
        "adapter": POSTGRES,
        "description": "A date compared to an integer literal: `order_date >= 20240101`. "
                       "Postgres: operator does not exist: date >= integer.",
        "edits": [(MARTS + "customers.sql", "    where order_status = 'completed'\n",
                   "    where order_status = 'completed'\n      and order_date >= 20240101\n")],
        "expected": [model("customers", MARTS + "customers.sql", "type_mismatch")],
        "error_contains": ["operator does not exist: date >= integer"],
    },
    {
        "name": "pg_type_mismatch_join",
        "adapter": POSTGRES,
        "description": "Order lines joined to the menu on the wrong key: `oi.order_id = "
                       "p.product_sku`. Postgres: operator does not exist: integer = text "
                       "(DuckDB would cast one side and silently match nothing).",
        "edits": [(MARTS + "orders.sql", "on oi.product_sku = p.product_sku",
                   "on oi.order_id = p.product_sku")],
        "expected": [model("orders", MARTS + "orders.sql", "type_mismatch")],
        "error_contains": ["operator does not exist: integer = text"],
    },
    {
        "name": "pg_bad_cast",
        "adapter": POSTGRES,
        "description": "The guard around the integer cast of loyalty points removed in "
                       "stg_customers, whose raw data holds 'n/a'. stg_customers is a VIEW: "
                       "Postgres raises invalid input syntax for type integer: \"n/a\" when the "
                       "TABLE `customers` reads it, so the failing node's own SQL is correct and "
                       "the root cause is upstream (root_cause_*). Only with data.",
        "edits": [(STG + "stg_customers.sql",
                   "case when loyalty_points ~ '^-?[0-9]+$' then cast(loyalty_points as integer) end",
                   "cast(loyalty_points as integer)")],
        "expected": [dict(model("customers", MARTS + "customers.sql", "runtime_data"),
                          root_cause_unique_id=f"model.{PROJECT_NAME}.stg_customers",
                          root_cause_path=STG + "stg_customers.sql")],
        "error_contains": ['invalid input syntax for type integer: "n/a"'],
    },
    {
        "name": "pg_division_by_zero",
        "adapter": POSTGRES,
        "description": "nullif() guard removed from the per-seat division in store_revenue, "
                       "where the station kiosk has 0 seats. Postgres: division by zero (only "
                       "with data).",
        "edits": [(FIN + "store_revenue.sql", "/ nullif(s.seat_count, 0)", "/ s.seat_count")],
        "expected": [model("store_revenue", FIN + "store_revenue.sql", "division_by_zero")],
        "error_contains": ["division by zero"],
    },
    {
        "name": "pg_missing_group_by",
        "adapter": POSTGRES,
        "description": "s.city dropped from the GROUP BY while still selected. Postgres: "
                       "column \"s.city\" must appear in the GROUP BY clause or be used in an "
                       "aggregate function.",
        "edits": [(FIN + "store_revenue.sql",
                   "group by s.store_id, s.store_name, s.city, s.seat_count",
                   "group by s.store_id, s.store_name, s.seat_count")],
        "expected": [model("store_revenue", FIN + "store_revenue.sql", "missing_group_by")],
        "error_contains": ["must appear in the GROUP BY clause"],
    },
    {
        "name": "pg_unknown_function",
        "adapter": POSTGRES,
        "description": "DuckDB's strftime(order_date, '%Y-%m') written in a Postgres project "
                       "(to_char there). Postgres: function strftime(date, unknown) does not "
                       "exist.",
        "edits": [(FIN + "revenue_daily.sql", "to_char(order_date, 'YYYY-MM')",
                   "strftime(order_date, '%Y-%m')")],
        "expected": [model("revenue_daily", FIN + "revenue_daily.sql", "unknown_function")],
        "error_contains": ["function strftime(date, unknown) does not exist"],
    },
    {
        "name": "pg_ambiguous_column",
        "adapter": POSTGRES,
        "description": "Unqualified `store_id` over a join of stores and orders, which both "
                       "have it. Postgres: column reference \"store_id\" is ambiguous.",
        "edits": [(FIN + "store_revenue.sql", "select\n    s.store_id,\n", "select\n    store_id,\n")],
        "expected": [model("store_revenue", FIN + "store_revenue.sql", "ambiguous_column")],
        "error_contains": ['column reference "store_id" is ambiguous'],
    },
    # -- No SQL edit fixes these: they must be abandoned with needs_human. --
    {
        "name": "pg_connection_refused",
        "adapter": POSTGRES,
        "description": "Yesterday's build passed; today nothing listens on the warehouse's "
                       "port (a closed local port). dbt-postgres cannot connect: connection "
                       "to server ... failed: Connection refused. No model is at fault.",
        "edits": [],
        "pg_env": {"DBT_PG_PORT": "{closed_port}"},
        "prior_good_run": True,
        "expected": [{"unique_id": None, "path": "", "class": "connection"}],
        "error_contains": ["Connection refused"],
    },
    {
        "name": "pg_permission_denied_table",
        "adapter": POSTGRES,
        "description": "A new staging model reads a table of a locked schema: the build's "
                       "role may use the schema but was never granted SELECT on the table. "
                       "Postgres: permission denied for table customer_pii.",
        "pg_role": True,
        "pg_setup": "create schema {schema} authorization {role};\n"
                    "create schema {schema}_locked;\n"
                    "create table {schema}_locked.customer_pii (customer_id integer, tax_id text);\n"
                    "grant usage on schema {schema}_locked to {role};\n",
        "edits": [(STG + "stg_customer_pii.sql", None,
                   PII_MODEL)],
        "expected": [model("stg_customer_pii", STG + "stg_customer_pii.sql", "permission")],
        "error_contains": ["permission denied for table customer_pii"],
    },
    {
        "name": "pg_permission_denied_schema",
        "adapter": POSTGRES,
        "description": "The same new model, but the build's role has no USAGE on the locked "
                       "schema at all. Postgres: permission denied for schema <schema>_locked.",
        "pg_role": True,
        "pg_setup": "create schema {schema} authorization {role};\n"
                    "create schema {schema}_locked;\n"
                    "create table {schema}_locked.customer_pii (customer_id integer, tax_id text);\n",
        "edits": [(STG + "stg_customer_pii.sql", None,
                   PII_MODEL)],
        "expected": [model("stg_customer_pii", STG + "stg_customer_pii.sql", "permission")],
        "error_contains": ["permission denied for schema"],
    },
    {
        "name": "pg_statement_timeout",
        "adapter": POSTGRES,
        "description": "A new report model runs longer than the warehouse allows: a pre-hook "
                       "sets `statement_timeout` to 300 ms for its transaction (as a role "
                       "setting would) and the query waits 3 s (pg_sleep). Postgres: "
                       "canceling statement due to statement timeout.",
        "edits": [(MARTS + "slow_report.sql", None,
                   "{{ config(pre_hook=\"set local statement_timeout = '300ms'\") }}\n"
                   "\n"
                   "select count(*) as order_count\n"
                   "from {{ ref('orders') }}\n"
                   "cross join (select 1 as waited from pg_sleep(3)) as w\n")],
        "expected": [model("slow_report", MARTS + "slow_report.sql", "timeout")],
        "error_contains": ["canceling statement due to statement timeout"],
    },
    unit_test_case("pg_unit_test_failure", POSTGRES),
    singular_test_case("pg_singular_test_failure", POSTGRES),
]


def dbt_bin() -> str:
    env = os.environ.get("DBT_BIN")
    if env:
        return env
    cand = REPO / ".venv" / "bin" / "dbt"
    if cand.exists():
        return str(cand)
    found = shutil.which("dbt")
    if found:
        return found
    sys.exit("dbt not found: set DBT_BIN or create <repo>/.venv with dbt-core + dbt-duckdb")


# The caller's Postgres settings, read once: dbt_env() drops every DBT_* variable so that
# a developer's own DBT_PROFILES_DIR, DBT_TARGET… never leak into a fixture.
PG_CONNECTION = {k: os.environ.get(k, default) for k, default in PG_SETTINGS.items()}


def dbt_env(extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("DBT_") or k in ("DBT_BIN",)}
    env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    env.update(extra or {})
    return env


def copy_project(dst: Path) -> None:
    shutil.copytree(
        PROJECT, dst,
        ignore=shutil.ignore_patterns("target", "logs", "dbt_packages", "*.duckdb",
                                      "*.duckdb.wal", ".user.yml"),
    )


def run_dbt(cwd: Path, extra: list[str], command: str = "build",
            env: dict | None = None) -> tuple[int, str]:
    cmd = [dbt_bin(), command, "--profiles-dir", "."] + extra
    proc = subprocess.run(cmd, cwd=cwd, env=dbt_env(env), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=600)
    return proc.returncode, proc.stdout.decode("utf-8", errors="replace")


# Runs SQL (stdin) as the admin user, through the psycopg2 that dbt-postgres brings, so
# this script needs neither psql nor a Python package of its own.
PG_SQL_RUNNER = """
import os, sys
import psycopg2
conn = psycopg2.connect(host=os.environ["DBT_PG_HOST"], port=int(os.environ["DBT_PG_PORT"]),
                        user=os.environ["DBT_PG_USER"], password=os.environ["DBT_PG_PASSWORD"],
                        dbname=os.environ["DBT_PG_DBNAME"], connect_timeout=10)
conn.autocommit = True
with conn.cursor() as cur:
    cur.execute(sys.stdin.read())
    if cur.description:
        for row in cur.fetchall():
            print("\\t".join("" if v is None else str(v) for v in row))
conn.close()
"""


def pg_admin_sql(sql: str) -> str:
    python = Path(dbt_bin()).parent / "python"
    proc = subprocess.run([str(python), "-c", PG_SQL_RUNNER], input=sql.encode(),
                          env=dbt_env(PG_CONNECTION), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=120)
    if proc.returncode != 0:
        raise SystemExit(f"Postgres admin SQL failed:\n{sql}\n"
                         f"{proc.stderr.decode(errors='replace')[-2000:]}")
    return proc.stdout.decode()


def pg_check() -> None:
    """Fails early, with the settings it used, when Postgres or dbt-postgres is missing."""
    python = Path(dbt_bin()).parent / "python"
    probe = subprocess.run([str(python), "-c", "import dbt.adapters.postgres"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if probe.returncode != 0:
        sys.exit(f"dbt-postgres is not installed beside {dbt_bin()}: run scripts/setup.sh")
    try:
        pg_admin_sql("select 1")
    except SystemExit as e:
        shown = {k: v for k, v in PG_CONNECTION.items() if k != "DBT_PG_PASSWORD"}
        sys.exit(f"cannot reach PostgreSQL with {shown}: {e}")


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgRun:
    """The throwaway schema (and role) of one Postgres case, dropped by close()."""

    def __init__(self, case: dict, index: int):
        # Lower case and short: Postgres folds unquoted names and cuts them at 63 bytes,
        # and `<schema>_locked` / `<schema>_role` must still fit.
        self.schema = f"dbtops_fx_{os.getpid()}_{index}"
        self.role = f"{self.schema}_role" if case.get("pg_role") else None
        self.case = case

    def setup(self) -> None:
        self.close()  # a run killed earlier may have left the same names behind
        sql = ""
        if self.role:
            sql += f"create role {self.role} login;\n"
        sql += self.case.get("pg_setup", "").format(schema=self.schema, role=self.role)
        if sql:
            pg_admin_sql(sql)

    def env(self, failing: bool) -> dict:
        env = dict(PG_CONNECTION)
        env["DBT_PG_SCHEMA"] = self.schema
        if self.role:
            env["DBT_PG_USER"] = self.role
        if failing:
            for k, v in self.case.get("pg_env", {}).items():
                env[k] = v.format(closed_port=closed_port())
        return env

    def close(self) -> None:
        # Every schema of this run (`<schema>`, `<schema>_locked`, …), then the role and
        # whatever it still owns elsewhere.
        found = pg_admin_sql(
            f"select nspname from pg_namespace where nspname like '{self.schema}%'")
        sql = "".join(f'drop schema if exists "{n}" cascade;\n'
                      for n in found.split() if n.startswith(self.schema))
        if self.role:
            exists = pg_admin_sql(f"select 1 from pg_roles where rolname = '{self.role}'")
            if exists.strip():
                sql += f"drop owned by {self.role} cascade;\ndrop role {self.role};\n"
        if sql:
            pg_admin_sql(sql)


def read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def invocation_id(doc) -> str | None:
    if isinstance(doc, dict):
        return (doc.get("metadata") or {}).get("invocation_id")
    return None


def apply_edits(root: Path, edits) -> None:
    for rel, old, new in edits:
        path = root / rel
        if old is None:
            if path.exists():
                raise SystemExit(f"new file {rel} already exists")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(new)
            continue
        text = path.read_text()
        n = text.count(old)
        if n != 1:
            raise SystemExit(f"edit on {rel}: {old!r} matches {n} times (must be exactly 1)")
        path.write_text(text.replace(old, new))


def trim_manifest(doc: dict) -> dict:
    out = {k: doc[k] for k in MANIFEST_KEEP if k in doc}
    if doc.get("unit_tests"):
        out["unit_tests"] = doc["unit_tests"]
    return out


def project_files(root: Path) -> dict:
    files: dict[str, str] = {}
    for pattern in ("models/**/*.sql", "models/**/*.yml", "macros/**/*.sql"):
        for p in sorted(root.glob(pattern)):
            files[p.relative_to(root).as_posix()] = p.read_text()
    for p in sorted(root.glob("seeds/**/*.csv")):
        lines = p.read_text().splitlines()
        files[p.relative_to(root).as_posix()] = lines[0] if lines else ""
    return {"dbt_project_yml": (root / "dbt_project.yml").read_text(),
            "files": dict(sorted(files.items()))}


def resolve_expected(expected: list[dict], manifest) -> list[dict]:
    ids: list[str] = []
    if isinstance(manifest, dict):
        # Unit tests are not nodes: the manifest keeps them apart.
        for section in ("nodes", "unit_tests"):
            ids.extend((manifest.get(section) or {}).keys())
    out = []
    for e in expected:
        e = dict(e)
        uid = e.get("unique_id")
        if uid and uid.endswith("*"):
            matches = [k for k in ids if k.startswith(uid[:-1])]
            if len(matches) != 1:
                raise SystemExit(f"expected id {uid} resolves to {matches}")
            e["unique_id"] = matches[0]
        out.append(e)
    return out


def first_error_line(console: str, run_results) -> str:
    """Best-effort first line of the real error, for the summary printed at the end."""
    if isinstance(run_results, dict):
        for r in run_results.get("results", []):
            if r.get("status") in ("error", "fail") and r.get("message"):
                return r["message"].strip().splitlines()[0]
    ansi = re.compile(r"\x1b\[[0-9;]*m")
    lines = [ansi.sub("", l) for l in console.splitlines()]
    for i, line in enumerate(lines):
        if re.search(r"(Error|error)\b", line) and "Completed with" not in line:
            return re.sub(r"^\d\d:\d\d:\d\d\s+", "", line).strip()
    return ""


def generate(case: dict, out: Path, keep: bool, skip_validator_checks: bool = False,
             index: int = 0) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix=f"dbtops-fixture-{case['name']}-"))
    pg = PgRun(case, index) if case.get("adapter") == POSTGRES else None
    try:
        if pg:
            pg.setup()
        result = _generate(case, tmp, out, skip_validator_checks, pg)
    except BaseException:
        print(f"  temp copy left for inspection: {tmp}", file=sys.stderr)
        raise
    finally:
        if pg:
            pg.close()
    if keep:
        print(f"  kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def _generate(case: dict, tmp: Path, out: Path, skip_validator_checks: bool,
              pg: PgRun | None) -> dict:
    name = case["name"]
    for e in case["expected"]:
        assert e["class"] in CLASSES, (name, e["class"])
    work = tmp / PROJECT_NAME
    copy_project(work)
    if pg:
        apply_edits(work, PG_PORT)
    target, logs = work / "target", work / "logs"
    json_log = case.get("json_log", False)
    extra = ["--log-format-file", "json"] if json_log else []
    target_args = ["--target", "postgres"] if pg else []
    good_env = pg.env(failing=False) if pg else None
    failing_env = pg.env(failing=True) if pg else None

    good_rr_id = good_manifest_id = None
    if case.get("prior_good_run"):
        rc, console = run_dbt(work, target_args, env=good_env)
        if rc != 0:
            raise SystemExit(f"{name}: the clean build failed (exit {rc}):\n{console[-3000:]}")
        good_rr_id = invocation_id(read_json(target / "run_results.json"))
        good_manifest_id = invocation_id(read_json(target / "manifest.json"))

    apply_edits(work, case["edits"])
    rc, console = run_dbt(work, target_args + extra, env=failing_env)

    rr = read_json(target / "run_results.json")
    manifest = read_json(target / "manifest.json")

    def freshness(doc, good_id):
        if doc is None:
            return "absent"
        if good_id is not None and invocation_id(doc) == good_id:
            return "stale"
        return "fresh"

    log_text = (logs / "dbt.log").read_text(errors="replace") if (logs / "dbt.log").exists() else ""

    # --- the outcome must be what the case claims ---
    problems = []
    if rc == 0:
        problems.append("dbt build exited 0")
    # dbt colours words inside a message (unit-test diffs): compare without ANSI codes.
    ansi = re.compile(r"\x1b\[[0-9;]*m")
    plain = ansi.sub("", console) + "\n" + ansi.sub("", log_text)
    for s in case.get("error_contains", []):
        if s not in plain:
            problems.append(f"error text does not contain {s!r}")
    if case.get("prior_good_run") and freshness(rr, good_rr_id) != "stale":
        problems.append(f"run_results.json expected stale, got {freshness(rr, good_rr_id)}")
    if not case.get("prior_good_run") and rr is None:
        problems.append("no run_results.json written")
    if isinstance(rr, dict) and freshness(rr, good_rr_id) == "fresh":
        by_id = {r["unique_id"]: r for r in rr.get("results", [])}
        for e in resolve_expected(case["expected"], manifest):
            # A model whose unit test failed first is skipped; the test holds its error.
            failing_id = case.get("failing_node", {}).get(e["unique_id"], e["unique_id"])
            st = (by_id.get(failing_id) or {}).get("status")
            if st not in ("error", "fail"):
                problems.append(f"{e['unique_id']} status in run_results is {st!r}")
        for uid in case.get("expected_skipped", []):
            st = (by_id.get(uid) or {}).get("status")
            if st != "skipped":
                problems.append(f"{uid} expected skipped, is {st!r}")
    if problems:
        print(console[-4000:], file=sys.stderr)
        raise SystemExit(f"{name}: outcome does not match the case:\n  "
                         + "\n  ".join(problems))

    # --- save ---
    dest = out / name
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    if rr is not None:
        shutil.copyfile(target / "run_results.json", dest / "run_results.json")
    if isinstance(manifest, dict):
        (dest / "manifest.json").write_text(json.dumps(trim_manifest(manifest),
                                                       separators=(",", ":")))
    if (logs / "dbt.log").exists():
        shutil.copyfile(logs / "dbt.log", dest / "dbt.log")
    (dest / "console.txt").write_text(console)
    (dest / "project_files.json").write_text(json.dumps(project_files(work), indent=0) + "\n")

    version = DBT_VERSION_FALLBACK
    for doc in (rr, manifest):
        v = (doc or {}).get("metadata", {}).get("dbt_version") if isinstance(doc, dict) else None
        if v:
            version = v
            break
    broken = [e[0] for e in case["edits"]]
    case_doc = {
        "case": name,
        "description": case["description"],
        "adapter": POSTGRES if pg else DUCKDB,
        "broken_file": broken[0] if broken else None,
        "broken_files": sorted(set(broken)),
        "expected": resolve_expected(case["expected"], manifest),
        "expected_skipped": case.get("expected_skipped", []),
        "exit_code": rc,
        "dbt_version": version,
        "command": " ".join(["dbt build --profiles-dir ."] + target_args + extra),
        "log_format": "json" if json_log else "text",
        "prior_good_run": bool(case.get("prior_good_run")),
        "artifacts": {
            "run_results.json": freshness(rr, good_rr_id),
            "manifest.json": freshness(manifest, good_manifest_id),
        },
        "error_contains": case.get("error_contains", []),
        # What the validator's cheaper checks would have seen on the same broken project
        # (real runs, made after the artifacts above were saved):
        "dbt_compile_exit_code": None,
        "dbt_build_empty_exit_code": None,
        "edits": [{"file": f, "search": o, "replace": n} for f, o, n in case["edits"]],
    }
    if pg:
        # What made the example a Postgres project, and what the run was given beyond
        # the profile's defaults (the schema and role names differ from run to run).
        case_doc["port_edits"] = [{"file": f, "search": o, "replace": n}
                                  for f, o, n in PG_PORT]
        case_doc["postgres"] = {
            "role": "<schema>_role" if pg.role else None,
            "setup_sql": case.get("pg_setup", "").replace("{schema}", "<schema>")
                                                 .replace("{role}", "<schema>_role"),
            "failing_run_env": case.get("pg_env", {}),
        }
    if not skip_validator_checks:
        case_doc["dbt_compile_exit_code"], _ = run_dbt(work, target_args, command="compile",
                                                       env=failing_env)
        case_doc["dbt_build_empty_exit_code"], _ = run_dbt(work, target_args + ["--empty"],
                                                           env=failing_env)
    (dest / "case.json").write_text(json.dumps(case_doc, indent=2) + "\n")

    return {"case": name, "exit_code": rc, "first_error_line": first_error_line(console, rr),
            "run_results": case_doc["artifacts"]["run_results.json"],
            "compile": case_doc["dbt_compile_exit_code"],
            "empty": case_doc["dbt_build_empty_exit_code"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", help="comma-separated case names (any adapter)")
    ap.add_argument("--adapter", choices=ADAPTERS + ("all",),
                    default=os.environ.get(ADAPTER_ENV) or DUCKDB,
                    help=f"which cases to run when --only is not given (default: "
                         f"${ADAPTER_ENV}, else duckdb)")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temp project copies")
    ap.add_argument("--out", type=Path, default=OUT,
                    help="write the fixture directories here (default: the committed ones)")
    ap.add_argument("--skip-validator-checks", action="store_true",
                    help="do not run `dbt compile` and `dbt build --empty` on the broken copy "
                         "(their exit codes are recorded in case.json)")
    args = ap.parse_args()
    if args.adapter not in ADAPTERS + ("all",):
        sys.exit(f"{ADAPTER_ENV}={args.adapter}: expected one of {', '.join(ADAPTERS)}, all")
    names = [c["name"] for c in CASES]
    assert len(names) == len(set(names))
    if args.only:
        want = set(args.only.split(","))
        unknown = want - set(names)
        if unknown:
            sys.exit(f"unknown case(s): {', '.join(sorted(unknown))}")
        selected = [c for c in CASES if c["name"] in want]
    else:
        selected = [c for c in CASES
                    if args.adapter == "all" or c.get("adapter", DUCKDB) == args.adapter]
    if args.list:
        for c in selected:
            print(f"{c['name']:32} {c.get('adapter', DUCKDB)}")
        return
    if any(c.get("adapter") == POSTGRES for c in selected):
        pg_check()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    summary = []
    for index, c in enumerate(selected):
        print(f"== {c['name']}", flush=True)
        s = generate(c, out, args.keep, args.skip_validator_checks, index)
        print(f"   exit {s['exit_code']}, run_results {s['run_results']}, compile exit "
              f"{s['compile']}, build --empty exit {s['empty']}: {s['first_error_line']}",
              flush=True)
        summary.append(s)
    shown = out.relative_to(REPO) if out.is_relative_to(REPO) else out
    print(f"\n{len(summary)} fixture(s) written to {shown}")


if __name__ == "__main__":
    main()
