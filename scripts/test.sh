#!/usr/bin/env bash
# The one test command: installs what the tests need on a fresh machine, then
# checks formatting and lints, and runs every test with all features.
# Fuzzing is not run here: scripts/fuzz-smoke.sh needs nightly and its first
# build (the fuzz crate with the AWS SDK under the address sanitizer) alone
# takes longer than this whole command should (BENCHMARKS.md, "Fuzzing").
# The fuzz corpus and crash inputs are replayed on stable by the test `fuzz`.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh
cargo fmt --all -- --check
cargo clippy --all-targets --all-features -- -D warnings
cargo test --all-features "$@"
