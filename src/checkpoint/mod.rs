//! Checkpointing: tokens that sources attach to records, and stores that
//! persist how far each partition is processed.
//!
//! Checkpoints mean "processed up to and including". See [`CheckpointToken`]
//! for what a token names and [`CheckpointStore`] for what a store promises.

mod store;
mod token;

pub use store::{CheckpointError, CheckpointStore};
pub use token::{CheckpointToken, PartitionControl, Position, SequenceNumber};
