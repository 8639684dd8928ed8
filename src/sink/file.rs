//! A local JSON-lines file as a batch target.
//!
//! [`FileSink`] appends each record of a batch as one line of compact JSON
//! and fsyncs (fdatasync) the file once per batch: when `send(batch)` or
//! `flush()` returns `Ok`, the batch is on disk.
//!
//! Guarantees:
//! - A batch is written with one `write` of whole lines. If a write fails
//!   part-way, the file is cut back to its length before the batch, so a
//!   retry never leaves a broken line in the middle of the file.
//! - On open, an incomplete last line (left by a crash in the middle of an
//!   append) is cut off. Such a line was never acknowledged, so nothing
//!   acknowledged is lost; a durable producer upstream redelivers it.
//! - A record that cannot be encoded as JSON is not written; the rest of the
//!   batch is, and the record is reported through [`Error::Rejected`].
//! - The file is created with mode `0600`.
//!
//! The format is what [`FileSource`](crate::source) reads back.

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

/// A `Sink<Vec<T>>` appending JSON lines to a file, fsynced per batch.
#[must_use = "sinks do nothing unless polled"]
pub struct FileSink<T> {
    path: Arc<Path>,
    state: FileSinkState,
    /// Encoded lines of the batch not yet written.
    buffer: Vec<u8>,
    /// Records of the current batch that could not be encoded.
    rejected: Vec<RejectedRecord>,
    _records: PhantomData<fn(T)>,
}

enum FileSinkState {
    Idle {
        file: File,
        len: u64,
    },
    Writing(JoinHandle<(File, u64, Result<(), Error>)>),
    /// A blocking task panicked or was cancelled: the file handle is gone.
    Broken,
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
            state: FileSinkState::Idle { file, len },
            buffer: Vec::new(),
            rejected: Vec::new(),
            _records: PhantomData,
        })
    }

    /// The file this sink appends to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        loop {
            match &mut self.state {
                FileSinkState::Broken => {
                    return Poll::Ready(Err(Error::io(
                        "write to",
                        &*self.path,
                        std::io::Error::other("file sink lost its file after a failed write task"),
                    )))
                }
                FileSinkState::Writing(task) => {
                    let joined = futures::ready!(Pin::new(task).poll(cx));
                    match joined {
                        Ok((file, len, result)) => {
                            self.state = FileSinkState::Idle { file, len };
                            result?;
                        }
                        Err(join) => {
                            self.state = FileSinkState::Broken;
                            return Poll::Ready(Err(Error::io(
                                "write to",
                                &*self.path,
                                std::io::Error::other(join),
                            )));
                        }
                    }
                }
                FileSinkState::Idle { .. } if self.buffer.is_empty() => {
                    let rejected = std::mem::take(&mut self.rejected);
                    return Poll::Ready(if rejected.is_empty() {
                        Ok(())
                    } else {
                        Err(Error::Rejected(rejected))
                    });
                }
                FileSinkState::Idle { .. } => {
                    let FileSinkState::Idle { file, len } =
                        std::mem::replace(&mut self.state, FileSinkState::Broken)
                    else {
                        unreachable!("matched Idle above")
                    };
                    let bytes = std::mem::take(&mut self.buffer);
                    let path = self.path.clone();
                    self.state = FileSinkState::Writing(tokio::task::spawn_blocking(move || {
                        append_durably(file, len, &bytes, &path)
                    }));
                }
            }
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

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_write(cx)
    }

    fn start_send(self: Pin<&mut Self>, batch: Vec<T>) -> Result<(), Error> {
        let this = self.get_mut();
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

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_write(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_write(cx)
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

/// Appends `bytes` and fdatasyncs; on failure cuts the file back to `len`.
fn append_durably(
    mut file: File,
    len: u64,
    bytes: &[u8],
    path: &Path,
) -> (File, u64, Result<(), Error>) {
    let written = file
        .write_all(bytes)
        .map_err(|e| Error::io("append to", path, e))
        .and_then(|()| file.sync_data().map_err(|e| Error::io("fsync", path, e)));
    match written {
        Ok(()) => (file, len + bytes.len() as u64, Ok(())),
        Err(e) => {
            if let Err(cut) = file.set_len(len) {
                tracing::error!(path = %path.display(), error = %crate::ErrorChain(&cut), "cannot cut back a failed append");
            }
            (file, len, Err(e))
        }
    }
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
