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

mod file;
mod memory;

pub use file::{FileSource, FileSourceStream};
pub use memory::MemorySource;
