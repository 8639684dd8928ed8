//! The delivery task: moves records from the write-ahead log to the target.
//!
//! One task per opened log, spawned on tokio. It loops:
//!
//! 1. **Wait for a batch to be due**: the undelivered backlog reached
//!    `max_records` or `max_bytes` (encoded bytes), or its oldest record is
//!    `max_age` old (checked on `tokio::time`, so it fires while nobody
//!    sends), or a handle is closing, or the records were recovered from a
//!    previous run (those go first, at once).
//! 2. **Read** the batch from the log (from disk: memory does not grow with
//!    the backlog) and decode it — unless the records the handles appended
//!    at exactly those positions are still held in memory (`appended`):
//!    those are taken as they were sent, so a delivery that keeps up
//!    decodes nothing. When the backlog holds several full batches, up to
//!    [`READ_AHEAD_BATCHES`] of them are read in one go (at most
//!    [`READ_AHEAD_BYTES`] unless one batch is larger), which saves a
//!    trip to the blocking thread pool per batch; each is still delivered
//!    and committed on its own. Large reads are decoded on the blocking
//!    thread too. While the target works on one batch, the next full
//!    batches (if one is already due by size; about [`PREFETCH_RECORDS`]
//!    records, at least one batch) are read and decoded meanwhile, so
//!    reading, decoding and the target's own work overlap; nothing read
//!    ahead counts as delivered until the target has taken it. Bytes that no
//!    longer decode (the codec changed) become dead letters carrying the raw
//!    bytes.
//! 3. **Deliver** it to the target (`send` + flush), retrying failures per
//!    the [`RetryPolicy`] with backoff. [`Error::Rejected`] means the batch
//!    went through except the named records, which become dead letters with
//!    the target's reason. A batch that exhausts its attempts becomes dead
//!    letters as a whole.
//!
//!    Under `Fsync::Interval` and `Fsync::Never` a batch is *fed* (the
//!    target's `poll_ready`, `start_send`, then `poll_ready` again, which is
//!    where a batch sink reports how the batch went) rather than sent with a
//!    flush of its own; the target's flush — where a `FileSink` fdatasyncs —
//!    runs once for all the batches fed since the previous one, right before
//!    they are committed (step 5). A batch is thus committed only after the
//!    target made it durable, at the cost of one flush per commit instead of
//!    one per batch. If that flush fails, nothing of those batches is
//!    committed: the task reads them again from the log and sends each with
//!    its own flush (so a retry, a rejection or a dead letter concerns one
//!    batch as usual). A target that reports a batch's outcome only at its
//!    flush is therefore served correctly too, at the price of re-sending
//!    the batches of a failed flush.
//! 4. **Dead-letter** those records, if any, in one write: at once for a
//!    batch sent with its own flush; for fed batches, once the target's
//!    flush of their group succeeded (right before the commit), so that a
//!    failed flush, which delivers the group again, does not dead-letter
//!    the same records twice.
//! 5. **Commit** the batch in the log, only now (after the target's flush
//!    and the dead letters). Under `Fsync::Always` the task waits until
//!    the committed position is durable before it reads the next batch, so
//!    a crash re-sends at most the batch in flight.
//!    Under `Fsync::Interval(d)` (and `Fsync::Never`, with
//!    [`COMMIT_EVERY_WITHOUT_FSYNC`]) the durability of acknowledged records
//!    is already a matter of `d`, and so is the commit: while batches keep
//!    coming the task hands the delivered position to the log's background
//!    committer at most once per `d`, and always before it goes idle. Each
//!    persisted position costs an fdatasync; committing every small batch
//!    would spend more CPU on them than on the records. A crash then also
//!    re-sends the batches delivered since the last persisted position (at
//!    most about `d` of deliveries plus one persist), never loses any.
//!    `close` waits until the position is durable.
//!
//! Any failure the task cannot resolve — a dead-letter write that fails, a
//! record to give up on while no dead-letter destination is configured, a
//! log error, a target that broke the batch-sink protocol
//! ([`Error::BrokenTarget`], see `target_guard`) — **stops** the task:
//! nothing more is committed, the error is handed to the user by the next
//! call on a handle, and the undelivered records stay in the log for the
//! next time it is opened. The task does not retry such failures itself,
//! because only the user can fix their cause.
//!
//! # Why one file
//!
//! The file is past 500 lines and holds one concept, the loop above: its
//! steps share the task's state (the reader, the batches read ahead, the
//! retry attempts, when the position was last committed), and how one step
//! ends decides what the next does, so each part would be read only
//! through the others. What the task shares with the handles is in
//! `shared.rs`, the dead-letter destination in `dead_letter.rs`.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, Sink, SinkExt};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::codec::{Codec, CodecError};
use crate::dead_letter::DeadLetter;
use crate::error::{Error, RejectedRecord};
use crate::retry::RetryPolicy;
use crate::wal::{Lsn, WalReader, WalRecord};

