//! [`Feed`]: the hand-over between a sink and its run — the batches fed to
//! it, the batches it finished, and how much it has waiting.
//!
//! Guarantees: batches come out of the run in the order they went in (the
//! run hands on its finished batches as a prefix: a batch finished while an
//! earlier one is still being delivered waits for it); a batch is in
//! exactly one of `incoming` (not taken yet), the run, or `finished`. The
//! lock is held for plain moves only, never across an `.await`.
//!
//! Does not: wake the sink — the sink polls the run itself, and the run's
//! changes to the feed happen inside those polls.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;

use super::PutProgress;

/// Shared by a sink and the run it polls.
#[derive(Debug, Default)]
pub(crate) struct Feed {
    state: Mutex<FeedState>,
    /// Notified when a batch is fed.
    pub(super) arrived: Notify,
}

/// What [`Feed`] holds.
#[derive(Debug, Default)]
pub(crate) struct FeedState {
    /// Fed, not yet taken by the run.
    pub incoming: VecDeque<PutProgress>,
    /// Taken and finished (each record stored or rejected), in feed order.
    pub finished: VecDeque<PutProgress>,
    /// Entries the run holds that are in no call in flight: what its next
    /// calls would carry.
    pub waiting: usize,
    /// Their bytes, as Kinesis bills them.
    pub waiting_bytes: u64,
}

impl Feed {
    pub(crate) fn state(&self) -> MutexGuard<'_, FeedState> {
        // Plain collections: any state a panic leaves them in is valid.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands `batch` to the run.
    pub(crate) fn push(&self, batch: PutProgress) {
        self.state().incoming.push_back(batch);
        self.arrived.notify_one();
    }
}
