//! A local JSON-lines file as a batch target.
//!
//! See [`FileSink`] for what it guarantees.

use std::fmt;
use std::fs::File;
use std::future::Future;
use std::io::{Read, Seek, SeekFrom, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Sink;
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::durable_fs;
use crate::error::{Error, RejectedRecord};

/// Encoded bytes buffered before they are handed to a background write
/// (fed batches; a flush writes whatever is buffered at once).
pub(crate) const WRITE_CHUNK_BYTES: usize = 1 << 20;
/// Encoded bytes that may wait while a background write runs before
/// `poll_ready` applies backpressure.
pub(crate) const MAX_BUFFERED_BYTES: usize = 4 << 20;

/// A `Sink<Vec<T>>` appending JSON lines to a file; a flush fdatasyncs
/// everything fed since the previous one.
///
/// [`FileSink`] appends each record of a batch as one line of compact JSON.
/// `send(batch)` (or `flush()`) returning `Ok` means the batch is written
/// and fdatasynced. Batches only *fed* (`poll_ready` + `start_send`, as
/// `SinkExt::feed` does) are written in the background, in large writes,
/// and made durable together by the next flush: one fdatasync for any
/// number of batches.
///
/// Guarantees:
/// - **A flush is all or nothing.** Everything fed since the last
///   successful flush is stored when `poll_flush` returns `Ok`, and none of
///   it when it returns an error: a failed write or fdatasync cuts the file
///   back to its length at the last successful flush, so a retry of those
///   batches never leaves a broken line or a duplicate in the file.
/// - **Rejections by batch.** A record that cannot be encoded as JSON is not
///   written; the rest of its batch is, and the record is reported through
///   [`Error::Rejected`] by its index in its batch, from the first
///   `poll_ready` or `poll_flush` after that batch's `start_send`. Write
///   and fdatasync errors are reported by `poll_flush` only (they concern
///   every batch fed since the last flush), never by `poll_ready`.
/// - On open, an incomplete last line (left by a crash in the middle of an
///   append) is cut off. Such a line was never acknowledged, so nothing
///   acknowledged is lost; a durable producer upstream redelivers it.
/// - Bounded memory: encoded lines are handed to a background write once
///   1 MiB are buffered, and `poll_ready` is `Pending`
///   (backpressure) while that write runs and another
///   4 MiB wait.
/// - The file is created with mode `0600`.
///
/// Not guaranteed: durability of batches only fed (not flushed) — a crash
/// may keep any prefix of them in the file, down to whole lines.
///
/// The format is what [`FileSource`](crate::source) reads back.
#[must_use = "sinks do nothing unless polled"]
pub struct FileSink<T> {
    path: Arc<Path>,
    state: FileSinkState,
    /// Encoded lines not yet handed to a write.
    buffer: Vec<u8>,
    /// Records of the last batch started that could not be encoded.
    rejected: Vec<RejectedRecord>,
    /// A write since the last successful flush failed (the file is cut
    /// back): reported, and everything fed since dropped, by the next flush.
    failed: Option<Error>,
    /// Bytes were written since the last fdatasync.
    unsynced: bool,
    /// The write in flight (or the last one) fdatasyncs.
    syncing: bool,
    _records: PhantomData<fn(T)>,
}

/// Where the file is.
enum FileSinkState {
    Idle(OpenFile),
    Writing(JoinHandle<(OpenFile, Result<(), Error>)>),
    /// A blocking task panicked or was cancelled: the file handle is gone.
    Broken,
}

/// The file with its lengths.
struct OpenFile {
    file: File,
    /// Bytes in the file.
    len: u64,
    /// Its length at the last successful flush (what a failure cuts back to).
    synced: u64,
}

impl<T> FileSink<T> {
    /// Opens (or creates) `path` for appending, cutting off an incomplete
    /// last line left by a crash. Missing parent directories are created.
    pub async fn open(path: impl Into<PathBuf>) -> Result<Self, Error> {
        let path: PathBuf = path.into();
        let opened_path = path.clone();
        let (file, len) = tokio::task::spawn_blocking(move || open_and_repair(&opened_path))
            .await
            .map_err(|e| Error::io("open", &path, std::io::Error::other(e)))??;
        Ok(Self {
            path: Arc::from(path),
            state: FileSinkState::Idle(OpenFile {
                file,
                len,
                synced: len,
            }),
            buffer: Vec::new(),
            rejected: Vec::new(),
            failed: None,
            unsynced: false,
            syncing: false,
            _records: PhantomData,
        })
    }

    /// The file this sink appends to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The error of a sink whose file handle was lost.
    fn broken(&self) -> Error {
        Error::io(
            "write to",
            &*self.path,
            std::io::Error::other("file sink lost its file after a failed write task"),
        )
    }

    /// Drives the write in flight, if any, to completion.
    fn poll_write_done(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let FileSinkState::Writing(task) = &mut self.state else {
            return Poll::Ready(());
        };
        let joined = futures::ready!(Pin::new(task).poll(cx));
        match joined {
            Ok((file, result)) => {
                self.state = FileSinkState::Idle(file);
                if result.is_ok() && self.syncing {
                    self.unsynced = false;
                }
                if let Err(e) = result {
                    // The file was cut back to its last flushed length.
                    self.unsynced = false;
                    self.failed.get_or_insert(e);
                }
            }
            Err(join) => {
                self.state = FileSinkState::Broken;
                self.failed.get_or_insert(Error::io(
                    "write to",
                    &*self.path,
                    std::io::Error::other(join),
                ));
            }
        }
        Poll::Ready(())
    }

    /// Hands the buffer to a background write (fdatasynced when `sync`);
    /// the file must be idle.
    fn start_write(&mut self, sync: bool) {
        let FileSinkState::Idle(file) = std::mem::replace(&mut self.state, FileSinkState::Broken)
        else {
            unreachable!("start_write on a busy file")
        };
        let bytes = std::mem::take(&mut self.buffer);
        let path = self.path.clone();
        self.unsynced |= !bytes.is_empty();
        self.syncing = sync;
        self.state = FileSinkState::Writing(tokio::task::spawn_blocking(move || {
            append(file, &bytes, sync, &path)
        }));
    }

    /// The rejections of the last batch started, if any.
    fn take_rejected(&mut self) -> Result<(), Error> {
        let rejected = std::mem::take(&mut self.rejected);
        if rejected.is_empty() {
            Ok(())
        } else {
            Err(Error::Rejected(rejected))
        }
    }
}
impl<T> fmt::Debug for FileSink<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileSink")
            .field("path", &self.path)
            .field("buffered_bytes", &self.buffer.len())
            .finish()
    }
}

