#!/usr/bin/env bash
# Tries ddbsync end to end on this machine: starts PostgreSQL (port 55432) and dynoxide (port 8766)
# on loopback, loads a sample, syncs, changes something, syncs again and prints the reports.
#   scripts/demo.sh          the PNI sample (200 lessons): everything is new, then one question is
#                            changed and some timestamps touched: two items rewritten
#   scripts/demo.sh chinook  the Chinook music store as four single-table designs: one track renamed
#                            rewrites the items that embed it; then one month of invoices by --param
#   scripts/demo.sh sqlite   the same store from its SQLite file, with no PostgreSQL at all: the file
#                            (Chinook_Sqlite.sqlite from ../shared, or DDBSYNC_CHINOOK_SQLITE) is
#                            copied to .demo/ and synced; a track renamed with sqlite3 rewrites the
#                            items that embed it; one month of invoices by --param; the run report
#   scripts/demo.sh promote  an Amplify app's dev tables (built with scripts/amplify_dev.py, no
#                            PostgreSQL) promoted to its prod tables with new IDs
#                            (envs/amplify-dev-to-prod.toml): a dry run, the promotion (one quote item
#                            points at a deleted quote: rejected), one quote changed in dev, promoted
#                            again (one item written), then the integrity check
# State lives in .demo/; the servers stop when the demo ends.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. scripts/local.sh
state="$PWD/.demo"
rm -rf "$state" && mkdir -p "$state"

# The Chinook SQLite file, which the repository does not copy: DDBSYNC_CHINOOK_SQLITE, else
# shared/datasets/chinook/Chinook_Sqlite.sqlite in a directory above the repository.
chinook_sqlite() {
  if [ -n "${DDBSYNC_CHINOOK_SQLITE:-}" ]; then echo "$DDBSYNC_CHINOOK_SQLITE"; return; fi
  local dir
  dir=$(pwd)
  while [ "$dir" != / ]; do
    if [ -f "$dir/shared/datasets/chinook/Chinook_Sqlite.sqlite" ]; then
      echo "$dir/shared/datasets/chinook/Chinook_Sqlite.sqlite"
      return
    fi
    dir=$(dirname "$dir")
  done
  echo "Chinook_Sqlite.sqlite not found: set DDBSYNC_CHINOOK_SQLITE (https://github.com/lerocha/chinook-database)" >&2
  return 1
}

# The local dynoxide on 8766, alone (the SQLite and promotion demos need no PostgreSQL).
dynoxide_start() {
  local tools="${DDBSYNC_TOOLS:-$HOME/.cache/ddbsync-tools}"
  "$tools/dynoxide/bin/dynoxide" serve -p 8766 --log quiet >"$state/dynoxide.log" 2>&1 &
  dynoxide=$!
  trap 'kill $dynoxide 2>/dev/null || true' EXIT
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/8766) 2>/dev/null && break; sleep 0.1; done
  export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local
}

# Exit 3 (rows rejected: the report lists them) is part of the story; anything else stops the demo.
allow_rejects() {
  local code=0
  "$@" || code=$?
  [ "$code" = 0 ] || [ "$code" = 3 ] || exit "$code"
}

if [ "${1:-pni}" = promote ]; then
  command -v python3 >/dev/null || { echo "python3 is needed to build the dev tables (apt-get install python3)" >&2; exit 1; }
  dynoxide_start
  cargo build --quiet
  ddbsync=target/debug/ddbsync
  echo "== an Amplify app's dev environment: six tables, UUID ids, foreign keys"
  python3 scripts/amplify_dev.py build --endpoint http://127.0.0.1:8766
  echo; echo "== dry run: what the promotion would write (counts, references rejected, cost)"
  allow_rejects $ddbsync sync amplify-dev-to-prod --dry-run
  echo; echo "== promotion: Properties and Contacts first, QuoteItems last; every ID new, every reference rewritten"
  allow_rejects $ddbsync sync amplify-dev-to-prod
  echo; echo "== one quote changed in dev (its total; updatedAt and _version move too)"
  python3 scripts/amplify_dev.py change-quote --endpoint http://127.0.0.1:8766
  echo; echo "== promoted again: that quote's prod item alone is written"
  allow_rejects $ddbsync sync amplify-dev-to-prod
  echo; echo "== integrity check: every reference in prod resolves to a prod item"
  $ddbsync verify amplify-dev-to-prod --references
  echo; echo "== and prod against dev, every item (the items dev cannot promote are named again)"
  allow_rejects $ddbsync verify amplify-dev-to-prod --full
  exit
fi

if [ "${1:-pni}" = sqlite ]; then
  command -v sqlite3 >/dev/null || { echo "the sqlite3 command is needed to change the file (apt-get install sqlite3)" >&2; exit 1; }
  # The profile envs/chinook-sqlite.toml reads .demo/Chinook_Sqlite.sqlite: a copy, as the demo changes it.
  cp "$(chinook_sqlite)" "$state/Chinook_Sqlite.sqlite"
  dynoxide_start
  cargo build --quiet
  ddbsync=target/debug/ddbsync
  echo; echo "== first sync from the SQLite file: four tables with their indexes, every item new"
  $ddbsync sync chinook-sqlite
  echo; echo "== track 1 renamed in the file: its track item, its album, its invoices and its playlist entries change"
  sqlite3 "$state/Chinook_Sqlite.sqlite" "UPDATE Track SET Name = 'For Those About To Rock (Renamed)' WHERE TrackId = 1"
  $ddbsync sync chinook-sqlite
  echo; echo "== January 2021's invoices only (bound as SQLite parameters ?1 and ?2)"
  $ddbsync sync chinook-sqlite --table CustomerData --param from=2021-01-01 --param to=2021-02-01
  echo; echo "== the runs so far"
  $ddbsync report chinook-sqlite
  exit
fi

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
