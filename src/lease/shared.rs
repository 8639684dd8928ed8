//! The state a lease worker's tasks and handles share, and the operations
//! on it that every task needs: the held set, writes to held leases with
//! loss handled, the hand-over of acquired leases to the consumer, counts.
//!
//! Nothing here starts a task or decides anything: the renewer, the taker
//! and the drains (their own files) do, through these.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::acquired::{AcquiredLease, AcquiredLeases};
use super::config::LeaseConfig;
use super::held::{HeldLease, HeldWriteError, Written};
use super::metrics::LeaseCounters;
use super::record::Lease;
use super::table::{LeaseError, LeaseTable};
use super::write::LeaseWrite;
use crate::checkpoint::{FencingToken, PartitionControl};
use crate::error::Error;

/// How a lease came to this worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acquisition {
    Unowned,
    Expired,
    Handoff,
    ForcedHandoff,
    /// Owned by this worker's name in the table but not held (a restart
    /// under the same name, or a lease given up by our own clock that
    /// nobody took).
    Reclaimed,
}

impl Acquisition {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Acquisition::Unowned => "unowned",
            Acquisition::Expired => "expired",
            Acquisition::Handoff => "handoff",
            Acquisition::ForcedHandoff => "forced handoff",
            Acquisition::Reclaimed => "reclaimed",
        }
    }
}

/// What the worker's tasks and handles share.
pub(crate) struct WorkerShared<T> {
    pub(crate) table: T,
    pub(crate) id: Arc<str>,
    pub(crate) config: LeaseConfig,
    pub(crate) held: Mutex<BTreeMap<Arc<str>, Arc<HeldLease>>>,
    /// Handoffs this worker asked for, and when.
    pub(crate) requests: Mutex<BTreeMap<String, Instant>>,
    /// The controls of held leases are its siblings: one checkpoint-request
    /// hub for the worker.
    pub(crate) root_control: PartitionControl,
    pub(crate) acquired_tx: Mutex<Option<mpsc::UnboundedSender<AcquiredLease>>>,
    pub(crate) acquired_rx: Mutex<Option<mpsc::UnboundedReceiver<AcquiredLease>>>,
    pub(crate) counters: LeaseCounters,
    pub(crate) rng: Mutex<fastrand::Rng>,
    pub(crate) last_scan: Mutex<Option<Vec<Lease>>>,
    pub(crate) stopping: watch::Sender<bool>,
    pub(crate) stopped: watch::Sender<bool>,
    pub(crate) drains: Mutex<Vec<AbortHandle>>,
}

pub(crate) trait DrainAborter: Send + Sync {
    fn abort_drains(&self);
}

impl<T: Send + Sync> DrainAborter for WorkerShared<T> {
    fn abort_drains(&self) {
        for handle in lock(&self.drains).drain(..) {
            handle.abort();
        }
    }
}