use super::appended::AppendedRecords;
use super::config::Batching;
use super::dead_letter::BoxDeadLetterSink;
use super::shared::DeliveryShared;
use crate::observe::delivery::DeliveryMetrics;
use crate::observe::handles::{record_since, start_timer};

/// How often the delivered position is committed while batches keep coming,
/// under `Fsync::Never` (under `Fsync::Interval(d)`: every `d`).
pub(super) const COMMIT_EVERY_WITHOUT_FSYNC: Duration = Duration::from_millis(10);

/// Full batches read from the log in one go, at most.
pub(super) const READ_AHEAD_BATCHES: usize = 8;
/// Bytes read ahead, at most (unless a single batch is larger).
pub(super) const READ_AHEAD_BYTES: usize = 8 << 20;
/// Records read (and decoded) while the target works on a batch, at most
/// (at least one batch): about what the target takes meanwhile, so that
/// neither side waits for the other.
const PREFETCH_RECORDS: usize = 4096;
/// Reads of at least this many records are decoded on the blocking thread
/// pool; smaller ones (where the trip costs more than it saves) in place.
const DECODE_APART_RECORDS: usize = 256;

/// A batch read from the log, with each record decoded (or being decoded).
pub(super) struct ReadBatch<T> {
    records: Vec<WalRecord>,
    decoded: Decoding<T>,
}

/// Each record of a batch decoded, or what decoding it panicked with.
type Decoded<T> = Result<Vec<Result<T, CodecError>>, Error>;

/// The records of a read batch, decoded or on their way.
enum Decoding<T> {
    Done(Vec<Result<T, CodecError>>),
    /// Decoded on the blocking thread pool, batch after batch, while the
    /// earlier batches of the same read are delivered.
    Pending(oneshot::Receiver<Decoded<T>>),
}

impl<T> Decoding<T> {
    async fn wait(self) -> Decoded<T> {
        match self {
            Decoding::Done(decoded) => Ok(decoded),
            // The sender is dropped without a value only when the blocking
            // task was cancelled, which happens when the runtime shuts down.
            Decoding::Pending(rx) => rx.await.unwrap_or_else(|_| {
                Err(Error::Closed {
                    what: "the Tokio runtime",
                    hint: "the records stay in the write-ahead log for the next open",
                })
            }),
        }
    }
}

pub(super) struct Delivery<T, S, C> {
    pub(super) reader: WalReader,
    pub(super) target: Pin<Box<S>>,
    pub(super) dead_letter: Option<BoxDeadLetterSink<T>>,
    pub(super) codec: C,
    pub(super) batching: Batching,
    pub(super) retry: RetryPolicy,
    pub(super) shared: Arc<DeliveryShared>,
    /// Appended records handed over in memory: taken instead of decoding.
    pub(super) appended: Arc<AppendedRecords<T>>,
    /// Records below this position were recovered from a previous run and
    /// are delivered without waiting for a batch to fill.
    pub(super) recovered_upto: u64,
    /// Names the log in dead-letter origins.
    pub(super) origin: Arc<str>,
    /// `None`: wait for every commit to be durable before going on
    /// (`Fsync::Always`). `Some(d)`: commit in the background, at most once
    /// per `d` while busy.
    pub(super) commit_every: Option<Duration>,
    /// When the delivered position was last handed to the committer.
    pub(super) last_commit: Instant,
    /// Full batches read ahead, not yet delivered.
    pub(super) ahead: VecDeque<ReadBatch<T>>,
    /// Batches handed to the target since its last flush (taken, not yet
    /// made durable): from the first lsn of the first to the end of the
    /// last. Flushed before any of them is committed.
    pub(super) unflushed: Option<(u64, u64)>,
    /// Batches below this lsn are sent with a flush each (after a flush of
    /// a group failed, so that every outcome is the batch's own).
    pub(super) flush_each_until: u64,
    /// Dead letters of the batches given up on (in part or whole) since
    /// the target's last flush, by the first lsn of their batch: written
    /// once that flush succeeded, before the commit. A failed flush
    /// delivers those batches again, which give the same records up again,
    /// so they are dropped then rather than written twice.
    pub(super) pending_dead: Vec<(u64, Vec<DeadLetter<T>>)>,
    /// Counted once per batch (see [`crate::observe`]).
    pub(super) metrics: DeliveryMetrics,
}

