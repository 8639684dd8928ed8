//! The append side: [`WalWriter`] handles and the single writer task that
//! owns the active segment.
//!
//! Appends are **group-committed**: every handle sends its batch of records
//! over one channel to the writer task; the task takes everything queued,
//! encodes it into one buffer and writes it with one `write` (per segment
//! touched), then — under [`Fsync::Always`], or when a [`WalWriter::sync`] is
//! queued — one `fdatasync` for the whole group. While that I/O runs on a
//! blocking thread, new appends queue up and go out together in the next
//! group, so N concurrent appenders cost far fewer than N fdatasyncs. The
//! blocking thread also answers the group's appenders as soon as the
//! shared state (stats, what the reader may read) says the group is written
//! and synced: one hop less on their way back, and their wake-ups spread
//! over the runtime's workers.
//!
//! Under [`Fsync::Always`] the task also **gathers** before a group goes
//! out: the appenders the previous group just answered usually append again
//! at once, and without waiting for them the next group would carry only
//! what queued during the previous fdatasync (concurrent appenders then
//! split into two alternating half-size groups). So the task yields to the
//! runtime until as many requests are queued as were in flight when the
//! previous group was answered (that group's appends plus the requests
//! then waiting in the channel), but for at most half the duration of the
//! previous group's write and fdatasync (and [`MAX_GATHER`]): an appender
//! that does not come back costs at most that, once, as the expectation
//! then drops to what did come. A lone appender never waits.
//!
//! Under [`Fsync::Interval`] the task fdatasyncs at most one interval after
//! the first unsynced write. A segment is fdatasynced when it is sealed
//! (under every policy), so sealed segments are always complete on disk.
//!
//! The cap on bytes on disk is enforced here: an append that does not fit
//! waits for commits to delete segments ([`WhenFull::Wait`]; the queue
//! behind it waits too, keeping order) or fails at once
//! ([`WhenFull::Error`]). After an I/O error the writer stops: every later
//! append fails with [`WalError::Failed`] and the log must be reopened
//! (which repairs a partly written tail).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::format::{segment_name, FRAME_HEADER_LEN, SEGMENT_HEADER_LEN};
use super::segment::{create_segment, ActiveSegment, PREALLOCATE_BYTES};
use super::shared::Shared;
use super::{Fsync, Lsn, WalBatch, WalError, WhenFull};

/// Encoded bytes buffered before a `write` call inside one group.
const FLUSH_BYTES: usize = 4 << 20;

/// The longest a group waits for appenders to come back before it goes out
/// (see the module docs; usually half the previous write + fdatasync).
const MAX_GATHER: std::time::Duration = std::time::Duration::from_micros(500);

/// A cheaply cloneable handle that appends records to the log.
///
/// Many tasks may append concurrently; their appends are written in the
/// order they reach the writer task, each append's records consecutively.
#[derive(Clone)]
pub struct WalWriter {
    tx: mpsc::UnboundedSender<Request>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for WalWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalWriter")
            .field("dir", &self.shared.options.dir)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Counters of a log, from [`WalWriter::stats`].
#[derive(Debug, Clone, Copy)]
pub struct WalStats {
    /// Bytes of the headers and frames of all segment files (what the cap
    /// limits). Under `Fsync::Always` the active segment's file may also
    /// hold up to 1 MiB of zero-filled bytes written ahead of its frames
    /// (so that an fdatasync does not also write the inode of a growing
    /// file); they stay within the cap too.
    pub bytes_on_disk: u64,
    /// The Lsn the next appended record gets.
    pub next_lsn: Lsn,
    /// Every record below this is committed (delivered).
    pub committed_lsn: Lsn,
    /// Every record below this is fdatasynced.
    pub synced_lsn: Lsn,
    /// Writes of queued appends since open: concurrent appends share one
    /// (group commit), so this grows slower than the number of appends.
    pub group_writes: u64,
    /// fdatasyncs of segment files since open (appends under
    /// `Fsync::Always`, interval ticks, explicit syncs, sealed segments).
    pub fdatasyncs: u64,
}

pub(crate) enum Request {
    Append {
        batch: WalBatch,
        reply: oneshot::Sender<Result<Lsn, WalError>>,
    },
    Sync {
        reply: oneshot::Sender<Result<(), WalError>>,
    },
}

impl WalWriter {
    pub(crate) fn new(tx: mpsc::UnboundedSender<Request>, shared: Arc<Shared>) -> Self {
        Self { tx, shared }
    }

