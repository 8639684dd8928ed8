//! The async side of a `FileSource` run: hands out decoded lines with
//! their tokens, fetches the next block from the blocking line reader one
//! ahead, follows a growing file, and writes undecodable lines to the
//! dead-letter sink before their tokens are released.

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Sink, SinkExt};
use tokio::task::JoinHandle;

use crate::checkpoint::{CheckpointError, CheckpointToken, Position};
use crate::codec::{Codec, CodecError};
use crate::dead_letter::DeadLetter;
use crate::error::Error;

use super::line_reader::{Block, Line, Reader, ReaderConfig};
use crate::observe::file_source::FileSourceMetrics;

pub(super) type DeadLetterSink<T> = Pin<Box<dyn Sink<Vec<DeadLetter<T>>, Error = Error> + Send>>;
type ReadTask<T, C> = JoinHandle<(Reader<T, C>, Result<Block<T>, Error>)>;
pub(super) type LoadFuture =
    Pin<Box<dyn Future<Output = Result<Option<Position>, CheckpointError>> + Send>>;

pub(super) enum Start {
    Beginning,
    After(Position),
    Load(LoadFuture),
}

/// The async side: hands out decoded lines, fetches blocks from the
/// blocking reader one ahead, writes dead letters.
pub(super) struct Run<T, C> {
    pub(super) partition: Arc<str>,
    pub(super) path: Arc<Path>,
    pub(super) config: ReaderConfig,
    /// Moved into the reader when it is opened.
    pub(super) codec: Option<C>,
    /// Taken when the file is opened.
    pub(super) start: Option<Start>,
    /// The reader, when no block read holds it.
    pub(super) reader: Option<Reader<T, C>>,
    pub(super) task: Option<ReadTask<T, C>>,
    pub(super) lines: std::vec::IntoIter<Line<T>>,
    pub(super) at_eof: bool,
    pub(super) follow: Option<Duration>,
    /// In follow mode: end once the file has not grown for this long.
    pub(super) caught_up_after: Option<Duration>,
    /// Since when reads find nothing new (follow mode).
    pub(super) idle_since: Option<tokio::time::Instant>,
    pub(super) seq: u64,
    pub(super) dead_letters: Option<DeadLetterSink<T>>,
    pub(super) done: bool,
    /// Counted once per block (see [`crate::observe`]).
    pub(super) metrics: FileSourceMetrics,
}

