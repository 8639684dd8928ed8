//! [`LeaseWorker`]: one worker's side of lease coordination — the handle,
//! and the state its background tasks share.
//!
//! A worker runs two tasks: the renewer (every held lease, every renew
//! interval, see `renewer`) and the taker (a read of the whole table every
//! scan interval: take, ask for handoffs, notice losses, see `taker`).
//! Leases being given up (handoff, shutdown, finished partitions) are
//! drained by a task each (see `drain`). What they decide reaches the
//! consumer of the leases as [`AcquiredLease`](super::AcquiredLease)s and through each lease's
//! [`PartitionControl`].
//!
//! Dropping every handle stops the tasks at once, like a crash: the leases
//! expire for the other workers after the lease duration. A graceful stop
//! is [`shutdown`](LeaseWorker::shutdown) then
//! [`stopped`](LeaseWorker::stopped).

use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;

use super::acquired::AcquiredLeases;
use super::checkpoint_store::LeaseCheckpointStore;
use super::config::LeaseConfig;
use super::drain;
use super::metrics::{LeaseCounters, LeaseMetrics};
use super::record::Lease;
use super::shared::{lock, DrainAborter, WorkerShared};
use super::table::LeaseTable;
use super::write::LeaseWrite;
use super::{renewer, taker};
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

/// Aborts the worker's tasks when the last handle goes.
struct WorkerTasks {
    handles: Vec<AbortHandle>,
    drains: Arc<dyn DrainAborter>,
}

impl Drop for WorkerTasks {
    fn drop(&mut self) {
        for handle in &self.handles {
            handle.abort();
        }
        self.drains.abort_drains();
    }
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
        LeaseCheckpointStore::new(self.shared.clone())
    }

    /// The leases this worker acquires, as they come, for the one consumer
    /// that reads them (a source). It ends when the worker stops.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when they were taken already.
    pub fn acquired(&self) -> Result<AcquiredLeases, Error> {
        self.shared.take_acquired().ok_or_else(|| {
            Error::Config(format!(
                "the acquired leases of worker {} are read by another consumer already",
                self.shared.id
            ))
        })
    }

    /// Keys of the leases held now.
    pub fn held(&self) -> Vec<String> {
        self.shared.held_keys()
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
            table: self.shared.last_scan(),
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
        drain::write_held(&self.shared, &held, LeaseWrite::SetChildren(children))
            .await
            .map(|_| ())
    }
}
