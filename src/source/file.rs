//! A source reading the JSON-lines files that `FileSink` writes: byte-offset
//! tokens, resuming by seeking, follow and read-to-end modes, partial last
//! lines never emitted, undecodable lines dead-lettered. The guarantees are
//! documented on [`FileSource`], where users read them.

use std::fmt;
use std::fs::File;
use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::stream::{BoxStream, Stream, StreamExt};
use futures::{Sink, SinkExt};
use tokio::task::JoinHandle;

use crate::checkpoint::{CheckpointError, CheckpointStore, CheckpointToken, Position};
use crate::codec::{Codec, CodecError, JsonCodec};
use crate::dead_letter::DeadLetter;
use crate::error::Error;

const DEFAULT_CHUNK_BYTES: usize = 1 << 20;
const DEFAULT_MAX_LINE_BYTES: usize = 64 << 20;

type DeadLetterSink<T> = Pin<Box<dyn Sink<Vec<DeadLetter<T>>, Error = Error> + Send>>;
type ReadTask<T, C> = JoinHandle<(Reader<T, C>, Result<Block<T>, Error>)>;
type LoadFuture = Pin<Box<dyn Future<Output = Result<Option<Position>, CheckpointError>> + Send>>;

/// Reads a JSON-lines file as a stream of `(record, CheckpointToken)`.
///
/// A builder: configure it, then call [`stream`](Self::stream).
///
/// ```
/// use futures::TryStreamExt;
/// use unistream::checkpoint::Position;
/// use unistream::source::FileSource;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), unistream::Error> {
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("orders.jsonl");
/// std::fs::write(&path, "1\n2\n3\n").unwrap();
///
/// // Resume after the first line (offset 2 = just past "1\n").
/// let items: Vec<(u32, _)> = FileSource::new(&path)
///     .start_after(Position::Offset(2))
///     .stream()
///     .try_collect()
///     .await?;
/// assert_eq!(items.iter().map(|(r, _)| *r).collect::<Vec<_>>(), vec![2, 3]);
/// assert_eq!(items[1].1.position(), &Position::Offset(6));
/// # Ok(()) }
/// ```
///
/// It reads the files [`FileSink`](crate::sink::FileSink) writes: it yields every complete line of a file, decoded by a
/// [`Codec`] (JSON by default), with a [`CheckpointToken`] whose partition is
/// the file path (as given, not canonicalized) and whose position is
/// `Position::Offset(end)`: the byte offset just past the line's newline —
/// where reading resumes.
///
/// Guarantees:
/// - **Resuming seeks** straight to the checkpoint offset ([`start_after`],
///   [`resume_from`]); nothing before it is read. The offset must be 0 or
///   just past a newline, else the stream fails with an error naming the
///   file and offset.
/// - **A partial last line** (a writer in the middle of an append) is never
///   emitted: in follow mode it is emitted once its newline arrives; in
///   read-to-end mode the stream ends cleanly before it (and logs it).
/// - **A line that does not decode** is never skipped silently and never
///   ends the stream. With a [`dead_letters`] sink, it is written there
///   (raw bytes, codec error, `origin` = `"<path> offset <start>"`) before
///   any later line is yielded, and reading goes on; if that write fails the
///   stream yields [`Error::DeadLetter`] and ends. Without a dead-letter sink
///   it is yielded as an [`Error::Codec`] naming file and offset, and reading
///   goes on if the caller polls again.
/// - **The corrupt line's token**: it has none. The next record's token
///   (an offset past its own line) covers it, so a checkpoint never stops in
///   the middle of it; if the consumer crashes before a later record is
///   checkpointed, the line is dead-lettered again on restart (at least
///   once, like everything else).
///
/// Reading is done in large blocks (1 MiB by default) on the blocking thread
/// pool, one block read ahead while the previous one is consumed; lines are
/// split with `memchr` and decoded in place, without a per-line allocation
/// or system call.
///
/// Not handled: files that are rotated, truncated or replaced while read
/// (a file that shrinks below the read position fails the stream), and a
/// file that does not exist yet when the stream starts (an `open` error,
/// also in follow mode).
///
/// [`start_after`]: FileSource::start_after
/// [`resume_from`]: FileSource::resume_from
/// [`dead_letters`]: FileSource::dead_letters
pub struct FileSource<T, C = JsonCodec> {
    path: PathBuf,
    codec: C,
    start: Start,
    follow: Option<Duration>,
    chunk_bytes: usize,
    max_line_bytes: usize,
    dead_letters: Option<DeadLetterSink<T>>,
    _records: PhantomData<fn() -> T>,
}

