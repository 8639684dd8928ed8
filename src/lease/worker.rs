//! [`LeaseWorker`]: one worker's side of lease coordination — the handle,
//! and the state its background tasks share.
//!
//! A worker runs two tasks: the renewer (every held lease, every renew
//! interval, see `renewer`) and the taker (a read of the whole table every
//! scan interval: take, ask for handoffs, notice losses, see `taker`).
//! Leases being given up (handoff, shutdown, finished partitions) are
//! drained by a task each (see `drain`). What they decide reaches the
//! consumer of the leases as [`AcquiredLease`]s and through each lease's
//! [`PartitionControl`].
//!
//! Dropping every handle stops the tasks at once, like a crash: the leases
//! expire for the other workers after the lease duration. A graceful stop
//! is [`shutdown`](LeaseWorker::shutdown) then
//! [`stopped`](LeaseWorker::stopped).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::acquired::{AcquiredLease, AcquiredLeases};
use super::checkpoint_store::LeaseCheckpointStore;
use super::config::LeaseConfig;
use super::held::{HeldLease, HeldWriteError};
use super::metrics::{LeaseCounters, LeaseMetrics};
use super::record::Lease;
use super::table::{LeaseError, LeaseTable};
use super::write::LeaseWrite;
use super::{drain, renewer, taker};
use crate::checkpoint::PartitionControl;
use crate::error::Error;

/// One worker of a group sharing partitions through a lease table; see
/// the [module docs](super).
///
/// Clones share the worker.
pub struct LeaseWorker<T: LeaseTable> {
    pub(crate) shared: Arc<WorkerShared<T>>,
    tasks: Arc<WorkerTasks>,
}

impl<T: LeaseTable> std::fmt::Debug for LeaseWorker<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseWorker")
            .field("id", &self.shared.id)
            .field("table", &self.shared.table.name())
            .field("held", &self.shared.held_count())
            .finish_non_exhaustive()
    }
}

impl<T: LeaseTable> Clone for LeaseWorker<T> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            tasks: self.tasks.clone(),
        }
    }
}

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
    fn as_str(self) -> &'static str {
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
    held: Mutex<BTreeMap<Arc<str>, Arc<HeldLease>>>,
    /// Handoffs this worker asked for, and when.
    pub(crate) requests: Mutex<BTreeMap<String, Instant>>,
    /// The controls of held leases are its siblings: one checkpoint-request
    /// hub for the worker.
    root_control: PartitionControl,
    acquired_tx: Mutex<Option<mpsc::UnboundedSender<AcquiredLease>>>,
    acquired_rx: Mutex<Option<mpsc::UnboundedReceiver<AcquiredLease>>>,
    pub(crate) counters: LeaseCounters,
    pub(crate) rng: Mutex<fastrand::Rng>,
    last_scan: Mutex<Option<Vec<Lease>>>,
    pub(crate) stopping: watch::Sender<bool>,
    pub(crate) stopped: watch::Sender<bool>,
    drains: Mutex<Vec<AbortHandle>>,
}

/// Aborts the worker's tasks when the last handle goes.
struct WorkerTasks {
    handles: Vec<AbortHandle>,
    drains: Arc<dyn DrainAborter>,
}

trait DrainAborter: Send + Sync {
    fn abort_drains(&self);
}

impl<T: Send + Sync> DrainAborter for WorkerShared<T> {
    fn abort_drains(&self) {
        for handle in lock(&self.drains).drain(..) {
            handle.abort();
        }
    }
}

impl Drop for WorkerTasks {
    fn drop(&mut self) {
        for handle in &self.handles {
            handle.abort();
        }
        self.drains.abort_drains();
    }
}

/// Locks a std mutex whose data stays consistent even if a holder
/// panicked (every critical section here is a plain insert, remove or
/// replace).
pub(crate) fn lock<V>(mutex: &Mutex<V>) -> MutexGuard<'_, V> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// The table as the worker last read it, and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerSnapshot {
    /// The worker's name.
    pub worker: String,
    /// Keys of the leases it holds.
    pub held: Vec<String>,
    /// Handoffs it asked for and has not received.
    pub requested: Vec<String>,
    /// Every lease (owner, counter, checkpoint) as of its last scan; empty
    /// before the first.
    pub table: Vec<Lease>,
}