impl<T, C> Run<T, C>
where
    T: Send + 'static,
    C: Codec<T>,
{
    pub(super) async fn next(&mut self) -> Option<Result<(T, CheckpointToken), Error>> {
        loop {
            if let Some(line) = self.lines.next() {
                match line.decoded {
                    Ok(record) => {
                        let token = CheckpointToken::new(
                            self.partition.clone(),
                            Position::Offset(line.end),
                            self.seq,
                        );
                        self.seq += 1;
                        return Some(Ok((record, token)));
                    }
                    Err((raw, error)) => match self.corrupt_line(raw, error, line.start).await {
                        Ok(()) => continue,
                        Err(e @ Error::DeadLetter(_)) => {
                            self.finish();
                            return Some(Err(e));
                        }
                        Err(e) => return Some(Err(e)),
                    },
                }
            }
            if self.done {
                return None;
            }
            match self.next_block().await {
                Ok(Some(lines)) => self.lines = lines.into_iter(),
                Ok(None) => {
                    self.done = true;
                    return None;
                }
                Err(e) => {
                    self.finish();
                    return Some(Err(e));
                }
            }
        }
    }

    /// Ends the stream: nothing more is yielded.
    pub(super) fn finish(&mut self) {
        self.done = true;
        self.lines = Vec::new().into_iter();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    /// Dead-letters a line that did not decode, or reports it as an error
    /// when there is no dead-letter sink.
    pub(super) async fn corrupt_line(
        &mut self,
        raw: Vec<u8>,
        error: CodecError,
        start: u64,
    ) -> Result<(), Error> {
        let origin = format!("{} offset {start}", self.path.display());
        match self.dead_letters.as_mut() {
            Some(sink) => {
                tracing::warn!(%origin, error = %crate::ErrorChain(&error), "dead-lettering a line that does not decode");
                let letter =
                    DeadLetter::raw(raw, crate::ErrorChain(&error).to_string()).with_origin(origin);
                sink.send(vec![letter])
                    .await
                    .map_err(|e| Error::DeadLetter(Box::new(e)))
            }
            None => Err(Error::Codec(CodecError::decode(
                error.format(),
                CorruptLine {
                    origin,
                    source: error,
                },
            ))),
        }
    }

    /// The next block of complete lines; `None` at the end (read-to-end
    /// mode).
    pub(super) async fn next_block(&mut self) -> Result<Option<Vec<Line<T>>>, Error> {
        loop {
            if self.at_eof {
                match self.follow {
                    Some(poll) => {
                        let idle_since = *self
                            .idle_since
                            .get_or_insert_with(tokio::time::Instant::now);
                        if let Some(idle) = self.caught_up_after {
                            if idle_since.elapsed() >= idle {
                                let partial = self.reader.as_ref().map_or(0, |r| r.buf.len());
                                if partial > 0 {
                                    tracing::warn!(
                                        path = %self.path.display(),
                                        bytes = partial,
                                        "caught up inside an incomplete last line; not emitted"
                                    );
                                }
                                tracing::debug!(path = %self.path.display(), "file source caught up");
                                return Ok(None);
                            }
                        }
                        tokio::time::sleep(poll).await
                    }
                    None => return Ok(None),
                }
            }
            let task = match self.task.take() {
                Some(task) => task,
                None => {
                    let reader = match self.reader.take() {
                        Some(reader) => reader,
                        None => self.open().await?,
                    };
                    tokio::task::spawn_blocking(move || reader.read_block())
                }
            };
            let (reader, block) = task
                .await
                .map_err(|e| Error::io("read", &*self.path, std::io::Error::other(e)))?;
            let block = block?;
            self.metrics.records.increment(block.lines.len() as u64);
            if let Some(len) = block.file_len {
                // `base`: the offset after the last complete line read.
                self.metrics
                    .lag_bytes
                    .set(len.saturating_sub(reader.base) as f64);
            }
            self.at_eof = block.eof;
            if !block.lines.is_empty() {
                self.idle_since = None;
            }
            if block.eof {
                if self.follow.is_none() && block.partial_bytes > 0 {
                    tracing::warn!(
                        path = %self.path.display(),
                        offset = reader.base,
                        bytes = block.partial_bytes,
                        "end of file inside an incomplete last line; not emitted"
                    );
                }
                self.reader = Some(reader);
            } else {
                // Read the next block while this one is consumed.
                self.task = Some(tokio::task::spawn_blocking(move || reader.read_block()));
            }
            if !block.lines.is_empty() {
                return Ok(Some(block.lines));
            }
        }
    }

    pub(super) async fn open(&mut self) -> Result<Reader<T, C>, Error> {
        let offset = match self.start.take() {
            None | Some(Start::Beginning) => 0,
            Some(Start::After(position)) => self.start_offset(position)?,
            Some(Start::Load(load)) => match load.await? {
                Some(position) => self.start_offset(position)?,
                None => 0,
            },
        };
        let Some(codec) = self.codec.take() else {
            return Err(Error::io(
                "open",
                &*self.path,
                std::io::Error::other("file source reader lost after a failed read task"),
            ));
        };
        let path = self.path.clone();
        let config = self.config;
        tokio::task::spawn_blocking(move || Reader::open(path, offset, codec, config))
            .await
            .map_err(|e| Error::io("open", &*self.path, std::io::Error::other(e)))?
    }

    pub(super) fn start_offset(&self, position: Position) -> Result<u64, Error> {
        match position {
            Position::Offset(offset) => Ok(offset),
            other => Err(Error::Config(format!(
                "file source {} cannot resume after {other}: file positions are byte offsets",
                self.path.display()
            ))),
        }
    }
}

/// A line that does not decode, with where it is.
#[derive(Debug)]
pub(super) struct CorruptLine {
    pub(super) origin: String,
    pub(super) source: CodecError,
}

impl fmt::Display for CorruptLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line at {}", self.origin)
    }
}

impl std::error::Error for CorruptLine {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}
