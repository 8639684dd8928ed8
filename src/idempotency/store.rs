//! The idempotency store contract: claim a key, renew the claim, record
//! the result, or give the claim up.

use std::future::Future;
use std::time::Duration;

use crate::BoxError;

/// A claim on a key: proof that this caller runs it now. Every write for
/// the key after [`begin`](IdempotencyStore::begin) is conditional on it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Claim(String);

impl Claim {
    /// A new, random claim.
    pub fn new() -> Self {
        Self(format!(
            "{:016x}{:016x}",
            fastrand::u64(..),
            fastrand::u64(..)
        ))
    }

    /// A claim as a store keeps it.
    pub fn from_stored(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The claim's id, as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Claim {
    fn default() -> Self {
        Self::new()
    }
}

/// What [`IdempotencyStore::begin`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// The key is this caller's to run: no record, an expired claim or an
    /// expired result was there.
    Run(Claim),
    /// A run completed: its stored result.
    Completed(Vec<u8>),
    /// Another caller runs the key; its claim expires in `retry_after` at
    /// the latest.
    InProgress {
        /// When to look again at the latest.
        retry_after: Duration,
    },
}

/// An idempotency store failed, or a claim was lost.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdempotencyError {
    /// The claim on `key` is no longer this caller's: it expired and
    /// another caller took the key over.
    #[error("idempotency claim on {key} lost: it expired and another caller runs the key")]
    ClaimLost {
        /// The key.
        key: String,
    },
    /// The store holds something for `key` this crate cannot read.
    #[error("idempotency record {key} is corrupt: {detail}")]
    Corrupt {
        /// The key.
        key: String,
        /// What is wrong.
        detail: String,
    },
    /// The store could not be reached or refused the request.
    #[error("idempotency store failed on {key}")]
    Backend {
        /// The key.
        key: String,
        /// The cause.
        #[source]
        source: BoxError,
    },
}

/// Where idempotency records live: shared by every caller that must not run
/// a key twice. Every write is conditional, so concurrent callers agree.
pub trait IdempotencyStore: Clone + Send + Sync + 'static {
    /// Claims `key` for `in_progress_for` unless a run completed (and its
    /// result is still kept) or another caller's claim is still valid.
    fn begin(
        &self,
        key: &str,
        in_progress_for: Duration,
    ) -> impl Future<Output = Result<Begin, IdempotencyError>> + Send;

    /// Renews `claim` on `key` for `in_progress_for` from now;
    /// [`IdempotencyError::ClaimLost`] when it is no longer held.
    fn extend(
        &self,
        key: &str,
        claim: &Claim,
        in_progress_for: Duration,
    ) -> impl Future<Output = Result<(), IdempotencyError>> + Send;

    /// Records the run of `key` under `claim` as completed with `result`,
    /// kept for `keep_for`; [`IdempotencyError::ClaimLost`] when the claim
    /// is no longer held.
    fn complete(
        &self,
        key: &str,
        claim: &Claim,
        result: Vec<u8>,
        keep_for: Duration,
    ) -> impl Future<Output = Result<(), IdempotencyError>> + Send;

    /// Gives `claim` on `key` up (the run failed): the next caller runs the
    /// key. Nothing happens when the claim is no longer held.
    fn abandon(
        &self,
        key: &str,
        claim: &Claim,
    ) -> impl Future<Output = Result<(), IdempotencyError>> + Send;
}
