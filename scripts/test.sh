#!/usr/bin/env bash
# The one test command: installs what the tests need on a fresh machine, then
# checks formatting and lints, and runs every test with all features.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh
cargo fmt --all -- --check
cargo clippy --all-targets --all-features -- -D warnings
cargo test --all-features "$@"
