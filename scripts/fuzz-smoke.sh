#!/usr/bin/env bash
# A short, bounded fuzzing run of every fuzz target in fuzz/ (cargo-fuzz,
# libFuzzer): replays the committed corpus (fuzz/corpus/<target>/) and every
# crash input found so far (fuzz/regressions/<target>/) under the address
# sanitizer, then fuzzes each target for FUZZ_SMOKE_SECONDS (default 20),
# one after the other. Installs cargo-fuzz when missing. Fails on the first
# crash (its input is left in fuzz/artifacts/<target>/: fix the code, then
# add the input to fuzz/regressions/<target>/).
#
# Usage: scripts/fuzz-smoke.sh
# Environment: FUZZ_SMOKE_SECONDS (default 20).
#
# Without a nightly toolchain this fails loudly rather than skipping: a
# skipped smoke run looks exactly like a passing one, and the machines this
# project tests on have nightly. The stable replay of the same inputs
# (tests/fuzz, part of `cargo test --all-features`) does not need it.
#
# Cost on the project's 2-core machine (BENCHMARKS.md, "Fuzzing"): the first
# build of the fuzz crate (the AWS Kinesis SDK included) dominates; later
# runs rebuild only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/fuzz-common.sh

seconds="${FUZZ_SMOKE_SECONDS:-20}"
started=$(date +%s)
fuzz_require_nightly
fuzz_require_cargo_fuzz
fuzz_build
built=$(date +%s)
echo "fuzz-smoke: build took $((built - started)) s" >&2

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for target in "${FUZZ_TARGETS[@]}"; do
  echo "fuzz-smoke: $target for ${seconds} s" >&2
  status=0
  fuzz_run "$target" "$seconds" "$work/$target" >"$work/$target.log" 2>&1 || status=$?
  grep -E '^(Done|stat::number_of_executed_units)' "$work/$target.log" >&2 || true
  if [ "$status" -ne 0 ]; then
    tail -n 60 "$work/$target.log" >&2
    echo "fuzz-smoke: $target FAILED (status $status); the input is in fuzz/artifacts/$target/" >&2
    exit "$status"
  fi
done
echo "fuzz-smoke: all targets passed in $(($(date +%s) - started)) s" >&2
