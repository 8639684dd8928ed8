//! The checkpoint store contract.
//!
//! A [`CheckpointStore`] persists, per partition, the position up to which
//! records are processed. Implementations must make a successful `save`
//! durable (a crash after `Ok` keeps it) and must never leave a torn value: a
//! crash during a save leaves the old or the new position.
//!
//! Stores that coordinate several workers (leases) reject a write from a
//! worker that lost the partition with [`CheckpointError::Fenced`], a
//! distinct error: the caller stops processing that partition rather than
//! retrying.

use std::future::Future;

use super::position::Position;

mod error;
mod json_file;
mod memory;

pub use error::CheckpointError;
pub use json_file::JsonFileCheckpointStore;
pub use memory::MemoryCheckpointStore;

/// Persists checkpoint positions per partition.
///
/// Stores are cheap to clone (share state behind an `Arc`); a source and its
/// checkpointer hold clones of one store.
pub trait CheckpointStore: Clone + Send + Sync + 'static {
    /// The last saved position of `partition`, `None` when there is none.
    fn load(
        &self,
        partition: &str,
    ) -> impl Future<Output = Result<Option<Position>, CheckpointError>> + Send;

    /// Durably saves `position` for `partition`.
    fn save(
        &self,
        partition: &str,
        position: &Position,
    ) -> impl Future<Output = Result<(), CheckpointError>> + Send;

    /// Saves several partitions. The default saves them one by one and stops
    /// at the first error; stores that can write them together (one file, one
    /// transaction) override it.
    fn save_many(
        &self,
        entries: &[(String, Position)],
    ) -> impl Future<Output = Result<(), CheckpointError>> + Send {
        async move {
            for (partition, position) in entries {
                self.save(partition, position).await?;
            }
            Ok(())
        }
    }
}
