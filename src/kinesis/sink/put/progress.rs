//! [`PutProgress`]: how far a run of a batch got, so that a failed batch
//! resumes instead of starting over.
//!
//! It records, per record of the batch, whether the record is done (stored,
//! or rejected with a reason), and the rejections so far. A run starts from
//! it and keeps it up to date; a failed run hands it back to the sink, which
//! passes it to the next run.
//!
//! Guarantees: a record marked done is not sent again by a run resuming from
//! this progress, and its rejection (if any) is reported once, by the run
//! that ends the batch. Indices always point into the batch the progress
//! belongs to (one flag per record).
//!
//! Does not: tell batches apart beyond equality — resuming is only offered
//! for a batch equal to the one the progress was made for, any other batch
//! starts afresh — nor survive the sink (it lives in memory; after a crash,
//! `buffered_wal` redelivers the batch whole).

use std::sync::Arc;

use crate::kinesis::KinesisRecord;
use crate::RejectedRecord;

/// How far a failed batch got: which records are stored or rejected
/// already. Sending the same batch again resumes from here instead of
/// storing its delivered records a second time.
#[derive(Debug)]
pub(crate) struct PutProgress {
    pub(super) batch: Arc<Vec<KinesisRecord>>,
    /// Stored or rejected, per record of the batch.
    pub(super) done: Vec<bool>,
    pub(super) rejected: Vec<RejectedRecord>,
}

impl PutProgress {
    /// The progress of a batch nothing of which is done yet.
    pub(super) fn fresh(batch: Vec<KinesisRecord>) -> Self {
        let done = vec![false; batch.len()];
        Self {
            batch: Arc::new(batch),
            done,
            rejected: Vec::new(),
        }
    }

    /// Whether this progress was made for `batch`.
    pub(super) fn is_of(&self, batch: &[KinesisRecord]) -> bool {
        self.batch[..] == *batch
    }

    /// Number of records neither stored nor rejected yet.
    pub(super) fn remaining(&self) -> usize {
        self.done.iter().filter(|d| !**d).count()
    }

    /// Marks the records at `indices` done and rejected, for `reason`.
    pub(super) fn reject(&mut self, indices: &[usize], reason: String) {
        for &index in indices {
            self.done[index] = true;
            self.rejected
                .push(RejectedRecord::new(index, reason.clone()));
        }
    }
}
