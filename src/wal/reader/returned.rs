//! The payload length of every lsn a reader has consumed and not yet
//! committed, which rewinding and committing need to keep the backlog's
//! byte count right.
//!
//! Records read are one `u32` each; lsns stepped over by quarantine (the
//! rest of a damaged segment) are one range each, however many lsns the
//! segment names claim: the names come from disk, and a range of 10^19
//! lsns must not become 10^19 entries.

use std::collections::VecDeque;

/// Payload lengths of the lsns in `[start, end)`: records read, and ranges
/// of lsns skipped (payload 0).
#[derive(Debug, Clone, Default)]
pub(super) struct ReturnedLens {
    start: u64,
    end: u64,
    /// Payload length of every record read, in lsn order.
    lens: VecDeque<u32>,
    /// Skipped lsns, as sorted, disjoint, non-adjacent `[from, to)` ranges
    /// within `[start, end)`.
    skipped: VecDeque<(u64, u64)>,
}

impl ReturnedLens {
    /// None yet: the lsns consumed start at `start`.
    pub(super) fn starting_at(start: u64) -> Self {
        Self {
            start,
            end: start,
            lens: VecDeque::new(),
            skipped: VecDeque::new(),
        }
    }

    /// The first lsn not yet consumed.
    pub(super) fn end(&self) -> u64 {
        self.end
    }

    /// The lsn `end()` consumed: a record of `len` payload bytes.
    pub(super) fn push(&mut self, len: u32) {
        self.lens.push_back(len);
        self.end += 1;
    }

    /// The `count` lsns from `end()` consumed without a record.
    pub(super) fn skip(&mut self, count: u64) {
        if count == 0 {
            return;
        }
        let to = self.end.saturating_add(count);
        match self.skipped.back_mut() {
            Some(last) if last.1 == self.end => last.1 = to,
            _ => self.skipped.push_back((self.end, to)),
        }
        self.end = to;
    }

    /// Payload bytes of everything held.
    pub(super) fn payload(&self) -> u64 {
        self.lens.iter().map(|&len| u64::from(len)).sum()
    }

    /// Appends `other`, which must start at `end()`.
    pub(super) fn append(&mut self, other: ReturnedLens) {
        debug_assert_eq!(other.start, self.end, "appended lengths do not follow on");
        self.lens.extend(other.lens);
        for (from, to) in other.skipped {
            self.end = from;
            self.skip(to - from);
        }
        self.end = other.end;
    }

    /// Forgets the lsns below `upto` (committed): they are never rewound to.
    /// Returns the payload bytes of the records forgotten.
    pub(super) fn commit(&mut self, upto: u64) -> u64 {
        let upto = upto.clamp(self.start, self.end);
        let mut skipped_below = 0;
        while let Some(range) = self.skipped.front_mut() {
            if range.1 <= upto {
                skipped_below += range.1 - range.0;
                self.skipped.pop_front();
            } else {
                if range.0 < upto {
                    skipped_below += upto - range.0;
                    range.0 = upto;
                }
                break;
            }
        }
        let records = (upto - self.start - skipped_below) as usize;
        let payload = self
            .lens
            .drain(..records.min(self.lens.len()))
            .map(u64::from)
            .sum();
        self.start = upto;
        payload
    }

    /// Hands back the lsns from `from` on (a rewind); returns their payload
    /// bytes.
    pub(super) fn rewind(&mut self, from: u64) -> u64 {
        let from = from.clamp(self.start, self.end);
        let mut skipped_after = 0;
        while let Some(range) = self.skipped.back_mut() {
            if range.0 >= from {
                skipped_after += range.1 - range.0;
                self.skipped.pop_back();
            } else {
                if range.1 > from {
                    skipped_after += range.1 - from;
                    range.1 = from;
                }
                break;
            }
        }
        let records = (self.end - from - skipped_after) as usize;
        let keep = self.lens.len().saturating_sub(records);
        self.end = from;
        self.lens.drain(keep..).map(u64::from).sum()
    }

    /// Whether the records and skipped ranges account for exactly the
    /// lsns in `[start, end)`.
    pub(super) fn consistent(&self) -> bool {
        let skipped: u64 = self.skipped.iter().map(|(from, to)| to - from).sum();
        let in_bounds = self
            .skipped
            .iter()
            .all(|&(from, to)| self.start <= from && from < to && to <= self.end);
        let ordered = self
            .skipped
            .iter()
            .zip(self.skipped.iter().skip(1))
            .all(|(a, b)| a.1 < b.0);
        in_bounds && ordered && self.lens.len() as u64 + skipped == self.end - self.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lens(start: u64, steps: &[Result<u32, u64>]) -> ReturnedLens {
        let mut lens = ReturnedLens::starting_at(start);
        for step in steps {
            match *step {
                Ok(len) => lens.push(len),
                Err(count) => lens.skip(count),
            }
        }
        assert!(lens.consistent());
        lens
    }

    #[test]
    fn a_huge_skip_is_one_range() {
        let mut l = lens(5, &[Ok(3), Err(u64::MAX / 2), Ok(4)]);
        assert_eq!(l.end(), 5 + 1 + u64::MAX / 2 + 1);
        assert_eq!(l.payload(), 7);
        assert_eq!(l.skipped.len(), 1);
        assert_eq!(l.rewind(7), 4);
        assert!(l.consistent());
        assert_eq!(l.end(), 7);
    }

    #[test]
    fn rewind_returns_the_payload_of_the_lsns_handed_back() {
        let mut l = lens(10, &[Ok(1), Ok(2), Err(3), Ok(4), Ok(5)]);
        assert_eq!(l.end(), 17);
        assert_eq!(l.rewind(16), 5);
        assert_eq!(
            l.rewind(13),
            4,
            "into the skipped range: lsn 12 stays skipped"
        );
        assert!(l.consistent());
        assert_eq!(l.end(), 13);
        assert_eq!(l.payload(), 3);
        assert_eq!(l.rewind(10), 3);
        assert!(l.consistent());
        assert_eq!(l.rewind(0), 0, "clamped to the start");
    }

    #[test]
    fn commit_forgets_below_and_splits_a_range() {
        let mut l = lens(0, &[Ok(1), Err(4), Ok(2), Ok(3)]);
        l.commit(3);
        assert!(l.consistent());
        assert_eq!(l.payload(), 5);
        l.commit(6);
        assert!(l.consistent());
        assert_eq!(l.payload(), 3);
        l.commit(100);
        assert!(l.consistent());
        assert_eq!((l.payload(), l.end()), (0, 7));
    }

    #[test]
    fn append_merges_adjacent_skips() {
        let mut a = lens(0, &[Ok(1), Err(2)]);
        let b = lens(3, &[Err(5), Ok(9)]);
        a.append(b);
        assert!(a.consistent());
        assert_eq!(a.skipped.len(), 1);
        assert_eq!((a.end(), a.payload()), (9, 10));
    }
}