impl<T> Unpin for FileSink<T> {}

impl<T: Serialize> Sink<Vec<T>> for FileSink<T> {
    type Error = Error;

    /// Ready unless too much waits to be written; hands a full buffer to a
    /// background write; reports the rejections of the batch started last.
    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        loop {
            match &this.state {
                FileSinkState::Broken if this.failed.is_none() => {
                    return Poll::Ready(Err(this.broken()))
                }
                FileSinkState::Broken => break,
                FileSinkState::Writing(_) => {
                    if this.buffer.len() < MAX_BUFFERED_BYTES {
                        if this.poll_write_done(cx).is_pending() {
                            break;
                        }
                    } else {
                        futures::ready!(this.poll_write_done(cx));
                    }
                }
                FileSinkState::Idle(_) => {
                    if this.failed.is_some() {
                        // Dropped at the next flush, which reports the failure.
                        this.buffer.clear();
                    } else if this.buffer.len() >= WRITE_CHUNK_BYTES {
                        this.start_write(false);
                        continue;
                    }
                    break;
                }
            }
        }
        Poll::Ready(this.take_rejected())
    }

    fn start_send(self: Pin<&mut Self>, batch: Vec<T>) -> Result<(), Error> {
        let this = self.get_mut();
        this.rejected.clear();
        for (index, record) in batch.iter().enumerate() {
            let start = this.buffer.len();
            match serde_json::to_writer(&mut this.buffer, record) {
                Ok(()) => this.buffer.push(b'\n'),
                Err(e) => {
                    this.buffer.truncate(start);
                    this.rejected.push(RejectedRecord::new(
                        index,
                        format!("cannot encode as JSON: {e}"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Writes what is buffered and fdatasyncs everything written since the
    /// last flush; all or nothing (see [`FileSink`]).
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        loop {
            futures::ready!(this.poll_write_done(cx));
            if let Some(e) = this.failed.take() {
                this.buffer.clear();
                this.rejected.clear();
                return Poll::Ready(Err(e));
            }
            match &this.state {
                FileSinkState::Broken => return Poll::Ready(Err(this.broken())),
                FileSinkState::Writing(_) => continue,
                FileSinkState::Idle(_) if !this.buffer.is_empty() || this.unsynced => {
                    this.start_write(true);
                }
                FileSinkState::Idle(_) => return Poll::Ready(this.take_rejected()),
            }
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.poll_flush(cx)
    }
}

/// Opens `path` and cuts off an incomplete last line. Returns the file and
/// its length after the repair.
fn open_and_repair(path: &Path) -> Result<(File, u64), Error> {
    // Missing parent directories are created (and made durable), as
    // `WalConfig::new` does for the log's directory.
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.exists() {
            durable_fs::create_dir_all_durable(parent)?;
        }
    }
    let mut file = durable_fs::open_append(path)?;
    let len = file
        .metadata()
        .map_err(|e| Error::io("stat", path, e))?
        .len();
    let complete = complete_length(&mut file, len).map_err(|e| Error::io("read", path, e))?;
    if complete < len {
        tracing::warn!(
            path = %path.display(),
            cut_bytes = len - complete,
            "cutting off an incomplete last line left by an interrupted write"
        );
        file.set_len(complete)
            .map_err(|e| Error::io("truncate", path, e))?;
        file.sync_all().map_err(|e| Error::io("fsync", path, e))?;
    }
    Ok((file, complete))
}

/// The length of the file up to and including its last newline.
fn complete_length(file: &mut File, len: u64) -> std::io::Result<u64> {
    const CHUNK: u64 = 64 * 1024;
    let mut end = len;
    let mut buf = vec![0u8; CHUNK as usize];
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        let chunk = &mut buf[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|b| *b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// Appends `bytes` and, when `sync`, fdatasyncs. On failure cuts the file
/// back to its length at the last successful flush.
fn append(
    mut file: OpenFile,
    bytes: &[u8],
    sync: bool,
    path: &Path,
) -> (OpenFile, Result<(), Error>) {
    let mut written = Ok(());
    if !bytes.is_empty() {
        written = file
            .file
            .write_all(bytes)
            .map_err(|e| Error::io("append to", path, e));
    }
    if written.is_ok() && sync {
        written = file
            .file
            .sync_data()
            .map_err(|e| Error::io("fsync", path, e));
    }
    match written {
        Ok(()) => {
            file.len += bytes.len() as u64;
            if sync {
                file.synced = file.len;
            }
        }
        Err(_) => {
            if let Err(cut) = file.file.set_len(file.synced) {
                tracing::error!(path = %path.display(), error = %crate::ErrorChain(&cut), "cannot cut back a failed append");
            }
            file.len = file.synced;
        }
    }
    (file, written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::SinkExt;

    #[tokio::test]
    async fn appends_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let mut sink = FileSink::open(&path).await.unwrap();
        sink.send(vec![1u32, 2]).await.unwrap();
        sink.send(vec![3u32]).await.unwrap();
        sink.close().await.unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "1\n2\n3\n");
    }

    #[tokio::test]
    async fn reopening_cuts_an_incomplete_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        std::fs::write(&path, "1\n2\n{\"torn").unwrap();
        let mut sink = FileSink::open(&path).await.unwrap();
        sink.send(vec![3u32]).await.unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "1\n2\n3\n");

        std::fs::write(&path, "no newline at all").unwrap();
        let mut sink = FileSink::<u32>::open(&path).await.unwrap();
        sink.send(vec![4]).await.unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "4\n");
    }

    #[tokio::test]
    async fn unencodable_record_is_rejected_and_the_rest_written() {
        use std::collections::HashMap;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let mut sink = FileSink::open(&path).await.unwrap();
        let good: HashMap<Vec<u8>, u8> = HashMap::new();
        let mut bad = HashMap::new();
        bad.insert(vec![1u8], 1u8); // JSON object keys must be strings
        let err = sink.send(vec![good.clone(), bad, good]).await.unwrap_err();
        match err {
            Error::Rejected(r) => {
                assert_eq!(r.iter().map(|r| r.index).collect::<Vec<_>>(), vec![1])
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}\n{}\n");
    }

    #[tokio::test]
    async fn fed_batches_are_written_by_one_flush_and_rejections_come_with_their_batch() {
        use std::collections::HashMap;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let mut sink = FileSink::open(&path).await.unwrap();
        let mut bad = HashMap::new();
        bad.insert(vec![1u8], 1u8); // JSON object keys must be strings
        let one: HashMap<Vec<u8>, u8> = HashMap::new();
        sink.feed(vec![one.clone(), one.clone()]).await.unwrap();
        sink.feed(vec![bad, one.clone()]).await.unwrap();
        // The outcome of the batch fed last comes with the next poll_ready.
        let err = futures::future::poll_fn(|cx| Pin::new(&mut sink).poll_ready(cx))
            .await
            .unwrap_err();
        match err {
            Error::Rejected(r) => {
                assert_eq!(r.iter().map(|r| r.index).collect::<Vec<_>>(), vec![0])
            }
            other => panic!("unexpected {other:?}"),
        }
        sink.feed(vec![one]).await.unwrap();
        sink.flush().await.unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}\n{}\n{}\n{}\n");
    }

    #[tokio::test]
    async fn fed_batches_larger_than_a_write_chunk_are_all_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let mut sink = FileSink::open(&path).await.unwrap();
        let line = "y".repeat(1000);
        let batches = 3 * WRITE_CHUNK_BYTES / (1003 * 100) + 1;
        for _ in 0..batches {
            sink.feed(vec![line.clone(); 100]).await.unwrap();
        }
        sink.close().await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), batches * 100);
        assert!(text.lines().all(|l| l.len() == 1002));
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_failed_write_is_reported_by_the_flush_not_by_poll_ready() {
        // Every write to /dev/full fails with ENOSPC.
        let mut sink = FileSink::<u32>::open("/dev/full").await.unwrap();
        sink.feed(vec![1, 2]).await.unwrap();
        futures::future::poll_fn(|cx| Pin::new(&mut sink).poll_ready(cx))
            .await
            .unwrap();
        let err = sink.flush().await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::Io {
                    op: "append to",
                    ..
                }
            ),
            "{err:?}"
        );
        // Reported once: the fed batches are dropped, the sink is usable.
        sink.flush().await.unwrap();
    }

    #[tokio::test]
    async fn open_under_a_file_is_a_typed_error() {
        // Missing parent directories are created; a parent that is a file
        // cannot be.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("plain"), b"").unwrap();
        let err = FileSink::<u32>::open(dir.path().join("plain/out.jsonl"))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err:?}");
    }
}
