//! Checkpointing: tokens that sources attach to records, stores that persist
//! how far each partition is processed, and the combinator that saves them.
//!
//! Checkpoints mean "processed up to and including". See [`CheckpointToken`]
//! for what a token names, [`CheckpointStore`] for what a store promises and
//! [`CheckpointStreamExt::checkpoint_batched`] for when positions are saved.
//!
//! | item | file | what it is |
//! |---|---|---|
//! | [`Position`], [`SequenceNumber`] | `position.rs` | where a record sits in its partition |
//! | [`CheckpointToken`], [`AsCheckpointToken`] | `token.rs` | a record's partition, position and delivery order |
//! | [`PartitionControl`] | `control.rs` | the switch that stops a source's partition when its lease is lost |
//! | [`FencingToken`] | `fencing.rs` | the lease a leased partition's records were read under, for fenced external writes |
//! | [`CheckpointStore`], [`CheckpointError`] | `store/` | the store contract (load, save, save_many, fencing) |
//! | [`MemoryCheckpointStore`] | `store/memory.rs` | in memory, with inspection and fault injection, for tests |
//! | [`JsonFileCheckpointStore`] | `store/json_file.rs` | one JSON file for many partitions, replaced atomically |
//! | `DynamoDbCheckpointStore`, `DynamoDbS3CheckpointStore` | `crate::dynamodb` | the KCL lease table; with the in-flight batch in S3 (features `dynamodb`, `s3`) |
//! | [`PositionTracker`] | `tracker.rs` | the safe position of a partition when tokens arrive out of order |
//! | [`CheckpointStreamExt`], [`CheckpointBatched`] | `ext.rs`, `batched/` | `.checkpoint_batched(n, interval, store)` |
//! | [`HeldBackTokens`] | `held_back.rs` | a partition whose checkpoint waits for a token that never arrived |
//! | [`TryFilterCheckpointed`] | `filter.rs` | `.try_filter_checkpointed(pred)`: skip records, keep their tokens |
//! | [`AndThenPerPartition`] | `per_partition.rs` | `.and_then_per_partition(n, handler)`: partitions concurrently, each in order |

mod batched;
mod control;
mod ext;
mod fencing;
mod filter;
mod held_back;
mod per_partition;
mod position;
mod store;
mod token;
mod tracker;
mod transactional;

pub use batched::CheckpointBatched;
pub use control::PartitionControl;
pub use ext::CheckpointStreamExt;
pub use fencing::FencingToken;
pub use filter::TryFilterCheckpointed;
pub use held_back::HeldBackTokens;
pub use per_partition::AndThenPerPartition;
pub use position::{Position, SequenceNumber};
pub use store::{CheckpointError, CheckpointStore, JsonFileCheckpointStore, MemoryCheckpointStore};
pub use token::{AsCheckpointToken, CheckpointToken};
pub use tracker::PositionTracker;
pub use transactional::{
    ProcessedRecord, TransactionCommit, TransactionalCheckpointStore, TransactionalStreamExt,
};

/// The DynamoDB stores under their former path; the types are re-exported
/// below, beside the other stores.
#[cfg(feature = "dynamodb")]
pub mod dynamodb {
    pub use crate::dynamodb::{DynamoDbCheckpointStore, Lease};
}
#[cfg(feature = "dynamodb")]
pub use crate::dynamodb::{DynamoDbCheckpointStore, Lease};
/// The DynamoDB + S3 batch store under its former path.
#[cfg(all(feature = "dynamodb", feature = "s3"))]
pub mod dynamodb_s3 {
    pub use crate::dynamodb::{Batch, BatchEntry, DynamoDbS3CheckpointStore, RecordStatus};
}
#[cfg(all(feature = "dynamodb", feature = "s3"))]
pub use crate::dynamodb::{Batch, BatchEntry, DynamoDbS3CheckpointStore, RecordStatus};
