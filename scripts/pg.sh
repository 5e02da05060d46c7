#!/usr/bin/env bash
# A throwaway PostgreSQL server on loopback, for the demo, the tests and the benchmark.
#   scripts/pg.sh start DIR PORT [tls]   initialise DIR if needed and start the server (trust auth, no
#                                        fsync); with `tls`, also TLS with a certificate for localhost
#                                        signed by a throwaway CA (DIR/tls/ca.crt)
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

# A private CA and a server certificate for localhost (not 127.0.0.1, so that verify-full can be
# seen to check the name), in DIR/tls.
pg_certs() {
  local tls=$1/tls
  [ -f "$tls/server.crt" ] && return
  mkdir -p "$tls"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=ddbsync test CA" \
    -keyout "$tls/ca.key" -out "$tls/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n' >"$tls/ext.cnf"
  openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" -CAcreateserial -days 3650 \
    -extfile "$tls/ext.cnf" -out "$tls/server.crt" 2>/dev/null
  chmod 600 "$tls/server.key"
  [ "$(id -u)" = 0 ] && chown -R postgres "$tls"
  chmod 755 "$tls"; chmod 644 "$tls/ca.crt"
}

pg_start() {
  local dir=$1 port=$2 bin tls_opts=""
  bin=$(pg_bin) || { echo "PostgreSQL server binaries not found: run scripts/setup.sh" >&2; return 1; }
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres "$dir"
  if [ ! -f "$dir/PG_VERSION" ]; then
    as_pg "$bin/initdb" -D "$dir" -U postgres --auth=trust --no-sync -E UTF8 >/dev/null
  fi
  if [ "${3:-}" = tls ]; then
    pg_certs "$dir"
    tls_opts="-c ssl=on -c ssl_cert_file=$dir/tls/server.crt -c ssl_key_file=$dir/tls/server.key"
  fi
  as_pg "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 -o \
    "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off $tls_opts" \
    start >/dev/null
}

pg_stop() {
  local bin
  bin=$(pg_bin) && as_pg "$bin/pg_ctl" -D "$1" -m fast stop >/dev/null 2>&1 || true
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  case "${1:-}" in
    start) pg_start "$2" "$3" "${4:-}" ;;
    stop) pg_stop "$2" ;;
    *) echo "usage: $0 start DIR PORT [tls] | stop DIR" >&2; exit 2 ;;
  esac
fi
