//! [`AcquiredLease`]: a lease handed by the worker to the consumer that
//! reads its partition, and [`AcquiredLeases`], the stream of them.
//!
//! The consumer reads the partition from the lease's checkpoint while the
//! lease's [`PartitionControl`] is active. When the control says draining
//! (a handoff or a shutdown) or fenced (lost), it stops and calls
//! [`stopped`](AcquiredLease::stopped) with the number of records it
//! yielded: the worker then waits until the checkpointer has saved that
//! many before it releases the lease, so the next holder starts exactly
//! after them. Dropping an `AcquiredLease` without calling `stopped` tells
//! the worker not to wait.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::stream::{FusedStream, Stream};
use tokio::sync::mpsc;

use super::held::{HeldLease, StopReport};
use super::record::Lease;
use crate::checkpoint::PartitionControl;

/// A lease acquired by this worker, for its consumer; see the
/// [`lease`](super) module docs.
#[derive(Debug)]
#[must_use = "a lease must be read, or dropped to give it back at once"]
pub struct AcquiredLease {
    held: Arc<HeldLease>,
    lease: Lease,
    reported: bool,
}

impl AcquiredLease {
    pub(crate) fn new(held: Arc<HeldLease>, lease: Lease) -> Self {
        Self {
            held,
            lease,
            reported: false,
        }
    }

    /// The partition.
    pub fn key(&self) -> &str {
        &self.lease.key
    }

    /// The lease as acquired: its checkpoint is where reading starts; its
    /// parents and hash range describe the partition.
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// The lease epoch: the counter at acquisition. Every later holder of
    /// this lease has a higher epoch, so an external store that keeps the
    /// highest epoch seen per partition can refuse writes from an older
    /// holder.
    pub fn epoch(&self) -> u64 {
        self.held.epoch
    }

    /// The partition's control: attach it to the records' tokens, stop when
    /// it is no longer active.
    pub fn control(&self) -> &PartitionControl {
        &self.held.control
    }

    /// The consumer stopped reading the partition after yielding `tokens`
    /// records (tokens `seq` 0 to `tokens - 1`).
    pub fn stopped(mut self, tokens: u64) {
        self.reported = true;
        self.held.report_stop(StopReport::Yielded(tokens));
    }
}

impl Drop for AcquiredLease {
    fn drop(&mut self) {
        if !self.reported {
            self.held.report_stop(StopReport::Unknown);
        }
    }
}

/// The leases a worker acquires, from
/// [`LeaseWorker::acquired`](super::LeaseWorker::acquired); ends when the
/// worker stops.
#[derive(Debug)]
#[must_use = "streams do nothing unless polled"]
pub struct AcquiredLeases {
    rx: mpsc::UnboundedReceiver<AcquiredLease>,
    done: bool,
}

impl AcquiredLeases {
    pub(crate) fn new(rx: mpsc::UnboundedReceiver<AcquiredLease>) -> Self {
        Self { rx, done: false }
    }
}

impl Stream for AcquiredLeases {
    type Item = AcquiredLease;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<AcquiredLease>> {
        if self.done {
            return Poll::Ready(None);
        }
        let polled = self.rx.poll_recv(cx);
        if let Poll::Ready(None) = polled {
            self.done = true;
        }
        polled
    }
}

impl FusedStream for AcquiredLeases {
    fn is_terminated(&self) -> bool {
        self.done
    }
}
