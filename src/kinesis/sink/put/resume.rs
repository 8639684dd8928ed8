//! [`Resumption`]: the batches of a flush that failed, so that sending
//! their records again resumes them — however the records are cut into
//! batches the second time.
//!
//! `buffered_wal` sends the records of a failed flush again from the same
//! position of its log, but cuts them into batches anew (a batch that was
//! short because its records were due by age may now be full). So the
//! records are matched one by one, in order, against the remembered ones
//! from where the last match ended: a batch whose records are the next
//! remembered ones gets their progress (stored records are not sent
//! again, rejected ones are reported with their reason); records past the
//! remembered ones are new.
//!
//! A batch remembered whole and finished (its records all stored or
//! rejected) is skipped when the next batch does not start with its first
//! record: a caller goes on after a batch's rejections, and resending it
//! would find nothing to do anyway.
//!
//! Guarantees: a record is marked done only when it equals the remembered
//! record at its place and that one is done; a batch with any record that
//! differs from the remembered one at its place starts afresh, and
//! everything remembered is forgotten (a different batch: the records are
//! not being sent again).
//!
//! Does not: tell apart two equal records (a batch equal to the records
//! of a failed flush *is* taken as those records), nor outlive the sink.

use crate::kinesis::KinesisRecord;
use crate::RejectedRecord;
use std::collections::VecDeque;

use super::PutProgress;

/// Remembered batches, and where the next batch sent again starts.
#[derive(Debug, Default)]
pub(crate) struct Resumption {
    batches: VecDeque<PutProgress>,
    /// Records of `batches[0]` already matched.
    offset: usize,
}

impl Resumption {
    /// Remembers `batches` — those of a flush that just failed, some
    /// perhaps resumed from here — in front of what it holds: they are the
    /// next to be sent again.
    pub(crate) fn put_back(&mut self, batches: Vec<PutProgress>) {
        if batches.is_empty() {
            return;
        }
        if self.offset > 0 {
            // The front batch was matched in part: keep its rest only.
            if let Some(front) = self.batches.pop_front() {
                self.batches.push_front(front.tail(self.offset));
            }
            self.offset = 0;
        }
        for mut batch in batches.into_iter().rev() {
            batch.rejected.sort_by_key(|r| r.index);
            self.batches.push_front(batch);
        }
    }

    /// Bytes of the records remembered.
    pub(crate) fn bytes(&self) -> u64 {
        self.batches.iter().map(PutProgress::bytes).sum()
    }

    /// Forgets the oldest remembered batches until at most `max` bytes are
    /// left (their records, if sent again, are then stored again).
    pub(crate) fn keep_within(&mut self, max: u64) {
        let mut bytes = self.bytes();
        while bytes > max {
            let Some(dropped) = self.batches.pop_front() else {
                break;
            };
            bytes -= dropped.bytes();
            self.offset = 0;
        }
    }

