#!/usr/bin/env bash
# Memory and CPU at scale: scripts/scale.sh ROWS [RUNS] [--bytes N] [--server dynoxide|dynalite]
# (for example `scripts/scale.sh 1000000 3`). Builds ddbsync in release mode, then runs
# scripts/scale.py, which prints the table recorded in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null
cargo build --release --locked --bin ddbsync
exec python3 scripts/scale.py "$@"
