//! Checkpointing: tokens that sources attach to records, stores that persist
//! how far each partition is processed, and the combinator that saves them.
//!
//! Checkpoints mean "processed up to and including". See [`CheckpointToken`]
//! for what a token names, [`CheckpointStore`] for what a store promises and
//! [`CheckpointStreamExt::checkpoint_batched`] for when positions are saved.
//!
//! | item | what it is |
//! |---|---|
//! | [`CheckpointToken`], [`Position`] | a record's partition, position and delivery order |
//! | [`CheckpointStore`] | the store contract (load, save, save_many, fencing) |
//! | [`MemoryCheckpointStore`] | in memory, with inspection and fault injection, for tests |
//! | [`JsonFileCheckpointStore`] | one JSON file for many partitions, replaced atomically |
//! | [`PositionTracker`] | the safe position of a partition when tokens arrive out of order |
//! | [`CheckpointStreamExt`] | `.checkpoint_batched(n, interval, store)` |

mod batched;
mod ext;
mod json_file_store;
mod memory_store;
mod store;
mod token;
mod tracker;

pub use batched::CheckpointBatched;
pub use ext::{AsCheckpointToken, CheckpointStreamExt};
pub use json_file_store::JsonFileCheckpointStore;
pub use memory_store::MemoryCheckpointStore;
pub use store::{CheckpointError, CheckpointStore};
pub use token::{CheckpointToken, PartitionControl, Position, SequenceNumber};
pub use tracker::PositionTracker;

// Kinesis consumer stores (issue 6).
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
#[cfg(feature = "dynamodb")]
pub use dynamodb::{DynamoDbCheckpointStore, Lease};
#[cfg(all(feature = "dynamodb", feature = "s3"))]
pub mod dynamodb_s3;
#[cfg(all(feature = "dynamodb", feature = "s3"))]
pub use dynamodb_s3::{Batch, BatchEntry, DynamoDbS3CheckpointStore, RecordStatus};