    /// Appends the already-encoded `records` as consecutive frames, in
    /// order, and resolves when they are written (`Fsync::Never` /
    /// `Fsync::Interval`) or written and fdatasynced (`Fsync::Always`).
    /// Returns the Lsn of the first record (of the next record to be
    /// appended when `records` is empty).
    ///
    /// Concurrent appends are group-committed (see the module docs). At the
    /// cap, the append waits for commits ([`WhenFull::Wait`]) or fails with
    /// [`WalError::Full`] ([`WhenFull::Error`]); a record larger than
    /// [`WalOptions::max_record_bytes`](super::WalOptions::max_record_bytes)
    /// fails with [`WalError::RecordTooLarge`] and nothing of the batch is
    /// appended. An append that would wait for space after the
    /// [`WalReader`](super::WalReader) was dropped fails with
    /// [`WalError::Closed`] (nothing could ever free the space).
    ///
    /// Cancel safety: dropping the future does not withdraw the records;
    /// they may still be appended.
    pub async fn append(&self, records: Vec<Vec<u8>>) -> Result<Lsn, WalError> {
        let limit = self.shared.options.max_record_bytes();
        if let Some(big) = records.iter().find(|r| r.len() as u64 > limit) {
            return Err(WalError::RecordTooLarge {
                bytes: big.len() as u64,
                limit,
            });
        }
        let mut batch = WalBatch::with_capacity(records.len(), records.iter().map(Vec::len).sum());
        for record in &records {
            batch.push(record)?;
        }
        self.send(batch).await
    }

    /// [`append`](Self::append) for records already framed in a
    /// [`WalBatch`]: one buffer for the whole batch, checksums computed by
    /// the caller. Same ordering, durability, cap and cancel-safety rules.
    pub async fn append_batch(&self, batch: WalBatch) -> Result<Lsn, WalError> {
        let limit = self.shared.options.max_record_bytes();
        if let Some(&big) = batch.lens().iter().find(|&&len| u64::from(len) > limit) {
            return Err(WalError::RecordTooLarge {
                bytes: u64::from(big),
                limit,
            });
        }
        self.send(batch).await
    }

    /// Hands a checked batch to the writer task and waits for its answer.
    async fn send(&self, batch: WalBatch) -> Result<Lsn, WalError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Append { batch, reply })
            .map_err(|_| WalError::Closed)?;
        self.shared.requests_sent.fetch_add(1, Ordering::Relaxed);
        rx.await.map_err(|_| WalError::Closed)?
    }

    /// fdatasyncs everything appended so far (before this call), for
    /// `Fsync::Interval` / `Fsync::Never` callers that want durability now.
    pub async fn sync(&self) -> Result<(), WalError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Sync { reply })
            .map_err(|_| WalError::Closed)?;
        self.shared.requests_sent.fetch_add(1, Ordering::Relaxed);
        rx.await.map_err(|_| WalError::Closed)?
    }

    /// Current counters of the log.
    pub fn stats(&self) -> WalStats {
        let st = self.shared.lock();
        WalStats {
            bytes_on_disk: st.bytes_on_disk,
            next_lsn: Lsn(st.written),
            committed_lsn: Lsn(st.committed),
            synced_lsn: Lsn(st.synced),
            group_writes: st.group_writes,
            fdatasyncs: st.fdatasyncs,
        }
    }
}

