//! An in-memory batch sink for tests, with fault injection.
//!
//! [`MemorySink`] is a `Sink<Vec<T>>` that keeps every delivered batch in
//! memory. Its [`MemorySinkHandle`] lets a test look at what arrived and make
//! the target misbehave: fail the next N batches, fail every k-th attempt,
//! add latency, stall completely, or reject chosen records permanently.
//!
//! It follows the crate's batch-sink protocol (see [`crate::Error`]): a
//! failed batch is not stored and the sink stays usable, so the caller may
//! send the same batch again; rejected records are left out of the stored
//! batch and reported by index through [`Error::Rejected`].
//!
//! ```
//! use futures::SinkExt;
//! use unistream::sink::MemorySink;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let mut sink = MemorySink::<u32>::new();
//! let handle = sink.handle();
//! handle.fail_next(1);
//! assert!(sink.send(vec![1, 2]).await.is_err()); // injected failure
//! sink.send(vec![1, 2]).await.unwrap(); // the retry goes through
//! assert_eq!(handle.batches(), vec![vec![1, 2]]);
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Sink;
use tokio::sync::watch;

use crate::error::{Error, RejectedRecord};

type RejectFn<T> = Arc<dyn Fn(&T) -> Option<String> + Send + Sync>;
type Gate = Pin<Box<dyn Future<Output = ()> + Send>>;

/// An in-memory `Sink<Vec<T>>` that records delivered batches.
///
/// Clones share the stored batches and the fault settings.
#[must_use = "sinks do nothing unless polled"]
pub struct MemorySink<T> {
    shared: Arc<MemorySinkShared<T>>,
    pending: Option<Vec<T>>,
    gate: Option<Gate>,
}

/// Inspects a [`MemorySink`] and injects faults into it.
pub struct MemorySinkHandle<T> {
    shared: Arc<MemorySinkShared<T>>,
}

struct MemorySinkShared<T> {
    state: Mutex<MemorySinkState<T>>,
    delivered: watch::Sender<usize>,
    stalled: watch::Sender<bool>,
}

struct MemorySinkState<T> {
    batches: Vec<Vec<T>>,
    records: usize,
    attempts: u64,
    failures: u64,
    fail_next: u64,
    fail_every: Option<u64>,
    latency: Duration,
    reject: Option<RejectFn<T>>,
}

impl<T> MemorySinkShared<T> {
    fn lock(&self) -> MutexGuard<'_, MemorySinkState<T>> {
        // A panic while holding this lock cannot leave the state torn (every
        // update is a single assignment or push), so poisoning is ignored.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<T> MemorySink<T> {
    /// An empty sink that accepts everything.
    pub fn new() -> Self {
        let shared = MemorySinkShared {
            state: Mutex::new(MemorySinkState {
                batches: Vec::new(),
                records: 0,
                attempts: 0,
                failures: 0,
                fail_next: 0,
                fail_every: None,
                latency: Duration::ZERO,
                reject: None,
            }),
            delivered: watch::Sender::new(0),
            stalled: watch::Sender::new(false),
        };
        Self {
            shared: Arc::new(shared),
            pending: None,
            gate: None,
        }
    }

    /// A handle to inspect this sink and inject faults.
    pub fn handle(&self) -> MemorySinkHandle<T> {
        MemorySinkHandle {
            shared: self.shared.clone(),
        }
    }

    fn deliver(&mut self, batch: Vec<T>) -> Result<(), Error> {
        let mut state = self.shared.lock();
        state.attempts += 1;
        let injected = if state.fail_next > 0 {
            state.fail_next -= 1;
            true
        } else {
            matches!(state.fail_every, Some(k) if k > 0 && state.attempts.is_multiple_of(k))
        };
        if injected {
            state.failures += 1;
            return Err(Error::target("memory", "injected failure"));
        }
        let mut rejected = Vec::new();
        let accepted: Vec<T> = match state.reject.clone() {
            None => batch,
            Some(reject) => batch
                .into_iter()
                .enumerate()
                .filter_map(|(index, record)| match reject(&record) {
                    Some(reason) => {
                        rejected.push(RejectedRecord::new(index, reason));
                        None
                    }
                    None => Some(record),
                })
                .collect(),
        };
        if !accepted.is_empty() {
            state.records += accepted.len();
            state.batches.push(accepted);
        }
        let records = state.records;
        drop(state);
        self.shared.delivered.send_replace(records);
        if rejected.is_empty() {
            Ok(())
        } else {
            Err(Error::Rejected(rejected))
        }
    }