/// What the task does next.
enum Next {
    Deliver,
    Close,
}

/// How a delivery ended.
enum DeliveryOutcome {
    Delivered,
    Rejected(Vec<RejectedRecord>),
    Exhausted(Error),
}

impl<T, S, C> Delivery<T, S, C>
where
    T: Send + 'static,
    S: Sink<Vec<T>> + Send + 'static,
    S::Error: Into<Error>,
    C: Codec<T>,
{
    pub(super) async fn run(mut self) {
        // A panic in user code (the target, the codec) must not leave the
        // handles waiting for a task that is gone: it stops delivery like
        // any other error.
        let result = AssertUnwindSafe(self.run_until_closed())
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| {
                Err(Error::panicked("the buffered_wal delivery task", &*panic))
            });
        match result {
            Ok(()) => self.shared.closed(),
            Err(error) => self.shared.stop(error),
        }
    }

    async fn run_until_closed(&mut self) -> Result<(), Error> {
        loop {
            match self.next_due().await? {
                Next::Deliver => self.deliver_batch().await?,
                Next::Close => {
                    self.target.close().await.map_err(Into::into)?;
                    if let Some(dead_letter) = self.dead_letter.as_mut() {
                        dead_letter
                            .close()
                            .await
                            .map_err(|e| Error::DeadLetter(Box::new(e)))?;
                    }
                    return Ok(());
                }
            }
        }
    }

    /// Waits until a batch is due or the target is to be closed, publishing
    /// the durable commit position as it advances.
    ///
    /// Here no batch is in the task's hands: everything below
    /// `reader.next_lsn()` is delivered (or dead-lettered).
    async fn next_due(&mut self) -> Result<Next, Error> {
        loop {
            if !self.ahead.is_empty() {
                return Ok(Next::Deliver);
            }
            let delivered = self.reader.next_lsn().0;
            let backlog = self.reader.backlog();
            let due = if backlog.records == 0 {
                None
            } else if backlog.records >= self.batching.max_records as u64
                || backlog.bytes >= self.batching.max_bytes as u64
                || delivered < self.recovered_upto
                || delivered < self.shared.urgent_upto()
                || self.shared.close_requested()
            {
                return Ok(Next::Deliver);
            } else {
                match backlog.oldest_appended_at {
                    Some(oldest) if Instant::now() < oldest + self.batching.max_age => {
                        Some(oldest + self.batching.max_age)
                    }
                    _ => return Ok(Next::Deliver),
                }
            };

            // About to wait: commit what was delivered first.
            if !self.commit_delivered().await? {
                // The target lost the batches since its last flush: they
                // are back in the log's backlog.
                continue;
            }
            self.shared.committed(self.reader.durable_committed().0);
            let committed = self.reader.committed();
            let persisting = self.reader.durable_committed() < committed;
            match due {
                Some(due) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(due) => return Ok(Next::Deliver),
                        () = self.shared.wake.notified() => {}
                    }
                }
                None if persisting => {
                    // Idle: wait for the background commit to be durable
                    // (what `close` waits for), or for new records.
                    tokio::select! {
                        result = self.reader.wait_committed(committed) => result?,
                        () = self.shared.wake.notified() => {}
                    }
                }
                None if self.shared.close_requested() => return Ok(Next::Close),
                None => self.shared.wake.notified().await,
            }
        }
    }

    /// Makes the target flush what it took, then hands everything
    /// delivered so far to the log's background committer. `false` when
    /// the flush failed (see [`flush_target`](Self::flush_target)).
    async fn commit_delivered(&mut self) -> Result<bool, Error> {
        if !self.flush_target().await? {
            return Ok(false);
        }
        let delivered = self.reader.next_lsn();
        if delivered > self.reader.committed() {
            self.reader.start_commit(delivered)?;
            self.last_commit = Instant::now();
        }
        Ok(true)
    }

    /// Flushes the target when batches were handed to it since its last
    /// flush: the one step that makes all of them durable (one fdatasync
    /// for a `FileSink`), before any of them is committed. Returns `false`
    /// when that flush failed: then nothing of them is committed, the
    /// reader is rewound to the first of them, the batches read ahead are
    /// dropped, and those batches are delivered again one `send` (with its
    /// flush) each, so that retries, rejections and dead letters concern
    /// one batch as usual.
    async fn flush_target(&mut self) -> Result<bool, Error> {
        let Some((from, upto)) = self.unflushed.take() else {
            self.write_pending_dead().await?;
            return Ok(true);
        };
        match self.target.flush().await.map_err(Into::into) {
            Ok(()) => {
                self.write_pending_dead().await?;
                Ok(true)
            }
            Err(error @ Error::BrokenTarget(_)) => Err(error),
            Err(error) => {
                // Nothing at or above `from` is committed: it is committed
                // only after this flush. (Below `from` there may be an
                // uncommitted batch that exhausted its attempts: it is not
                // delivered again, and its dead letters stay pending.)
                debug_assert!(self.reader.committed().0 <= from);
                self.pending_dead.retain(|(lsn, _)| *lsn < from);
                tracing::warn!(
                    error = %crate::ErrorChain(&error),
                    records = upto - from,
                    "the target failed to flush the batches it took; delivering them again"
                );
                self.ahead.clear();
                self.reader.rewind(Lsn(from));
                self.flush_each_until = self.flush_each_until.max(upto);
                Ok(false)
            }
        }
    }

    /// The next batch: read ahead earlier, or read now together with the
    /// full batches that follow it.
    async fn read_batch(&mut self) -> Result<ReadBatch<T>, Error> {
        if let Some(batch) = self.ahead.pop_front() {
            return Ok(batch);
        }
        let mut batches = read_batches(
            &mut self.reader,
            &self.codec,
            &self.appended,
            &self.batching,
            READ_AHEAD_BATCHES,
        )
        .await?;
        let batch = batches.pop_front().unwrap_or(ReadBatch {
            records: Vec::new(),
            decoded: Decoding::Done(Vec::new()),
        });
        self.ahead = batches;
        Ok(batch)
    }

    /// Whether a full batch beyond the one in hand is already due by size,
    /// so that it can be read while the target works.
    fn next_batch_full(&self) -> bool {
        let backlog = self.reader.backlog();
        self.ahead.is_empty()
            && (backlog.records >= self.batching.max_records as u64
                || backlog.bytes >= self.batching.max_bytes as u64)
    }

    /// Reads, delivers, dead-letters and commits one batch.
    async fn deliver_batch(&mut self) -> Result<(), Error> {
        let ReadBatch { records, decoded } = self.read_batch().await?;
        let results = decoded.wait().await?;
        let (Some(first), Some(last)) = (
            records.first().map(|r| r.lsn.0),
            records.last().map(|r| r.lsn.0),
        ) else {
            return Ok(());
        };
        // Under `Fsync::Always` every batch is committed (durably) before
        // the next, so it is flushed on its own; otherwise batches are only
        // handed over (`feed`) and flushed together before the commit.
        let flush_each = self.commit_every.is_none() || first < self.flush_each_until;

        // Remember which log records the batch holds, so rejected indices
        // map back to them.
        let mut dead: Vec<(usize, DeadLetter<T>)> = Vec::new();
        let mut decoded = Vec::with_capacity(records.len());
        let mut in_batch = Vec::with_capacity(records.len());
        for (i, (record, result)) in records.iter().zip(results).enumerate() {
            match result {
                Ok(item) => {
                    decoded.push(item);
                    in_batch.push(i);
                }
                Err(e) => dead.push((
                    i,
                    DeadLetter::raw(
                        record.payload.clone(),
                        format!(
                            "cannot decode the record stored in the write-ahead log: {}",
                            crate::ErrorChain(&e)
                        ),
                    )
                    .with_origin(self.origin_of(record)),
                )),
            }
        }

        // Deliver, reading the next full batch meanwhile.
        let read_ahead = self.next_batch_full();
        let started = start_timer();
        let deliver = async {
            if decoded.is_empty() {
                Ok((DeliveryOutcome::Delivered, 0))
            } else {
                deliver_with_retry(
                    &mut self.target,
                    &self.codec,
                    &self.retry,
                    flush_each,
                    decoded,
                    &records,
                    &in_batch,
                )
                .await
            }
        };
        let read = async {
            if read_ahead {
                let batches = (PREFETCH_RECORDS / self.batching.max_records).max(1);
                Some(
                    read_batches(
                        &mut self.reader,
                        &self.codec,
                        &self.appended,
                        &self.batching,
                        batches,
                    )
                    .await,
                )
            } else {
                None
            }
        };
        let (delivered, read) = futures::future::join(deliver, read).await;
        // A failed read stops the task, but only after this batch is done
        // with (dead-lettered, committed).
        let read_error = match read {
            Some(Ok(batches)) => {
                self.ahead = batches;
                None
            }
            Some(Err(e)) => Some(e),
            None => None,
        };
        let (outcome, attempts) = delivered?;
        // Every attempt but the last failed and was retried.
        self.metrics
            .retries
            .increment(u64::from(attempts.saturating_sub(1)));
        if !in_batch.is_empty() {
            let stored = match &outcome {
                DeliveryOutcome::Delivered => Some(in_batch.len()),
                DeliveryOutcome::Rejected(rejected) => {
                    self.metrics
                        .rejected_records
                        .increment(rejected.len() as u64);
                    Some(in_batch.len().saturating_sub(rejected.len()))
                }
                DeliveryOutcome::Exhausted(_) => None,
            };
            if let Some(stored) = stored {
                self.metrics.batches.increment(1);
                self.metrics.records.increment(stored as u64);
                record_since(&self.metrics.seconds, started);
            }
        }
        if !flush_each && !matches!(outcome, DeliveryOutcome::Exhausted(_)) {
            // Taken by the target, durable with its next flush.
            let from = self.unflushed.map_or(first, |(from, _)| from);
            self.unflushed = Some((from, last + 1));
        }

        let mut given_up_error = None;
        match outcome {
            DeliveryOutcome::Delivered => {}
            DeliveryOutcome::Rejected(rejected) => {
                for r in &rejected {
                    let Some(&i) = in_batch.get(r.index) else {
                        return Err(Error::target(
                            "buffered_wal",
                            format!(
                                "the target rejected record index {} of a batch of {} records",
                                r.index,
                                in_batch.len()
                            ),
                        ));
                    };
                    let record = self.codec.decode(&records[i].payload)?;
                    dead.push((
                        i,
                        DeadLetter::record(record, r.reason.clone(), attempts)
                            .with_origin(self.origin_of(&records[i])),
                    ));
                }
                given_up_error = Some(Error::Rejected(rejected));
            }
            DeliveryOutcome::Exhausted(error) => {
                let reason = format!(
                    "gave up after {attempts} attempt(s): {}",
                    crate::ErrorChain(&error)
                );
                for &i in &in_batch {
                    let record = self.codec.decode(&records[i].payload)?;
                    dead.push((
                        i,
                        DeadLetter::record(record, reason.clone(), attempts)
                            .with_origin(self.origin_of(&records[i])),
                    ));
                }
                given_up_error = Some(error);
            }
        }

        if !dead.is_empty() {
            if self.dead_letter.is_none() {
                // Nothing may be given up on without a destination: stop,
                // leaving the batch in the log.
                return Err(match given_up_error {
                    Some(error) => error,
                    None => {
                        let (_, first) = &dead[0];
                        Error::target(
                            "buffered_wal",
                            format!(
                                "{} record(s) in the write-ahead log cannot be decoded and no \
                                 dead-letter destination is configured (first: {}, {})",
                                dead.len(),
                                first.origin.as_deref().unwrap_or("-"),
                                first.reason
                            ),
                        )
                    }
                });
            }
            dead.sort_by_key(|(i, _)| *i);
            let entries = dead.into_iter().map(|(_, entry)| entry).collect::<Vec<_>>();
            self.pending_dead.push((first, entries));
            // A batch sent with its own flush is done with; a fed one is
            // given up on for good only if the flush of its group succeeds.
            if flush_each {
                self.write_pending_dead().await?;
            }
        }

        match self.commit_every {
            None => self.reader.commit(Lsn(last + 1)).await?,
            // Also when the task is about to stop on a failed read: what
            // was delivered need not be delivered again.
            Some(every) if read_error.is_some() || self.last_commit.elapsed() >= every => {
                // Up to this batch, not what was read ahead: under a steady
                // backlog something is always read ahead. What the target
                // took is flushed first; if that fails, nothing is.
                if self.flush_target().await? {
                    if Lsn(last + 1) > self.reader.committed() {
                        self.reader.start_commit(Lsn(last + 1))?;
                    }
                    self.last_commit = Instant::now();
                }
            }
            Some(_) => {} // committed later: within `every`, or when idle
        }
        self.shared.committed(self.reader.durable_committed().0);
        match read_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Writes the pending dead letters (see `pending_dead`), in one write.
    async fn write_pending_dead(&mut self) -> Result<(), Error> {
        if self.pending_dead.is_empty() {
            return Ok(());
        }
        // Pending only once a destination was found for them.
        let Some(dead_letter) = self.dead_letter.as_mut() else {
            return Err(Error::Config(
                "buffered_wal: dead letters without a destination".to_string(),
            ));
        };
        let entries: Vec<DeadLetter<T>> = std::mem::take(&mut self.pending_dead)
            .into_iter()
            .flat_map(|(_, entries)| entries)
            .collect();
        let count = entries.len();
        dead_letter
            .send(entries)
            .await
            .map_err(|e| Error::DeadLetter(Box::new(e)))?;
        self.metrics.dead_letters.increment(count as u64);
        tracing::warn!(count, "records sent to the dead-letter destination");
        Ok(())
    }

    fn origin_of(&self, record: &WalRecord) -> String {
        format!("wal {} lsn {}", self.origin, record.lsn.0)
    }
}

