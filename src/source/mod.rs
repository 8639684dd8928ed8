//! Sources: streams of `(record, CheckpointToken)`.
//!
//! A source is a `TryStream` whose items are a record and its
//! [`CheckpointToken`](crate::CheckpointToken): the partition it came from,
//! its position there, and its place (`seq`, from 0 per partition and run)
//! in the partition's delivery order. Process the record, hand the token on,
//! and let [`checkpoint_batched`](crate::checkpoint::CheckpointStreamExt::checkpoint_batched)
//! save how far each partition is done. A source resumes *after* a
//! checkpoint position.
//!
//! | source | partition | position |
//! |---|---|---|
//! | [`FileSource`] | the file path | `Offset`: byte offset just past the line |
//! | [`MemorySource`] | the given name | `Offset(i + 1)` for the record at index `i` |
//!
//! Stopping a pipeline: [`Shutdown`] (`shutdown.rs`) is a handle whose
//! signal ends a source through [`SourceExt::until`] (`until.rs`, `ext.rs`);
//! what comes after the source drains, saves its checkpoints and closes its
//! sinks. Batch jobs stop on their own once caught up:
//! [`FileSource::stop_when_caught_up`], and `KinesisSource::stop_when_caught_up`
//! (feature `kinesis`).

mod ext;
mod file;
mod memory;
mod shutdown;
mod until;

pub use ext::SourceExt;
pub use file::{FileSource, FileSourceStream};
pub use memory::MemorySource;
pub use shutdown::{Shutdown, ShutdownSignal};
pub use until::Until;
