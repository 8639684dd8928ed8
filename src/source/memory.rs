//! A source over in-memory partitions, for unit-testing consumer logic
//! without AWS. Token positions and fairness are documented on
//! [`MemorySource`], where users read them.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::stream::{FusedStream, Stream};

use crate::checkpoint::{CheckpointStore, CheckpointToken, PartitionControl, Position};
use crate::error::Error;

/// A source of `(record, CheckpointToken)` over in-memory partitions.
///
/// For unit-testing consumer logic without AWS. It yields `(record, CheckpointToken)` from a list of named
/// partitions, taking one record from each partition in turn (round robin),
/// exactly as a multi-shard source would interleave them.
///
/// Tokens: the record at index `i` (from 0) of a partition has
/// `Position::Offset(i + 1)` — the number of records up to and including it,
/// the same "where reading resumes" meaning as a byte offset — and the
/// partition's `seq` counts from 0 in this run. A source started after a
/// checkpoint `Offset(k)` resumes at index `k`.
///
/// Each partition has a [`PartitionControl`]; once it is fenced (by
/// `checkpoint_batched` after a fenced save, or by the test), the source
/// stops yielding that partition.
///
/// ```
/// use futures::TryStreamExt;
/// use unistream::checkpoint::Position;
/// use unistream::source::MemorySource;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), unistream::Error> {
/// let source = MemorySource::new([("a", vec![1, 2]), ("b", vec![10, 20])])
///     .start_after("a", Position::Offset(1))?; // "a" was processed up to its first record
/// let records: Vec<i32> = source.map_ok(|(record, _token)| record).try_collect().await?;
/// assert_eq!(records, vec![2, 10, 20]);
/// # Ok(()) }
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct MemorySource<T> {
    partitions: Vec<Partition<T>>,
    /// The partition to take the next record from.
    cursor: usize,
}

struct Partition<T> {
    name: Arc<str>,
    records: std::vec::IntoIter<T>,
    /// Index of the next record in the partition.
    next_index: u64,
    /// Total records in the partition.
    len: u64,
    seq: u64,
    control: PartitionControl,
}

impl<T> MemorySource<T> {
    /// A source over `partitions`, each a name and its records in order.
    pub fn new<P, R>(partitions: impl IntoIterator<Item = (P, R)>) -> Self
    where
        P: Into<Arc<str>>,
        R: IntoIterator<Item = T>,
    {
        let partitions = partitions
            .into_iter()
            .map(|(name, records)| {
                let records: Vec<T> = records.into_iter().collect();
                Partition {
                    name: name.into(),
                    len: records.len() as u64,
                    records: records.into_iter(),
                    next_index: 0,
                    seq: 0,
                    control: PartitionControl::new(),
                }
            })
            .collect();
        Self {
            partitions,
            cursor: 0,
        }
    }

    /// Starts `partition` after the checkpoint `position`, which must be a
    /// `Position::Offset(k)` with `k` at most the partition's length
    /// (`Position::End` skips the whole partition).
    pub fn start_after(mut self, partition: &str, position: Position) -> Result<Self, Error> {
        let Some(part) = self.partitions.iter_mut().find(|p| &*p.name == partition) else {
            return Err(Error::Config(format!(
                "memory source has no partition {partition:?}"
            )));
        };
        let skip = match position {
            Position::Offset(k) if k >= part.next_index && k <= part.len => k - part.next_index,
            Position::End => part.len - part.next_index,
            other => {
                return Err(Error::Config(format!(
                    "memory source partition {partition:?} ({} records, at {}) cannot resume after {other}",
                    part.len, part.next_index
                )))
            }
        };
        if skip > 0 {
            part.records.nth(skip as usize - 1);
        }
        part.next_index += skip;
        Ok(self)
    }

    /// Starts every partition after its checkpoint in `store`, if it has one.
    pub async fn resume_from<S: CheckpointStore>(mut self, store: &S) -> Result<Self, Error> {
        let names: Vec<Arc<str>> = self.partitions.iter().map(|p| p.name.clone()).collect();
        for name in names {
            if let Some(position) = store.load(&name).await? {
                self = self.start_after(&name, position)?;
            }
        }
        Ok(self)
    }