/// Sends the batch until it is delivered, partly rejected, or out of
/// attempts. Returns the outcome and the attempts made.
///
/// With `flush_each`, every attempt is a `send` (the batch and a flush);
/// otherwise it is a `feed` followed by `poll_ready`, which is where a
/// batch sink reports the outcome of the batch it took (see
/// [`Error`](crate::Error)), leaving its durability to the next flush.
async fn deliver_with_retry<T, S, C>(
    target: &mut Pin<Box<S>>,
    codec: &C,
    retry: &RetryPolicy,
    flush_each: bool,
    first: Vec<T>,
    records: &[WalRecord],
    in_batch: &[usize],
) -> Result<(DeliveryOutcome, u32), Error>
where
    S: Sink<Vec<T>>,
    S::Error: Into<Error>,
    C: Codec<T>,
{
    let mut batch = Some(first);
    let mut attempts: u32 = 0;
    loop {
        // A failed send consumed the batch; decode it again from the
        // bytes read from the log rather than require `T: Clone`.
        let items = match batch.take() {
            Some(items) => items,
            None => codec
                .decode_batch(in_batch.iter().map(|&i| &records[i].payload))
                .into_iter()
                .collect::<Result<Vec<_>, _>>()?,
        };
        attempts = attempts.saturating_add(1);
        let sent = if flush_each {
            target.send(items).await
        } else {
            match target.feed(items).await {
                Ok(()) => futures::future::poll_fn(|cx| target.as_mut().poll_ready(cx)).await,
                Err(e) => Err(e),
            }
        };
        match sent.map_err(Into::into) {
            Ok(()) => return Ok((DeliveryOutcome::Delivered, attempts)),
            Err(Error::Rejected(rejected)) => {
                return Ok((DeliveryOutcome::Rejected(rejected), attempts))
            }
            // The target cannot be used any more: stop, keep the records.
            Err(error @ Error::BrokenTarget(_)) => return Err(error),
            Err(error) if retry.allows_another(attempts) => {
                let delay = retry.backoff(attempts - 1);
                tracing::warn!(error = %crate::ErrorChain(&error), attempts, ?delay, "delivery failed; retrying");
                tokio::time::sleep(delay).await;
            }
            Err(error) => return Ok((DeliveryOutcome::Exhausted(error), attempts)),
        }
    }
}

