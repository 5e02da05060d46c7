#!/usr/bin/env bash
# Tries ddbsync end to end on this machine: starts PostgreSQL (port 55432) and dynoxide (port 8766)
# on loopback, loads the PNI sample (200 lessons), syncs (everything is new), changes one question
# and touches some timestamps, syncs again (two items rewritten), and prints both reports.
# State lives in .demo/; the servers stop when the demo ends.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. scripts/pg.sh
tools="${DDBSYNC_TOOLS:-$HOME/.cache/ddbsync-tools}"
state="$PWD/.demo"
rm -rf "$state" && mkdir -p "$state"

pg_start "$state/pg" 55432
"$tools/dynoxide/bin/dynoxide" serve -p 8766 --log quiet >"$state/dynoxide.log" 2>&1 &
dynoxide=$!
trap 'kill $dynoxide 2>/dev/null || true; pg_stop "$state/pg"' EXIT

psql=(psql -q -h 127.0.0.1 -p 55432 -U postgres -v ON_ERROR_STOP=1)
"${psql[@]}" -d postgres -c "CREATE DATABASE pni"
"${psql[@]}" -d pni -v scale=200 -f scripts/pni/schema.sql -f scripts/pni/load.sql

# dynoxide checks that requests are signed, not by whom.
export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local
cargo build --quiet
ddbsync=target/debug/ddbsync

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
