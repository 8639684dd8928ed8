//! Per-partition tracking of the safe checkpoint position when tokens come
//! back out of order; the rules are documented on [`PositionTracker`].

use std::collections::BTreeMap;

use super::position::Position;

/// Tracks the safe position of one partition from tokens observed in any
/// order.
///
/// ```
/// use unistream::checkpoint::{Position, PositionTracker};
///
/// let mut tracker = PositionTracker::new();
/// tracker.observe(1, Position::Offset(20)); // seq 0 not seen yet
/// assert_eq!(tracker.safe_position(), None);
/// tracker.observe(0, Position::Offset(10));
/// assert_eq!(tracker.safe_position(), Some(&Position::Offset(20)));
/// ```
///
/// Sources number the tokens of each partition `0, 1, 2, …` (the token's
/// `seq`) in delivery order. After concurrent processing (for example
/// `buffer_unordered`) tokens arrive in any order. A [`PositionTracker`]
/// answers one question: up to which position is *everything* processed?
/// That is the position of the largest `seq` `s` such that every `seq ≤ s`
/// has been observed — the only position that may be checkpointed, because a
/// checkpoint means "processed up to and including".
///
/// Rules:
/// - A tracker starts at `seq` 0. Sources number from 0 on every run (a
///   restarted source resumes *after* its checkpoint and numbers the first
///   record it delivers 0 again), so the first token to arrive may be `seq`
///   5 while 0 to 4 are still being processed: the tracker waits for them.
/// - A `seq` already covered (a duplicate) is ignored.
/// - In-order tokens take a fast path: no allocation, no lookup. Only tokens
///   that arrive ahead of a gap are kept, in a `BTreeMap` whose size is the
///   number of tokens waiting for the gap to fill (bounded by the
///   concurrency of the processing stage), not the size of the gap.
#[derive(Debug, Clone, Default)]
pub struct PositionTracker {
    /// Every `seq < next` has been observed.
    next: u64,
    /// The position of `seq == next - 1`, once anything is observed.
    safe: Option<Position>,
    /// Observed tokens with `seq > next`, waiting for the gap to fill.
    ahead: BTreeMap<u64, Position>,
}

impl PositionTracker {
    /// A tracker expecting `seq` 0 first.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that the token `seq` at `position` is processed. Returns
    /// whether the safe position advanced.
    #[inline]
    pub fn observe(&mut self, seq: u64, position: Position) -> bool {
        if seq == self.next && self.ahead.is_empty() {
            // Fast path: in order, nothing waiting.
            self.next += 1;
            self.safe = Some(position);
            return true;
        }
        self.observe_out_of_order(seq, position)
    }

    #[cold]
    fn observe_out_of_order(&mut self, seq: u64, position: Position) -> bool {
        if seq < self.next {
            return false; // already covered
        }
        self.ahead.insert(seq, position);
        let mut advanced = false;
        while let Some(entry) = self.ahead.first_entry() {
            if *entry.key() != self.next {
                break;
            }
            self.safe = Some(entry.remove());
            self.next += 1;
            advanced = true;
        }
        advanced
    }

    /// The position up to which every observed token is contiguous from
    /// `seq` 0; `None` until `seq` 0 is observed.
    pub fn safe_position(&self) -> Option<&Position> {
        self.safe.as_ref()
    }

    /// The lowest `seq` not observed yet.
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// How many observed tokens wait behind a gap.
    pub fn waiting(&self) -> usize {
        self.ahead.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn off(n: u64) -> Position {
        Position::Offset(n)
    }

    #[test]
    fn in_order_advances_every_time() {
        let mut t = PositionTracker::new();
        for seq in 0..100 {
            assert!(t.observe(seq, off(seq * 10 + 10)));
        }
        assert_eq!(t.safe_position(), Some(&off(1000)));
        assert_eq!(t.next_seq(), 100);
        assert_eq!(t.waiting(), 0);
    }

    #[test]
    fn gap_holds_back_until_filled() {
        let mut t = PositionTracker::new();
        assert!(!t.observe(2, off(30)));
        assert!(!t.observe(1, off(20)));
        assert_eq!(t.safe_position(), None);
        assert_eq!(t.waiting(), 2);
        assert!(t.observe(0, off(10)));
        assert_eq!(t.safe_position(), Some(&off(30)));
        assert_eq!(t.waiting(), 0);
        assert!(!t.observe(4, off(50)));
        assert_eq!(t.safe_position(), Some(&off(30)));
        assert!(t.observe(3, off(40)));
        assert_eq!(t.safe_position(), Some(&off(50)));
    }

    #[test]
    fn duplicates_are_ignored() {
        let mut t = PositionTracker::new();
        t.observe(0, off(10));
        t.observe(1, off(20));
        assert!(!t.observe(0, off(10)));
        assert!(!t.observe(1, off(20)));
        assert_eq!(t.safe_position(), Some(&off(20)));
        assert!(!t.observe(3, off(40)));
        assert!(!t.observe(3, off(40)));
        assert_eq!(t.waiting(), 1);
    }

    #[test]
    fn random_permutations_match_a_model() {
        for round in 0..200u64 {
            let mut seqs: Vec<u64> = (0..50).collect();
            fastrand::seed(round);
            fastrand::shuffle(&mut seqs);
            let mut t = PositionTracker::new();
            let mut seen = [false; 50];
            for s in seqs {
                t.observe(s, off(s + 1));
                seen[s as usize] = true;
                let contiguous = seen.iter().take_while(|x| **x).count() as u64;
                let expected = (contiguous > 0).then(|| off(contiguous));
                assert_eq!(t.safe_position(), expected.as_ref());
            }
        }
    }
}
