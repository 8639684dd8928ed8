//! Positions: where a record sits in its partition.
//!
//! Checkpoints store a [`Position`] and mean "processed up to and including
//! this position". Positions of one partition are totally ordered, with
//! [`Position::End`] (a finished partition, Kinesis `SHARD_END`) after every
//! other; [`SequenceNumber`]s compare numerically at any length.

use std::cmp::Ordering;
use std::fmt;
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
}
