#!/usr/bin/env bash
# Installs what ddbsync's demo, tests and benchmark need and a fresh machine lacks: PostgreSQL server
# binaries (Debian packages), Node.js, dynalite (npm), dynoxide (crates.io) and the Prometheus Pushgateway
# (Debian's prometheus-pushgateway, for the metrics tests). Idempotent: what is
# already there is kept. Servers go under $DDBSYNC_TOOLS (default ~/.cache/ddbsync-tools).
set -euo pipefail
tools="${DDBSYNC_TOOLS:-$HOME/.cache/ddbsync-tools}"
mkdir -p "$tools"

sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=
apt_install() {
  if [ -z "$apt_updated" ]; then sudo_if_needed apt-get update -qq; apt_updated=1; fi
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# shellcheck source=scripts/pg.sh
. "$(dirname "$0")/pg.sh"
if ! pg_bin >/dev/null 2>&1; then
  echo "setup: installing PostgreSQL server" >&2
  apt_install postgresql
fi
if ! command -v psql >/dev/null; then apt_install postgresql-client; fi
if ! command -v openssl >/dev/null; then apt_install openssl; fi
# The manual page test lays the page out with man (groff comes with it).
if ! command -v man >/dev/null; then apt_install man-db; fi
# The tests start their own Pushgateways on loopback ports; the service the package enables (on
# :9091, where systemd runs) is not used by them: `systemctl disable --now prometheus-pushgateway` stops it.
if [ ! -x /usr/bin/prometheus-pushgateway ]; then
  echo "setup: installing the Prometheus Pushgateway" >&2
  apt_install prometheus-pushgateway
fi
if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
  useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "setup: installing Node.js" >&2
  apt_install nodejs npm
fi
if [ ! -x "$tools/dynalite/node_modules/.bin/dynalite" ]; then
  echo "setup: installing dynalite (npm)" >&2
  mkdir -p "$tools/dynalite"
  (cd "$tools/dynalite" && npm install --silent --no-audit --no-fund dynalite@4 >/dev/null)
fi
if [ ! -x "$tools/dynoxide/bin/dynoxide" ]; then
  echo "setup: installing dynoxide (crates.io, about 2 minutes)" >&2
  cargo install --quiet --locked --root "$tools/dynoxide" dynoxide-rs@3.2.0 \
    --no-default-features --features native-sqlite,http-server,cli
fi
# The validators of deploy/ (tests/it/deploy.rs): Kubernetes manifests against the API's schemas,
# GitHub Actions workflows against their schema, AWS Batch requests against botocore's model of the
# Batch API, all offline; pinned, in their own virtualenv.
# (systemd units are checked by systemd-analyze, from the systemd package.)
validators="$tools/validators"
if ! "$validators/bin/kubernetes-validate" --version 2>/dev/null | grep -qx 1.37.0 \
  || ! "$validators/bin/check-jsonschema" --version 2>/dev/null | grep -q 'version 0.39.0$' \
  || ! "$validators/bin/python" -c 'import sys, botocore; sys.exit(botocore.__version__ != "1.44.8")' 2>/dev/null; then
  echo "setup: installing kubernetes-validate, check-jsonschema and botocore (PyPI)" >&2
  if ! command -v python3 >/dev/null || ! python3 -m venv --help >/dev/null 2>&1; then
    apt_install python3 python3-venv
  fi
  rm -rf "$validators"
  python3 -m venv "$validators"
  "$validators/bin/python" -m pip install -q --disable-pip-version-check kubernetes-validate==1.37.0 check-jsonschema==0.39.0 \
    botocore==1.44.8
fi
if ! command -v systemd-analyze >/dev/null; then apt_install systemd; fi
echo "setup: PostgreSQL $(pg_bin)/postgres, dynalite and dynoxide under $tools" >&2
