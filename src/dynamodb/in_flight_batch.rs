//! The in-flight batch of a batch consumer: its records, each with its
//! position, status and attempts, as
//! [`DynamoDbS3CheckpointStore`](super::DynamoDbS3CheckpointStore) keeps
//! them in S3.
//!
//! Guarantees: statuses change only through [`Batch::mark`], which counts
//! an attempt for `Failed` and `Succeeded`; a batch is complete only when
//! every record is `Succeeded` or `DeadLettered`, which is what
//! [`finish_batch`](super::DynamoDbS3CheckpointStore::finish_batch) requires
//! before the checkpoint moves. Nothing here is durable by itself:
//! [`persist`](super::DynamoDbS3CheckpointStore::persist) makes the marks so.

use serde::{Deserialize, Serialize};

use crate::checkpoint::Position;

/// What became of one record of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordStatus {
    /// Not processed yet (or its outcome was not persisted).
    Pending,
    /// Processed successfully: never processed again.
    Succeeded,
    /// Failed; to be retried.
    Failed,
    /// Out of attempts: to be written to the dead-letter destination.
    Exhausted,
    /// Written to the dead-letter destination: done.
    DeadLettered,
}

impl RecordStatus {
    /// `Succeeded` or `DeadLettered`: nothing more to do.
    pub fn is_done(self) -> bool {
        matches!(self, RecordStatus::Succeeded | RecordStatus::DeadLettered)
    }
}

/// One record of a batch with its position and outcome so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchEntry<T> {
    /// The record.
    pub record: T,
    /// Its position in the partition.
    pub position: Position,
    /// Its status.
    pub status: RecordStatus,
    /// Attempts made (failed ones counted by [`Batch::mark`]).
    pub attempts: u32,
}

/// An in-flight batch: records of one partition after its checkpoint, with
/// their statuses. Change statuses with [`mark`](Batch::mark), make them
/// durable with
/// [`DynamoDbS3CheckpointStore::persist`](super::DynamoDbS3CheckpointStore::persist).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch<T> {
    pub(super) partition: String,
    pub(super) entries: Vec<BatchEntry<T>>,
    /// The S3 key the pointer names (not part of the object).
    #[serde(skip)]
    pub(super) key: String,
}

impl<T> Batch<T> {
    /// A batch of `records` (each with its position, in order) of
    /// `partition`, every one `Pending`, not yet stored anywhere.
    pub(super) fn pending(partition: &str, records: Vec<(T, Position)>) -> Self {
        Batch {
            partition: partition.to_owned(),
            entries: records
                .into_iter()
                .map(|(record, position)| BatchEntry {
                    record,
                    position,
                    status: RecordStatus::Pending,
                    attempts: 0,
                })
                .collect(),
            key: String::new(),
        }
    }

    /// The partition.
    pub fn partition(&self) -> &str {
        &self.partition
    }

    /// The records with their statuses.
    pub fn entries(&self) -> &[BatchEntry<T>] {
        &self.entries
    }

    /// Indices of the records still to process: `Pending` or `Failed`.
    pub fn to_process(&self) -> Vec<usize> {
        self.indices(|s| matches!(s, RecordStatus::Pending | RecordStatus::Failed))
    }

    /// Indices of the records to dead-letter: `Exhausted`.
    pub fn to_dead_letter(&self) -> Vec<usize> {
        self.indices(|s| s == RecordStatus::Exhausted)
    }

    fn indices(&self, pick: impl Fn(RecordStatus) -> bool) -> Vec<usize> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| pick(e.status))
            .map(|(i, _)| i)
            .collect()
    }

    /// Sets record `index`'s status (in memory; see
    /// [`DynamoDbS3CheckpointStore::persist`](super::DynamoDbS3CheckpointStore::persist)).
    /// `Failed` and `Succeeded` count an attempt.
    ///
    /// # Panics
    ///
    /// When `index` is out of range.
    #[track_caller]
    pub fn mark(&mut self, index: usize, status: RecordStatus) {
        let len = self.entries.len();
        let entry = self
            .entries
            .get_mut(index)
            .unwrap_or_else(|| panic!("batch has {len} records, no index {index}"));
        if matches!(status, RecordStatus::Failed | RecordStatus::Succeeded) {
            entry.attempts += 1;
        }
        entry.status = status;
    }

    /// Every record `Succeeded` or `DeadLettered`.
    pub fn is_complete(&self) -> bool {
        self.entries.iter().all(|e| e.status.is_done())
    }

    /// The last record's position (where the checkpoint goes when the batch
    /// is finished).
    pub fn end(&self) -> Option<&Position> {
        self.entries.last().map(|e| &e.position)
    }
}