/// A request being worked on by the writer task.
enum Pending {
    Append {
        batch: WalBatch,
        /// Records of this request already written.
        done: usize,
        /// Bytes of the frames already written.
        done_bytes: usize,
        first: Option<u64>,
        /// Set when the request cannot fit under `WhenFull::Error`: the
        /// bytes on disk it would have brought.
        full: Option<u64>,
        reply: oneshot::Sender<Result<Lsn, WalError>>,
    },
    Sync {
        /// Reached in a group (answered after that group's fdatasync).
        reached: bool,
        reply: oneshot::Sender<Result<(), WalError>>,
    },
}

impl From<Request> for Pending {
    fn from(r: Request) -> Self {
        match r {
            Request::Append { batch, reply } => Pending::Append {
                batch,
                done: 0,
                done_bytes: 0,
                first: None,
                full: None,
                reply,
            },
            Request::Sync { reply } => Pending::Sync {
                reached: false,
                reply,
            },
        }
    }
}

/// Settings the blocking write needs.
#[derive(Clone, Copy)]
struct WriteParams {
    segment_bytes: u64,
    /// Bytes on disk when the group was planned.
    on_disk: u64,
    cap: u64,
    always: bool,
    when_full: WhenFull,
    /// Next lsn to assign.
    lsn: u64,
}

/// What one group write did.
#[derive(Default)]
struct Outcome {
    next_lsn: u64,
    bytes_added: u64,
    payload_added: u64,
    /// (first lsn, final size) of every segment written to, in order; the
    /// last one is the active segment.
    sizes: Vec<(u64, u64)>,
    synced: bool,
    /// fdatasync calls made (sealed segments included).
    syncs: u64,
    /// Stopped because the next record does not fit under the cap.
    blocked: bool,
}

/// The task that owns the active segment.
pub(crate) struct WriterTask {
    rx: mpsc::UnboundedReceiver<Request>,
    shared: Arc<Shared>,
    written_tx: Arc<watch::Sender<u64>>,
    segment: Option<ActiveSegment>,
    queue: VecDeque<Pending>,
    buf: Vec<u8>,
    written: u64,
    synced: u64,
    sync_deadline: Option<Instant>,
    failed: Option<String>,
    closed: bool,
    /// Requests taken from the channel so far.
    received: u64,
    /// Appends in flight when the previous group was answered: the ones it
    /// answered plus those then waiting in the channel (for gathering).
    last_in_flight: usize,
    /// How long the previous group's blocking write (and fdatasync) took.
    last_io: std::time::Duration,
    /// Keeps the directory claimed until the last write is done.
    _guard: Arc<super::dir_guard::DirGuard>,
}

impl WriterTask {
    pub(crate) fn new(
        rx: mpsc::UnboundedReceiver<Request>,
        shared: Arc<Shared>,
        written_tx: watch::Sender<u64>,
        segment: ActiveSegment,
        written: u64,
        guard: Arc<super::dir_guard::DirGuard>,
    ) -> Self {
        Self {
            rx,
            shared,
            written_tx: Arc::new(written_tx),
            segment: Some(segment),
            queue: VecDeque::new(),
            buf: Vec::new(),
            written,
            synced: written,
            sync_deadline: None,
            failed: None,
            closed: false,
            received: 0,
            last_in_flight: 0,
            last_io: std::time::Duration::ZERO,
            _guard: guard,
        }
    }

    /// Runs until every [`WalWriter`] is dropped and the queue is written.
    pub(crate) async fn run(mut self) {
        loop {
            if self.queue.is_empty() {
                if self.closed {
                    break;
                }
                tokio::select! {
                    // A due fdatasync goes first, even under a steady stream
                    // of appends.
                    biased;
                    _ = sleep_until(self.sync_deadline) => {
                        self.sync_now().await;
                        continue;
                    }
                    msg = self.rx.recv() => match msg {
                        Some(m) => self.receive(m),
                        None => { self.closed = true; continue; }
                    },
                }
            }
            self.drain_channel();
            if self.shared.options.fsync == Fsync::Always {
                self.gather().await;
            }
            if let Some(reason) = &self.failed {
                let reason = reason.clone();
                for p in self.queue.drain(..) {
                    answer_err(
                        p,
                        WalError::Failed {
                            reason: reason.clone(),
                        },
                    );
                }
                continue;
            }
            let blocked = self.write_group().await;
            if blocked && self.failed.is_none() {
                self.wait_for_space().await;
            }
        }
        if self.synced < self.written
            && self.failed.is_none()
            && self.shared.options.fsync != Fsync::Never
        {
            self.sync_now().await;
        }
    }

