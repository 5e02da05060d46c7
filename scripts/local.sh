#!/usr/bin/env bash
# Sourced by the demo and the cost scripts: PostgreSQL and dynoxide on loopback for as long as the
# sourcing script runs.
#   local_start STATE PG_PORT DYNAMO_PORT   starts both (state under STATE), defines the array
#                                            `psql` for the server and exports the dummy AWS
#                                            credentials dynoxide needs (it checks the signature
#                                            format, not who signs); everything stops on exit,
#                                            then `$local_cleanup` runs if set.
. "$(dirname "${BASH_SOURCE[0]}")/pg.sh"

local_start() {
  local state=$1 pg_port=$2 dynamo_port=$3
  local tools="${DDBSYNC_TOOLS:-$HOME/.cache/ddbsync-tools}"
  pg_start "$state/pg" "$pg_port"
  "$tools/dynoxide/bin/dynoxide" serve -p "$dynamo_port" --log quiet >"$state/dynoxide.log" 2>&1 &
  local_dynoxide=$!
  local_state=$state
  # `|| true`: an early exit (dynoxide already gone) must not skip stopping PostgreSQL.
  trap 'kill $local_dynoxide 2>/dev/null || true; pg_stop "$local_state/pg" || true; eval "${local_cleanup:-}"' EXIT
  psql=(psql -q -h 127.0.0.1 -p "$pg_port" -U postgres -v ON_ERROR_STOP=1)
  export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local
}

# The Chinook dataset, which the repository does not copy: DDBSYNC_CHINOOK, else
# shared/datasets/chinook/Chinook_PostgreSql.sql in a directory above the repository.
chinook_sql() {
  if [ -n "${DDBSYNC_CHINOOK:-}" ]; then echo "$DDBSYNC_CHINOOK"; return; fi
  local dir
  dir=$(pwd)
  while [ "$dir" != / ]; do
    if [ -f "$dir/shared/datasets/chinook/Chinook_PostgreSql.sql" ]; then
      echo "$dir/shared/datasets/chinook/Chinook_PostgreSql.sql"
      return
    fi
    dir=$(dirname "$dir")
  done
  echo "Chinook_PostgreSql.sql not found: set DDBSYNC_CHINOOK (https://github.com/lerocha/chinook-database)" >&2
  return 1
}
