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
//! Does not: match a batch sent again to its progress (`resume.rs` does,
//! record by record), nor survive the sink (it lives in memory; after a
//! crash, `buffered_wal` redelivers the batch whole).

use std::sync::Arc;

use crate::kinesis::KinesisRecord;
use crate::{Error, RejectedRecord};

/// How far a failed batch got: which records are stored or rejected
/// already. Sending the same batch again resumes from here instead of
/// storing its delivered records a second time.
#[derive(Debug)]
pub(crate) struct PutProgress {
    pub(super) batch: Arc<Vec<KinesisRecord>>,
    /// Stored or rejected, per record of the batch.
    pub(super) done: Vec<bool>,
    pub(super) rejected: Vec<RejectedRecord>,
    /// Its rejections were reported (and counted in the metrics) once.
    pub(crate) rejections_reported: bool,
    /// Billed bytes of its records (counted once, when it is made).
    bytes: u64,
}

impl PutProgress {
    /// The progress of a batch nothing of which is done yet.
    pub(crate) fn fresh(batch: Vec<KinesisRecord>) -> Self {
        let done = vec![false; batch.len()];
        Self::resumed(batch, done, Vec::new(), false)
    }

    /// The progress of `batch` with the records at `done` done and
    /// `rejected` rejected.
    pub(super) fn resumed(
        batch: Vec<KinesisRecord>,
        done: Vec<bool>,
        rejected: Vec<RejectedRecord>,
        rejections_reported: bool,
    ) -> Self {
        debug_assert_eq!(done.len(), batch.len());
        let bytes = batch.iter().map(|r| r.billed_bytes() as u64).sum();
        Self {
            batch: Arc::new(batch),
            done,
            rejected,
            rejections_reported,
            bytes,
        }
    }

    /// Number of records neither stored nor rejected yet.
    pub(crate) fn remaining(&self) -> usize {
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

    /// Whether some records of the batch were rejected.
    pub(crate) fn has_rejections(&self) -> bool {
        !self.rejected.is_empty()
    }

    /// The outcome of a batch each record of which is done, as the
    /// batch-sink protocol reads it: `Ok`, or [`Error::Rejected`] naming
    /// each rejected record once, by index, in index order.
    pub(crate) fn finished_result(&self) -> Result<(), Error> {
        debug_assert_eq!(self.remaining(), 0);
        if self.rejected.is_empty() {
            return Ok(());
        }
        let mut rejected = self.rejected.clone();
        rejected.sort_by_key(|r| r.index);
        // Each record is rejected at most once, by its index in the batch.
        debug_assert!(rejected.windows(2).all(|w| w[0].index < w[1].index));
        debug_assert!(rejected.last().is_none_or(|r| r.index < self.batch.len()));
        Err(Error::Rejected(rejected))
    }

    /// The progress of the records from `from` on, as a batch of its own.
    pub(crate) fn tail(&self, from: usize) -> PutProgress {
        Self::resumed(
            self.batch[from..].to_vec(),
            self.done[from..].to_vec(),
            self.rejected
                .iter()
                .filter(|r| r.index >= from)
                .map(|r| RejectedRecord::new(r.index - from, r.reason.clone()))
                .collect(),
            self.rejections_reported,
        )
    }

    /// The records of the batch.
    pub(crate) fn records(&self) -> &[KinesisRecord] {
        &self.batch
    }

    /// Number of records rejected so far.
    pub(crate) fn rejected_count(&self) -> usize {
        self.rejected.len()
    }

    /// Bytes of the batch's records, as Kinesis bills them.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }
}