    fn make_gate(&self) -> Option<Gate> {
        let latency = self.shared.lock().latency;
        let mut stalled = self.shared.stalled.subscribe();
        if latency.is_zero() && !*stalled.borrow() {
            return None;
        }
        Some(Box::pin(async move {
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            // The sender lives in `MemorySinkShared`, which this sink keeps alive, so
            // the channel cannot close while we wait.
            let _ = stalled.wait_for(|stalled| !*stalled).await;
        }))
    }
}

impl<T> Default for MemorySink<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for MemorySink<T> {
    /// A new sink sharing the stored batches and fault settings (without the
    /// original's batch in progress).
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            pending: None,
            gate: None,
        }
    }
}

impl<T> fmt::Debug for MemorySink<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("MemorySink")
            .field("batches", &state.batches.len())
            .field("records", &state.records)
            .field("pending", &self.pending.as_ref().map(Vec::len))
            .finish()
    }
}

impl<T> Unpin for MemorySink<T> {}

impl<T> Sink<Vec<T>> for MemorySink<T> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.poll_flush(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, batch: Vec<T>) -> Result<(), Error> {
        debug_assert!(self.pending.is_none(), "start_send without poll_ready");
        self.pending = Some(batch);
        Ok(())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = &mut *self;
        if this.pending.is_none() {
            return Poll::Ready(Ok(()));
        }
        if this.gate.is_none() {
            this.gate = this.make_gate();
        }
        if let Some(gate) = this.gate.as_mut() {
            futures::ready!(gate.as_mut().poll(cx));
            this.gate = None;
        }
        match this.pending.take() {
            Some(batch) => Poll::Ready(this.deliver(batch)),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.poll_flush(cx)
    }
}

impl<T> Clone for MemorySinkHandle<T> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<T> fmt::Debug for MemorySinkHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemorySinkHandle").finish_non_exhaustive()
    }
}

impl<T> MemorySinkHandle<T> {
    /// A copy of every delivered batch, in delivery order.
    pub fn batches(&self) -> Vec<Vec<T>>
    where
        T: Clone,
    {
        self.shared.lock().batches.clone()
    }

    /// Every delivered record, in delivery order.
    pub fn records(&self) -> Vec<T>
    where
        T: Clone,
    {
        self.shared.lock().batches.concat()
    }

    /// Number of delivered records.
    pub fn record_count(&self) -> usize {
        self.shared.lock().records
    }

    /// Number of delivered batches.
    pub fn batch_count(&self) -> usize {
        self.shared.lock().batches.len()
    }

    /// Number of delivery attempts, failed ones included.
    pub fn attempts(&self) -> u64 {
        self.shared.lock().attempts
    }

    /// Number of injected failures so far.
    pub fn failures(&self) -> u64 {
        self.shared.lock().failures
    }

    /// Removes and returns everything delivered so far.
    pub fn take(&self) -> Vec<Vec<T>> {
        let mut state = self.shared.lock();
        state.records = 0;
        std::mem::take(&mut state.batches)
    }

    /// Fails the next `n` delivery attempts.
    pub fn fail_next(&self, n: u64) {
        self.shared.lock().fail_next = n;
    }

    /// Fails every `k`-th delivery attempt (counting all attempts); `0` stops.
    pub fn fail_every(&self, k: u64) {
        self.shared.lock().fail_every = (k > 0).then_some(k);
    }

