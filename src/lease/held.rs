//! The leases a worker holds, and the one way it writes them.
//!
//! Every write to a held lease (renewal, checkpoint, release) goes through
//! [`HeldLease::write`], under the lease's own lock, so a worker's writes to
//! one lease are serialized and each is conditional on the counter of the
//! previous one. When the table answers with a conflict, the lease as it is
//! now decides:
//!
//! - still held by this worker (a handoff was requested — the requester
//!   moved the counter — or an earlier write of ours was applied but its
//!   answer lost): the worker adopts the new counter and writes again;
//! - held by someone else, or gone: the lease is **lost**. Its control is
//!   fenced at once (the source stops, the checkpointer stops), it leaves
//!   the held set, and no later write is attempted.
//!
//! A successful [`Release`](LeaseWrite::Release) marks the lease gone and
//! fences it before the lock is let go: a renewal or checkpoint queued
//! behind the release finds it gone and writes nothing.
//!
//! A lease also becomes lost when its renewals fail for a whole lease
//! duration (by this worker's clock, from the start of the last successful
//! write): by then another worker may have judged it expired.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio::time::Instant;

use super::record::Lease;
use super::table::{LeaseError, LeaseTable};
use super::write::LeaseWrite;
use crate::checkpoint::PartitionControl;

/// One lease this worker holds.
#[derive(Debug)]
pub(crate) struct HeldLease {
    pub(crate) key: Arc<str>,
    /// The counter when this worker acquired the lease: higher than any
    /// counter a previous holder wrote, so it orders holders.
    pub(crate) epoch: u64,
    pub(crate) control: PartitionControl,
    pub(crate) state: tokio::sync::Mutex<HeldState>,
    /// The counter of the last write this worker knows of (a copy of
    /// `state.lease.counter` readable without the lock).
    pub(crate) known_counter: AtomicU64,
    /// A drain (handoff or shutdown) has started.
    pub(crate) giving_up: AtomicBool,
    /// What the consumer reported when it stopped reading.
    pub(crate) stop_report: Mutex<Option<StopReport>>,
    pub(crate) stop_reported: Notify,
}

/// The lease as this worker last wrote or adopted it.
#[derive(Debug)]
pub(crate) struct HeldState {
    pub(crate) lease: Lease,
    /// When the last successful write started.
    pub(crate) renewed_at: Instant,
    /// Lost or released: no more writes.
    pub(crate) gone: bool,
}

/// How the consumer of a lease stopped reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopReport {
    /// It yielded this many tokens (from `seq` 0).
    Yielded(u64),
    /// It went away without saying: nothing more to wait for.
    Unknown,
}

/// Why a write to a held lease did not happen.
#[derive(Debug)]
pub(crate) enum HeldWriteError {
    /// The lease is held by someone else now (or gone); it is fenced.
    Lost { holder: Option<String> },
    /// This worker already gave the lease up.
    Gone,
    /// The table failed; the write may or may not have been applied.
    Backend(LeaseError),
}

/// What a successful write to a held lease found out on the way.
#[derive(Debug)]
pub(crate) struct Written {
    pub(crate) lease: Lease,
    /// The lease's owner asked for a handoff (found through a conflict).
    pub(crate) handoff_requested: bool,
}

impl HeldLease {
    pub(crate) fn new(lease: Lease, control: PartitionControl) -> Self {
        Self {
            key: Arc::from(lease.key.as_str()),
            epoch: lease.counter,
            control,
            known_counter: AtomicU64::new(lease.counter),
            state: tokio::sync::Mutex::new(HeldState {
                lease,
                renewed_at: Instant::now(),
                gone: false,
            }),
            giving_up: AtomicBool::new(false),
            stop_report: Mutex::new(None),
            stop_reported: Notify::new(),
        }
    }

