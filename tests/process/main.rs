//! Per-record processing (`unistream::process`): one test binary.

#[path = "../support/mod.rs"]
mod support;

/// Retries and dead letters per record.
mod retry_dead_letter;
