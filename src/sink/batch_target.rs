//! [`batch_target`]: a target written as one `async` closure (or one
//! `async fn` of a [`BatchTarget`]) over a batch, made a batch sink.
//!
//! A target for [`buffered_wal`](super::WalSinkExt::buffered_wal) is a
//! `Sink<Vec<T>>` that follows the crate's batch-sink protocol (see
//! [`Error`]). Writing the four `Sink` methods by hand means
//! keeping a boxed future in flight across polls; `futures::sink::unfold`
//! does that but ends itself after the first error, so the retry of the
//! failed batch cannot be sent. [`BatchTargetSink`] is the adapter that does
//! it right.
//!
//! # Guarantees
//!
//! - **Usable after an error.** A batch whose future returns `Err` leaves
//!   the target as it was (it is handed back when the future completes):
//!   the next batch — the same one again, for a retry — is sent to it.
//! - **One batch at a time**, in the order `start_send` received them; a
//!   batch is complete when `poll_flush` (or `send(..).await`) returns.
//!   `poll_ready` waits for the batch in flight.
//! - **Rejection by index.** The future may return
//!   [`Error::Rejected`] naming records by their
//!   index in the batch it was given: the indices are passed on sorted and
//!   without duplicates; an index outside the batch is reported as an
//!   [`Error::Target`] instead (the batch is not
//!   taken as delivered), and an empty rejection counts as delivered.
//! - **No panic escapes.** A panicking future is caught and reported as
//!   [`Error::BrokenTarget`]: the target was
//!   inside it, so every later call reports the same error.
//! - `poll_close` waits for the batch in flight, then runs
//!   [`BatchTarget::close`] once.
//!
//! # Not guaranteed
//!
//! - Retries and backoff: that is the caller's job (`buffered_wal` retries
//!   per its [`RetryPolicy`](crate::RetryPolicy)).
//! - Cancellation: dropping the sink drops the batch in flight, and the
//!   target with it.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Sink;

use crate::error::{BrokenTarget, Error, RejectedRecord};

/// A target with state or setup: a connection, a client, a file. Made a
/// batch sink by [`BatchTargetSink::new`].
///
/// `send` gets every batch exactly once per attempt: on `Err`, the same
/// records come again in a later call (a retry), so `send` must leave
/// `self` usable whatever happens.
///
/// ```
/// use futures::SinkExt;
/// use unistream::sink::{BatchTarget, BatchTargetSink};
/// use unistream::Error;
///
/// /// Lines appended to an in-memory table, at most 3 per batch.
/// struct Table {
///     rows: Vec<String>,
/// }
///
/// impl BatchTarget for Table {
///     type Item = String;
///
///     async fn send(&mut self, batch: Vec<String>) -> Result<(), Error> {
///         if batch.len() > 3 {
///             return Err(Error::target("table", "too many rows at once"));
///         }
///         self.rows.extend(batch);
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let mut sink = BatchTargetSink::new(Table { rows: Vec::new() });
/// sink.send(vec!["a".to_string(), "b".to_string()]).await.unwrap();
/// assert!(sink.send(vec![String::new(); 4]).await.is_err());
/// sink.send(vec!["c".to_string()]).await.unwrap(); // still usable
/// # }
/// ```
pub trait BatchTarget: Send + 'static {
    /// The record type of the batches.
    type Item: Send + 'static;

    /// Delivers one batch: `Ok` when every record is stored,
    /// [`Error::Rejected`] when all are except the named ones (which the
    /// target can never accept), any other error to have the batch sent
    /// again later.
    fn send(&mut self, batch: Vec<Self::Item>) -> impl Future<Output = Result<(), Error>> + Send;

    /// Called once by `poll_close`, after the last batch: flush, fsync,
    /// disconnect. Does nothing unless overridden.
    fn close(&mut self) -> impl Future<Output = Result<(), Error>> + Send {
        async { Ok(()) }
    }
}

/// A [`BatchTarget`] made from a closure; see [`batch_target`].
pub struct FnBatchTarget<F, T> {
    send: F,
    _items: PhantomData<fn(T)>,
}

impl<F, Fut, T> BatchTarget for FnBatchTarget<F, T>
where
    F: FnMut(Vec<T>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), Error>> + Send + 'static,
    T: Send + 'static,
{
    type Item = T;

    fn send(&mut self, batch: Vec<T>) -> impl Future<Output = Result<(), Error>> + Send {
        (self.send)(batch)
    }
}

impl<F, T> fmt::Debug for FnBatchTarget<F, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnBatchTarget").finish_non_exhaustive()
    }
}