/// Locks a std mutex whose data stays consistent even if a holder
/// panicked (every critical section here is a plain insert, remove or
/// replace).
pub(crate) fn lock<V>(mutex: &Mutex<V>) -> MutexGuard<'_, V> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl<T: LeaseTable> WorkerShared<T> {
    pub(crate) fn held(&self, key: &str) -> Option<Arc<HeldLease>> {
        lock(&self.held).get(key).cloned()
    }

    pub(crate) fn held_leases(&self) -> Vec<Arc<HeldLease>> {
        lock(&self.held).values().cloned().collect()
    }

    pub(crate) fn held_count(&self) -> usize {
        lock(&self.held).len()
    }

    pub(crate) fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    pub(crate) fn set_last_scan(&self, leases: Vec<Lease>) {
        *lock(&self.last_scan) = Some(leases);
    }

    pub(crate) fn not_held(&self, key: &str) -> Error {
        Error::Checkpoint(crate::checkpoint::CheckpointError::Fenced {
            partition: key.to_owned(),
            reason: format!("worker {} does not hold the lease", self.id),
        })
    }

    /// Counts one table request.
    pub(crate) fn count_request(&self) {
        LeaseCounters::add(&self.counters.table_requests);
    }

    /// A write to a held lease, with loss handled; see `held`. A handoff
    /// request found on the way is in the answer: `drain::write_held`
    /// starts the drain it calls for.
    pub(crate) async fn write_held(
        &self,
        held: &Arc<HeldLease>,
        write: LeaseWrite,
    ) -> Result<Written, Error> {
        self.count_request();
        match held.write(&self.table, &self.id, write).await {
            Ok(written) => Ok(written),
            Err(HeldWriteError::Lost { holder }) => {
                self.forget(held);
                LeaseCounters::add(&self.counters.lost);
                tracing::warn!(
                    worker = %self.id,
                    lease = %held.key,
                    holder = holder.as_deref().unwrap_or("-"),
                    "lease lost: another worker holds it; its partition is fenced"
                );
                Err(self.not_held(&held.key))
            }
            Err(HeldWriteError::Gone) => Err(self.not_held(&held.key)),
            Err(HeldWriteError::Backend(err)) => Err(Error::Lease(err)),
        }
    }

    /// Adds a lease just written by this worker to the held set; `None`
    /// when it is held already.
    pub(crate) fn hold(&self, lease: &Lease) -> Option<Arc<HeldLease>> {
        let fencing = FencingToken::new(lease.key.as_str(), self.id.clone(), lease.counter);
        let held = Arc::new(HeldLease::new(
            lease.clone(),
            self.root_control.leased_sibling(fencing),
        ));
        let mut map = lock(&self.held);
        if map.contains_key(lease.key.as_str()) {
            return None;
        }
        map.insert(held.key.clone(), held.clone());
        self.counters
            .held
            .store(map.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Some(held)
    }

    /// Hands an acquired lease to the consumer; `false` when nobody reads
    /// leases any more (stopping).
    pub(crate) fn hand_over(&self, lease: AcquiredLease) -> bool {
        match lock(&self.acquired_tx).as_ref() {
            Some(tx) => tx.send(lease).is_ok(),
            None => false,
        }
    }

    /// The stream of acquired leases, for its one consumer.
    pub(crate) fn take_acquired(&self) -> Option<AcquiredLeases> {
        lock(&self.acquired_rx).take().map(AcquiredLeases::new)
    }

    /// Keys of the leases held now.
    pub(crate) fn held_keys(&self) -> Vec<String> {
        lock(&self.held).keys().map(|k| k.to_string()).collect()
    }

    /// The table as of the last scan.
    pub(crate) fn last_scan(&self) -> Vec<Lease> {
        lock(&self.last_scan).clone().unwrap_or_default()
    }

    /// Removes `held` from the held set (if it is still the one held).
    pub(crate) fn forget(&self, held: &Arc<HeldLease>) {
        let mut map = lock(&self.held);
        if map.get(&held.key).is_some_and(|h| Arc::ptr_eq(h, held)) {
            map.remove(&held.key);
        }
        self.counters
            .held
            .store(map.len() as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// Gives a lease up after this worker judged it lost (not renewed in
    /// time, or seen taken in a scan): fenced, forgotten, counted.
    pub(crate) async fn lose(&self, held: &Arc<HeldLease>, why: &str) {
        held.give_up().await;
        self.forget(held);
        LeaseCounters::add(&self.counters.lost);
        tracing::warn!(worker = %self.id, lease = %held.key, why, "lease lost; its partition is fenced");
    }

    /// Closes the stream of acquired leases (the worker is stopping).
    pub(crate) fn close_acquired(&self) {
        lock(&self.acquired_tx).take();
    }

    /// Keeps a drain task's handle so that dropping the worker aborts it.
    pub(crate) fn track_drain(&self, handle: AbortHandle) {
        let mut drains = lock(&self.drains);
        drains.retain(|h| !h.is_finished());
        drains.push(handle);
    }

    /// A random fraction in `[0, 1)` from the worker's seeded generator.
    pub(crate) fn random(&self) -> f64 {
        lock(&self.rng).f64()
    }

    /// A conditional write to a lease this worker does not hold (take,
    /// handoff request, cancel), counted.
    pub(crate) async fn write_unheld(
        &self,
        key: &str,
        expected: u64,
        write: LeaseWrite,
    ) -> Result<Lease, LeaseError> {
        self.count_request();
        self.table.write(key, expected, write).await
    }
}