    /// Records how the consumer stopped (the first report counts).
    pub(crate) fn report_stop(&self, report: StopReport) {
        let mut slot = self.stop_report.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(report);
            self.stop_reported.notify_waiters();
        }
    }

    pub(crate) fn stop_report(&self) -> Option<StopReport> {
        *self.stop_report.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `write` conditional on the last known counter, adopting the
    /// lease's new state and writing again while this worker still holds
    /// it; see the [module docs](self). On `Lost` the caller must call
    /// the worker's loss handling; this marks the state gone and fences.
    pub(crate) async fn write<T: LeaseTable>(
        &self,
        table: &T,
        me: &str,
        write: LeaseWrite,
    ) -> Result<Written, HeldWriteError> {
        let mut state = self.state.lock().await;
        if state.gone {
            return Err(HeldWriteError::Gone);
        }
        let mut handoff_requested = false;
        // Each adoption is a write by someone else; a handoff request is at
        // most one of those, a lost answer of ours another. More in a row
        // is a table that keeps changing under us: let the caller retry.
        for _ in 0..4 {
            let started = Instant::now();
            let expected = state.lease.counter;
            match table.write(&self.key, expected, write.clone()).await {
                Ok(lease) => {
                    // A write conditional on the counter of a lease we hold
                    // keeps it ours (or releases it): anything else is a
                    // table that applied two writes at one counter. Trust
                    // it no more than a lost lease.
                    if lease.counter != expected + 1
                        || !(matches!(write, LeaseWrite::Release) || lease.holder() == Some(me))
                    {
                        tracing::error!(
                            lease = %self.key,
                            expected,
                            counter = lease.counter,
                            holder = lease.holder().unwrap_or("-"),
                            write = write.name(),
                            "the lease table applied a conditional write that did not keep the lease ours; the lease is fenced"
                        );
                        state.gone = true;
                        self.control.fence();
                        return Err(HeldWriteError::Lost {
                            holder: lease.holder().map(str::to_owned),
                        });
                    }
                    self.known_counter.store(lease.counter, Ordering::Release);
                    state.lease = lease.clone();
                    state.renewed_at = started;
                    if matches!(write, LeaseWrite::Release) {
                        // Gone in the same critical section as the write: a
                        // renewal or checkpoint queued on the lock behind
                        // the release must not write a lease that is no
                        // longer ours.
                        state.gone = true;
                        self.control.fence();
                    }
                    return Ok(Written {
                        lease,
                        handoff_requested,
                    });
                }
                Err(LeaseError::Conflict { current, .. }) => {
                    let current = match current {
                        Some(current) => Some(*current),
                        None => table
                            .get(&self.key)
                            .await
                            .map_err(HeldWriteError::Backend)?,
                    };
                    match current {
                        Some(current) if current.holder() == Some(me) => {
                            handoff_requested |= current.owner.as_deref() != Some(me);
                            self.known_counter.store(current.counter, Ordering::Release);
                            state.lease = current;
                        }
                        other => {
                            state.gone = true;
                            self.control.fence();
                            return Err(HeldWriteError::Lost {
                                holder: other.and_then(|l| l.holder().map(str::to_owned)),
                            });
                        }
                    }
                }
                Err(other) => return Err(HeldWriteError::Backend(other)),
            }
        }
        Err(HeldWriteError::Backend(LeaseError::backend(
            table.name().to_owned(),
            format!(
                "lease {} kept changing under a {} write",
                self.key,
                write.name()
            ),
        )))
    }

    /// Marks the lease gone (lost by expiry, released) and fences it.
    pub(crate) async fn give_up(&self) {
        let mut state = self.state.lock().await;
        state.gone = true;
        self.control.fence();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::lease::{FaultyLeaseTable, LeaseCheckpoint, LeaseFaults, MemoryLeaseTable};

    #[tokio::test(start_paused = true)]
    async fn a_write_queued_behind_a_release_does_not_reach_the_table() {
        let memory = MemoryLeaseTable::new("t");
        let mut lease = Lease::new("k", LeaseCheckpoint::TrimHorizon);
        lease.owner = Some("a".into());
        memory.put(lease.clone());
        let table = FaultyLeaseTable::new(memory.clone(), 1);
        table.set_faults(LeaseFaults {
            latency: Duration::from_millis(10),
            ..LeaseFaults::default()
        });
        let held = Arc::new(HeldLease::new(lease, PartitionControl::new()));
        let write = |write: LeaseWrite| {
            let (held, table) = (held.clone(), table.clone());
            tokio::spawn(async move { held.write(&table, "a", write).await })
        };
        // The release holds the lease's lock through its request; a renewal
        // (the renewer's tick meeting a drain's release) queues behind it.
        let release = write(LeaseWrite::Release);
        tokio::task::yield_now().await;
        let renewal = write(LeaseWrite::Renew);
        let released = release.await.unwrap().unwrap();
        assert_eq!(released.lease.owner, None);
        assert!(held.control.is_fenced(), "released means fenced at once");
        let renewal = renewal.await.unwrap();
        assert!(matches!(renewal, Err(HeldWriteError::Gone)), "{renewal:?}");
        let now = &memory.snapshot()[0];
        assert_eq!(
            (now.counter, now.owner.as_deref()),
            (1, None),
            "only the release was written"
        );
    }
}
