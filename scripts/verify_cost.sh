#!/usr/bin/env bash
# What `verify` costs: syncs the PNI sample at SCALE lessons (default 5000) into dynoxide, then runs
# `verify --sample 100` and `verify --full` RUNS times (default 3) each and prints the read units
# DynamoDB reported, the items compared and the wall time of each run, side by side.
# Servers on ports 55433 (PostgreSQL) and 8767 (dynoxide); state in .verify-cost/, removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
scale="${1:-5000}" runs="${2:-3}"
scripts/setup.sh >/dev/null
. scripts/local.sh
state="$PWD/.verify-cost"
rm -rf "$state" && mkdir -p "$state/envs/mappings"
local_cleanup='rm -rf "$state"'
local_start "$state" 55433 8767
"${psql[@]}" -d postgres -c "CREATE DATABASE pni"
"${psql[@]}" -d pni -v scale="$scale" -f scripts/pni/schema.sql -f scripts/pni/load.sql
cp envs/mappings/pni.toml "$state/envs/mappings/"
sed -e 's/55432/55433/; s/8766/8767/' envs/local.toml >"$state/envs/cost.toml"
export DDBSYNC_ENVS_DIR="$state/envs"
cargo build --quiet --release
ddbsync=target/release/ddbsync
$ddbsync -q sync cost >/dev/null
cat >"$state/summary.py" <<'PY'
import json, sys
r = json.load(sys.stdin)
compared = sum(t["compared"] for t in r["tables"])
print("read units %8s  compared %6d" % (r["read_units"], compared), end="")
PY
for i in $(seq "$runs"); do
  for depth in "--sample 100" "--full"; do
    start=$(date +%s.%N)
    # shellcheck disable=SC2086
    line=$($ddbsync --json verify cost $depth | python3 "$state/summary.py")
    printf '%-13s %s  %.2f s\n' "$depth" "$line" "$(echo "$(date +%s.%N) - $start" | bc)"
  done
done
