//! `buffered_wal`: a durable, batching `Sink<T>` in front of any batch sink.
//!
//! [`WalSinkExt::buffered_wal`] turns a `Sink<Vec<T>>` (a Kinesis stream, a
//! file, your own target) into a [`BufferedWal<T>`], a `Sink<T>` backed by a
//! write-ahead log on local disk. It is the durable cousin of
//! `futures::sink::Buffer`: `start_send` only encodes into a small local
//! buffer, `poll_ready` is `Pending` only for backpressure, and
//! `poll_flush` / `poll_close` drain before they complete.
//!
//! # Guarantees
//!
//! 1. **Durable before acknowledged.** `send(x).await` or `flush().await`
//!    returning `Ok` means `x` is in the log: written and fdatasynced under
//!    [`Fsync::Always`]; written, and on disk at
//!    the next tick, under `Fsync::Interval` (the default, 10 ms); written
//!    and left to the operating system under `Fsync::Never`. Records only
//!    passed to `start_send` (and not flushed yet) are not acknowledged.
//! 2. **At least once, in order.** Every acknowledged record is handed to
//!    the target in acceptance order, or to the dead-letter destination with
//!    its reason, before it is committed (deleted) from the log. After a
//!    crash — or a drop without `close` — opening the same directory delivers
//!    the uncommitted records first, in order. The only duplicates are the
//!    records whose batch was being delivered at the crash and, under
//!    `Fsync::Interval(d)` / `Fsync::Never`, those of the batches delivered
//!    since the commit position was last persisted — about `d` worth of
//!    deliveries, as the position is committed in the background at most
//!    once per `d` (10 ms under `Never`) while batches keep coming. Under
//!    `Fsync::Always` each commit is durable before the next batch.
//! 3. **Batching** by [`max_records`](WalConfig::max_records),
//!    [`max_bytes`](WalConfig::max_bytes) (encoded bytes) and
//!    [`max_age`](WalConfig::max_age) (linger since the oldest undelivered
//!    record), whichever comes first; age-based delivery happens while the
//!    caller is idle.
//! 4. **Bounded.** The log has a byte cap
//!    ([`max_wal_bytes`](WalConfig::max_wal_bytes)); at the cap `poll_ready`
//!    and `poll_flush` are `Pending` until delivery frees space, or fail,
//!    per [`when_full`](WalConfig::when_full). Each handle buffers at most
//!    `max(max_records, 4096)` records (encoded, and the records
//!    themselves) and about `max_bytes` encoded bytes in memory before it
//!    appends them to the log (plus one append in flight); the delivery
//!    task reads at most a few batches at a time from disk and holds
//!    appended records of at most
//!    [`max_held_bytes`](WalConfig::max_held_bytes) encoded bytes in
//!    memory (see 7), so memory does not grow with the backlog.
//! 5. **Failures of the target** are retried per the
//!    [`RetryPolicy`](crate::RetryPolicy); records given up on go to the
//!    dead-letter destination before the commit. If that write fails, or no
//!    destination is configured, nothing is committed, delivery stops and
//!    the error surfaces from the next `poll_ready`, `poll_flush` or
//!    `poll_close` of any handle. See the `delivery` module documentation
//!    for the exact loop. A target that breaks the batch-sink protocol —
//!    it panics, or ends itself after an error as `futures::sink::unfold`
//!    does — stops delivery the same way, with
//!    [`Error::BrokenTarget`] naming the cause
//!    (never a panic in the delivery task); nothing is committed or
//!    dead-lettered for it. [`batch_target`](fn@crate::sink::batch_target)
//!    makes a target that follows the protocol from an `async` closure.
//! 6. **`close().await`** appends this handle's buffer, waits until the
//!    delivery task delivered and committed everything appended so far (by
//!    any handle), and — when it is the last open handle — closes the
//!    target and the dead-letter sink.
//! 7. **Decoding only when needed.** Appended records are also handed to
//!    the delivery task in memory: a batch it reads back from the log
//!    whose records are all still held there is delivered from those
//!    values instead of being decoded again. Records recovered at open,
//!    read again after a failure, or appended while the delivery was more
//!    than [`max_held_bytes`](WalConfig::max_held_bytes) behind, are
//!    decoded from the log. The log decides what is delivered and in
//!    which order either way; only a codec whose `decode` does not give
//!    back what `encode` was given (a field serde skips) makes the two
//!    ways deliver different values.
//!
//! # Not guaranteed
//!
//! - Exactly once: duplicates after a crash are possible (see 2), as with
//!   every at-least-once producer; make the consumer idempotent.
//! - Delivery after the sink is dropped without `close`: dropping the last
//!   handle stops the delivery task at once (the records stay in the log,
//!   see 2).
//!
//! # Concurrency
//!
//! [`BufferedWal`] is `Clone`: every clone has its own local buffer and
//! shares the log writer and the delivery task, so many tasks can send
//! concurrently; under `Fsync::Always` their appends share fdatasyncs
//! (group commit). The order between records of different clones is the
//! order in which their appends reach the log.