/// A target in one closure: `send` is called with every batch (an owned
/// `Vec<T>`, to move into the `async move` block) and returns its outcome as
/// the batch-sink protocol reads it — `Ok`, [`Error::Rejected`] by index, or
/// any other error for a retry. See the [module
/// documentation](mod@crate::sink::batch_target) for the guarantees.
///
/// The closure is called again for a retry, so it keeps what it needs
/// across calls by cloning it into each future (a client, an address).
///
/// ```
/// use futures::SinkExt;
/// use unistream::sink::{batch_target, WalConfig, WalSinkExt};
/// use unistream::{Error, RejectedRecord};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Error> {
/// let dir = tempfile::tempdir().unwrap();
/// let target = batch_target(|batch: Vec<i64>| async move {
///     // Deliver the batch somewhere; negative numbers can never go.
///     let rejected: Vec<_> = (0..batch.len())
///         .filter(|&i| batch[i] < 0)
///         .map(|i| RejectedRecord::new(i, "negative"))
///         .collect();
///     if rejected.is_empty() { Ok(()) } else { Err(Error::Rejected(rejected)) }
/// });
/// let mut sink = target.buffered_wal(WalConfig::new(dir.path())).await?;
/// sink.send(42).await?;
/// sink.close().await?;
/// # Ok(()) }
/// ```
pub fn batch_target<T, F, Fut>(send: F) -> BatchTargetSink<FnBatchTarget<F, T>>
where
    F: FnMut(Vec<T>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), Error>> + Send + 'static,
    T: Send + 'static,
{
    BatchTargetSink::new(FnBatchTarget {
        send,
        _items: PhantomData,
    })
}

/// The target's work in flight: it owns the target and hands it back.
type InFlight<B> = Pin<Box<dyn Future<Output = (B, Result<(), Error>)> + Send>>;

/// A `Sink<Vec<B::Item>>` over a [`BatchTarget`], following the batch-sink
/// protocol; made by [`batch_target`] or [`BatchTargetSink::new`].
#[must_use = "sinks do nothing unless polled"]
pub struct BatchTargetSink<B> {
    state: TargetState<B>,
    /// The target's `close` was started (and no batch sent since).
    closed: bool,
}

/// Where a [`BatchTargetSink`]'s target is.
enum TargetState<B> {
    /// Waiting for a batch.
    Idle(B),
    /// Sending a batch of `records` records, or closing.
    Busy { future: InFlight<B>, records: usize },
    /// Lost inside a future that panicked.
    Broken(BrokenTarget),
    /// Only while a call moves the target between states.
    Moving,
}

impl<B: BatchTarget> BatchTargetSink<B> {
    /// A batch sink delivering to `target`.
    pub fn new(target: B) -> Self {
        Self {
            state: TargetState::Idle(target),
            closed: false,
        }
    }

    /// The target, unless a batch is in flight (the future holds it then)
    /// or it was lost to a panic.
    pub fn get_ref(&self) -> Option<&B> {
        match &self.state {
            TargetState::Idle(target) => Some(target),
            _ => None,
        }
    }

    /// Drives the work in flight, if any, to completion; its result.
    fn poll_in_flight(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let TargetState::Busy { future, records } = &mut self.state else {
            return Poll::Ready(match &self.state {
                TargetState::Broken(broken) => Err(broken.clone().into()),
                _ => Ok(()),
            });
        };
        let records = *records;
        match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready((target, result))) => {
                self.state = TargetState::Idle(target);
                Poll::Ready(checked(result, records))
            }
            Err(panic) => {
                let broken = BrokenTarget::Panicked {
                    message: BrokenTarget::panic_message(&*panic),
                };
                self.state = TargetState::Broken(broken.clone());
                Poll::Ready(Err(broken.into()))
            }
        }
    }

    /// Starts `work` on the idle target (the caller drove the previous work
    /// to completion).
    fn start<W, Fut>(&mut self, records: usize, work: W) -> Result<(), Error>
    where
        W: FnOnce(B) -> Fut,
        Fut: Future<Output = (B, Result<(), Error>)> + Send + 'static,
    {
        match std::mem::replace(&mut self.state, TargetState::Moving) {
            TargetState::Idle(target) => {
                self.state = TargetState::Busy {
                    future: Box::pin(work(target)),
                    records,
                };
                Ok(())
            }
            TargetState::Broken(broken) => {
                self.state = TargetState::Broken(broken.clone());
                Err(broken.into())
            }
            other => {
                self.state = other;
                Err(Error::target(
                    "batch_target",
                    "start_send called while a batch is in flight (call poll_ready first)",
                ))
            }
        }
    }
}

/// The outcome of a batch of `records` records as the protocol reads it.
fn checked(result: Result<(), Error>, records: usize) -> Result<(), Error> {
    match result {
        Err(Error::Rejected(mut rejected)) => {
            rejected.sort_by_key(|r| r.index);
            rejected.dedup_by_key(|r| r.index);
            if let Some(RejectedRecord { index, .. }) = rejected.iter().find(|r| r.index >= records)
            {
                return Err(Error::target(
                    "batch_target",
                    format!("the target rejected record index {index} of a batch of {records}"),
                ));
            }
            if rejected.is_empty() {
                Ok(())
            } else {
                Err(Error::Rejected(rejected))
            }
        }
        other => other,
    }
}

