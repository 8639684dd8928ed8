//! The bodies of the fuzz targets in `fuzz/` (cargo-fuzz, libFuzzer), one
//! function per decoder of untrusted bytes, behind the non-default cargo
//! feature `fuzzing`. Not part of the API: hidden from the docs, free to
//! change.
//!
//! Each body takes the fuzzer's bytes, drives one decoder through the same
//! path the library uses on bytes from disk or the network, and panics only
//! when an invariant of that decoder breaks (a panic from the library itself
//! is the bug the fuzzer looks for). The same functions replay the committed
//! corpus and regression inputs in a stable `cargo test` (`tests/fuzz`), so a
//! crash once found stays fixed without nightly.
//!
//! | target | body | decoder |
//! |---|---|---|
//! | `wal_recovery` | [`wal_recovery::run`] | WAL segments and frames, recovery, both [`OnCorruption`](crate::wal::OnCorruption) modes |
//! | `wal_position` | [`wal_position::run`] | the WAL's committed-position file |
//! | `kpl_deaggregate` | `kpl_deaggregate::run` (feature `kinesis`) | KPL aggregated records |
//! | `checkpoint_json` | [`checkpoint_json::run`] | the JSON checkpoint document |
//! | `file_source` | [`file_source::run`] | `FileSource` line splitting and decoding |
//!
//! [`seeds`] makes each target's seed corpus with the crate itself.

pub mod checkpoint_json;
pub mod file_source;
#[cfg(feature = "kpl")]
pub mod kpl_deaggregate;
pub mod scratch;
pub mod seeds;
pub mod wal_position;
pub mod wal_recovery;

/// The names of the fuzz targets, as in `fuzz/fuzz_targets/<name>.rs`,
/// `fuzz/corpus/<name>/` and `fuzz/regressions/<name>/`.
pub const TARGETS: &[&str] = &[
    "wal_recovery",
    "wal_position",
    "kpl_deaggregate",
    "checkpoint_json",
    "file_source",
];

/// Runs the body of the target `name` on `data`; `false` when this build
/// lacks the target (`kpl_deaggregate` without feature `kpl`) or the
/// name is unknown.
pub fn run_target(name: &str, data: &[u8]) -> bool {
    match name {
        "wal_recovery" => wal_recovery::run(data),
        "wal_position" => wal_position::run(data),
        #[cfg(feature = "kpl")]
        "kpl_deaggregate" => kpl_deaggregate::run(data),
        "checkpoint_json" => checkpoint_json::run(data),
        "file_source" => file_source::run(data),
        _ => return false,
    }
    true
}

/// A current-thread tokio runtime with timers and the blocking pool, one
/// per input: dropping it ends every task the input started.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("fuzz body: building a tokio runtime")
}
