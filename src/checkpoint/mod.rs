//! Checkpointing: tokens that sources attach to records, and stores that
//! persist how far each partition is processed.
//!
//! Checkpoints mean "processed up to and including". See [`CheckpointToken`]
//! for what a token names and [`CheckpointStore`] for what a store promises.

mod store;
mod token;

// Kinesis consumer stores (issue 6).
#[cfg(feature = "dynamodb")]
mod dynamodb;
#[cfg(feature = "dynamodb")]
pub use dynamodb::{DynamoDbCheckpointStore, Lease};

pub use store::{CheckpointError, CheckpointStore};
pub use token::{CheckpointToken, PartitionControl, Position, SequenceNumber};