    /// Delays every delivery by `latency`.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.lock().latency = latency;
    }

    /// Stalls deliveries until [`resume`](Self::resume): a stuck target.
    pub fn stall(&self) {
        self.shared.stalled.send_replace(true);
    }

    /// Lets stalled deliveries continue.
    pub fn resume(&self) {
        self.shared.stalled.send_replace(false);
    }

    /// Rejects permanently every record for which `reject` returns a reason.
    pub fn reject_where(&self, reject: impl Fn(&T) -> Option<String> + Send + Sync + 'static) {
        self.shared.lock().reject = Some(Arc::new(reject));
    }

    /// Stops rejecting records and injecting failures.
    pub fn heal(&self) {
        let mut state = self.shared.lock();
        state.reject = None;
        state.fail_next = 0;
        state.fail_every = None;
        state.latency = Duration::ZERO;
        drop(state);
        self.resume();
    }

    /// Waits until at least `n` records were delivered in total.
    pub async fn wait_for_records(&self, n: usize) {
        let mut delivered = self.shared.delivered.subscribe();
        // The sender lives in `MemorySinkShared`, which this handle keeps alive.
        let _ = delivered.wait_for(|count| *count >= n).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::SinkExt;

    #[tokio::test]
    async fn stores_batches_in_order() {
        let mut sink = MemorySink::new();
        let handle = sink.handle();
        sink.send(vec![1, 2]).await.unwrap();
        sink.send(vec![3]).await.unwrap();
        assert_eq!(handle.batches(), vec![vec![1, 2], vec![3]]);
        assert_eq!(handle.records(), vec![1, 2, 3]);
        assert_eq!(handle.record_count(), 3);
    }

    #[tokio::test]
    async fn fail_every_counts_attempts() {
        let mut sink = MemorySink::new();
        let handle = sink.handle();
        handle.fail_every(2);
        assert!(sink.send(vec![1]).await.is_ok());
        assert!(sink.send(vec![2]).await.is_err());
        assert!(sink.send(vec![2]).await.is_ok());
        assert_eq!(handle.records(), vec![1, 2]);
        assert_eq!(handle.failures(), 1);
        assert_eq!(handle.attempts(), 3);
    }

    #[tokio::test]
    async fn rejects_chosen_records_by_index() {
        let mut sink = MemorySink::new();
        let handle = sink.handle();
        handle.reject_where(|x: &i32| (*x < 0).then(|| "negative".to_string()));
        let err = sink.send(vec![1, -2, 3, -4]).await.unwrap_err();
        match err {
            Error::Rejected(rejected) => {
                let indices: Vec<_> = rejected.iter().map(|r| r.index).collect();
                assert_eq!(indices, vec![1, 3]);
                assert_eq!(rejected[0].reason, "negative");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(handle.records(), vec![1, 3]);
    }

    #[tokio::test(start_paused = true)]
    async fn latency_and_stall_delay_delivery() {
        let mut sink = MemorySink::new();
        let handle = sink.handle();
        handle.set_latency(Duration::from_secs(1));
        let start = tokio::time::Instant::now();
        sink.send(vec![1]).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(1));

        handle.heal();
        handle.stall();
        let mut send = tokio_test::task::spawn(sink.send(vec![2]));
        tokio_test::assert_pending!(send.poll());
        tokio::time::advance(Duration::from_secs(60)).await;
        tokio_test::assert_pending!(send.poll());
        handle.resume();
        tokio_test::assert_ready_ok!(send.poll());
        assert_eq!(handle.records(), vec![1, 2]);
    }

    #[tokio::test]
    async fn wait_for_records_resolves() {
        let mut sink = MemorySink::new();
        let handle = sink.handle();
        let waiter = tokio::spawn({
            let handle = handle.clone();
            async move { handle.wait_for_records(3).await }
        });
        sink.send(vec![1, 2]).await.unwrap();
        sink.send(vec![3]).await.unwrap();
        waiter.await.unwrap();
    }
}
