//! A source reading the JSON-lines files that `FileSink` writes: byte-offset
//! tokens, resuming by seeking, follow and read-to-end modes, partial last
//! lines never emitted, undecodable lines dead-lettered. The guarantees are
//! documented on [`FileSource`], where users read them.

use std::fmt;

use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::stream::{BoxStream, Fuse, FusedStream, Stream, StreamExt};
use futures::{Sink, SinkExt};

use crate::checkpoint::{CheckpointStore, CheckpointToken, Position};
use crate::codec::{Codec, JsonCodec};
use crate::dead_letter::DeadLetter;
use crate::error::Error;

mod line_reader;
mod run;

use line_reader::ReaderConfig;
use run::{DeadLetterSink, Run, Start};

const DEFAULT_CHUNK_BYTES: usize = 1 << 20;
const DEFAULT_MAX_LINE_BYTES: usize = 64 << 20;

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
#[must_use = "a source does nothing until `.stream()` is polled"]
pub struct FileSource<T, C = JsonCodec> {
    path: PathBuf,
    codec: C,
    start: Start,
    follow: Option<Duration>,
    /// In follow mode, end after the file has not grown for this long.
    caught_up_after: Option<Duration>,
    chunk_bytes: usize,
    max_line_bytes: usize,
    dead_letters: Option<DeadLetterSink<T>>,
    _records: PhantomData<fn() -> T>,
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
            caught_up_after: None,
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
            caught_up_after: self.caught_up_after,
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
    /// ends by itself (end it with [`until`](crate::source::SourceExt::until),
    /// or use [`stop_when_caught_up`](Self::stop_when_caught_up)).
    pub fn follow(mut self, poll_interval: Duration) -> Self {
        self.follow = Some(poll_interval);
        self.caught_up_after = None;
        self
    }

    /// Read-to-end mode (the default): the stream ends at the end of the
    /// file, before an incomplete last line.
    pub fn read_to_end(mut self) -> Self {
        self.follow = None;
        self.caught_up_after = None;
        self
    }

    /// For batch jobs on a file that is still written: follow it (polling
    /// every `poll_interval`, as [`follow`](Self::follow)) and end the
    /// stream once it is caught up: at the end of the file, with no new
    /// complete line for `idle` (in `tokio::time`). Every complete line
    /// written before that is yielded; an incomplete last line is not (as in
    /// read-to-end mode, it is logged).
    pub fn stop_when_caught_up(mut self, poll_interval: Duration, idle: Duration) -> Self {
        self.follow = Some(poll_interval);
        self.caught_up_after = Some(idle);
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
        let partition = self.partition();
        let run = Run {
            metrics: crate::observe::file_source::FileSourceMetrics::new(&partition),
            partition: Arc::from(partition),
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
            caught_up_after: self.caught_up_after,
            idle_since: None,
            seq: 0,
            dead_letters: self.dead_letters,
            done: false,
        };
        let inner = futures::stream::unfold(run, |mut run| async move {
            let item = run.next().await?;
            Some((item, run))
        })
        .boxed()
        .fuse();
        FileSourceStream { inner }
    }
}

impl<T, C: fmt::Debug> fmt::Debug for FileSource<T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileSource")
            .field("path", &self.path)
            .field("codec", &self.codec)
            .field("follow", &self.follow)
            .field("caught_up_after", &self.caught_up_after)
            .field("dead_letters", &self.dead_letters.is_some())
            .finish()
    }
}

/// The stream of a [`FileSource`]: `Result<(T, CheckpointToken), Error>`.
#[must_use = "streams do nothing unless polled"]
pub struct FileSourceStream<T> {
    inner: Fuse<BoxStream<'static, Result<(T, CheckpointToken), Error>>>,
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

/// Terminated once it has returned `None`: at the end of the file (without
/// `follow`), or on the poll after an error that ends the stream.
impl<T> FusedStream for FileSourceStream<T> {
    fn is_terminated(&self) -> bool {
        self.inner.is_terminated()
    }
}

impl<T> fmt::Debug for FileSourceStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileSourceStream").finish_non_exhaustive()
    }
}