impl<B> Unpin for BatchTargetSink<B> {}

impl<B: BatchTarget> Sink<Vec<B::Item>> for BatchTargetSink<B> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_in_flight(cx)
    }

    fn start_send(self: Pin<&mut Self>, batch: Vec<B::Item>) -> Result<(), Error> {
        let this = self.get_mut();
        this.closed = false;
        this.start(batch.len(), |mut target| async move {
            let result = target.send(batch).await;
            (target, result)
        })
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_in_flight(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        // A batch in flight completes first; then the close runs once (a
        // close already started is what was just driven).
        futures::ready!(this.poll_in_flight(cx))?;
        if this.closed {
            return Poll::Ready(Ok(()));
        }
        this.closed = true;
        this.start(0, |mut target| async move {
            let result = target.close().await;
            (target, result)
        })?;
        this.poll_in_flight(cx)
    }
}

impl<B> fmt::Debug for BatchTargetSink<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            TargetState::Idle(_) => "idle",
            TargetState::Busy { .. } => "busy",
            TargetState::Broken(_) => "broken",
            TargetState::Moving => "moving",
        };
        f.debug_struct("BatchTargetSink")
            .field("state", &state)
            .field("closed", &self.closed)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::SinkExt;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    fn indices(err: Error) -> Vec<usize> {
        match err {
            Error::Rejected(rejected) => rejected.iter().map(|r| r.index).collect(),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn stays_usable_after_an_error_and_takes_the_same_batch_again() {
        let calls = Arc::new(AtomicU32::new(0));
        let mut sink = batch_target({
            let calls = calls.clone();
            move |batch: Vec<u32>| {
                let call = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    match call {
                        0 => Err(Error::target("test", "first call fails")),
                        _ => {
                            assert_eq!(batch, vec![1, 2]);
                            Ok(())
                        }
                    }
                }
            }
        });
        assert!(matches!(
            sink.send(vec![1, 2]).await,
            Err(Error::Target { .. })
        ));
        sink.send(vec![1, 2]).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn rejections_are_sorted_deduplicated_and_checked_against_the_batch() {
        let mut sink = batch_target(|batch: Vec<usize>| async move {
            // Rejects the indices the batch names.
            Err(Error::Rejected(
                batch
                    .iter()
                    .map(|&i| RejectedRecord::new(i, "no"))
                    .collect(),
            ))
        });
        let err = sink.send(vec![2, 0, 2]).await.unwrap_err();
        assert_eq!(indices(err), vec![0, 2]);
        // An index outside the batch is the target's bug, not a rejection.
        let err = sink.send(vec![5, 0]).await.unwrap_err();
        assert!(
            matches!(&err, Error::Target { .. })
                && std::error::Error::source(&err)
                    .is_some_and(|s| s.to_string().contains("index 5")),
            "{err:?}"
        );
        // No index: delivered.
        sink.send(vec![]).await.unwrap();
    }

    #[tokio::test]
    async fn a_panic_is_a_typed_error_from_then_on() {
        let mut sink = batch_target(|batch: Vec<u32>| async move {
            assert!(batch.is_empty(), "target bug");
            Ok(())
        });
        for _ in 0..2 {
            match sink.send(vec![1]).await.unwrap_err() {
                Error::BrokenTarget(BrokenTarget::Panicked { message }) => {
                    assert!(message.contains("target bug"), "{message}")
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(sink.close().await.is_err());
    }

    struct Counting {
        sent: Vec<u32>,
        closes: Arc<AtomicU32>,
    }

    impl BatchTarget for Counting {
        type Item = u32;

        async fn send(&mut self, batch: Vec<u32>) -> Result<(), Error> {
            tokio::task::yield_now().await;
            self.sent.extend(batch);
            Ok(())
        }

        async fn close(&mut self) -> Result<(), Error> {
            self.closes.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    #[tokio::test]
    async fn close_waits_for_the_batch_in_flight_and_closes_once() {
        let closes = Arc::new(AtomicU32::new(0));
        let mut sink = BatchTargetSink::new(Counting {
            sent: Vec::new(),
            closes: closes.clone(),
        });
        sink.feed(vec![1, 2]).await.unwrap(); // in flight, not flushed
        assert!(sink.get_ref().is_none());
        sink.close().await.unwrap();
        sink.close().await.unwrap();
        assert_eq!(closes.load(Ordering::SeqCst), 1);
        assert_eq!(sink.get_ref().map(|t| t.sent.clone()), Some(vec![1, 2]));
    }
}
