//! The extension trait that adds checkpointing to streams of tokens:
//! `checkpoint_batched`, `try_filter_checkpointed` and
//! `and_then_per_partition`.

use std::future::Future;
use std::time::Duration;

use futures::TryStream;

use super::batched::CheckpointBatched;
use super::filter::TryFilterCheckpointed;
use super::per_partition::AndThenPerPartition;
use super::store::CheckpointStore;
use super::token::AsCheckpointToken;
use crate::error::Error;

/// Checkpointing combinators for `TryStream`s whose items carry a
/// [`CheckpointToken`](super::CheckpointToken) (see [`AsCheckpointToken`]).
pub trait CheckpointStreamExt: TryStream {
    /// Saves, per partition, the position up to which every token is seen,
    /// every `n` tokens of the partition or `interval` after the first
    /// unsaved token, whichever comes first, and once more when the stream
    /// ends or fails. Yields each item without its token (`()` for a bare
    /// token, `value` for `(value, token)`).
    ///
    /// See [`CheckpointBatched`] for the exact rules (out-of-order tokens,
    /// fenced partitions, what happens to errors). Every token must arrive:
    /// skip records with
    /// [`try_filter_checkpointed`](Self::try_filter_checkpointed), not
    /// `try_filter`. When the input ends with tokens held back behind one
    /// that never arrived, a warning names the partitions,
    /// [`CheckpointBatched::held_back`] lists them, and
    /// [`CheckpointBatched::fail_on_held_back`] makes it an error.
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::TryStreamExt;
    /// use unistream::checkpoint::{CheckpointStreamExt, MemoryCheckpointStore, Position};
    /// use unistream::source::MemorySource;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), unistream::Error> {
    /// let store = MemoryCheckpointStore::new();
    /// // Tokens only: drive the stream with `try_collect::<()>()`.
    /// MemorySource::new([("p0", vec![1u32, 2, 3])])
    ///     .and_then(|(record, token)| async move { /* handle(record) */ Ok(token) })
    ///     .checkpoint_batched(2, Duration::from_secs(60), store.clone())
    ///     .try_collect::<()>()
    ///     .await?;
    /// // Saved after 2 tokens, then once more at the end.
    /// assert_eq!(store.saves().len(), 2);
    /// assert_eq!(store.position("p0"), Some(Position::Offset(3)));
    ///
    /// // `(value, token)`: the values come out, checkpointed.
    /// let store = MemoryCheckpointStore::new();
    /// let processed: Vec<u32> = MemorySource::new([("p0", vec![1u32, 2, 3])])
    ///     .and_then(|(record, token)| async move { Ok((record * 10, token)) })
    ///     .checkpoint_batched(100, Duration::from_secs(60), store.clone())
    ///     .try_collect()
    ///     .await?;
    /// assert_eq!(processed, vec![10, 20, 30]);
    /// assert_eq!(store.position("p0"), Some(Position::Offset(3)));
    /// # Ok(()) }
    /// ```
    ///
    /// # Panics
    ///
    /// When `n` is 0 or `interval` is zero.
    #[track_caller]
    fn checkpoint_batched<S>(
        self,
        n: usize,
        interval: Duration,
        store: S,
    ) -> CheckpointBatched<Self, S>
    where
        Self: Sized,
        Self::Ok: AsCheckpointToken,
        Self::Error: Into<Error>,
        S: CheckpointStore,
    {
        assert!(n > 0, "checkpoint_batched: n must be at least 1");
        assert!(
            !interval.is_zero(),
            "checkpoint_batched: interval must be greater than zero"
        );
        CheckpointBatched::new(self, n as u64, interval, store)
    }

