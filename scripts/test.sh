#!/usr/bin/env bash
# The one test command: installs what the tests need on a fresh machine, then
# checks formatting, lints and the documentation build, and runs every test
# (README snippets included, as doctests) with all features.
# Fuzzing is not run here: scripts/fuzz-smoke.sh needs nightly and its first
# build (the fuzz crate with the AWS SDK under the address sanitizer) alone
# takes longer than this whole command should (BENCHMARKS.md, "Fuzzing").
# The fuzz corpus and crash inputs are replayed on stable by the test `fuzz`.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh
cargo fmt --all -- --check
cargo clippy --all-targets --all-features -- -D warnings
# The documentation builds without a warning (broken or ambiguous links, links
# to private items), as docs.rs builds it with all features. docs.rs also sets
# `--cfg docsrs`, which turns on the nightly-only `doc_cfg`: on stable, this
# is as close as the check can get.
RUSTDOCFLAGS="-D warnings" cargo doc --all-features --no-deps
cargo test --all-features "$@"