    /// Lets the appenders answered by the previous group append again
    /// before the next group goes out (see the module docs). Yields to the
    /// runtime rather than sleeping: a timer's millisecond resolution is
    /// coarser than a whole fdatasync on a fast disk.
    async fn gather(&mut self) {
        let expected = self.last_in_flight;
        self.last_in_flight = 0;
        if expected <= 1 || self.closed {
            return;
        }
        let limit = (self.last_io / 2).min(MAX_GATHER);
        let start = std::time::Instant::now();
        while self.queue.len() < expected && !self.closed && start.elapsed() < limit {
            tokio::task::yield_now().await;
            self.drain_channel();
        }
    }

    fn receive(&mut self, request: Request) {
        self.received += 1;
        self.queue.push_back(request.into());
    }

    fn drain_channel(&mut self) {
        if self.closed {
            return;
        }
        loop {
            match self.rx.try_recv() {
                Ok(m) => self.receive(m),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    self.closed = true;
                    break;
                }
            }
        }
    }

    /// If every record of the active segment is committed, seals it and
    /// starts a new one so that it can be deleted: otherwise a cap smaller
    /// than one segment could never be freed. Returns whether it did.
    async fn roll_if_fully_committed(&mut self) -> bool {
        let (committed, active_has_frames) = {
            let st = self.shared.lock();
            let has = self
                .segment
                .as_ref()
                .is_some_and(|s| s.size > SEGMENT_HEADER_LEN);
            (st.committed, has)
        };
        if !(active_has_frames && committed >= self.written) {
            return false;
        }
        let Some(segment) = self.segment.take() else {
            return false;
        };
        let dir = self.shared.options.dir.clone();
        let lsn = self.written;
        let result = tokio::task::spawn_blocking(move || {
            let mut segment = segment;
            let r = segment.seal().and_then(|()| create_segment(&dir, lsn));
            (segment, r)
        })
        .await;
        match result {
            Ok((_, Ok(fresh))) => {
                {
                    let mut st = self.shared.lock();
                    st.segments.insert(fresh.first, fresh.size);
                    st.bytes_on_disk += fresh.size;
                    st.active = fresh.first;
                    st.fdatasyncs += 1;
                }
                self.segment = Some(fresh);
                self.delete_committed_segments().await;
                true
            }
            Ok((old, Err(e))) => {
                self.segment = Some(old);
                self.fail(&e);
                false
            }
            Err(e) => {
                self.fail(&super::error::join_error(e));
                false
            }
        }
    }

    /// Waits for a commit to free space, meanwhile taking new requests and
    /// keeping the interval fsync going.
    async fn wait_for_space(&mut self) {
        if self.roll_if_fully_committed().await {
            return;
        }
        if self
            .shared
            .reader_gone
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            // Without a reader nothing is ever committed: fail what waits.
            for p in self.queue.drain(..) {
                answer_err(p, WalError::Closed);
            }
            return;
        }
        tokio::select! {
            _ = self.shared.space_freed.notified() => {}
            msg = self.rx.recv(), if !self.closed => match msg {
                Some(m) => self.receive(m),
                None => self.closed = true,
            },
            _ = sleep_until(self.sync_deadline) => self.sync_now().await,
        }
    }

    /// Deletes segments that a commit covers but that were active when the
    /// commit ran.
    async fn delete_committed_segments(&mut self) {
        let dir = self.shared.options.dir.clone();
        let victims = {
            let mut st = self.shared.lock();
            let committed = st.committed;
            st.take_segments_below(committed)
        };
        if victims.is_empty() {
            return;
        }
        let result = tokio::task::spawn_blocking(move || delete_segments(&dir, &victims)).await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "WAL: deleting committed segments failed"),
            Err(e) => tracing::error!(error = %e, "WAL: deleting committed segments panicked"),
        }
    }

    fn fail(&mut self, e: &WalError) {
        tracing::error!(error = %e, "WAL writer failed; appends fail until the log is reopened");
        self.failed = Some(e.to_string());
    }

    /// Writes as much of the queue as fits as one group. Returns `true` when
    /// it stopped at the cap.
    async fn write_group(&mut self) -> bool {
        let Some(mut segment) = self.segment.take() else {
            self.failed
                .get_or_insert_with(|| "no active segment".to_owned());
            return false;
        };
        let options = &self.shared.options;
        let params = WriteParams {
            segment_bytes: options.segment_bytes,
            on_disk: self.shared.lock().bytes_on_disk,
            cap: options.max_bytes,
            always: options.fsync == Fsync::Always,
            when_full: options.when_full,
            lsn: self.written,
        };
        let dir = options.dir.clone();
        let mut group = std::mem::take(&mut self.queue);
        let mut buf = std::mem::take(&mut self.buf);
        let (shared, written_tx) = (self.shared.clone(), self.written_tx.clone());
        let (written_before, appended_at) = (self.written, Instant::now());
        let received = self.received;
        let io_start = std::time::Instant::now();
        // The appenders are answered from the blocking thread as soon as
        // the group is durable (after the shared state says so): one hop
        // less on the way back, and their wake-ups spread over the
        // runtime's workers.
        let joined = tokio::task::spawn_blocking(move || {
            match write_frames(&dir, &mut segment, &mut buf, &mut group, params) {
                Ok(outcome) => {
                    publish(&shared, &written_tx, written_before, &outcome, appended_at);
                    // A sender counts its request just after sending it:
                    // the task may have received it first.
                    let waiting = shared
                        .requests_sent
                        .load(Ordering::Relaxed)
                        .saturating_sub(received);
                    let (rest, answered) = answer(group, &outcome, params.cap);
                    (
                        segment,
                        buf,
                        rest,
                        Ok((outcome, answered + waiting as usize)),
                    )
                }
                Err(e) => (segment, buf, group, Err(e)),
            }
        })
        .await;
        self.last_io = io_start.elapsed();
        let (segment, buf, group, result) = match joined {
            Ok(parts) => parts,
            Err(e) => {
                // The group's reply senders are gone with the task: its
                // appenders see `WalError::Closed`.
                self.fail(&super::error::join_error(e));
                return false;
            }
        };
        self.segment = Some(segment);
        self.buf = buf;
        let (outcome, in_flight) = match result {
            Ok(done) => done,
            Err(e) => {
                self.fail(&e);
                for p in group {
                    answer_err(p, e.duplicate());
                }
                return false;
            }
        };
        self.last_in_flight = in_flight;
        self.written = outcome.next_lsn;
        if outcome.synced {
            self.synced = outcome.next_lsn;
            self.sync_deadline = None;
        } else if self.synced < self.written && self.sync_deadline.is_none() {
            if let Fsync::Interval(d) = self.shared.options.fsync {
                self.sync_deadline = Some(Instant::now() + d);
            }
        }
        // What is not done yet goes first in the next group.
        for p in group.into_iter().rev() {
            self.queue.push_front(p);
        }
        let rolled = outcome.sizes.len() > 1;
        if rolled {
            // A segment sealed by this group may already be committed.
            self.delete_committed_segments().await;
        }
        outcome.blocked
    }

    /// fdatasyncs the active segment (interval timer, shutdown).
    async fn sync_now(&mut self) {
        self.sync_deadline = None;
        if self.synced >= self.written {
            return;
        }
        let Some(segment) = self.segment.take() else {
            return;
        };
        let joined = tokio::task::spawn_blocking(move || {
            let r = segment.sync();
            (segment, r)
        })
        .await;
        match joined {
            Ok((segment, r)) => {
                self.segment = Some(segment);
                match r {
                    Ok(()) => {
                        self.synced = self.written;
                        let mut st = self.shared.lock();
                        st.synced = self.written;
                        st.fdatasyncs += 1;
                    }
                    Err(e) => self.fail(&e),
                }
            }
            Err(e) => self.fail(&super::error::join_error(e)),
        }
    }
}