    /// `try_filter` that keeps the tokens: yields every item as
    /// `(Some(value), token)` when `predicate` keeps it and `(None, token)`
    /// when it skips it, so that a skipped record's token still reaches
    /// [`checkpoint_batched`](Self::checkpoint_batched) and its position is
    /// saved. (`try_filter` drops the token with the item, which holds the
    /// partition's checkpoint back for the rest of the run.) Errors pass
    /// through. See [`TryFilterCheckpointed`].
    ///
    /// Takes the same predicate as `try_filter`, on the whole item
    /// (`&(record, token)`), so it replaces it in place; handle the records
    /// with `if let Some(record)` and return every token.
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::{future, TryStreamExt};
    /// use unistream::checkpoint::{CheckpointStreamExt, MemoryCheckpointStore, Position};
    /// use unistream::source::MemorySource;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), unistream::Error> {
    /// let store = MemoryCheckpointStore::new();
    /// let mut handled = Vec::new();
    /// MemorySource::new([("p0", vec![1u32, 2, 3, 4, 5])])
    ///     .try_filter_checkpointed(|(record, _)| future::ready(record % 2 == 1))
    ///     .map_ok(|(record, token)| {
    ///         if let Some(record) = record {
    ///             handled.push(record); // handle(record)
    ///         }
    ///         token // skipped or not, the token goes on
    ///     })
    ///     .checkpoint_batched(2, Duration::from_secs(60), store.clone())
    ///     .try_collect::<()>()
    ///     .await?;
    /// assert_eq!(handled, vec![1, 3, 5]);
    /// // Saved every 2 tokens, skipped records included, and at the end.
    /// assert_eq!(store.saves().len(), 3);
    /// assert_eq!(store.position("p0"), Some(Position::Offset(5)));
    /// # Ok(()) }
    /// ```
    fn try_filter_checkpointed<Fut, F>(self, predicate: F) -> TryFilterCheckpointed<Self, Fut, F>
    where
        Self: Sized,
        Self::Ok: AsCheckpointToken,
        F: FnMut(&Self::Ok) -> Fut,
        Fut: Future<Output = bool>,
    {
        TryFilterCheckpointed::new(self, predicate)
    }

    /// `and_then` run concurrently across partitions and in order within
    /// each: `handler` runs on one item of a partition (the partition of the
    /// item's token: a shard, a file) at a time, in the order they arrive,
    /// and on up to `max_concurrent` partitions at once. Outputs come as the
    /// handlers finish; hand them to
    /// [`checkpoint_batched`](Self::checkpoint_batched) as usual. See
    /// [`AndThenPerPartition`] for the bounds and the errors.
    ///
    /// (`try_buffer_unordered` would run records of one shard concurrently,
    /// and finish them out of order.)
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::TryStreamExt;
    /// use unistream::checkpoint::{CheckpointStreamExt, MemoryCheckpointStore, Position};
    /// use unistream::source::MemorySource;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), unistream::Error> {
    /// let store = MemoryCheckpointStore::new();
    /// let handled: Vec<(String, u32)> = MemorySource::new([
    ///     ("shard-0", vec![1u32, 2, 3]),
    ///     ("shard-1", vec![10, 20]),
    /// ])
    /// .and_then_per_partition(8, |(record, token)| async move {
    ///     // handle(record).await?; one record of a shard at a time
    ///     Ok::<_, unistream::Error>(((token.partition().to_owned(), record), token))
    /// })
    /// .checkpoint_batched(100, Duration::from_secs(10), store.clone())
    /// .try_collect()
    /// .await?;
    /// let shard_0: Vec<u32> =
    ///     handled.iter().filter(|(p, _)| p == "shard-0").map(|(_, r)| *r).collect();
    /// assert_eq!(shard_0, vec![1, 2, 3]);
    /// assert_eq!(store.position("shard-1"), Some(Position::Offset(2)));
    /// # Ok(()) }
    /// ```
    ///
    /// # Panics
    ///
    /// When `max_concurrent` is 0.
    #[track_caller]
    fn and_then_per_partition<F, Fut, O, E>(
        self,
        max_concurrent: usize,
        handler: F,
    ) -> AndThenPerPartition<Self, F, Fut>
    where
        Self: Sized,
        Self::Ok: AsCheckpointToken,
        Self::Error: Into<Error>,
        F: FnMut(Self::Ok) -> Fut,
        Fut: Future<Output = Result<O, E>>,
        E: Into<Error>,
    {
        assert!(
            max_concurrent > 0,
            "and_then_per_partition: max_concurrent must be at least 1"
        );
        AndThenPerPartition::new(self, max_concurrent, handler)
    }
}

impl<St: TryStream + ?Sized> CheckpointStreamExt for St {}
