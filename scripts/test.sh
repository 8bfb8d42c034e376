#!/usr/bin/env bash
# The whole test suite: set-up if needed, then every crate's tests, the end-to-end tests
# against a real nats-server, real dbt and real git.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The tests start their own nats-server; keep a developer's NATS_URL out of them.
unset NATS_URL
export DBT_SEND_ANONYMOUS_USAGE_STATS=false DO_NOT_TRACK=1
cargo test --workspace --all-targets "$@"
