//! Records handed from the handles to the delivery task in memory, so that
//! a delivery that keeps up with the log does not decode what it reads back.
//!
//! A handle encodes each record into its log frame and keeps the record
//! itself beside it. When the log's writer has written the append, and
//! before it publishes it to the reader, the records are offered to
//! [`AppendedRecords`] under their log positions
//! (`WalWriter::append_batch_then`); the delivery task, having read a batch
//! back from the log, takes the records of exactly those positions from
//! there instead of decoding the bytes. So a delivery that keeps up never
//! reads an appended record that is not held.
//!
//! Guarantees:
//!
//! - **The log stays the source of truth.** Only positions that the task has
//!   just read back from the log are taken, and a record here is the one
//!   whose encoding was appended at its position: the task delivers the same
//!   records in the same order either way. Whatever is not here — records
//!   recovered at open, read again after a failed flush or a rewind, left
//!   out because the bound was reached, or the first part of an append
//!   the log wrote over several groups while at its byte cap (offered
//!   once it is whole) — is decoded from the log as before.
//! - **Bounded.** Records of at most `max_bytes` encoded bytes are held
//!   ([`WalConfig::max_held_bytes`](super::WalConfig::max_held_bytes)); an
//!   offer that does not fit is dropped whole, and positions the task has
//!   read past are dropped at its next take. Keeping the oldest records
//!   rather than the newest serves a delivery that is behind: it reaches
//!   every record held. A target that stalls therefore costs that much
//!   memory at most (the records' in-memory size, of the order of their
//!   encoding for most types), and the delivery decodes whatever was not
//!   held.
//!
//! Not guaranteed: that a record reaches the target as the same value
//! whichever way it went. The target receives the value as sent when it is
//! taken from here, and the value decoded from the log otherwise; a codec
//! whose `decode` does not give back what `encode` was given (a field
//! skipped by serde, a float that JSON rounds) makes the two differ.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

/// Records offered by the handles, by log position, until the delivery task
/// takes them.
pub(super) struct AppendedRecords<T> {
    held: Mutex<Held<T>>,
    max_bytes: u64,
}

/// A record with the length of its encoding.
pub(super) type WithLen<T> = (T, u32);

struct Held<T> {
    /// Runs of consecutive records by the position of their first one.
    /// Runs never overlap: each comes from one append.
    runs: BTreeMap<u64, VecDeque<WithLen<T>>>,
    /// Encoded bytes of the records in `runs`.
    bytes: u64,
}