enum Start {
    Beginning,
    After(Position),
    Load(LoadFuture),
}

impl<T> FileSource<T, JsonCodec> {
    /// A source reading `path` from its beginning to its end, decoding
    /// lines as JSON.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            codec: JsonCodec,
            start: Start::Beginning,
            follow: None,
            chunk_bytes: DEFAULT_CHUNK_BYTES,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            dead_letters: None,
            _records: PhantomData,
        }
    }
}

impl<T, C> FileSource<T, C>
where
    T: Send + 'static,
    C: Codec<T>,
{
    /// Decodes lines with `codec` instead of JSON.
    pub fn with_codec<C2: Codec<T>>(self, codec: C2) -> FileSource<T, C2> {
        FileSource {
            path: self.path,
            codec,
            start: self.start,
            follow: self.follow,
            chunk_bytes: self.chunk_bytes,
            max_line_bytes: self.max_line_bytes,
            dead_letters: self.dead_letters,
            _records: PhantomData,
        }
    }

    /// The partition name of this file in tokens and checkpoint stores: the
    /// path as given.
    pub fn partition(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }

    /// Starts after the checkpoint `position` (a `Position::Offset`; any
    /// other kind fails the stream with [`Error::Config`]).
    pub fn start_after(mut self, position: Position) -> Self {
        self.start = Start::After(position);
        self
    }

    /// Starts after this file's checkpoint in `store` (partition
    /// [`partition`](Self::partition)), or at the beginning when there is
    /// none. The store is read when the stream is first polled.
    pub fn resume_from<S: CheckpointStore>(mut self, store: S) -> Self {
        let partition = self.partition();
        self.start = Start::Load(Box::pin(async move { store.load(&partition).await }));
        self
    }

    /// Follow mode (like `tail -f`): at the end of the file, wait
    /// `poll_interval` (in `tokio::time`) and look again; the stream never
    /// ends by itself.
    pub fn follow(mut self, poll_interval: Duration) -> Self {
        self.follow = Some(poll_interval);
        self
    }

    /// Read-to-end mode (the default): the stream ends at the end of the
    /// file, before an incomplete last line.
    pub fn read_to_end(mut self) -> Self {
        self.follow = None;
        self
    }

    /// Writes lines that do not decode to `sink` (as [`DeadLetter::raw`])
    /// and goes on reading.
    pub fn dead_letters<D>(mut self, sink: D) -> Self
    where
        D: Sink<Vec<DeadLetter<T>>> + Send + 'static,
        D::Error: Into<Error>,
    {
        self.dead_letters = Some(Box::pin(sink.sink_map_err(Into::into)));
        self
    }

    /// Bytes read per block (default 1 MiB, at least 4 KiB).
    pub fn chunk_bytes(mut self, bytes: usize) -> Self {
        self.chunk_bytes = bytes.max(4096);
        self
    }

    /// The longest line accepted (default 64 MiB); a longer one fails the
    /// stream rather than growing memory without bound.
    pub fn max_line_bytes(mut self, bytes: usize) -> Self {
        self.max_line_bytes = bytes.max(1);
        self
    }

    /// The stream of `(record, token)`.
    pub fn stream(self) -> FileSourceStream<T> {
        let path: Arc<Path> = Arc::from(self.path.as_path());
        let run = Run {
            partition: Arc::from(self.partition()),
            path,
            config: ReaderConfig {
                chunk_bytes: self.chunk_bytes,
                max_line_bytes: self.max_line_bytes,
            },
            codec: Some(self.codec),
            start: Some(self.start),
            reader: None,
            task: None,
            lines: Vec::new().into_iter(),
            at_eof: false,
            follow: self.follow,
            seq: 0,
            dead_letters: self.dead_letters,
            done: false,
        };
        let inner = futures::stream::unfold(run, |mut run| async move {
            let item = run.next().await?;
            Some((item, run))
        })
        .boxed();
        FileSourceStream { inner }
    }
}

