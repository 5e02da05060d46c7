#!/usr/bin/env bash
# What the hash index saves: loads the PNI sample at SCALE lessons (default 10000) into dynoxide twice,
# into tables whose diff Scans (profile `scan`) and into tables whose diff reads the hash index
# (profile `idx`, the same mappings with diff = "index"), then runs RUNS times (default 3) each
# no-change sync: `idx` (the index), `idx --full-scan` and `scan` (both Scans). Prints each run's read
# units (DynamoDB's figures, from the report), write units of the loads, and wall times, then the
# medians. Servers on ports 55434 (PostgreSQL) and 8768 (dynoxide); state in .index-cost/, removed at
# the end.
set -euo pipefail
cd "$(dirname "$0")/.."
scale="${1:-10000}" runs="${2:-3}"
scripts/setup.sh >/dev/null
. scripts/local.sh
state="$PWD/.index-cost"
rm -rf "$state" && mkdir -p "$state/envs/mappings"
local_cleanup='rm -rf "$state"'
local_start "$state" 55434 8768
"${psql[@]}" -d postgres -c "CREATE DATABASE pni"
"${psql[@]}" -d pni -v scale="$scale" -f scripts/pni/schema.sql -f scripts/pni/load.sql
cp envs/mappings/pni.toml "$state/envs/mappings/"
# The same tables with diff = "index".
sed -e 's/^\(partition_key = .*\)$/\1\ndiff = "index"/' envs/mappings/pni.toml >"$state/envs/mappings/pni-index.toml"
sed -e 's/55432/55434/; s/8766/8768/; s/^table_prefix = .*/table_prefix = "scan-"/' envs/local.toml >"$state/envs/scan.toml"
sed -e 's/55432/55434/; s/8766/8768/; s/^table_prefix = .*/table_prefix = "idx-"/; s/pni\.toml/pni-index.toml/' \
  envs/local.toml >"$state/envs/idx.toml"
export DDBSYNC_ENVS_DIR="$state/envs"
cargo build --quiet --release
ddbsync=target/release/ddbsync
cat >"$state/summary.py" <<'PY'
import json, sys
r = json.load(sys.stdin)
t = r["total"]
items = sum(x["created"] + x["updated"] + x["unchanged"] for x in r["tables"])
diff = ",".join(sorted({x["diff"] for x in r["tables"]}))
index_w = sum(x["index_write_units"] for x in r["tables"])
scan_est = sum(x["scan_read_units"] or 0 for x in r["tables"])
print("%-6s items %6d  read units %9.1f  write units %9.1f (index %7.1f)  Scan estimate %9.1f" %
      (diff, items, t["read_units"], t["write_units"], index_w, scan_est), end="")
PY
run() {
  local label=$1; shift
  local start line
  start=$(date +%s.%N)
  line=$($ddbsync --json sync "$@" | python3 "$state/summary.py")
  printf '%-22s %s  %6.2f s\n' "$label" "$line" "$(echo "$(date +%s.%N) - $start" | bc)"
}
run "load, scan tables" scan
run "load, index tables" idx
for i in $(seq "$runs"); do
  run "no change, index" idx
  run "no change, --full-scan" idx --full-scan
  run "no change, scan" scan
done