impl<T: LeaseTable> LeaseWorker<T> {
    /// Starts a worker called `id` on `table` (in the current Tokio
    /// runtime). Worker names must be unique within a table: the default
    /// of [`unique_id`](Self::unique_id) is.
    pub fn start(table: T, id: impl Into<String>, config: LeaseConfig) -> Self {
        let seed = config.seed.unwrap_or_else(|| fastrand::u64(..));
        let (acquired_tx, acquired_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(WorkerShared {
            table,
            id: Arc::from(id.into()),
            config,
            held: Mutex::default(),
            requests: Mutex::default(),
            root_control: PartitionControl::new(),
            acquired_tx: Mutex::new(Some(acquired_tx)),
            acquired_rx: Mutex::new(Some(acquired_rx)),
            counters: LeaseCounters::default(),
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            last_scan: Mutex::default(),
            stopping: watch::Sender::new(false),
            stopped: watch::Sender::new(false),
            drains: Mutex::default(),
        });
        let renew = tokio::spawn(renewer::run(shared.clone())).abort_handle();
        let take = tokio::spawn(taker::run(shared.clone())).abort_handle();
        let tasks = Arc::new(WorkerTasks {
            handles: vec![renew, take],
            drains: shared.clone(),
        });
        Self { shared, tasks }
    }

    /// A worker name unique to this process: `<host>-<pid>-<random>`.
    pub fn unique_id() -> String {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".to_owned());
        format!("{host}-{}-{:08x}", std::process::id(), fastrand::u32(..))
    }

    /// This worker's name (the `leaseOwner` it writes).
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// The lease table.
    pub fn table(&self) -> &T {
        &self.shared.table
    }

    /// The configuration in force.
    pub fn config(&self) -> &LeaseConfig {
        &self.shared.config
    }

    /// A checkpoint store writing through this worker's leases: give it to
    /// `checkpoint_batched`. A save of a partition this worker does not
    /// hold (any more) is [`Fenced`](crate::checkpoint::CheckpointError::Fenced).
    pub fn checkpoint_store(&self) -> LeaseCheckpointStore<T> {
        LeaseCheckpointStore::new(self.clone())
    }

    /// The leases this worker acquires, as they come, for the one consumer
    /// that reads them (a source). It ends when the worker stops.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when they were taken already.
    pub fn acquired(&self) -> Result<AcquiredLeases, Error> {
        lock(&self.shared.acquired_rx)
            .take()
            .map(AcquiredLeases::new)
            .ok_or_else(|| {
                Error::Config(format!(
                    "the acquired leases of worker {} are read by another consumer already",
                    self.shared.id
                ))
            })
    }

    /// Keys of the leases held now.
    pub fn held(&self) -> Vec<String> {
        lock(&self.shared.held)
            .keys()
            .map(|k| k.to_string())
            .collect()
    }

    /// The worker's counters.
    pub fn metrics(&self) -> LeaseMetrics {
        self.shared.counters.snapshot()
    }

    /// The table as of the last scan, and what this worker holds.
    pub fn snapshot(&self) -> WorkerSnapshot {
        WorkerSnapshot {
            worker: self.shared.id.to_string(),
            held: self.held(),
            requested: lock(&self.shared.requests).keys().cloned().collect(),
            table: lock(&self.shared.last_scan).clone().unwrap_or_default(),
        }
    }

    /// Starts a graceful stop: no more leases are taken; every held lease
    /// is drained (its source stops, what was yielded is checkpointed) and
    /// released, so that other workers take it at once. Returns
    /// immediately; [`stopped`](Self::stopped) waits for the end.
    pub fn shutdown(&self) {
        self.shared.stopping.send_replace(true);
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
    pub fn is_shutting_down(&self) -> bool {
        *self.shared.stopping.borrow()
    }

    /// Resolves once a graceful stop is complete: every lease released (or
    /// lost), the tasks finished.
    pub async fn stopped(&self) {
        let mut stopped = self.shared.stopped.subscribe();
        let _ = stopped.wait_for(|done| *done).await;
    }

    /// Records the partitions created from `key` (resharding) on its lease,
    /// which this worker must hold.
    ///
    /// # Errors
    ///
    /// [`Error::Checkpoint`] with `Fenced` when the lease is not held (any
    /// more); the table's error when it fails.
    pub async fn record_children(&self, key: &str, children: Vec<String>) -> Result<(), Error> {
        let held = self
            .shared
            .held(key)
            .ok_or_else(|| self.shared.not_held(key))?;
        self.shared
            .write_held(&held, LeaseWrite::SetChildren(children))
            .await
            .map(|_| ())
    }
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

    /// A write to a held lease, with loss handled; see `held`.
    pub(crate) async fn write_held(
        self: &Arc<Self>,
        held: &Arc<HeldLease>,
        write: LeaseWrite,
    ) -> Result<Lease, Error> {
        self.count_request();
        let is_release = matches!(write, LeaseWrite::Release);
        match held.write(&self.table, &self.id, write).await {
            Ok(written) => {
                if written.handoff_requested && !is_release {
                    drain::begin(self, held, drain::DrainReason::Handoff);
                }
                Ok(written.lease)
            }
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

    /// Adds a lease just written by this worker to the held set and hands
    /// it to the consumer.
    pub(crate) fn acquire(self: &Arc<Self>, lease: Lease, how: Acquisition) {
        let key = lease.key.clone();
        let held = Arc::new(HeldLease::new(lease.clone(), self.root_control.sibling()));
        {
            let mut map = lock(&self.held);
            if map.contains_key(key.as_str()) {
                return;
            }
            map.insert(held.key.clone(), held.clone());
            self.counters
                .held
                .store(map.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
        let counter = match how {
            Acquisition::Unowned | Acquisition::Reclaimed => &self.counters.taken_unowned,
            Acquisition::Expired => &self.counters.taken_expired,
            Acquisition::Handoff => &self.counters.handoffs_received,
            Acquisition::ForcedHandoff => &self.counters.handoffs_forced,
        };
        LeaseCounters::add(counter);
        tracing::info!(
            worker = %self.id,
            lease = %key,
            how = how.as_str(),
            counter = lease.counter,
            checkpoint = %lease.checkpoint,
            "lease acquired"
        );
        let sent = lock(&self.acquired_tx)
            .as_ref()
            .map(|tx| tx.send(AcquiredLease::new(held.clone(), lease)).is_ok())
            .unwrap_or(false);
        if !sent {
            // Nobody reads leases any more (stopping): give it back.
            held.report_stop(super::held::StopReport::Unknown);
            drain::begin(self, &held, drain::DrainReason::Shutdown);
        }
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