mod appended;
mod config;
mod dead_letter;
mod delivery;
mod ext;
mod report;
mod shared;
mod target_guard;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Sink;

use crate::codec::{Codec, JsonCodec};
use crate::error::Error;
use crate::wal::{Fsync, Lsn, OnWritten, Recovery, Wal, WalBatch, WalError, WalStats, WalWriter};

pub use config::{
    WalConfig, DEFAULT_MAX_AGE, DEFAULT_MAX_BYTES, DEFAULT_MAX_HELD_BYTES, DEFAULT_MAX_RECORDS,
};
pub use dead_letter::{DeadLetterTarget, NoDeadLetter};
pub use ext::WalSinkExt;
pub use shared::DeliveryStopped;

use appended::{AppendedRecords, WithLen};
use delivery::Delivery;
use shared::{DeliveryShared, TaskGuard, Waiting};
use target_guard::TargetGuard;

/// A handle appends its local buffer to the log once it holds this many
/// records (or `max_records`, if larger; or `max_bytes`). One append is one
/// message to the log's writer task and at most one `write` call, so
/// appending a few thousand small records at a time, rather than one target
/// batch, costs several times less CPU per record on the `send_all` /
/// `forward` path. (`send` and `flush` append whatever is buffered.)
const LOCAL_BUFFER_MIN_RECORDS: usize = 4096;

/// While its buffer fills, a handle polls the append in flight once per this
/// many records (see `poll_ready`).
const POLL_APPEND_EVERY: usize = 32;

type Append = Pin<Box<dyn Future<Output = Result<Lsn, WalError>> + Send>>;

/// A durable, batching `Sink<T>` in front of a batch sink; made by
/// [`WalSinkExt::buffered_wal`]. See the [module documentation](crate::sink::buffered_wal) for
/// its guarantees.
///
/// ```
/// use futures::SinkExt;
/// use unistream::sink::{MemorySink, WalConfig, WalSinkExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), unistream::Error> {
/// let dir = tempfile::tempdir().unwrap();
/// let target = MemorySink::<String>::new();
/// let delivered = target.handle();
///
/// let mut sink = target.buffered_wal(WalConfig::new(dir.path())).await?;
/// sink.send("durable".to_string()).await?; // Ok: in the write-ahead log
/// sink.close().await?; // Ok: delivered to the target and committed
/// assert_eq!(delivered.records(), vec!["durable".to_string()]);
/// # Ok(()) }
/// ```
#[must_use = "sinks do nothing unless polled"]
pub struct BufferedWal<T, C = JsonCodec> {
    writer: WalWriter,
    codec: C,
    shared: Arc<DeliveryShared>,
    /// Aborts the delivery task when the last handle goes away.
    _guard: Arc<TaskGuard>,
    recovery: Arc<Recovery>,
    /// Records accepted by `start_send`, encoded straight into their log
    /// frames, not yet appended.
    buffer: WalBatch,
    /// The records of `buffer` themselves, with their encoded lengths,
    /// offered to the delivery task once appended (see `appended`); none
    /// are kept when `max_held_bytes` is 0.
    items: Vec<WithLen<T>>,
    hold_items: bool,
    appended: Arc<AppendedRecords<T>>,
    /// The buffer is appended when it holds this many records or
    /// `max_bytes` bytes: `max(max_records, LOCAL_BUFFER_MIN_RECORDS)`.
    buffer_records: usize,
    max_bytes: usize,
    /// The largest record the log accepts; checked in `start_send` so that
    /// one oversized record fails alone instead of failing its whole append.
    max_record_bytes: u64,
    /// The append of the previous buffer, while it is being written.
    in_flight: Option<Append>,
    closing: Closing,
}

/// Where `poll_close` is.
enum Closing {
    /// Not closing (yet).
    Open,
    /// Waiting for the delivery task to commit everything appended.
    AwaitCommit(Waiting),
    /// Waiting for the delivery task to close the target (last handle).
    AwaitTarget(Waiting),
    Closed,
    /// Closing the target failed (after this handle was counted out).
    Failed,
}