impl<T> AppendedRecords<T> {
    /// Holding records of at most `max_bytes` encoded bytes (0: none).
    pub(super) fn new(max_bytes: u64) -> Self {
        Self {
            held: Mutex::new(Held {
                runs: BTreeMap::new(),
                bytes: 0,
            }),
            max_bytes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Held<T>> {
        // The critical sections below cannot leave `Held` inconsistent
        // (nothing in them calls user code), so a poisoned lock is usable.
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Offers `records`, appended at positions `first..first + len`.
    /// Dropped (left to decoding) when they do not fit.
    pub(super) fn offer(&self, first: u64, records: Vec<WithLen<T>>) {
        if records.is_empty() {
            return;
        }
        let bytes: u64 = records.iter().map(|&(_, len)| u64::from(len)).sum();
        let mut held = self.lock();
        if held.bytes.saturating_add(bytes) > self.max_bytes {
            return;
        }
        held.bytes += bytes;
        held.runs.insert(first, VecDeque::from(records));
    }

    /// The records at positions `first..first + count`, if every one of them
    /// is held; `None` otherwise (then they are decoded from the log).
    /// Records below `first` are dropped either way: the task reads forward
    /// and never asks for them again (a rewind decodes).
    pub(super) fn take(&self, first: u64, count: usize) -> Option<Vec<T>> {
        let mut held = self.lock();
        held.drop_below(first);
        let end = first.checked_add(count as u64)?;
        // Runs are consecutive when each starts where the previous ends.
        let mut at = first;
        for (&start, run) in held.runs.range(first..) {
            if at >= end {
                break;
            }
            if start != at {
                return None;
            }
            at += run.len() as u64;
        }
        if at < end {
            return None;
        }
        let mut taken = Vec::with_capacity(count);
        let mut bytes = 0;
        while taken.len() < count {
            let Some(mut entry) = held.runs.first_entry() else {
                break;
            };
            let want = count - taken.len();
            let run = entry.get_mut();
            let take = want.min(run.len());
            for (record, len) in run.drain(..take) {
                bytes += u64::from(len);
                taken.push(record);
            }
            let rest = entry.remove();
            if !rest.is_empty() {
                held.runs.insert(end, rest);
            }
        }
        held.bytes -= bytes;
        Some(taken)
    }

    /// Encoded bytes of the records held.
    #[cfg(test)]
    fn held_bytes(&self) -> u64 {
        self.lock().bytes
    }
}

impl<T> Held<T> {
    /// Drops every record at a position below `lsn`.
    fn drop_below(&mut self, lsn: u64) {
        while let Some(mut entry) = self.runs.first_entry() {
            let start = *entry.key();
            if start >= lsn {
                return;
            }
            let len = entry.get().len() as u64;
            // Past `lsn` the run is kept, keyed by `lsn`.
            let cut = lsn.saturating_sub(start).min(len) as usize;
            let run = entry.get_mut();
            for (_, bytes) in run.drain(..cut) {
                self.bytes -= u64::from(bytes);
            }
            let rest = entry.remove();
            if !rest.is_empty() {
                self.runs.insert(lsn, rest);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records `from..to`, each of 10 encoded bytes.
    fn run(from: u64, to: u64) -> Vec<WithLen<u64>> {
        (from..to).map(|n| (n, 10)).collect()
    }

    fn offer(held: &AppendedRecords<u64>, from: u64, to: u64) {
        held.offer(from, run(from, to));
    }

    #[test]
    fn takes_exactly_the_positions_asked_for_across_runs() {
        let held = AppendedRecords::new(1000);
        offer(&held, 0, 10);
        offer(&held, 10, 20);
        assert_eq!(held.take(0, 5), Some((0..5).collect()));
        assert_eq!(held.take(5, 10), Some((5..15).collect()));
        assert_eq!(held.held_bytes(), 50);
        assert_eq!(held.take(15, 5), Some((15..20).collect()));
        assert_eq!(held.held_bytes(), 0);
    }

    #[test]
    fn a_gap_or_a_missing_tail_leaves_the_batch_to_decoding() {
        let held = AppendedRecords::new(1000);
        offer(&held, 0, 10);
        // 10..20 was never offered (it did not fit, say).
        offer(&held, 20, 30);
        assert_eq!(held.take(5, 10), None);
        assert_eq!(held.take(20, 11), None);
        // Positions read past are dropped; later ones are still served.
        assert_eq!(held.take(25, 5), Some((25..30).collect()));
        assert_eq!(held.held_bytes(), 0);
    }

    #[test]
    fn records_offered_after_the_task_read_past_them_are_dropped() {
        let held = AppendedRecords::new(1000);
        // The task decoded 0..8 before the offer arrived.
        offer(&held, 0, 10);
        assert_eq!(held.take(8, 2), Some(vec![8, 9]));
        assert_eq!(held.held_bytes(), 0);
        // Out-of-order offers of two handles are matched by position.
        offer(&held, 20, 30);
        offer(&held, 10, 20);
        assert_eq!(held.take(10, 20), Some((10..30).collect()));
        assert_eq!(held.held_bytes(), 0);
    }

    #[test]
    fn an_offer_that_does_not_fit_is_dropped_whole_and_the_oldest_are_kept() {
        let held = AppendedRecords::new(150);
        offer(&held, 0, 10);
        offer(&held, 10, 20);
        assert_eq!(held.held_bytes(), 100);
        assert_eq!(held.take(10, 1), None);
        assert_eq!(held.held_bytes(), 0);
        // Taking frees room for the next offer.
        offer(&held, 20, 30);
        assert_eq!(held.take(20, 10), Some((20..30).collect()));
    }

    #[test]
    fn nothing_is_held_with_a_bound_of_zero() {
        let held = AppendedRecords::new(0);
        offer(&held, 0, 1);
        assert_eq!(held.take(0, 1), None);
    }

    #[test]
    fn empty_takes_and_offers_change_nothing() {
        let held = AppendedRecords::<u64>::new(10);
        held.offer(0, Vec::new());
        assert_eq!(held.take(0, 0), Some(Vec::new()));
        assert_eq!(held.take(u64::MAX, 2), None);
        assert_eq!(held.held_bytes(), 0);
    }
}
