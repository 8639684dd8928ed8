//! The write-ahead log (`unistream::wal`) on its own: one test binary, one
//! module per topic.

#[path = "../support/mod.rs"]
mod support;

/// Append, read back, commit and reopen.
mod basic;
/// The cap on bytes on disk.
mod cap;
/// The committed position's file.
mod commit_position;
/// Damage on disk: torn tails, corruption, quarantine.
mod corruption;
/// Damage tests in both corruption modes: exact salvage and reports, no
/// lsn reused.
mod damage;
/// What the damage tests share: writing, damaging, opening, checking.
mod damage_harness;
/// Seeded randomized damage over many small logs, in both modes.
mod damage_random;
/// A full disk (child process under a file-size limit).
mod disk_full;
/// Property test against an in-memory model of the log.
mod model;
/// Preallocated segment space under `Fsync::Always`.
mod preallocation;
/// One process at a time per log (child process).
mod process_lock;
/// Segment names far apart: quarantine steps over any gap.
mod segment_names;
