#!/usr/bin/env bash
# The long fuzzing runs: each fuzz target in fuzz/ for SECONDS (default one
# hour), one after the other (one fuzzing job at a time on a shared
# machine). The corpus of each grows in fuzz/work/<target>/ (not
# committed) across runs; each run's log goes to fuzz/logs/<target>-<date>.log
# and a summary line (executions, corpus size, crash) to stdout, for
# BENCHMARKS.md ("Fuzzing"). A crash does not stop the other targets; its
# input is in fuzz/artifacts/<target>/ and the script exits non-zero at the
# end.
#
# Usage: scripts/fuzz-soak.sh [SECONDS] [TARGET...]
#   SECONDS  per target (default 3600); TARGETs default to all of them.
#
# To commit part of a grown corpus (keep fuzz/corpus/ under 1 MiB), merge
# it minimized: fuzz/target/x86_64-unknown-linux-gnu/release/<target>
#   -merge=1 fuzz/corpus/<target> fuzz/work/<target>
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/fuzz-common.sh

seconds="${1:-3600}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${FUZZ_TARGETS[@]}")

fuzz_require_nightly
fuzz_require_cargo_fuzz
fuzz_build
mkdir -p fuzz/logs
failed=0
for target in "${targets[@]}"; do
  log="fuzz/logs/$target-$(date -u +%Y-%m-%dT%H%M%SZ).log"
  started=$(date +%s)
  status=0
  fuzz_run "$target" "$seconds" "fuzz/work/$target" >"$log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  inputs=$(find "fuzz/work/$target" -type f | wc -l)
  bytes=$(du -sb "fuzz/work/$target" | cut -f1)
  echo "$target: $(($(date +%s) - started)) s, ${runs:-?} executions, corpus $inputs inputs ($bytes bytes), status $status, log $log"
  [ "$status" -eq 0 ] || failed=1
done
exit "$failed"
