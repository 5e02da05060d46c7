#!/usr/bin/env bash
# Runs every test: installs what is missing (scripts/setup.sh), then the unit tests and the
# integration tests against dynoxide, then the integration tests again against dynalite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
DDBSYNC_TEST_SERVER=dynoxide cargo test --locked
DDBSYNC_TEST_SERVER=dynalite cargo test --locked --test it