    /// The progress of `batch`: resumed from the remembered records when
    /// its records are the next of them, fresh otherwise.
    pub(crate) fn progress_of(&mut self, batch: Vec<KinesisRecord>) -> (PutProgress, bool) {
        if self.batches.is_empty() {
            return (PutProgress::fresh(batch), false);
        }
        // A finished batch in front that is not sent again (its outcome was
        // final for the caller: a batch with rejections reported at its own
        // flush) holds nothing left to do: skipped.
        while self.offset == 0
            && self
                .batches
                .front()
                .is_some_and(|front| front.remaining() == 0 && front.batch.first() != batch.first())
        {
            self.batches.pop_front();
        }
        let mut done = Vec::with_capacity(batch.len());
        let mut rejected = Vec::new();
        // Rejections reported before are not counted again.
        let mut reported = true;
        let (mut b, mut offset) = (0, self.offset);
        for (index, record) in batch.iter().enumerate() {
            while self.batches.get(b).is_some_and(|p| offset == p.batch.len()) {
                b += 1;
                offset = 0;
            }
            let Some(remembered) = self.batches.get(b) else {
                // Past the remembered records: new ones.
                done.push(false);
                continue;
            };
            if remembered.batch[offset] != *record {
                self.batches.clear();
                self.offset = 0;
                return (PutProgress::fresh(batch), false);
            }
            done.push(remembered.done[offset]);
            reported &= remembered.rejections_reported;
            if let Ok(at) = remembered
                .rejected
                .binary_search_by_key(&offset, |r| r.index)
            {
                rejected.push(RejectedRecord::new(
                    index,
                    remembered.rejected[at].reason.clone(),
                ));
            }
            offset += 1;
        }
        self.batches.drain(..b);
        self.offset = offset;
        if self
            .batches
            .front()
            .is_some_and(|p| offset == p.batch.len())
        {
            self.batches.pop_front();
            self.offset = 0;
        }
        let progress = PutProgress::resumed(batch, done, rejected, reported);
        (progress, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(range: std::ops::Range<u32>) -> Vec<KinesisRecord> {
        range
            .map(|i| KinesisRecord::new(format!("r{i}"), format!("k{i}")))
            .collect()
    }

    /// A batch of `range` with the records at `done` done, `rejected` among
    /// them rejected.
    fn progress(range: std::ops::Range<u32>, done: &[u32], rejected: &[u32]) -> PutProgress {
        let start = range.start;
        let mut p = PutProgress::fresh(records(range));
        for &i in done {
            p.done[(i - start) as usize] = true;
        }
        for &i in rejected {
            p.reject(&[(i - start) as usize], format!("bad {i}"));
        }
        p
    }

    fn done_of(p: &PutProgress) -> Vec<bool> {
        p.done.clone()
    }

    #[test]
    fn records_cut_differently_resume_record_by_record() {
        let mut resumption = Resumption::default();
        resumption.put_back(vec![
            progress(0..3, &[0, 2], &[]),
            progress(3..10, &[3, 4, 5, 9], &[4]),
        ]);
        // Cut 0..5 and 5..12: two records past the remembered ones.
        let (first, resumed) = resumption.progress_of(records(0..5));
        assert!(resumed);
        assert_eq!(done_of(&first), [true, false, true, true, true]);
        assert_eq!(first.rejected.len(), 1);
        assert_eq!(first.rejected[0].index, 4);
        assert_eq!(first.rejected[0].reason, "bad 4");
        let (second, resumed) = resumption.progress_of(records(5..12));
        assert!(resumed);
        assert_eq!(
            done_of(&second),
            [true, false, false, false, true, false, false]
        );
        assert!(second.rejected.is_empty());
        // Everything matched: a batch now is fresh.
        let (third, resumed) = resumption.progress_of(records(0..3));
        assert!(!resumed);
        assert_eq!(done_of(&third), [false; 3]);
    }

    #[test]
    fn a_resumed_batch_that_fails_again_is_resumed_again_before_the_rest() {
        let mut resumption = Resumption::default();
        resumption.put_back(vec![progress(0..4, &[0], &[]), progress(4..8, &[5], &[])]);
        // Cut 0..6: the second remembered batch matched in part.
        let (mut first, _) = resumption.progress_of(records(0..6));
        assert_eq!(done_of(&first), [true, false, false, false, false, true]);
        // It stores record 1 and fails again.
        first.done[1] = true;
        resumption.put_back(vec![first]);
        let (again, resumed) = resumption.progress_of(records(0..6));
        assert!(resumed);
        assert_eq!(done_of(&again), [true, true, false, false, false, true]);
        let (rest, resumed) = resumption.progress_of(records(6..8));
        assert!(resumed);
        assert_eq!(done_of(&rest), [false, false]);
    }

    #[test]
    fn a_finished_batch_not_sent_again_is_skipped() {
        let mut resumption = Resumption::default();
        resumption.put_back(vec![
            progress(0..2, &[0, 1], &[1]),
            progress(2..4, &[2], &[]),
        ]);
        let (p, resumed) = resumption.progress_of(records(2..4));
        assert!(resumed);
        assert_eq!(done_of(&p), [true, false]);
    }

    #[test]
    fn a_different_batch_starts_afresh_and_forgets() {
        let mut resumption = Resumption::default();
        resumption.put_back(vec![progress(0..4, &[0, 1, 2, 3], &[])]);
        // Same length, one record differs.
        let mut other = records(0..4);
        other[2] = KinesisRecord::new("x", "k2");
        let (fresh, resumed) = resumption.progress_of(other);
        assert!(!resumed);
        assert_eq!(done_of(&fresh), [false; 4]);
        // The remembered records are gone.
        let (again, resumed) = resumption.progress_of(records(0..4));
        assert!(!resumed);
        assert_eq!(done_of(&again), [false; 4]);
    }

    #[test]
    fn the_bound_forgets_the_oldest_batches() {
        let mut resumption = Resumption::default();
        resumption.put_back(vec![
            progress(0..2, &[0, 1], &[]),
            progress(2..4, &[2], &[]),
        ]);
        let one = resumption.batches[1].bytes();
        resumption.keep_within(one);
        // The first batch is forgotten: its records no longer match the
        // front, so they start afresh.
        let (p, resumed) = resumption.progress_of(records(0..2));
        assert!(!resumed);
        assert_eq!(done_of(&p), [false, false]);
    }
}
