#!/usr/bin/env bash
# Tries ddbsync end to end on this machine: starts PostgreSQL (port 55432) and dynoxide (port 8766)
# on loopback, loads a sample, syncs, changes something, syncs again and prints the reports.
#   scripts/demo.sh          the PNI sample (200 lessons): everything is new, then one question is
#                            changed and some timestamps touched: two items rewritten
#   scripts/demo.sh chinook  the Chinook music store as four single-table designs: one track renamed
#                            rewrites the items that embed it; then one month of invoices by --param
# State lives in .demo/; the servers stop when the demo ends.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. scripts/local.sh
state="$PWD/.demo"
rm -rf "$state" && mkdir -p "$state"
local_start "$state" 55432 8766
cargo build --quiet
ddbsync=target/debug/ddbsync

if [ "${1:-pni}" = chinook ]; then
  "${psql[@]}" -d postgres -f "$(chinook_sql)"
  echo; echo "== first sync: four tables with their indexes, every item new"
  $ddbsync sync chinook
  echo; echo "== track 1 renamed: its track item, its album, its invoices and its playlist entries change"
  "${psql[@]}" -d chinook -c "UPDATE track SET name = 'For Those About To Rock (Renamed)' WHERE track_id = 1"
  $ddbsync sync chinook
  echo; echo "== January 2021's invoices only (the customers are compared too; nothing else is read)"
  $ddbsync sync chinook --table CustomerData --param from=2021-01-01 --param to=2021-02-01
  exit
fi

"${psql[@]}" -d postgres -c "CREATE DATABASE pni"
"${psql[@]}" -d pni -v scale=200 -f scripts/pni/schema.sql -f scripts/pni/load.sql

echo; echo "== first sync: every item is new"
$ddbsync sync local

echo; echo "== one question reworded, 20 lessons and 50 questions touched (updated_at only)"
"${psql[@]}" -d pni -c "UPDATE questions SET prompt = 'Which river is the longest?' WHERE id = 1" \
  -c "UPDATE lessons SET updated_at = now() WHERE id <= 20" \
  -c "UPDATE questions SET updated_at = now() WHERE id BETWEEN 100 AND 149"
echo; echo "== dry run: what the next sync would write"
$ddbsync sync local --dry-run
echo; echo "== second sync: only lesson 1 and passage 1 are rewritten"
$ddbsync sync local
