//! Checkpoint tokens and positions.
//!
//! A source yields every record with a [`CheckpointToken`]. The token names
//! the partition the record came from (shard id, file path, …), the record's
//! [`Position`] in it, and the record's place in the partition's delivery
//! order (`seq`: 0, 1, 2, … for each partition, per run of the source, with
//! no gaps). The `seq` is what lets a checkpointer tell, when tokens come
//! back out of order, whether everything before a token has been seen.
//!
//! A token may also carry the partition's [`PartitionControl`]: the shared
//! switch a checkpointer flips when the partition's lease is lost (a fenced
//! checkpoint write), so the source stops reading that partition.
//!
//! Tokens are cheap to clone (the partition name is shared).

use std::cmp::Ordering;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Where a record sits in its partition. Checkpoints store positions and
/// mean "processed up to and including this position".
///
/// Positions of one partition are totally ordered; [`Position::End`] sorts
/// after every other position.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Position {
    /// A byte offset: the offset just past the record's end, i.e. where
    /// reading resumes.
    Offset(u64),
    /// A sequence number assigned by the stream system, with the index of
    /// the user record inside an aggregated record (0 when not aggregated).
    Sequence {
        /// The stream system's sequence number.
        sequence: SequenceNumber,
        /// The sub-sequence number inside an aggregated record.
        sub: u64,
    },
    /// The partition is finished: closed and completely processed
    /// (Kinesis `SHARD_END`).
    End,
}

impl Position {
    /// A sequence position with no sub-sequence.
    pub fn sequence(sequence: impl Into<SequenceNumber>) -> Self {
        Position::Sequence {
            sequence: sequence.into(),
            sub: 0,
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Position::Offset(_) => 0,
            Position::Sequence { .. } => 1,
            Position::End => 2,
        }
    }
}

impl PartialOrd for Position {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Position {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Position::Offset(a), Position::Offset(b)) => a.cmp(b),
            (
                Position::Sequence {
                    sequence: a,
                    sub: sa,
                },
                Position::Sequence {
                    sequence: b,
                    sub: sb,
                },
            ) => a.cmp(b).then(sa.cmp(sb)),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Offset(o) => write!(f, "offset {o}"),
            Position::Sequence { sequence, sub: 0 } => write!(f, "sequence {sequence}"),
            Position::Sequence { sequence, sub } => write!(f, "sequence {sequence}/{sub}"),
            Position::End => f.write_str("end"),
        }
    }
}

/// A stream system's sequence number: a string of decimal digits of any
/// length (Kinesis uses 56 digits, more than `u128` holds), ordered
/// numerically.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SequenceNumber(Arc<str>);

impl SequenceNumber {
    /// Wraps a sequence number as the stream system returned it.
    pub fn new(digits: impl AsRef<str>) -> Self {
        Self(Arc::from(digits.as_ref()))
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn significant(&self) -> &str {
        let trimmed = self.0.trim_start_matches('0');
        trimmed
    }
}

impl From<&str> for SequenceNumber {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl From<String> for SequenceNumber {
    fn from(s: String) -> Self {
        Self(Arc::from(s))
    }
}

impl PartialOrd for SequenceNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SequenceNumber {
    /// Numeric order: shorter (without leading zeros) is smaller, equal
    /// lengths compare digit by digit.
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (self.significant(), other.significant());
        a.len()
            .cmp(&b.len())
            .then_with(|| a.cmp(b))
            .then_with(|| self.0.cmp(&other.0))
    }
}

impl fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The shared switch of one partition between its source and its
/// checkpointer. When a checkpoint write for the partition is fenced (the
/// lease moved to another worker), the checkpointer calls [`fence`], and the
/// source stops reading the partition.
///
/// [`fence`]: PartitionControl::fence
#[derive(Debug, Clone, Default)]
pub struct PartitionControl {
    inner: Arc<ControlInner>,
}

#[derive(Debug, Default)]
struct ControlInner {
    fenced: AtomicBool,
    notify: tokio::sync::Notify,
}

impl PartitionControl {
    /// A new, unfenced control.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks the partition as lost to this worker and wakes waiters.
    pub fn fence(&self) {
        self.inner.fenced.store(true, AtomicOrdering::SeqCst);
        self.inner.notify.notify_waiters();
    }

    /// Whether [`fence`](Self::fence) was called.
    #[inline]
    pub fn is_fenced(&self) -> bool {
        self.inner.fenced.load(AtomicOrdering::SeqCst)
    }

    /// Resolves once the partition is fenced.
    pub async fn fenced(&self) {
        loop {
            let notified = self.inner.notify.notified();
            if self.is_fenced() {
                return;
            }
            notified.await;
        }
    }
}

/// A record's checkpoint identity: partition, position and delivery order.
#[derive(Debug, Clone)]
pub struct CheckpointToken {
    partition: Arc<str>,
    position: Position,
    seq: u64,
    control: Option<PartitionControl>,
}

impl CheckpointToken {
    /// The token of the `seq`-th record (from 0, per partition, no gaps)
    /// delivered from `partition`, at `position`.
    #[inline]
    pub fn new(partition: impl Into<Arc<str>>, position: Position, seq: u64) -> Self {
        Self {
            partition: partition.into(),
            position,
            seq,
            control: None,
        }
    }

    /// Attaches the partition's control switch.
    #[inline]
    pub fn with_control(mut self, control: PartitionControl) -> Self {
        self.control = Some(control);
        self
    }

    /// The partition the record came from.
    pub fn partition(&self) -> &str {
        &self.partition
    }

    /// The partition name as a shared string (cheap to clone).
    #[inline]
    pub fn partition_arc(&self) -> &Arc<str> {
        &self.partition
    }

    /// The record's position in its partition.
    #[inline]
    pub fn position(&self) -> &Position {
        &self.position
    }

    /// The record's place in the partition's delivery order.
    #[inline]
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The partition's control switch, when the source attached one.
    #[inline]
    pub fn control(&self) -> Option<&PartitionControl> {
        self.control.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_order_numerically() {
        let small = SequenceNumber::new("9");
        let big = SequenceNumber::new("10");
        assert!(small < big);
        let a = SequenceNumber::new("49590338271490256608559692538361571095921575989136588898");
        let b = SequenceNumber::new("49590338271490256608559692540925702759324208523137515618");
        assert!(a < b);
        assert!(SequenceNumber::new("007") < SequenceNumber::new("8"));
    }

    #[test]
    fn positions_order_within_kind_and_end_is_last() {
        assert!(Position::Offset(5) < Position::Offset(6));
        let p = |s: &str, sub| Position::Sequence {
            sequence: s.into(),
            sub,
        };
        assert!(p("5", 3) < p("6", 0));
        assert!(p("6", 0) < p("6", 1));
        assert!(p("6", 1) < Position::End);
        assert!(Position::Offset(u64::MAX) < Position::End);
    }

    #[test]
    fn position_serde_round_trip() {
        for pos in [
            Position::Offset(42),
            Position::sequence("123"),
            Position::Sequence {
                sequence: "9".into(),
                sub: 2,
            },
            Position::End,
        ] {
            let json = serde_json::to_string(&pos).unwrap();
            assert_eq!(serde_json::from_str::<Position>(&json).unwrap(), pos);
        }
    }

    #[tokio::test]
    async fn control_wakes_waiters() {
        let control = PartitionControl::new();
        let waiter = {
            let c = control.clone();
            tokio::spawn(async move { c.fenced().await })
        };
        tokio::task::yield_now().await;
        assert!(!control.is_fenced());
        control.fence();
        waiter.await.unwrap();
        assert!(control.is_fenced());
    }
}
