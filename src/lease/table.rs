//! [`LeaseTable`]: the storage a lease worker coordinates through, and
//! [`LeaseError`].
//!
//! The contract every implementation keeps (the DynamoDB table, the
//! in-memory one, a user's own):
//!
//! - **Conditional writes.** [`write`](LeaseTable::write) applies a
//!   [`LeaseWrite`] only if the lease's counter is still the one the writer
//!   read, and increments it, atomically; otherwise it fails with
//!   [`LeaseError::Conflict`], carrying the lease as it is now when the
//!   backend can return it. Two writers conditional on one counter can never
//!   both succeed. This is all the coordination rests on: no clocks, no
//!   other locks.
//! - **Create once.** [`create`](LeaseTable::create) adds a lease only if
//!   none exists with its key; concurrent creators of one key see exactly
//!   one `Created`.
//! - **Reads may be stale, writes may not.** [`list`](LeaseTable::list) may
//!   return a slightly old view (an eventually consistent scan); a decision
//!   made on it is safe because the write it leads to is conditional.
//!   [`get`](LeaseTable::get) is strongly consistent.
//! - **Other attributes survive.** A backend that stores more than a
//!   [`Lease`] holds (fields written by other tools) keeps them on every
//!   write.

use std::future::Future;

use super::record::Lease;
use super::write::LeaseWrite;

/// Storage for leases with conditional writes; see the [`lease`](super) module docs.
///
/// Tables are cheap to clone (share state behind an `Arc`).
pub trait LeaseTable: Clone + Send + Sync + 'static {
    /// The table's name, for logs and errors.
    fn name(&self) -> &str;

    /// Every lease in the table (possibly slightly stale).
    fn list(&self) -> impl Future<Output = Result<Vec<Lease>, LeaseError>> + Send;

    /// One lease, strongly consistent.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Lease>, LeaseError>> + Send;

    /// Adds `lease` unless a lease with its key exists.
    fn create(&self, lease: Lease) -> impl Future<Output = Result<Created, LeaseError>> + Send;

    /// Applies `write` to the lease `key` if its counter is `expected`;
    /// returns the lease as written (counter `expected + 1`).
    fn write(
        &self,
        key: &str,
        expected: u64,
        write: LeaseWrite,
    ) -> impl Future<Output = Result<Lease, LeaseError>> + Send;
}

/// What [`LeaseTable::create`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// The lease was added.
    Created,
    /// A lease with that key already existed; nothing was written.
    Exists,
}

/// A lease table operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LeaseError {
    /// The lease's counter is not the one the write was conditional on (or
    /// the lease is gone): someone else wrote it. Not retried as it is:
    /// decide again from `current`.
    #[error("lease {key} in {table} was written by someone else (expected counter {expected})")]
    Conflict {
        /// The table.
        table: String,
        /// The lease.
        key: String,
        /// The counter the write expected.
        expected: u64,
        /// The lease as it is now, when the backend returned it (`None`:
        /// unknown, or the lease is gone).
        current: Option<Box<Lease>>,
    },

    /// A stored lease cannot be read as one.
    #[error("lease {key} in {table} is invalid: {reason}")]
    Corrupt {
        /// The table.
        table: String,
        /// The lease.
        key: String,
        /// What is wrong.
        reason: String,
    },

    /// A transaction of outputs with a lease write
    /// ([`TransactionalLeaseTable::write_with`](super::TransactionalLeaseTable::write_with))
    /// was refused for an output's sake: an output's own condition failed,
    /// or the backend cannot take the transaction as it is. Nothing of it
    /// was applied; sending it again fails again.
    #[error("a transaction with lease {key} in {table} was refused: {reason}")]
    TransactionRejected {
        /// The table.
        table: String,
        /// The lease.
        key: String,
        /// Why (the output's index and the backend's reason).
        reason: String,
    },

    /// The storage failed (network, throttling, service error). Retrying
    /// may succeed; the write may or may not have been applied.
    #[error("lease table {table} failed")]
    Backend {
        /// The table.
        table: String,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl LeaseError {
    /// A backend failure of `table`.
    pub fn backend(
        table: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        LeaseError::Backend {
            table: table.into(),
            source: source.into(),
        }
    }

    /// Whether this is a [`LeaseError::Conflict`].
    pub fn is_conflict(&self) -> bool {
        matches!(self, LeaseError::Conflict { .. })
    }
}
