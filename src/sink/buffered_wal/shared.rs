//! State shared between the [`BufferedWal`](super::BufferedWal) handles and
//! the delivery task.
//!
//! The handles tell the task that records were appended (so it re-checks its
//! batch triggers) and when somebody waits for everything to be delivered
//! (close). The task publishes how far it committed and whether it stopped;
//! the error that stopped it is kept here until a handle hands it to the
//! user.
//!
//! A stopped task never restarts: its records stay in the log and are
//! delivered when the log is opened again.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::{watch, Notify};
use tokio::task::AbortHandle;

use crate::error::Error;

/// A boxed future a handle keeps across polls.
pub(super) type Waiting = Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>;

/// What the delivery task publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Progress {
    /// Everything below this log position is delivered and committed.
    pub(super) committed: u64,
    pub(super) state: TaskState,
}

/// Whether the delivery task still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TaskState {
    Running,
    /// Stopped by an error (kept in [`DeliveryShared`] until taken).
    Stopped,
    /// Finished after closing the target: the last handle closed.
    Closed,
}

/// The delivery of a [`BufferedWal`](super::BufferedWal) has stopped, or
/// the sink was closed, so it takes no more records.
///
/// The error that stopped the delivery is returned once, as it is, by the
/// first call on any handle that notices it; later calls return this error,
/// which repeats its message. Records that were acknowledged stay in the
/// write-ahead log and are delivered when it is opened again.
#[derive(Debug, Clone, thiserror::Error)]
#[error("buffered_wal delivery is not running: {cause}")]
pub struct DeliveryStopped {
    cause: String,
}

impl DeliveryStopped {
    /// Why the delivery is not running.
    pub fn cause(&self) -> &str {
        &self.cause
    }

    fn into_error(self) -> Error {
        Error::target("buffered_wal", self)
    }
}

pub(super) struct DeliveryShared {
    /// Wakes the delivery task: records were appended, or a handle now
    /// waits for delivery (close). `notify_one` keeps a permit when the task
    /// is busy, so no wake-up is lost.
    pub(super) wake: Notify,
    progress: watch::Sender<Progress>,
    /// `false` once the task stopped or closed: the fast path of
    /// [`check`](Self::check), called for every record.
    running: AtomicBool,
    /// The task delivers without waiting for `max_age` while its committed
    /// position is below this (a handle is closing).
    urgent_upto: AtomicU64,
    /// The last open handle closed: close the target and finish.
    close_requested: AtomicBool,
    /// Handles neither closed nor dropped.
    open_handles: AtomicUsize,
    error: Mutex<Option<Error>>,
    cause: Mutex<Option<String>>,
}

impl DeliveryShared {
    pub(super) fn new(committed: u64) -> Self {
        Self {
            wake: Notify::new(),
            progress: watch::Sender::new(Progress {
                committed,
                state: TaskState::Running,
            }),
            running: AtomicBool::new(true),
            urgent_upto: AtomicU64::new(0),
            close_requested: AtomicBool::new(false),
            open_handles: AtomicUsize::new(1),
            error: Mutex::new(None),
            cause: Mutex::new(None),
        }
    }

    // --- called by the delivery task ---

    pub(super) fn urgent_upto(&self) -> u64 {
        self.urgent_upto.load(Ordering::Acquire)
    }

    pub(super) fn close_requested(&self) -> bool {
        self.close_requested.load(Ordering::Acquire)
    }

    pub(super) fn committed(&self, upto: u64) {
        self.progress
            .send_modify(|p| p.committed = p.committed.max(upto));
    }

    pub(super) fn stop(&self, error: Error) {
        tracing::error!(error = %crate::ErrorChain(&error), "buffered_wal delivery stopped; undelivered records stay in the write-ahead log");
        *lock(&self.cause) = Some(crate::ErrorChain(&error).to_string());
        *lock(&self.error) = Some(error);
        self.running.store(false, Ordering::Release);
        self.progress.send_modify(|p| p.state = TaskState::Stopped);
    }

    pub(super) fn closed(&self) {
        *lock(&self.cause) = Some("the sink was closed".to_string());
        self.running.store(false, Ordering::Release);
        self.progress.send_modify(|p| p.state = TaskState::Closed);
    }

    // --- called by the handles ---

    /// `Ok` while the task runs; otherwise the error that stopped it (once)
    /// or a [`DeliveryStopped`].
    pub(super) fn check(&self) -> Result<(), Error> {
        if self.running.load(Ordering::Acquire) {
            return Ok(());
        }
        Err(self.take_error())
    }

    /// The error of a task that is not running: the one that stopped it
    /// (once), then a [`DeliveryStopped`].
    pub(super) fn stopped_error(&self) -> Error {
        self.take_error()
    }

    fn take_error(&self) -> Error {
        if let Some(error) = lock(&self.error).take() {
            return error;
        }
        let cause = lock(&self.cause)
            .clone()
            .unwrap_or_else(|| "unknown cause".to_string());
        DeliveryStopped { cause }.into_error()
    }

    pub(super) fn handle_opened(&self) {
        self.open_handles.fetch_add(1, Ordering::AcqRel);
    }

    /// Returns `true` when this was the last open handle.
    pub(super) fn handle_done(&self) -> bool {
        self.open_handles.fetch_sub(1, Ordering::AcqRel) == 1
    }

    /// Waits until everything below `target` is committed.
    pub(super) fn wait_committed(self: &std::sync::Arc<Self>, target: u64) -> Waiting {
        self.urgent_upto.fetch_max(target, Ordering::AcqRel);
        self.wake.notify_one();
        let shared = self.clone();
        let mut progress = self.progress.subscribe();
        Box::pin(async move {
            let reached = progress
                .wait_for(|p| p.committed >= target || p.state != TaskState::Running)
                .await
                .map(|p| p.committed >= target)
                // The sender lives in `shared`, which this future holds.
                .unwrap_or(false);
            if reached {
                Ok(())
            } else {
                Err(shared.take_error())
            }
        })
    }

    /// Asks the task to close the target and finish, and waits for it.
    pub(super) fn close_target(self: &std::sync::Arc<Self>) -> Waiting {
        self.close_requested.store(true, Ordering::Release);
        self.wake.notify_one();
        let shared = self.clone();
        let mut progress = self.progress.subscribe();
        Box::pin(async move {
            let state = progress
                .wait_for(|p| p.state != TaskState::Running)
                .await
                .map(|p| p.state)
                .unwrap_or(TaskState::Stopped);
            match state {
                TaskState::Closed => Ok(()),
                _ => Err(shared.take_error()),
            }
        })
    }
}

/// Aborts the delivery task when the last handle is dropped: dropping the
/// sink without closing it stops delivery at once, like a crash would. The
/// records stay in the log.
pub(super) struct TaskGuard(pub(super) AbortHandle);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update under these locks is a single assignment: a panic cannot
    // leave them torn, so poisoning is ignored.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