/// Reads the next batch from the log together with the full batches that
/// follow it (up to `max_batches` in all, and [`READ_AHEAD_BYTES`]), and
/// decodes them (large reads on the blocking thread pool), except the
/// batches whose records are still held in memory (`appended`). A partial
/// batch behind full ones is left in the log, where its age keeps counting.
async fn read_batches<T, C>(
    reader: &mut WalReader,
    codec: &C,
    appended: &AppendedRecords<T>,
    batching: &Batching,
    max_batches: usize,
) -> Result<VecDeque<ReadBatch<T>>, Error>
where
    T: Send + 'static,
    C: Codec<T>,
{
    let Batching {
        max_records,
        max_bytes,
        ..
    } = *batching;
    let chunk = reader
        .next_batch(
            max_records.saturating_mul(max_batches),
            max_bytes.max(READ_AHEAD_BYTES.min(max_bytes.saturating_mul(max_batches))),
        )
        .await?;
    let total = chunk.len();
    let mut batches = Vec::new();
    let capacity = max_records.min(total);
    let mut current: Vec<WalRecord> = Vec::with_capacity(capacity);
    let mut bytes = 0;
    for record in chunk {
        if !current.is_empty()
            && (current.len() >= max_records || bytes + record.payload.len() > max_bytes)
        {
            batches.push(std::mem::replace(
                &mut current,
                Vec::with_capacity(capacity),
            ));
            bytes = 0;
        }
        bytes += record.payload.len();
        current.push(record);
    }
    if let Some(first) = current.first() {
        let full = current.len() >= max_records || bytes >= max_bytes;
        if batches.is_empty() || full {
            batches.push(current);
        } else {
            reader.rewind(first.lsn);
        }
    }
    // Batches whose records are still held in memory need no decoding. A
    // batch with a gap in its positions (frames quarantined) is decoded.
    let mut read = VecDeque::with_capacity(batches.len());
    let mut to_decode = Vec::new();
    for records in batches {
        let taken = match (records.first(), records.last()) {
            (Some(first), Some(last)) if last.lsn.0 - first.lsn.0 + 1 == records.len() as u64 => {
                appended.take(first.lsn.0, records.len())
            }
            _ => None,
        };
        let decoded = match taken {
            Some(items) => Decoding::Done(items.into_iter().map(Ok).collect()),
            None => {
                let (tx, rx) = oneshot::channel();
                to_decode.push((read.len(), tx));
                Decoding::Pending(rx)
            }
        };
        read.push_back(ReadBatch { records, decoded });
    }
    let pending_records: usize = to_decode.iter().map(|&(i, _)| read[i].records.len()).sum();
    if pending_records < DECODE_APART_RECORDS {
        for (i, _) in to_decode {
            let batch = &mut read[i];
            batch.decoded =
                Decoding::Done(codec.decode_batch(batch.records.iter().map(|r| &r.payload)));
        }
        return Ok(read);
    }
    // On the blocking pool, one batch after the other: the delivery takes
    // the first as soon as it is decoded, while the others are decoded.
    let jobs: Vec<_> = to_decode
        .into_iter()
        .map(|(i, tx)| {
            let payloads: Vec<bytes::Bytes> =
                read[i].records.iter().map(|r| r.payload.clone()).collect();
            (payloads, tx)
        })
        .collect();
    let codec = codec.clone();
    tokio::task::spawn_blocking(move || {
        for (payloads, tx) in jobs {
            let decoded =
                std::panic::catch_unwind(AssertUnwindSafe(|| codec.decode_batch(payloads.iter())))
                    .map_err(|panic| {
                        Error::panicked("decoding records read from the write-ahead log", &*panic)
                    });
            let failed = decoded.is_err();
            // A receiver dropped meanwhile (the batches read ahead were
            // discarded after a failed flush) wants nothing more.
            if tx.send(decoded).is_err() || failed {
                return;
            }
        }
    });
    Ok(read)
}
