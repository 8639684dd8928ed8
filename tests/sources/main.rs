//! Sources (`unistream::source`) read and resumed from checkpoints: one
//! test binary, one module per topic.

/// `FileSource`: offsets, resuming, corrupt and partial lines.
mod file_source;
/// The quickstart's consumer half (`examples/quickstart/consume.rs`).
mod quickstart_consume;
/// Stopping pipelines: a shutdown signal, a batch job caught up.
mod shutdown;
