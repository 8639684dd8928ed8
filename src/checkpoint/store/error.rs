//! [`CheckpointError`]: how a checkpoint store fails. A fenced write (the
//! lease moved) is its own variant, matched on by kind, never by message.

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

    /// `checkpoint_batched` was told to fail when its input ends with
    /// tokens held back behind tokens that never arrived
    /// ([`CheckpointBatched::fail_on_held_back`](crate::checkpoint::CheckpointBatched::fail_on_held_back)):
    /// everything that could be saved is saved, these partitions' positions
    /// stop before the missing tokens.
    #[error(
        "checkpoint held back: {} token(s) in {} partition(s) wait for tokens that never \
         arrived (dropped or filtered out? use try_filter_checkpointed): {}",
        .partitions.iter().map(|p| p.tokens).sum::<usize>(),
        .partitions.len(),
        crate::checkpoint::held_back::describe(.partitions)
    )]
    HeldBack {
        /// The partitions held back, in the order they were first seen.
        partitions: Vec<crate::checkpoint::HeldBackTokens>,
    },

    /// A commit of outputs with the checkpoint
    /// ([`TransactionalCheckpointStore::commit`](crate::checkpoint::TransactionalCheckpointStore::commit))
    /// cannot be written as given (an output's own condition failed, a
    /// record's outputs exceed one transaction). Nothing of the refused
    /// transaction was applied; sending it again fails again.
    #[error("transaction for partition {partition} refused: {reason}")]
    Transaction {
        /// The partition.
        partition: String,
        /// Why.
        reason: String,
    },

    /// The backing storage failed (I/O, network, service error). Retrying
    /// may succeed.
    #[error("checkpoint store {store} failed")]
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
