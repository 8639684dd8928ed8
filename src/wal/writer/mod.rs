//! The append side's handle: [`WalWriter`], the cheaply cloneable API that
//! appends records to the log, and [`WalStats`], its counters.
//!
//! A handle checks what it is given (record sizes against
//! [`WalOptions::max_record_bytes`](super::WalOptions::max_record_bytes)),
//! sends it to the single writer task ([`task`]) over one channel and waits
//! for the answer. It guarantees that:
//!
//! - the records of one append get consecutive lsns, in order, and appends
//!   are written in the order they reach the writer task;
//! - an append resolves only once its records are written (`Fsync::Never`,
//!   `Fsync::Interval`) or written and fdatasynced (`Fsync::Always`), and a
//!   [`WalWriter::sync`] only once everything appended before it is
//!   fdatasynced;
//! - a batch holding a record that is too large is refused whole, before it
//!   reaches the task.
//!
//! It does not guarantee that a dropped append future withdraws its records
//! (they may still be written), nor that appends of different handles are
//! ordered other than by when they reach the channel.
//!
//! How the task gathers requests into groups, commits them with one
//! fdatasync and enforces the cap is described in [`task`]; the blocking
//! write of one group (frames, segment rolls, preallocation, fdatasync) in
//! [`group_write`].

mod group_write;
mod task;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::ledger::WalShared;
use super::{Lsn, WalBatch, WalError};

pub(crate) use task::WriterTask;

/// A cheaply cloneable handle that appends records to the log.
///
/// Many tasks may append concurrently; their appends are written in the
/// order they reach the writer task, each append's records consecutively.
#[derive(Clone)]
pub struct WalWriter {
    tx: mpsc::UnboundedSender<WriterRequest>,
    shared: Arc<WalShared>,
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

pub(crate) enum WriterRequest {
    Append {
        batch: WalBatch,
        reply: oneshot::Sender<Result<Lsn, WalError>>,
    },
    Sync {
        reply: oneshot::Sender<Result<(), WalError>>,
    },
}

impl WalWriter {
    pub(crate) fn new(tx: mpsc::UnboundedSender<WriterRequest>, shared: Arc<WalShared>) -> Self {
        Self { tx, shared }
    }

    /// Appends the already-encoded `records` as consecutive frames, in
    /// order, and resolves when they are written (`Fsync::Never` /
    /// `Fsync::Interval`) or written and fdatasynced (`Fsync::Always`).
    /// Returns the Lsn of the first record (of the next record to be
    /// appended when `records` is empty).
    ///
    /// Concurrent appends are group-committed (see the
    /// [log's guarantees](crate::wal#guarantees)). At the cap, the append
    /// waits for commits ([`WhenFull::Wait`](super::WhenFull::Wait)) or fails with
    /// [`WalError::Full`] ([`WhenFull::Error`](super::WhenFull::Error)); a record larger than
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
            .send(WriterRequest::Append { batch, reply })
            .map_err(|_| WalError::Closed)?;
        self.shared.requests_sent.fetch_add(1, Ordering::Relaxed);
        rx.await.map_err(|_| WalError::Closed)?
    }

    /// fdatasyncs everything appended so far (before this call), for
    /// `Fsync::Interval` / `Fsync::Never` callers that want durability now.
    pub async fn sync(&self) -> Result<(), WalError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(WriterRequest::Sync { reply })
            .map_err(|_| WalError::Closed)?;
        self.shared.requests_sent.fetch_add(1, Ordering::Relaxed);
        rx.await.map_err(|_| WalError::Closed)?
    }

    /// Damaged bytes moved aside so far, at open and while the reader read
    /// ([`OnCorruption::Quarantine`](super::OnCorruption::Quarantine)), each
    /// reported once, with the lsns and number of records they held: the
    /// same list as [`WalReader::quarantined`](super::WalReader::quarantined),
    /// for the side that does not hold the reader.
    pub fn quarantined(&self) -> Vec<super::QuarantinedFrame> {
        self.shared
            .quarantined
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
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
