#!/usr/bin/env bash
# The throughput benchmark: scripts/bench.sh [SCALE] [RUNS] (default 3000 lessons, 3 runs).
# Builds ddbsync and the benchmark programs in release mode, then runs scripts/bench.py, which
# prints the results table recorded in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null
cargo build --release --locked --bin ddbsync --example raw_ceiling --example engine
exec python3 scripts/bench.py "$@"