impl<T, C> BufferedWal<T, C>
where
    T: Send + 'static,
    C: Codec<T>,
{
    /// Opens the log, starts the delivery task. See
    /// [`WalSinkExt::buffered_wal`].
    async fn open<S, D>(target: S, config: WalConfig<C, D>) -> Result<Self, Error>
    where
        S: Sink<Vec<T>> + Send + 'static,
        S::Error: Into<Error>,
        D: DeadLetterTarget<T>,
    {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::Config("buffered_wal must be opened inside a tokio runtime".to_string())
        })?;
        let (options, batching, retry, codec, dead_letter) = config.into_parts();
        let origin: Arc<str> = Arc::from(options.dir().display().to_string());
        let metrics = crate::observe::delivery::DeliveryMetrics::new::<S>(&options);
        let max_record_bytes = options.max_record_bytes();
        let commit_every = match options.get_fsync() {
            Fsync::Always => None,
            Fsync::Interval(every) => Some(every),
            Fsync::Never => Some(delivery::COMMIT_EVERY_WITHOUT_FSYNC),
        };
        let (writer, reader, recovery) = Wal::open(options).await?;
        if recovery.uncommitted_records > 0 {
            tracing::info!(
                wal = %origin,
                records = recovery.uncommitted_records,
                "delivering records left undelivered by a previous run first"
            );
        }
        let shared = Arc::new(DeliveryShared::new(reader.committed().0));
        let buffer_records = batching.max_records.max(LOCAL_BUFFER_MIN_RECORDS);
        let appended = Arc::new(AppendedRecords::new(batching.max_held_bytes));
        let delivery = Delivery {
            reader,
            target: Box::pin(TargetGuard::new(target)),
            dead_letter: dead_letter.into_sink(),
            codec: codec.clone(),
            batching,
            retry,
            shared: shared.clone(),
            appended: appended.clone(),
            recovered_upto: writer.stats().next_lsn.0,
            origin,
            commit_every,
            last_commit: tokio::time::Instant::now(),
            ahead: Default::default(),
            unflushed: None,
            flush_each_until: 0,
            pending_dead: Vec::new(),
            metrics,
        };
        let span = tracing::info_span!("buffered_wal_delivery", wal_dir = %delivery.origin);
        let task = runtime.spawn(tracing::Instrument::instrument(delivery.run(), span));
        Ok(Self {
            writer,
            codec,
            shared,
            _guard: Arc::new(TaskGuard(task.abort_handle())),
            recovery: Arc::new(recovery),
            buffer: WalBatch::new(),
            items: Vec::new(),
            appended,
            hold_items: batching.max_held_bytes > 0,
            buffer_records,
            max_bytes: batching.max_bytes,
            max_record_bytes,
            in_flight: None,
            closing: Closing::Open,
        })
    }
}

impl<T, C> BufferedWal<T, C> {
    /// The log's counters: bytes on disk, positions appended, synced and
    /// committed.
    pub fn wal_stats(&self) -> WalStats {
        self.writer.stats()
    }

    /// Records accepted by this handle and not yet appended to the log (not
    /// acknowledged yet). Never more than `max(max_records, 4096)`.
    pub fn buffered_records(&self) -> usize {
        self.buffer.len()
    }

    /// Encoded bytes accepted by this handle and not yet appended to the log.
    pub fn buffered_bytes(&self) -> usize {
        self.buffer.payload_bytes() as usize
    }

    fn is_full(&self) -> bool {
        self.buffer.len() >= self.buffer_records || self.buffered_bytes() >= self.max_bytes
    }

    /// Polls the append in flight, if any, to completion.
    fn poll_in_flight(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if let Some(append) = self.in_flight.as_mut() {
            let result = futures::ready!(append.as_mut().poll(cx));
            self.in_flight = None;
            result?;
            // New records: let the delivery task re-check its triggers.
            self.shared.wake.notify_one();
        }
        Poll::Ready(Ok(()))
    }

    fn check_open(&self) -> Result<(), Error> {
        self.shared.check()?;
        if matches!(self.closing, Closing::Closed | Closing::Failed) {
            return Err(Error::Closed {
                what: "this buffered_wal handle",
                hint: "clone an open handle to send more",
            });
        }
        Ok(())
    }
}

impl<T: Send + 'static, C> BufferedWal<T, C> {
    /// Hands the local buffer to the log writer (the previous append is
    /// done); the caller polls it. The records themselves go to
    /// `appended` once the log has written them, before it publishes them,
    /// so that the delivery task never reads them before they are held.
    fn start_append(&mut self) {
        debug_assert!(self.in_flight.is_none());
        // The next buffer starts as large as this one ended: a buffer grown
        // by doubling reallocates a dozen times per append on the
        // `send_all` path; with `send`, this stays one record.
        let capacity = self.buffer.len();
        let bytes = self.buffer.payload_bytes() as usize;
        let batch = std::mem::replace(&mut self.buffer, WalBatch::with_capacity(capacity, bytes));
        let on_written: Option<OnWritten> = if self.hold_items && !self.items.is_empty() {
            let items = std::mem::replace(&mut self.items, Vec::with_capacity(capacity));
            let appended = self.appended.clone();
            Some(Box::new(move |first: Lsn| appended.offer(first.0, items)))
        } else {
            None
        };
        let writer = self.writer.clone();
        self.in_flight = Some(Box::pin(async move {
            writer.append_batch_then(batch, on_written).await
        }));
    }
}

