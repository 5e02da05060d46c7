#!/usr/bin/env bash
# A promotion's throughput against the raw copy ceiling: scripts/bench_promote.sh [SCALE] [RUNS]
# (default 3000 lessons, 3 runs). Builds ddbsync and raw_ceiling in release mode, then runs
# scripts/bench_promote.py, which prints the table recorded in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null
cargo build --release --locked --bin ddbsync --example raw_ceiling
exec python3 scripts/bench_promote.py "$@"
