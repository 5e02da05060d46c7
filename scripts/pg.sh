#!/usr/bin/env bash
# A throwaway PostgreSQL server on loopback, for the demo, the tests and the benchmark.
#   scripts/pg.sh start DIR PORT   initialise DIR if needed and start the server (trust auth, no fsync)
#   scripts/pg.sh stop DIR
# PostgreSQL refuses to run as root; as root, the server runs as the `postgres` user.
# Sourced, it only defines the functions.

pg_bin() {
  if [ -n "${PG_BIN:-}" ]; then echo "$PG_BIN"; return; fi
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -n "$found" ] && [ -x "$found/initdb" ]; then echo "$found"; return; fi
  if command -v initdb >/dev/null; then dirname "$(readlink -f "$(command -v initdb)")"; return; fi
  return 1
}

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_start() {
  local dir=$1 port=$2 bin
  bin=$(pg_bin) || { echo "PostgreSQL server binaries not found: run scripts/setup.sh" >&2; return 1; }
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres "$dir"
  if [ ! -f "$dir/PG_VERSION" ]; then
    as_pg "$bin/initdb" -D "$dir" -U postgres --auth=trust --no-sync -E UTF8 >/dev/null
  fi
  as_pg "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 -o \
    "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >/dev/null
}

pg_stop() {
  local bin
  bin=$(pg_bin) && as_pg "$bin/pg_ctl" -D "$1" -m fast stop >/dev/null 2>&1 || true
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  case "${1:-}" in
    start) pg_start "$2" "$3" ;;
    stop) pg_stop "$2" ;;
    *) echo "usage: $0 start DIR PORT | stop DIR" >&2; exit 2 ;;
  esac
fi