impl<T: Send + 'static, C: Codec<T>> Sink<T> for BufferedWal<T, C> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        this.check_open()?;
        if !this.is_full() {
            // Drive the append in flight without waiting for it, once per
            // `POLL_APPEND_EVERY` records buffered meanwhile: polling it
            // costs more than buffering a record, and noticing its end a
            // few records later delays nothing that matters (`poll_flush`
            // waits for it in any case).
            if this.buffer.len().is_multiple_of(POLL_APPEND_EVERY) {
                let _ = this.poll_in_flight(cx)?;
            }
            return Poll::Ready(Ok(()));
        }
        futures::ready!(this.poll_in_flight(cx))?;
        this.start_append();
        // Poll at once so the records join the log's current group commit;
        // later calls (and `poll_flush`) drive it to completion.
        let _ = this.poll_in_flight(cx)?;
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: T) -> Result<(), Error> {
        let this = self.get_mut();
        this.check_open()?;
        // A record that cannot be encoded, or is too large for the log, is
        // refused alone: nothing else in the buffer is touched.
        let codec = &this.codec;
        let len = this
            .buffer
            .push_with(|buf| codec.encode(&item, buf).map_err(Error::from))?;
        if len as u64 > this.max_record_bytes {
            this.buffer.pop();
            return Err(WalError::RecordTooLarge {
                bytes: len as u64,
                limit: this.max_record_bytes,
            }
            .into());
        }
        if this.hold_items {
            this.items
                .push((item, u32::try_from(len).unwrap_or(u32::MAX)));
        }
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        this.shared.check()?;
        loop {
            futures::ready!(this.poll_in_flight(cx))?;
            if this.buffer.is_empty() {
                return Poll::Ready(Ok(()));
            }
            this.start_append();
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        loop {
            match &mut this.closing {
                Closing::Open => {
                    futures::ready!(Pin::new(&mut *this).poll_flush(cx))?;
                    let target = this.writer.stats().next_lsn.0;
                    this.closing = Closing::AwaitCommit(this.shared.wait_committed(target));
                }
                Closing::AwaitCommit(waiting) => {
                    if let Err(e) = futures::ready!(waiting.as_mut().poll(cx)) {
                        // Never poll the finished future again; a later
                        // `close` starts over and meets the same error.
                        this.closing = Closing::Open;
                        return Poll::Ready(Err(e));
                    }
                    this.closing = if this.shared.handle_done() {
                        Closing::AwaitTarget(this.shared.close_target())
                    } else {
                        Closing::Closed
                    };
                }
                Closing::AwaitTarget(waiting) => {
                    let result = futures::ready!(waiting.as_mut().poll(cx));
                    this.closing = match result {
                        Ok(()) => Closing::Closed,
                        Err(_) => Closing::Failed,
                    };
                    return Poll::Ready(result);
                }
                Closing::Closed => return Poll::Ready(Ok(())),
                Closing::Failed => return Poll::Ready(Err(this.shared.stopped_error())),
            }
        }
    }
}

impl<T, C: Clone> Clone for BufferedWal<T, C> {
    /// Another handle on the same log and delivery task, with its own (empty)
    /// local buffer.
    fn clone(&self) -> Self {
        self.shared.handle_opened();
        Self {
            writer: self.writer.clone(),
            codec: self.codec.clone(),
            shared: self.shared.clone(),
            _guard: self._guard.clone(),
            recovery: self.recovery.clone(),
            buffer: WalBatch::new(),
            items: Vec::new(),
            appended: self.appended.clone(),
            hold_items: self.hold_items,
            buffer_records: self.buffer_records,
            max_bytes: self.max_bytes,
            max_record_bytes: self.max_record_bytes,
            in_flight: None,
            closing: Closing::Open,
        }
    }
}

impl<T, C> Drop for BufferedWal<T, C> {
    fn drop(&mut self) {
        // A handle that finished closing was already counted out.
        if !matches!(
            self.closing,
            Closing::AwaitTarget(_) | Closing::Closed | Closing::Failed
        ) {
            self.shared.handle_done();
        }
    }
}

impl<T, C> Unpin for BufferedWal<T, C> {}

impl<T, C: fmt::Debug> fmt::Debug for BufferedWal<T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferedWal")
            .field("codec", &self.codec)
            .field("buffered_records", &self.buffer.len())
            .field("buffered_bytes", &self.buffered_bytes())
            .field("append_in_flight", &self.in_flight.is_some())
            .finish_non_exhaustive()
    }
}
