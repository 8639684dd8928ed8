//! Outputs and checkpoint in one transaction: each record's effect lands
//! exactly once across crashes, restarts and lease moves.
//!
//! [`checkpoint_batched`](super::CheckpointStreamExt::checkpoint_batched)
//! saves positions after the effects happened, so a crash between the two
//! repeats the effects of up to `n` records. Here the effects *are* data —
//! the outputs a record's processing produced — and they are written with
//! the checkpoint past that record, in one atomic write of a
//! [`TransactionalCheckpointStore`]: either both land or neither does. A
//! restart reads again exactly the records whose outputs did not land.
//!
//! - **Input**: `(outputs, token)` per record, `outputs` a `Vec` (empty for
//!   a record with no effect: its checkpoint still moves).
//! - **Commits**: per partition, every `n` records, `interval` after the
//!   first uncommitted one, when a lease worker asks (handoff, shutdown),
//!   at the end of the input and before an upstream error is passed on.
//!   A commit covers the records from the last commit up to the first
//!   record not yet seen (records may arrive out of order, as in
//!   `checkpoint_batched`: outputs of a record behind a gap wait for it).
//!   The store may split one commit into several transactions at record
//!   boundaries (service limits); each carries its last record's position.
//! - **One commit at a time**: intake pauses while a commit runs, so at
//!   most `n` records per partition are processed and not yet committed.
//! - **Fencing**: a commit refused because the lease moved
//!   ([`CheckpointError::Fenced`]) ends that partition only: its
//!   uncommitted outputs are dropped (the new holder produces them again),
//!   later records of it are dropped, the other partitions go on.
//! - **A partition read again** under a new lease by the same worker
//!   (its tokens carry a new [`PartitionControl`](super::PartitionControl),
//!   `seq` from 0 again) starts afresh: what its old lease left uncommitted
//!   is dropped (the new lease reads it again from its checkpoint), and late
//!   records of the old lease are dropped too.
//! - **Yields** one [`TransactionCommit`] per commit; the stream ends after
//!   the input ends and everything is committed. A store failure other than
//!   fencing (after the store's own retries) is yielded and ends the
//!   stream: nothing after the last commit was written.
//!
//! For DynamoDB, [`LeaseCheckpointStore`](crate::lease::LeaseCheckpointStore)
//! over a [`DynamoDbLeaseTable`](crate::dynamodb::DynamoDbLeaseTable) is
//! the store: outputs are `TransactWriteItem`s written with the lease's
//! checkpoint in one `TransactWriteItems`, conditional on the lease's
//! counter (its [fencing token](super::FencingToken)). A transaction holds
//! at most 100 actions and the lease update is one of them, so for records
//! with one output each, `n = 99` commits in one transaction where
//! `n = 100` takes two (BENCHMARKS.md, "Exactly-once effects": 11 against
//! 20 transactions per 1,000 records, 11.4 K against 7.0 K records/s at
//! 5 ms per request).

use std::future::Future;
use std::time::Duration;

use futures::{Stream, TryStream};

use super::position::Position;
use super::store::{CheckpointError, CheckpointStore};
use super::token::CheckpointToken;
use crate::error::Error;

mod pending;
mod run;

/// One processed record as a commit sees it: where it is, and the outputs
/// its processing produced.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessedRecord<O> {
    /// The record's position (its token's).
    pub position: Position,
    /// What to write for it.
    pub outputs: Vec<O>,
}

/// A checkpoint store that writes outputs with the checkpoint, atomically;
/// see the module docs (`src/checkpoint/transactional/mod.rs`).
pub trait TransactionalCheckpointStore: CheckpointStore {
    /// One output.
    type Output: Send + 'static;

    /// Writes the outputs of `records` (in partition order, after the last
    /// committed position) and the checkpoint at the last record's
    /// position, so that each record's outputs land together with a
    /// checkpoint at or past it. May split `records` into several
    /// transactions at record boundaries. Returns how many transactions
    /// it wrote.
    fn commit(
        &self,
        partition: &str,
        records: Vec<ProcessedRecord<Self::Output>>,
    ) -> impl Future<Output = Result<usize, CheckpointError>> + Send;
}

/// One commit made by
/// [`checkpoint_transactional`](TransactionalStreamExt::checkpoint_transactional).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionCommit {
    /// The partition.
    pub partition: String,
    /// The checkpoint written: the position of the last record covered.
    pub position: Position,
    /// Records covered.
    pub records: usize,
    /// Outputs written.
    pub outputs: usize,
    /// Transactions the store wrote them in.
    pub transactions: usize,
}

/// Adds [`checkpoint_transactional`](Self::checkpoint_transactional) to
/// streams of `(outputs, token)`.
pub trait TransactionalStreamExt<O>:
    TryStream<Ok = (Vec<O>, CheckpointToken), Error = Error> + Sized
{
    /// Commits each record's outputs with its partition's checkpoint, in
    /// one transaction of `store`, every `n` records of a partition or
    /// `interval` after the first uncommitted one; see the
    /// module docs (`src/checkpoint/transactional/mod.rs`).
    ///
    /// # Panics
    ///
    /// If `n` is 0 or `interval` is zero (a programming error, not an
    /// input one).
    #[track_caller]
    fn checkpoint_transactional<S>(
        self,
        n: usize,
        interval: Duration,
        store: S,
    ) -> impl Stream<Item = Result<TransactionCommit, Error>> + Send
    where
        Self: Send + 'static,
        S: TransactionalCheckpointStore<Output = O>,
        O: Send + 'static,
    {
        assert!(n > 0, "checkpoint_transactional: n must be at least 1");
        assert!(
            !interval.is_zero(),
            "checkpoint_transactional: the interval must not be zero"
        );
        run::run(self, n, interval, store)
    }
}

impl<St, O> TransactionalStreamExt<O> for St where
    St: TryStream<Ok = (Vec<O>, CheckpointToken), Error = Error> + Sized
{
}
