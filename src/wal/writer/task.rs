//! The writer task: the single owner of the active segment, which takes
//! the requests of every [`WalWriter`](super::WalWriter) from one channel
//! and writes them in groups.
//!
//! Appends are **group-committed**: the task takes everything queued and
//! hands it to one blocking group write ([`group_write`](super::group_write):
//! one `write` per segment touched, then — under [`Fsync::Always`], or when
//! a [`WalWriter::sync`](super::WalWriter::sync) is queued — one
//! `fdatasync` for the whole group). While that I/O runs on a blocking
//! thread, new appends queue up and go out together in the next group, so
//! N concurrent appenders cost far fewer than N fdatasyncs. The blocking
//! thread also answers the group's appenders as soon as the shared state
//! (stats, what the reader may read) says the group is written and synced:
//! one hop less on their way back, and their wake-ups spread over the
//! runtime's workers.
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
//! waits for commits to delete segments ([`WhenFull::Wait`](crate::wal::WhenFull::Wait);
//! the queue behind it waits too, keeping order) or fails at once
//! ([`WhenFull::Error`](crate::wal::WhenFull::Error)). When every record
//! of the active segment is committed and an append still does not fit, the
//! task seals that segment and starts a new one so that it can be deleted.
//!
//! Not guaranteed: after an I/O error the writer stops: every later append
//! fails with [`WalError::Failed`] and the log must be reopened (which
//! repairs a partly written tail). A gather never waits for an appender
//! that does not come back longer than described above, so a group may go
//! out smaller than it could have been.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::group_write::{answer_err, GroupWrite, GroupWriteParams, GroupWritten, QueuedRequest};
use super::WriterRequest;
use crate::wal::format::SEGMENT_HEADER_LEN;
use crate::wal::ledger::WalShared;
use crate::wal::segment::{create_segment, delete_segments, ActiveSegment};
use crate::wal::{Fsync, WalError};

/// The longest a group waits for appenders to come back before it goes out
/// (see the module docs; usually half the previous write + fdatasync).
const MAX_GATHER: std::time::Duration = std::time::Duration::from_micros(500);

/// The task that owns the active segment.
pub(crate) struct WriterTask {
    rx: mpsc::UnboundedReceiver<WriterRequest>,
    shared: Arc<WalShared>,
    written_tx: Arc<watch::Sender<u64>>,
    segment: Option<ActiveSegment>,
    queue: VecDeque<QueuedRequest>,
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
    _guard: Arc<crate::wal::dir_guard::DirGuard>,
}

impl WriterTask {
    pub(crate) fn new(
        rx: mpsc::UnboundedReceiver<WriterRequest>,
        shared: Arc<WalShared>,
        written_tx: watch::Sender<u64>,
        segment: ActiveSegment,
        written: u64,
        guard: Arc<crate::wal::dir_guard::DirGuard>,
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

    /// Runs until every [`WalWriter`](super::WalWriter) is dropped and the
    /// queue is written.
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

    fn receive(&mut self, request: WriterRequest) {
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
                // The new segment starts at the next lsn to be written.
                debug_assert_eq!(fresh.first, self.written);
                {
                    let mut st = self.shared.lock();
                    st.segments.insert(fresh.first, fresh.size);
                    st.bytes_on_disk += fresh.size;
                    st.active = fresh.first;
                    st.fdatasyncs += 1;
                    st.debug_check();
                    st.publish_gauges(&self.shared.metrics);
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
                self.fail(&crate::wal::error::join_error(e));
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
            let victims = st.take_segments_below(committed);
            st.publish_gauges(&self.shared.metrics);
            victims
        };
        if victims.is_empty() {
            return;
        }
        let result = tokio::task::spawn_blocking(move || delete_segments(&dir, &victims)).await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %crate::ErrorChain(&e), "WAL: deleting committed segments failed")
            }
            Err(e) => {
                tracing::error!(error = %crate::ErrorChain(&e), "WAL: deleting committed segments panicked")
            }
        }
    }

    fn fail(&mut self, e: &WalError) {
        tracing::error!(error = %crate::ErrorChain(e), "WAL writer failed; appends fail until the log is reopened");
        self.failed = Some(crate::ErrorChain(e).to_string());
    }

    /// Writes as much of the queue as fits as one group. Returns `true` when
    /// it stopped at the cap.
    async fn write_group(&mut self) -> bool {
        let Some(segment) = self.segment.take() else {
            self.failed
                .get_or_insert_with(|| "no active segment".to_owned());
            return false;
        };
        let options = &self.shared.options;
        let params = GroupWriteParams {
            segment_bytes: options.segment_bytes,
            on_disk: self.shared.lock().bytes_on_disk,
            cap: options.max_bytes,
            always: options.fsync == Fsync::Always,
            when_full: options.when_full,
            lsn: self.written,
        };
        let job = GroupWrite {
            dir: options.dir.clone(),
            segment,
            buf: std::mem::take(&mut self.buf),
            group: std::mem::take(&mut self.queue),
            params,
            shared: self.shared.clone(),
            written_tx: self.written_tx.clone(),
            appended_at: Instant::now(),
            received: self.received,
        };
        let io_start = std::time::Instant::now();
        let joined = tokio::task::spawn_blocking(move || job.run()).await;
        self.last_io = io_start.elapsed();
        let written_before = self.written;
        let returned = match joined {
            Ok(returned) => returned,
            Err(e) => {
                // The group's reply senders are gone with the task: its
                // appenders see `WalError::Closed`.
                self.fail(&crate::wal::error::join_error(e));
                return false;
            }
        };
        self.segment = Some(returned.segment);
        self.buf = returned.buf;
        let group = returned.unanswered;
        let GroupWritten { outcome, in_flight } = match returned.written {
            Ok(written) => written,
            Err(e) => {
                self.fail(&e);
                for p in group {
                    answer_err(p, e.duplicate());
                }
                return false;
            }
        };
        self.last_in_flight = in_flight;
        // Lsns only grow.
        debug_assert!(outcome.next_lsn >= self.written);
        self.written = outcome.next_lsn;
        self.observe_group(outcome.next_lsn - written_before, outcome.payload_added);
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

    /// Records one group write in the log's metrics: once per group, not
    /// per record.
    fn observe_group(&self, records: u64, payload: u64) {
        let metrics = &self.shared.metrics;
        metrics.group_writes.increment(1);
        metrics.group_write_seconds.record_duration(self.last_io);
        metrics.appended_records.increment(records);
        metrics.appended_bytes.increment(payload);
        self.shared.publish_gauges();
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
                        // No group is in flight: the task's `written` is
                        // the ledger's.
                        debug_assert_eq!(st.written, self.written);
                        st.synced = self.written;
                        st.fdatasyncs += 1;
                        st.debug_check();
                    }
                    Err(e) => self.fail(&e),
                }
            }
            Err(e) => self.fail(&crate::wal::error::join_error(e)),
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
