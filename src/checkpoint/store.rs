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

use super::token::Position;

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

/// A checkpoint store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The write was refused because this worker no longer holds the
    /// partition's lease. Stop processing the partition; do not retry.
    #[error("checkpoint for partition {partition} fenced: {reason}")]
    Fenced {
        /// The partition whose lease was lost.
        partition: String,
        /// What the store saw (owner, counter, …).
        reason: String,
    },

    /// The stored document or item is not a valid checkpoint.
    #[error("checkpoint store {store} holds invalid data: {reason}")]
    Corrupt {
        /// Which store (file path, table name).
        store: String,
        /// What is wrong.
        reason: String,
    },

    /// The backing storage failed (I/O, network, service error). Retrying
    /// may succeed.
    #[error("checkpoint store {store} failed: {source}")]
    Backend {
        /// Which store (file path, table name).
        store: String,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl CheckpointError {
    /// Whether this is [`CheckpointError::Fenced`].
    pub fn is_fenced(&self) -> bool {
        matches!(self, CheckpointError::Fenced { .. })
    }

    /// A backend failure of `store`.
    pub fn backend(
        store: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        CheckpointError::Backend {
            store: store.into(),
            source: source.into(),
        }
    }
}