impl super::shared::State {
    fn payload_added(&mut self, bytes: u64) {
        self.payload_appended += bytes;
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Publishes a group's effect to the shared state and the reader (before
/// anyone is answered, so that an answered appender sees it in the stats).
fn publish(
    shared: &Shared,
    written_tx: &watch::Sender<u64>,
    written_before: u64,
    outcome: &Outcome,
    appended_at: Instant,
) {
    {
        let mut st = shared.lock();
        for &(first, size) in &outcome.sizes {
            st.segments.insert(first, size);
        }
        if let Some(&(active, _)) = outcome.sizes.last() {
            st.active = active;
        }
        st.bytes_on_disk += outcome.bytes_added;
        st.payload_added(outcome.payload_added);
        st.fdatasyncs += outcome.syncs;
        if outcome.next_lsn > written_before {
            st.group_writes += 1;
            st.mark(written_before, appended_at);
        }
        st.written = outcome.next_lsn;
        if outcome.synced {
            st.synced = outcome.next_lsn;
        }
    }
    written_tx.send_replace(outcome.next_lsn);
}

/// Answers the requests of a written group that are done; returns the rest
/// (in order, to go first in the next group) and how many appends were
/// answered.
fn answer(group: VecDeque<Pending>, outcome: &Outcome, cap: u64) -> (VecDeque<Pending>, usize) {
    let mut rest = VecDeque::new();
    let mut answered = 0;
    for p in group {
        match p {
            Pending::Append {
                batch,
                done,
                done_bytes,
                first,
                full,
                reply,
            } => {
                if let Some(bytes) = full {
                    let _ = reply.send(Err(WalError::Full { bytes, cap }));
                } else if done == batch.len() {
                    answered += 1;
                    let _ = reply.send(Ok(Lsn(first.unwrap_or(outcome.next_lsn))));
                } else {
                    rest.push_back(Pending::Append {
                        batch,
                        done,
                        done_bytes,
                        first,
                        full,
                        reply,
                    });
                }
            }
            Pending::Sync { reached, reply } => {
                if reached && outcome.synced {
                    let _ = reply.send(Ok(()));
                } else {
                    rest.push_back(Pending::Sync {
                        reached: false,
                        reply,
                    });
                }
            }
        }
    }
    (rest, answered)
}

fn answer_err(p: Pending, e: WalError) {
    match p {
        Pending::Append { reply, .. } => {
            let _ = reply.send(Err(e));
        }
        Pending::Sync { reply, .. } => {
            let _ = reply.send(Err(e));
        }
    }
}

/// The blocking part of a group write: encodes the queued records into
/// frames, writes them (rolling to new segments as needed, never past the
/// cap) and fdatasyncs when asked to.
fn write_frames(
    dir: &std::path::Path,
    segment: &mut ActiveSegment,
    buf: &mut Vec<u8>,
    group: &mut VecDeque<Pending>,
    p: WriteParams,
) -> Result<Outcome, WalError> {
    let budget = p.cap.saturating_sub(p.on_disk);
    let mut out = Outcome {
        next_lsn: p.lsn,
        ..Outcome::default()
    };
    let mut lsn = p.lsn;
    let mut sync_requested = false;
    buf.clear();
    'group: for pending in group.iter_mut() {
        match pending {
            Pending::Sync { reached, .. } => {
                *reached = true;
                sync_requested = true;
            }
            Pending::Append {
                batch,
                done,
                done_bytes,
                first,
                full,
                ..
            } => {
                let lens = batch.lens();
                if p.when_full == WhenFull::Error && *done == 0 {
                    let need = bytes_needed(segment.size + buf.len() as u64, lens, p.segment_bytes);
                    if out.bytes_added + need > budget {
                        *full = Some(p.on_disk + out.bytes_added + need);
                        continue;
                    }
                }
                while let Some(&len) = lens.get(*done) {
                    let frame = FRAME_HEADER_LEN + u64::from(len);
                    if segment.size + buf.len() as u64 + frame > p.segment_bytes {
                        if out.bytes_added + SEGMENT_HEADER_LEN + frame > budget {
                            out.blocked = true;
                            break 'group;
                        }
                        segment.write(buf)?;
                        buf.clear();
                        segment.seal()?;
                        out.syncs += 1;
                        out.sizes.push((segment.first, segment.size));
                        *segment = create_segment(dir, lsn)?;
                        out.bytes_added += SEGMENT_HEADER_LEN;
                    }
                    if out.bytes_added + frame > budget {
                        out.blocked = true;
                        break 'group;
                    }
                    // The appender framed it: copied as it is.
                    let end = *done_bytes + frame as usize;
                    buf.extend_from_slice(&batch.frames()[*done_bytes..end]);
                    *done_bytes = end;
                    out.bytes_added += frame;
                    out.payload_added += u64::from(len);
                    first.get_or_insert(lsn);
                    lsn += 1;
                    *done += 1;
                    if buf.len() >= FLUSH_BYTES {
                        segment.write(buf)?;
                        buf.clear();
                    }
                }
            }
        }
    }
    if !buf.is_empty() {
        segment.write(buf)?;
        buf.clear();
    }
    if p.always && lsn > p.lsn && segment.is_at_file_end() {
        // The file grew, so this fdatasync writes the inode anyway: zero-fill
        // ahead (within the segment and the cap) so that the next ones don't.
        let room = budget.saturating_sub(out.bytes_added);
        let upto = (segment.size + PREALLOCATE_BYTES)
            .min(p.segment_bytes)
            .min(segment.size + room);
        // Only an optimization: on a full disk the records written above
        // still go out (zero fill that did get written is valid space).
        if let Err(e) = segment.preallocate(upto) {
            tracing::debug!(error = %e, "WAL: preallocating segment space failed; appending without it");
        }
    }
    if (p.always && lsn > p.lsn) || sync_requested {
        segment.sync()?;
        out.syncs += 1;
        out.synced = true;
    }
    out.sizes.push((segment.first, segment.size));
    out.next_lsn = lsn;
    Ok(out)
}

/// Exact bytes on disk that appending `records` adds when the active
/// segment holds `size` bytes (frames plus the headers of new segments).
fn bytes_needed(mut size: u64, lens: &[u32], segment_bytes: u64) -> u64 {
    let mut need = 0;
    for &len in lens {
        let frame = FRAME_HEADER_LEN + u64::from(len);
        if size + frame > segment_bytes {
            need += SEGMENT_HEADER_LEN;
            size = SEGMENT_HEADER_LEN;
        }
        need += frame;
        size += frame;
    }
    need
}

/// Deletes the given segments' files and fsyncs the directory.
pub(crate) fn delete_segments(
    dir: &std::path::Path,
    victims: &[(u64, u64)],
) -> Result<(), WalError> {
    for &(first, _) in victims {
        let path = dir.join(segment_name(Lsn(first)));
        super::recovery::remove_if_present(&path)?;
    }
    crate::durable_fs::sync_dir(dir)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_needed_counts_frames_and_the_headers_of_new_segments() {
        let records = vec![13u32; 10]; // 25-byte frames
                                       // 116-byte segments hold 4 frames after the 16-byte header.
        assert_eq!(bytes_needed(16, &records[..4], 116), 100);
        assert_eq!(bytes_needed(16, &records[..5], 116), 100 + 16 + 25);
        assert_eq!(bytes_needed(16 + 75, &records[..2], 116), 25 + 16 + 25);
        assert_eq!(bytes_needed(16, &records, 116), 250 + 2 * 16);
        assert_eq!(bytes_needed(16, &[], 116), 0);
    }
}
