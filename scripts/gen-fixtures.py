#!/usr/bin/env python3
"""Regenerate the dbt failure fixtures from REAL dbt runs.

For every case in CASES below:

  1. copy examples/coffee_shop to a fresh temp dir (never run dbt inside examples/);
  2. for parse-time failures, first run a clean, successful `dbt build` there, so the
     target/ folder keeps the stale run_results.json / manifest.json of that good run
     (this is the real "stale run_results" trap: a parse failure writes none);
  3. apply the breakage: literal search/replace edits, each of which must match exactly
     once in its file;
  4. run `dbt build --profiles-dir .` (some cases with `--log-format-file json`),
     capturing stdout+stderr;
  5. check the outcome is what the case claims (non-zero exit code, the error text
     contains `error_contains`), then save into
     crates/artifacts/tests/fixtures/<case>/:
        run_results.json   as dbt left it (fresh, or stale from the good run)
        manifest.json      as dbt left it, trimmed (see trim_manifest)
        dbt.log            text debug log (ANSI, appended across runs) or JSON lines
        console.txt        stdout+stderr of the failing invocation
        project_files.json the broken project's models/macros/yml + seed header lines
        case.json          what the detector is expected to find

Artifacts are kept exactly as dbt wrote them (absolute temp paths included) except
for the manifest trimming.

Stdlib only. dbt is `$DBT_BIN`, else `<repo>/.venv/bin/dbt`.

Usage:
  scripts/gen-fixtures.py                 # all cases
  scripts/gen-fixtures.py --only a,b      # some cases
  scripts/gen-fixtures.py --list          # list cases
  scripts/gen-fixtures.py --keep          # keep the temp copies (paths are printed)

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
}


def model(name: str, path: str, cls: str) -> dict:
    return {"unique_id": f"model.{PROJECT_NAME}.{name}", "path": path, "class": cls}


STG = "models/staging/"
MARTS = "models/marts/"
FIN = "models/marts/finance/"

# Each case:
#   name, description, edits: [(rel file, old, new)], expected: [...],
#   error_contains: [substrings that must appear in console.txt or dbt.log],
#   prior_good_run: run a successful build first (parse-time failures),
#   json_log: add `--log-format-file json`.
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


def dbt_env() -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("DBT_") or k in ("DBT_BIN",)}
    env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    return env


def copy_project(dst: Path) -> None:
    shutil.copytree(
        PROJECT, dst,
        ignore=shutil.ignore_patterns("target", "logs", "dbt_packages", "*.duckdb",
                                      "*.duckdb.wal", ".user.yml"),
    )


def run_dbt(cwd: Path, extra: list[str], command: str = "build") -> tuple[int, str]:
    cmd = [dbt_bin(), command, "--profiles-dir", "."] + extra
    proc = subprocess.run(cmd, cwd=cwd, env=dbt_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=600)
    return proc.returncode, proc.stdout.decode("utf-8", errors="replace")


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
    nodes = (manifest or {}).get("nodes", {}) if isinstance(manifest, dict) else {}
    out = []
    for e in expected:
        e = dict(e)
        uid = e.get("unique_id")
        if uid and uid.endswith("*"):
            matches = [k for k in nodes if k.startswith(uid[:-1])]
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


def generate(case: dict, keep: bool, skip_validator_checks: bool = False) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix=f"dbtops-fixture-{case['name']}-"))
    try:
        result = _generate(case, tmp, skip_validator_checks)
    except BaseException:
        print(f"  temp copy left for inspection: {tmp}", file=sys.stderr)
        raise
    if keep:
        print(f"  kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def _generate(case: dict, tmp: Path, skip_validator_checks: bool) -> dict:
    name = case["name"]
    for e in case["expected"]:
        assert e["class"] in CLASSES, (name, e["class"])
    work = tmp / PROJECT_NAME
    copy_project(work)
    target, logs = work / "target", work / "logs"
    json_log = case.get("json_log", False)
    extra = ["--log-format-file", "json"] if json_log else []

    good_rr_id = good_manifest_id = None
    if case.get("prior_good_run"):
        rc, out = run_dbt(work, [])
        if rc != 0:
            raise SystemExit(f"{name}: the clean build failed (exit {rc}):\n{out[-3000:]}")
        good_rr_id = invocation_id(read_json(target / "run_results.json"))
        good_manifest_id = invocation_id(read_json(target / "manifest.json"))

    apply_edits(work, case["edits"])
    rc, console = run_dbt(work, extra)

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
    for s in case.get("error_contains", []):
        if s not in console and s not in log_text:
            problems.append(f"error text does not contain {s!r}")
    if case.get("prior_good_run") and freshness(rr, good_rr_id) != "stale":
        problems.append(f"run_results.json expected stale, got {freshness(rr, good_rr_id)}")
    if not case.get("prior_good_run") and rr is None:
        problems.append("no run_results.json written")
    if isinstance(rr, dict) and freshness(rr, good_rr_id) == "fresh":
        by_id = {r["unique_id"]: r for r in rr.get("results", [])}
        for e in resolve_expected(case["expected"], manifest):
            st = (by_id.get(e["unique_id"]) or {}).get("status")
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
    dest = OUT / name
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
        "broken_file": broken[0],
        "broken_files": sorted(set(broken)),
        "expected": resolve_expected(case["expected"], manifest),
        "expected_skipped": case.get("expected_skipped", []),
        "exit_code": rc,
        "dbt_version": version,
        "command": "dbt build --profiles-dir ." + (" " + " ".join(extra) if extra else ""),
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
    if not skip_validator_checks:
        case_doc["dbt_compile_exit_code"], _ = run_dbt(work, [], command="compile")
        case_doc["dbt_build_empty_exit_code"], _ = run_dbt(work, ["--empty"])
    (dest / "case.json").write_text(json.dumps(case_doc, indent=2) + "\n")

    return {"case": name, "exit_code": rc, "first_error_line": first_error_line(console, rr),
            "run_results": case_doc["artifacts"]["run_results.json"],
            "compile": case_doc["dbt_compile_exit_code"],
            "empty": case_doc["dbt_build_empty_exit_code"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", help="comma-separated case names")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temp project copies")
    ap.add_argument("--skip-validator-checks", action="store_true",
                    help="do not run `dbt compile` and `dbt build --empty` on the broken copy "
                         "(their exit codes are recorded in case.json)")
    args = ap.parse_args()
    if args.list:
        for c in CASES:
            print(c["name"])
        return
    names = [c["name"] for c in CASES]
    assert len(names) == len(set(names))
    selected = CASES
    if args.only:
        want = set(args.only.split(","))
        unknown = want - set(names)
        if unknown:
            sys.exit(f"unknown case(s): {', '.join(sorted(unknown))}")
        selected = [c for c in CASES if c["name"] in want]
    OUT.mkdir(parents=True, exist_ok=True)
    summary = []
    for c in selected:
        print(f"== {c['name']}", flush=True)
        s = generate(c, args.keep, args.skip_validator_checks)
        print(f"   exit {s['exit_code']}, run_results {s['run_results']}, compile exit "
              f"{s['compile']}, build --empty exit {s['empty']}: {s['first_error_line']}",
              flush=True)
        summary.append(s)
    print(f"\n{len(summary)} fixture(s) written to {OUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
