# Shared by scripts/fuzz-smoke.sh and scripts/fuzz-soak.sh (sourced, not run):
# the nightly toolchain and cargo-fuzz, the build of every target, and one
# bounded libFuzzer run of one target.
#
# Targets (fuzz/fuzz_targets/<name>.rs, bodies in src/fuzz/<name>.rs):
#   wal_recovery     WAL segment directory + frames, opened in both corruption modes
#   wal_position     the WAL's committed-position file
#   kpl_deaggregate  KPL aggregated records (the crate's feature `kpl`: the deaggregator without the AWS SDK)
#   checkpoint_json  the JSON checkpoint document of JsonFileCheckpointStore
#   file_source      FileSource line splitting and decoding

FUZZ_TARGETS=(wal_recovery wal_position kpl_deaggregate checkpoint_json file_source)
CARGO_FUZZ_VERSION="0.13.2"
# Inputs up to this size: a WAL directory or a file of many lines needs more
# than libFuzzer's default 4 KiB.
FUZZ_MAX_LEN=16384

fuzz_require_nightly() {
  if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "error: fuzzing needs a nightly Rust toolchain (rustup toolchain install nightly)." >&2
    echo "       The corpus and regression inputs still replay on stable: cargo test --features fuzzing --test fuzz" >&2
    exit 1
  fi
}

fuzz_require_cargo_fuzz() {
  if [ "$(cargo fuzz --version 2>/dev/null | awk '{print $2}')" != "$CARGO_FUZZ_VERSION" ]; then
    echo "installing cargo-fuzz $CARGO_FUZZ_VERSION" >&2
    cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
  fi
}

# Builds every target (sanitizer: address; debug assertions and overflow
# checks on, so that arithmetic on sizes read from disk is checked too).
fuzz_build() {
  cargo +nightly fuzz build --fuzz-dir fuzz --debug-assertions
}

# fuzz_run TARGET SECONDS WORK_DIR [libFuzzer args...]
# Runs TARGET for SECONDS, growing the corpus in WORK_DIR, after replaying
# fuzz/corpus/TARGET and fuzz/regressions/TARGET (libFuzzer runs every
# input it is given before mutating). A crash leaves its input in
# fuzz/artifacts/TARGET/ and fails.
fuzz_run() {
  local target=$1 seconds=$2 work=$3
  shift 3
  mkdir -p "$work" "fuzz/regressions/$target"
  cargo +nightly fuzz run --fuzz-dir fuzz --debug-assertions "$target" \
    "$work" "fuzz/corpus/$target" "fuzz/regressions/$target" -- \
    -max_total_time="$seconds" -max_len="$FUZZ_MAX_LEN" -timeout=20 -rss_limit_mb=2048 \
    -print_final_stats=1 "$@"
}