    /// The control switch of `partition`, shared with the tokens.
    pub fn control(&self, partition: &str) -> Option<PartitionControl> {
        self.partitions
            .iter()
            .find(|p| &*p.name == partition)
            .map(|p| p.control.clone())
    }

    fn remaining(&self) -> usize {
        self.partitions
            .iter()
            .filter(|p| !p.control.is_fenced())
            .map(|p| p.records.len())
            .sum()
    }
}

impl<T> Unpin for MemorySource<T> {}

impl<T> Stream for MemorySource<T> {
    type Item = Result<(T, CheckpointToken), Error>;

    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let count = this.partitions.len();
        for _ in 0..count {
            let index = this.cursor;
            this.cursor = if index + 1 == count { 0 } else { index + 1 };
            let part = &mut this.partitions[index];
            if part.control.is_fenced() {
                continue;
            }
            if let Some(record) = part.records.next() {
                part.next_index += 1;
                let token = CheckpointToken::new(
                    part.name.clone(),
                    Position::Offset(part.next_index),
                    part.seq,
                )
                .with_control(part.control.clone());
                part.seq += 1;
                return Poll::Ready(Some(Ok((record, token))));
            }
        }
        Poll::Ready(None)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        // A partition fenced from outside while the stream runs can only
        // make it shorter.
        (0, Some(self.remaining()))
    }
}

impl<T> FusedStream for MemorySource<T> {
    fn is_terminated(&self) -> bool {
        self.remaining() == 0
    }
}

impl<T> fmt::Debug for MemorySource<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemorySource")
            .field(
                "partitions",
                &self
                    .partitions
                    .iter()
                    .map(|p| (&*p.name, p.next_index, p.len))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;

    #[tokio::test]
    async fn round_robin_with_offsets_and_seqs() {
        let source = MemorySource::new([("a", vec!['x', 'y', 'z']), ("b", vec!['q'])]);
        let items: Vec<(char, CheckpointToken)> = source.try_collect().await.unwrap();
        let seen: Vec<(char, String, Position, u64)> = items
            .into_iter()
            .map(|(r, t)| (r, t.partition().to_owned(), t.position().clone(), t.seq()))
            .collect();
        assert_eq!(
            seen,
            vec![
                ('x', "a".into(), Position::Offset(1), 0),
                ('q', "b".into(), Position::Offset(1), 0),
                ('y', "a".into(), Position::Offset(2), 1),
                ('z', "a".into(), Position::Offset(3), 2),
            ]
        );
    }

    #[tokio::test]
    async fn resumes_from_a_store_and_rejects_bad_positions() {
        let store = crate::checkpoint::MemoryCheckpointStore::with_positions([
            ("a", Position::Offset(2)),
            ("b", Position::End),
        ]);
        let source = MemorySource::new([("a", vec![1, 2, 3]), ("b", vec![4])])
            .resume_from(&store)
            .await
            .unwrap();
        assert_eq!(source.size_hint(), (0, Some(1)));
        let items: Vec<(i32, CheckpointToken)> = source.try_collect().await.unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].0, 3);
        assert_eq!(items[0].1.position(), &Position::Offset(3));
        assert_eq!(items[0].1.seq(), 0);

        let bad = MemorySource::new([("a", vec![1])]).start_after("a", Position::Offset(5));
        assert!(matches!(bad, Err(Error::Config(_))));
        let bad = MemorySource::new([("a", vec![1])]).start_after("a", Position::sequence("1"));
        assert!(matches!(bad, Err(Error::Config(_))));
        let bad = MemorySource::<i32>::new([("a", vec![])]).start_after("zz", Position::End);
        assert!(matches!(bad, Err(Error::Config(_))));
    }

    #[tokio::test]
    async fn fenced_partition_stops() {
        let source = MemorySource::new([("a", vec![1, 2, 3]), ("b", vec![4, 5])]);
        source.control("a").unwrap().fence();
        let records: Vec<i32> = source.map_ok(|(r, _)| r).try_collect().await.unwrap();
        assert_eq!(records, vec![4, 5]);
    }
}
