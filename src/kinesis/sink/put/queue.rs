//! The run's queue: its entries by position, each with its [`Slot`].
//!
//! Guarantees: positions only grow — an entry keeps its position from the
//! moment it is pushed until it is taken out, so a call in flight may name
//! entries by position while later batches' entries are pushed behind them
//! — and entries come out of [`iter_from`](Queue::iter_from) in position
//! order. Memory follows what is pending, not what the run ever carried:
//! the done entries in front of the first pending one are dropped once
//! they are the larger part of the queue.
//!
//! Does not: decide anything (what goes in a call is `plan.rs`'s, what an
//! answer does is `call.rs`'s).

use std::collections::VecDeque;

use super::entries::PutEntry;
use super::Slot;

/// Done entries in front kept at most (beyond half of the queue).
const KEEP_DONE_IN_FRONT: usize = 1024;

/// Entries by position: `entries[0]` is at position `base`.
#[derive(Debug, Default)]
pub(super) struct Queue {
    base: usize,
    /// `None` once done (stored or rejected).
    entries: VecDeque<Option<PutEntry>>,
    slots: VecDeque<Slot>,
}

impl Queue {
    /// The position the next pushed entry gets.
    pub(super) fn end(&self) -> usize {
        self.base + self.entries.len()
    }

    pub(super) fn push(&mut self, entry: PutEntry) {
        self.entries.push_back(Some(entry));
        self.slots.push_back(Slot::Ready);
    }

    /// The pending entry at `position` (`None` once it is done).
    pub(super) fn entry(&self, position: usize) -> Option<&PutEntry> {
        let i = position.checked_sub(self.base)?;
        self.entries.get(i)?.as_ref()
    }

    pub(super) fn entry_mut(&mut self, position: usize) -> Option<&mut PutEntry> {
        let i = position.checked_sub(self.base)?;
        self.entries.get_mut(i)?.as_mut()
    }

    /// Takes the entry at `position` out (it is done).
    pub(super) fn take(&mut self, position: usize) -> Option<PutEntry> {
        let i = position.checked_sub(self.base)?;
        self.entries.get_mut(i)?.take()
    }

    pub(super) fn set_slot(&mut self, position: usize, slot: Slot) {
        if let Some(s) = position
            .checked_sub(self.base)
            .and_then(|i| self.slots.get_mut(i))
        {
            *s = slot;
        }
    }

    /// The pending entries from `position` on, in position order.
    pub(super) fn iter_from(
        &self,
        position: usize,
    ) -> impl Iterator<Item = (usize, &PutEntry, Slot)> + '_ {
        let skip = position.saturating_sub(self.base);
        self.entries
            .iter()
            .zip(self.slots.iter())
            .enumerate()
            .skip(skip)
            .filter_map(move |(i, (entry, slot))| {
                entry.as_ref().map(|entry| (self.base + i, entry, *slot))
            })
    }

    /// Drops done entries in front of `head` (everything before it is
    /// done) when they are the larger part of the queue.
    pub(super) fn drop_done_before(&mut self, head: usize) {
        let done = head.saturating_sub(self.base).min(self.entries.len());
        if done > KEEP_DONE_IN_FRONT && done * 2 > self.entries.len() {
            debug_assert!(self.entries.iter().take(done).all(Option::is_none));
            self.entries.drain(..done);
            self.slots.drain(..done);
            self.base += done;
        }
    }
}
