//! Where a shard's reading starts, and the `GetShardIterator` request for it.
//!
//! Checkpoints hold sequence numbers, never iterators: an iterator is a
//! short-lived (5 minutes) handle that this module derives from a
//! [`StartAt`] whenever one is needed — when a shard starts and whenever an
//! iterator expires.
//!
//! A checkpoint `Sequence { sequence: S, sub: k }` means "processed up to and
//! including user record `k` of the Kinesis record `S`". Whether `S` is a
//! KPL aggregate cannot be known from the checkpoint, so reading always
//! resumes `AT_SEQUENCE_NUMBER S` and skips every user record at or before
//! `(S, k)`: for a plain record that skips `S` itself (the same as
//! `AFTER_SEQUENCE_NUMBER`), for an aggregate it resumes at sub-record
//! `k + 1`. The cost is re-reading one Kinesis record per shard start.

use std::time::SystemTime;

use aws_sdk_kinesis::types::ShardIteratorType;
use aws_smithy_types::DateTime;

use crate::checkpoint::{Position, SequenceNumber};

/// Where a shard has no checkpoint, reading starts at this position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum InitialPosition {
    /// The oldest record still retained (`TRIM_HORIZON`). The default.
    #[default]
    TrimHorizon,
    /// Only records written after the shard's reading starts (`LATEST`).
    ///
    /// As in the KCL, shards already closed when the source first sees them
    /// are skipped, and shards created by resharding while the source runs
    /// are read from their beginning, so nothing written after the start is
    /// missed. An iterator that expires before the first record arrives is
    /// recreated at `LATEST` again; a record written in that gap (only
    /// possible when the consumer stalls for 5 minutes) is missed.
    Latest,
    /// Records written at or after this time (`AT_TIMESTAMP`).
    AtTimestamp(SystemTime),
}

/// The start of reading for one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StartAt {
    /// At the first record of the shard still retained.
    TrimHorizon,
    /// After the last record of the shard at iterator creation.
    Latest,
    /// At the first record at or after a time.
    AtTimestamp(SystemTime),
    /// At sequence number `sequence`, skipping user records at or before
    /// `(sequence, sub)` (resuming from a checkpoint).
    AfterCheckpoint { sequence: SequenceNumber, sub: u64 },
    /// After the Kinesis record `sequence`, all of whose user records were
    /// delivered (recreating an expired iterator).
    AfterSequence(SequenceNumber),
}

impl StartAt {
    /// The start for a checkpoint position; `None` when the position cannot
    /// be a Kinesis checkpoint (an offset) or when it is the shard's end.
    pub(crate) fn from_checkpoint(position: &Position) -> Option<Self> {
        match position {
            Position::Sequence { sequence, sub } => Some(StartAt::AfterCheckpoint {
                sequence: sequence.clone(),
                sub: *sub,
            }),
            Position::Offset(_) | Position::End => None,
        }
    }

    pub(crate) fn from_initial(initial: InitialPosition) -> Self {
        match initial {
            InitialPosition::TrimHorizon => StartAt::TrimHorizon,
            InitialPosition::Latest => StartAt::Latest,
            InitialPosition::AtTimestamp(t) => StartAt::AtTimestamp(t),
        }
    }

    /// The iterator type, starting sequence number and timestamp to request.
    pub(crate) fn request(&self) -> (ShardIteratorType, Option<&str>, Option<DateTime>) {
        match self {
            StartAt::TrimHorizon => (ShardIteratorType::TrimHorizon, None, None),
            StartAt::Latest => (ShardIteratorType::Latest, None, None),
            StartAt::AtTimestamp(t) => (
                ShardIteratorType::AtTimestamp,
                None,
                Some(DateTime::from(*t)),
            ),
            StartAt::AfterCheckpoint { sequence, .. } => (
                ShardIteratorType::AtSequenceNumber,
                Some(sequence.as_str()),
                None,
            ),
            StartAt::AfterSequence(sequence) => (
                ShardIteratorType::AfterSequenceNumber,
                Some(sequence.as_str()),
                None,
            ),
        }
    }

    /// User records at or before this position were already processed and
    /// must be skipped.
    pub(crate) fn skip_through(&self) -> Option<Position> {
        match self {
            StartAt::AfterCheckpoint { sequence, sub } => Some(Position::Sequence {
                sequence: sequence.clone(),
                sub: *sub,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_resumes_at_the_sequence_and_skips_through_it() {
        let ckpt = Position::Sequence {
            sequence: "42".into(),
            sub: 3,
        };
        let start = StartAt::from_checkpoint(&ckpt).unwrap();
        let (kind, seq, ts) = start.request();
        assert_eq!(kind, ShardIteratorType::AtSequenceNumber);
        assert_eq!(seq, Some("42"));
        assert!(ts.is_none());
        assert_eq!(start.skip_through(), Some(ckpt));
    }

    #[test]
    fn end_and_offsets_are_not_kinesis_starts() {
        assert!(StartAt::from_checkpoint(&Position::End).is_none());
        assert!(StartAt::from_checkpoint(&Position::Offset(3)).is_none());
    }

    #[test]
    fn expired_iterators_restart_after_the_last_record() {
        let start = StartAt::AfterSequence("7".into());
        assert_eq!(start.request().0, ShardIteratorType::AfterSequenceNumber);
        assert_eq!(start.skip_through(), None);
    }
}
