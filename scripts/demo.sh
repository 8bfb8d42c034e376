#!/usr/bin/env bash
# dbt-ops' main job, end to end, on the bundled example project:
#   installs what is missing (.venv: dbt 1.11 + nats-server 2.15), builds dbt-ops, commits
#   examples/coffee_shop to a fresh git repository, breaks a model the way a teammate's
#   merge would, runs dbt (which fails), starts `dbt-ops up`, submits the failed run with
#   `dbt-ops submit --wait`, and shows the fix branch's diff and its merge request.
# Nothing outside a temp directory is written (besides .venv and target/ here).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
started=$(date +%s)

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Set-up"
scripts/setup.sh
cargo build --bin dbt-ops
dbt_ops=$root/target/debug/dbt-ops
dbt=$root/.venv/bin/dbt
export DBT_SEND_ANONYMOUS_USAGE_STATS=false DO_NOT_TRACK=1

work=$(mktemp -d "${TMPDIR:-/tmp}/dbt-ops-demo.XXXXXX")
repo=$work/repo
project=$repo/coffee_shop
up_pid=""
cleanup() {
  if [ -n "$up_pid" ]; then kill "$up_pid" 2>/dev/null || true; wait "$up_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT

say "A dbt project in git: $project"
mkdir -p "$repo"
tar -C examples -cf - --exclude=target --exclude=logs --exclude='*.duckdb' coffee_shop | tar -C "$repo" -xf -
git -C "$repo" init -q -b main
git -C "$repo" add -A
git -C "$repo" -c user.name=Demo -c user.email=demo@example.com commit -q -m "coffee_shop"

say "A teammate's change breaks stg_orders (customer_id -> custmer_id)"
sed -i 's/^    customer_id,$/    custmer_id,/' "$project/models/staging/stg_orders.sql"
git -C "$repo" -c user.name=Demo -c user.email=demo@example.com commit -q -am "stg_orders: tidy columns"
git -C "$repo" show --stat --oneline HEAD | cat

say "dbt build fails"
if (cd "$project" && "$dbt" build --profiles-dir . > "$work/dbt-build.log" 2>&1); then
  echo "demo: dbt build unexpectedly passed" >&2; exit 1
fi
grep -E "ERROR|Error|error" "$work/dbt-build.log" | sed 's/\x1b\[[0-9;]*m//g' | tail -6

say "dbt-ops up (private nats-server, four services)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export NATS_URL=nats://127.0.0.1:$port
(cd "$work" && exec "$dbt_ops" up) > "$work/up.log" 2>&1 &
up_pid=$!
for _ in $(seq 1 600); do
  grep -q "dbt-ops is up" "$work/up.log" 2>/dev/null && break
  kill -0 "$up_pid" 2>/dev/null || { cat "$work/up.log" >&2; exit 1; }
  sleep 0.1
done
grep "dbt-ops is up" "$work/up.log"

say "dbt-ops submit --project-dir $project --wait"
"$dbt_ops" submit --project-dir "$project" --wait --timeout 300 | tee "$work/outcome.jsonl"
branch=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["branch"])' "$work/outcome.jsonl")

say "The fix branch: $branch"
git -C "$repo" --no-pager log --oneline -1 "$branch"
git -C "$repo" --no-pager diff main "$branch"

say "The merge request"
cat "$repo/.git/dbt-ops/merge-requests/${branch//\//__}.md"

say "dbt build on the fix branch"
git -C "$repo" worktree add -q "$work/fixed" "$branch"
(cd "$work/fixed/coffee_shop" && "$dbt" build --profiles-dir . 2>&1 | sed 's/\x1b\[[0-9;]*m//g' | tail -2)

say "Done in $(( $(date +%s) - started )) s; everything is in $work"
