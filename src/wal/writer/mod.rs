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

/// Called with the lsn of an append's first record once all of it is
/// written, before the reader can see it (see
/// [`WalWriter::append_batch_then`]).
pub(crate) type OnWritten = Box<dyn FnOnce(Lsn) + Send>;

pub(crate) enum WriterRequest {
    Append {
        batch: WalBatch,
        on_written: Option<OnWritten>,
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
        self.send(batch, None).await
    }

    /// [`append`](Self::append) for records already framed in a
    /// [`WalBatch`]: one buffer for the whole batch, checksums computed by
    /// the caller. Same ordering, durability, cap and cancel-safety rules.
    pub async fn append_batch(&self, batch: WalBatch) -> Result<Lsn, WalError> {
        self.append_batch_then(batch, None).await
    }

    /// [`append_batch`](Self::append_batch), calling `on_written` with the
    /// lsn of the batch's first record once the whole batch is written and
    /// before the log publishes it: the reader cannot return any record of
    /// it before the call is done (records of a batch written over several
    /// groups, at the cap, can be read before). Not called when the append
    /// fails. It runs on the writer's blocking thread: it must be short.
    pub(crate) async fn append_batch_then(
        &self,
        batch: WalBatch,
        on_written: Option<OnWritten>,
    ) -> Result<Lsn, WalError> {
        let limit = self.shared.options.max_record_bytes();
        if let Some(&big) = batch.lens().iter().find(|&&len| u64::from(len) > limit) {
            return Err(WalError::RecordTooLarge {
                bytes: u64::from(big),
                limit,
            });
        }
        self.send(batch, on_written).await
    }

    /// Hands a checked batch to the writer task and waits for its answer.
    async fn send(&self, batch: WalBatch, on_written: Option<OnWritten>) -> Result<Lsn, WalError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(WriterRequest::Append {
                batch,
                on_written,
                reply,
            })
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use crate::wal::{Lsn, Wal, WalBatch, WalError, WalOptions, WhenFull};

    fn batch(records: &[&[u8]]) -> WalBatch {
        let mut batch = WalBatch::new();
        for r in records {
            batch.push(r).unwrap();
        }
        batch
    }

    #[tokio::test]
    async fn on_written_runs_with_the_first_lsn_before_the_reader_sees_the_records() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, reader, _) = Wal::open(WalOptions::new(dir.path())).await.unwrap();
        writer.append_batch(batch(&[b"a", b"b"])).await.unwrap();
        let seen = Arc::new(Mutex::new(None));
        let reader = Arc::new(Mutex::new(reader));
        let (seen_in, reader_in) = (seen.clone(), reader.clone());
        let first = writer
            .append_batch_then(
                batch(&[b"c", b"d", b"e"]),
                Some(Box::new(move |first: Lsn| {
                    // Not published yet: the reader's backlog is the first
                    // append only.
                    let backlog = reader_in.lock().unwrap().backlog().records;
                    *seen_in.lock().unwrap() = Some((first, backlog));
                })),
            )
            .await
            .unwrap();
        assert_eq!(first, Lsn(2));
        assert_eq!(*seen.lock().unwrap(), Some((Lsn(2), 2)));
        assert_eq!(reader.lock().unwrap().backlog().records, 5);
    }

    #[tokio::test]
    async fn on_written_is_not_called_for_an_append_refused_at_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let options = WalOptions::new(dir.path())
            .segment_bytes(16 << 10)
            .max_bytes(64 << 10)
            .when_full(WhenFull::Error);
        let (writer, _reader, _) = Wal::open(options).await.unwrap();
        let called = Arc::new(Mutex::new(false));
        let called_in = called.clone();
        let record = vec![7u8; 1000];
        let records: Vec<&[u8]> = (0..100).map(|_| &record[..]).collect();
        let result = writer
            .append_batch_then(
                batch(&records),
                Some(Box::new(move |_| *called_in.lock().unwrap() = true)),
            )
            .await;
        assert!(matches!(result, Err(WalError::Full { .. })), "{result:?}");
        assert!(!*called.lock().unwrap());
    }
}