impl<T, C: fmt::Debug> fmt::Debug for FileSource<T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileSource")
            .field("path", &self.path)
            .field("codec", &self.codec)
            .field("follow", &self.follow)
            .field("dead_letters", &self.dead_letters.is_some())
            .finish()
    }
}

/// The stream of a [`FileSource`]: `Result<(T, CheckpointToken), Error>`.
#[must_use = "streams do nothing unless polled"]
pub struct FileSourceStream<T> {
    inner: BoxStream<'static, Result<(T, CheckpointToken), Error>>,
}

impl<T> Stream for FileSourceStream<T> {
    type Item = Result<(T, CheckpointToken), Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<T> fmt::Debug for FileSourceStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileSourceStream").finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy)]
struct ReaderConfig {
    chunk_bytes: usize,
    max_line_bytes: usize,
}

/// The async side: hands out decoded lines, fetches blocks from the
/// blocking reader one ahead, writes dead letters.
struct Run<T, C> {
    partition: Arc<str>,
    path: Arc<Path>,
    config: ReaderConfig,
    /// Moved into the reader when it is opened.
    codec: Option<C>,
    /// Taken when the file is opened.
    start: Option<Start>,
    /// The reader, when no block read holds it.
    reader: Option<Reader<T, C>>,
    task: Option<ReadTask<T, C>>,
    lines: std::vec::IntoIter<Line<T>>,
    at_eof: bool,
    follow: Option<Duration>,
    seq: u64,
    dead_letters: Option<DeadLetterSink<T>>,
    done: bool,
}

impl<T, C> Run<T, C>
where
    T: Send + 'static,
    C: Codec<T>,
{
    async fn next(&mut self) -> Option<Result<(T, CheckpointToken), Error>> {
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
    fn finish(&mut self) {
        self.done = true;
        self.lines = Vec::new().into_iter();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    /// Dead-letters a line that did not decode, or reports it as an error
    /// when there is no dead-letter sink.
    async fn corrupt_line(
        &mut self,
        raw: Vec<u8>,
        error: CodecError,
        start: u64,
    ) -> Result<(), Error> {
        let origin = format!("{} offset {start}", self.path.display());
        match self.dead_letters.as_mut() {
            Some(sink) => {
                tracing::warn!(%origin, %error, "dead-lettering a line that does not decode");
                let letter = DeadLetter::raw(raw, error.to_string()).with_origin(origin);
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
    async fn next_block(&mut self) -> Result<Option<Vec<Line<T>>>, Error> {
        loop {
            if self.at_eof {
                match self.follow {
                    Some(poll) => tokio::time::sleep(poll).await,
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
            self.at_eof = block.eof;
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

    async fn open(&mut self) -> Result<Reader<T, C>, Error> {
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

    fn start_offset(&self, position: Position) -> Result<u64, Error> {
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
struct CorruptLine {
    origin: String,
    source: CodecError,
}

impl fmt::Display for CorruptLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line at {}: {}", self.origin, self.source)
    }
}

impl std::error::Error for CorruptLine {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

struct Line<T> {
    start: u64,
    end: u64,
    decoded: Result<T, (Vec<u8>, CodecError)>,
}

struct Block<T> {
    lines: Vec<Line<T>>,
    eof: bool,
    /// Bytes of an incomplete line kept for the next block.
    partial_bytes: usize,
}

/// The blocking side: owns the file and the bytes of an incomplete line.
struct Reader<T, C> {
    file: File,
    path: Arc<Path>,
    codec: C,
    config: ReaderConfig,
    /// Bytes read but not yet part of a complete line; `buf[0]` is at file
    /// offset `base`.
    buf: Vec<u8>,
    base: u64,
    _records: PhantomData<fn() -> T>,
}

impl<T, C: Codec<T>> Reader<T, C> {
    fn open(path: Arc<Path>, offset: u64, codec: C, config: ReaderConfig) -> Result<Self, Error> {
        let mut file = File::open(&path).map_err(|e| Error::io("open", &*path, e))?;
        if offset > 0 {
            let len = file
                .metadata()
                .map_err(|e| Error::io("stat", &*path, e))?
                .len();
            let boundary = if offset <= len {
                let mut before = [0u8; 1];
                file.seek(SeekFrom::Start(offset - 1))
                    .and_then(|_| file.read_exact(&mut before))
                    .map_err(|e| Error::io("read", &*path, e))?;
                before[0] == b'\n'
            } else {
                false
            };
            if !boundary {
                return Err(Error::io(
                    "resume reading",
                    &*path,
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!(
                            "checkpoint offset {offset} is not the end of a line (file length {len})"
                        ),
                    ),
                ));
            }
            file.seek(SeekFrom::Start(offset))
                .map_err(|e| Error::io("seek", &*path, e))?;
        }
        Ok(Self {
            file,
            path,
            codec,
            config,
            buf: Vec::with_capacity(config.chunk_bytes),
            base: offset,
            _records: PhantomData,
        })
    }

    /// Reads one block and decodes its complete lines.
    fn read_block(mut self) -> (Self, Result<Block<T>, Error>) {
        let result = self.read_block_inner();
        (self, result)
    }

    fn read_block_inner(&mut self) -> Result<Block<T>, Error> {
        let kept = self.buf.len();
        self.buf.resize(kept + self.config.chunk_bytes, 0);
        let read = loop {
            match self.file.read(&mut self.buf[kept..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.buf.truncate(kept);
                    return Err(Error::io("read", &*self.path, e));
                }
            }
        };
        self.buf.truncate(kept + read);
        let eof = read == 0;
        if eof {
            self.check_not_truncated()?;
        }

        let mut lines = Vec::new();
        let mut start = 0usize;
        // The kept bytes hold no newline: scan only the new ones.
        for newline in memchr::memchr_iter(b'\n', &self.buf[kept..]) {
            let end = kept + newline;
            let bytes = &self.buf[start..end];
            let decoded = self
                .codec
                .decode(bytes)
                .map_err(|error| (bytes.to_vec(), error));
            lines.push(Line {
                start: self.base + start as u64,
                end: self.base + end as u64 + 1,
                decoded,
            });
            start = end + 1;
        }
        if start > 0 {
            self.buf.copy_within(start.., 0);
            self.buf.truncate(self.buf.len() - start);
            self.base += start as u64;
        }
        if self.buf.len() > self.config.max_line_bytes {
            return Err(Error::io(
                "read",
                &*self.path,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "line at offset {} is longer than max_line_bytes ({})",
                        self.base, self.config.max_line_bytes
                    ),
                ),
            ));
        }
        Ok(Block {
            lines,
            eof,
            partial_bytes: self.buf.len(),
        })
    }

    fn check_not_truncated(&self) -> Result<(), Error> {
        let len = self
            .file
            .metadata()
            .map_err(|e| Error::io("stat", &*self.path, e))?
            .len();
        let position = self.base + self.buf.len() as u64;
        if len < position {
            return Err(Error::io(
                "read",
                &*self.path,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("file shrank to {len} bytes below the read position {position} (truncated or replaced)"),
                ),
            ));
        }
        Ok(())
    }
}
