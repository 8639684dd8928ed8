//! One partition's processed records not yet committed, in `seq` order:
//! a contiguous run ready to commit, and the records seen ahead of a gap
//! (they wait for the missing one, so a commit never passes it).

use std::collections::BTreeMap;

use tokio::time::Instant;

use super::ProcessedRecord;
use crate::checkpoint::PartitionControl;

/// See the [module docs](self).
#[derive(Debug)]
pub(super) struct PendingPartition<O> {
    /// Every `seq < next` has been seen.
    next: u64,
    /// Records `committed..next`, in order, not yet committed.
    ready: Vec<ProcessedRecord<O>>,
    /// Records seen with `seq > next`.
    ahead: BTreeMap<u64, ProcessedRecord<O>>,
    pub(super) control: Option<PartitionControl>,
    /// The lease moved: nothing more is committed or kept.
    pub(super) fenced: bool,
    /// When the oldest ready record arrived.
    pub(super) since: Option<Instant>,
}

/// Records taken for one commit.
#[derive(Debug)]
pub(super) struct Taken<O> {
    pub(super) records: Vec<ProcessedRecord<O>>,
    /// How many of the partition's tokens (from `seq` 0) the commit covers.
    pub(super) tokens: u64,
}

impl<O> PendingPartition<O> {
    pub(super) fn new(control: Option<PartitionControl>) -> Self {
        Self {
            next: 0,
            ready: Vec::new(),
            ahead: BTreeMap::new(),
            control,
            fenced: false,
            since: None,
        }
    }

    /// Adds the record of token `seq`. A `seq` seen before is ignored
    /// (`false`).
    pub(super) fn add(&mut self, seq: u64, record: ProcessedRecord<O>) -> bool {
        if seq < self.next || self.ahead.contains_key(&seq) {
            return false;
        }
        if seq > self.next {
            self.ahead.insert(seq, record);
            return true;
        }
        self.since.get_or_insert_with(Instant::now);
        self.ready.push(record);
        self.next += 1;
        while let Some(record) = self.ahead.remove(&self.next) {
            self.ready.push(record);
            self.next += 1;
        }
        true
    }

    pub(super) fn ready(&self) -> usize {
        self.ready.len()
    }

    /// Records waiting behind a gap.
    pub(super) fn waiting(&self) -> usize {
        self.ahead.len()
    }

    /// The `seq` the partition waits for, when records wait behind it.
    pub(super) fn missing(&self) -> Option<u64> {
        (!self.ahead.is_empty()).then_some(self.next)
    }

    /// Takes every ready record for one commit.
    pub(super) fn take(&mut self) -> Taken<O> {
        self.since = None;
        Taken {
            records: std::mem::take(&mut self.ready),
            tokens: self.next,
        }
    }

    /// Drops everything: the partition is fenced.
    pub(super) fn fence(&mut self) {
        self.fenced = true;
        self.ready.clear();
        self.ahead.clear();
        self.since = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Position;

    fn record(offset: u64) -> ProcessedRecord<u64> {
        ProcessedRecord {
            position: Position::Offset(offset),
            outputs: vec![offset],
        }
    }

    #[tokio::test]
    async fn records_behind_a_gap_wait_for_it_and_duplicates_are_ignored() {
        let mut pending = PendingPartition::new(None);
        assert!(pending.add(0, record(1)));
        assert!(pending.add(2, record(3)));
        assert_eq!(
            (pending.ready(), pending.waiting(), pending.missing()),
            (1, 1, Some(1))
        );
        assert!(!pending.add(0, record(1)), "seen before");
        assert!(!pending.add(2, record(3)), "seen before");
        assert!(pending.add(1, record(2)));
        assert_eq!(
            (pending.ready(), pending.waiting(), pending.missing()),
            (3, 0, None)
        );
        let taken = pending.take();
        assert_eq!(taken.tokens, 3);
        let offsets: Vec<_> = taken.records.iter().map(|r| r.outputs[0]).collect();
        assert_eq!(offsets, vec![1, 2, 3]);
        assert_eq!(pending.ready(), 0);
    }
}
