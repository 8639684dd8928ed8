//! [`WalConfig`]: where the write-ahead log lives, how records are batched
//! for the target, how failures are retried and where given-up records go.
//!
//! The configuration is a plain value built with chained methods. Two of them
//! change its type: [`WalConfig::codec`] (the record encoding) and
//! [`WalConfig::dead_letter`] (the destination for records given up on), so
//! that both are checked at compile time against the record type when the
//! configuration meets a sink in
//! [`buffered_wal`](super::WalSinkExt::buffered_wal).
//!
//! Values that can only be a programming error (a batch of zero records) are
//! rejected by a panic at the call site; values that depend on the
//! environment are checked when the log is opened and reported as
//! [`Error::Config`](crate::Error::Config).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::codec::JsonCodec;
use crate::retry::RetryPolicy;
use crate::wal::{Fsync, OnCorruption, WalOptions, WhenFull};

use super::dead_letter::NoDeadLetter;

/// Default [`WalConfig::max_records`].
pub const DEFAULT_MAX_RECORDS: usize = 500;
/// Default [`WalConfig::max_bytes`]: 4 MiB of encoded records.
pub const DEFAULT_MAX_BYTES: usize = 4 << 20;
/// Default [`WalConfig::max_age`].
pub const DEFAULT_MAX_AGE: Duration = Duration::from_millis(200);
/// Default [`WalConfig::max_held_bytes`]: 32 MiB of encoded records.
pub const DEFAULT_MAX_HELD_BYTES: u64 = 32 << 20;

/// Configuration of [`buffered_wal`](super::WalSinkExt::buffered_wal).
///
/// `C` is the record codec ([`JsonCodec`] unless changed with
/// [`codec`](Self::codec)); `D` is the dead-letter destination
/// ([`NoDeadLetter`] unless set with [`dead_letter`](Self::dead_letter)).
///
/// ```
/// use std::time::Duration;
/// use unistream::sink::WalConfig;
/// use unistream::wal::Fsync;
/// use unistream::RetryPolicy;
///
/// let config = WalConfig::new("./wal/orders")
///     .max_records(500)
///     .max_bytes(4 << 20)
///     .max_age(Duration::from_millis(200))
///     .fsync(Fsync::Interval(Duration::from_millis(10)))
///     .retry(RetryPolicy::new().max_attempts(5));
/// assert_eq!(config.dir().to_str(), Some("./wal/orders"));
/// ```
#[derive(Debug, Clone)]
#[must_use = "a configuration does nothing until passed to `buffered_wal`"]
pub struct WalConfig<C = JsonCodec, D = NoDeadLetter> {
    pub(super) dir: PathBuf,
    pub(super) max_records: usize,
    pub(super) max_bytes: usize,
    pub(super) max_age: Duration,
    pub(super) max_held_bytes: u64,
    pub(super) fsync: Option<Fsync>,
    pub(super) max_wal_bytes: Option<u64>,
    pub(super) when_full: Option<WhenFull>,
    pub(super) segment_bytes: Option<u64>,
    pub(super) on_corruption: Option<OnCorruption>,
    pub(super) retry: RetryPolicy,
    pub(super) codec: C,
    pub(super) dead_letter: D,
    pub(super) name: Option<String>,
}

impl WalConfig {
    /// A configuration for the write-ahead log in directory `dir` (created
    /// when missing), with the defaults: batches of at most
    /// [`DEFAULT_MAX_RECORDS`] records, [`DEFAULT_MAX_BYTES`] encoded bytes
    /// and [`DEFAULT_MAX_AGE`] linger; the log's default fsync policy
    /// (`Fsync::Interval(10 ms)`), capacity and segment size; the default
    /// [`RetryPolicy`]; JSON encoding; no dead-letter destination.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            max_records: DEFAULT_MAX_RECORDS,
            max_bytes: DEFAULT_MAX_BYTES,
            max_age: DEFAULT_MAX_AGE,
            max_held_bytes: DEFAULT_MAX_HELD_BYTES,
            fsync: None,
            max_wal_bytes: None,
            when_full: None,
            segment_bytes: None,
            on_corruption: None,
            retry: RetryPolicy::default(),
            codec: JsonCodec,
            dead_letter: NoDeadLetter,
            name: None,
        }
    }
}

impl<C, D> WalConfig<C, D> {
    /// The directory of the write-ahead log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Names the log in the metrics of the log and of its delivery (label
    /// `wal`, see [`observe`](crate::observe)) instead of its directory:
    /// ```
    /// use unistream::sink::WalConfig;
    ///
    /// let config = WalConfig::new("/var/lib/app/wal/orders").name("orders");
    /// # let _ = config;
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// At most this many records per batch handed to the target.
    ///
    /// # Panics
    ///
    /// If `records` is 0.
    #[track_caller]
    pub fn max_records(mut self, records: usize) -> Self {
        assert!(records > 0, "WalConfig::max_records must be at least 1");
        self.max_records = records;
        self
    }

    /// At most this many *encoded* bytes per batch (a single record larger
    /// than this still travels, alone).
    ///
    /// Also bounds the encoded bytes a [`BufferedWal`](super::BufferedWal)
    /// handle holds in memory before it appends them to the log.
    ///
    /// # Panics
    ///
    /// If `bytes` is 0.
    #[track_caller]
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        assert!(bytes > 0, "WalConfig::max_bytes must be at least 1");
        self.max_bytes = bytes;
        self
    }

    /// How long the oldest undelivered record may wait for its batch to fill
    /// up. When it is reached, whatever is in the log is delivered, even when
    /// nobody is sending. `Duration::ZERO` delivers as soon as possible.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = age;
        self
    }

    /// How many encoded bytes of appended records are also kept in memory
    /// for the delivery (default [`DEFAULT_MAX_HELD_BYTES`]), which hands
    /// them to the target as they were sent instead of decoding them from
    /// the log again; `0` decodes every record from the log.
    ///
    /// The records are kept as values, so the memory they take is their
    /// in-memory size, which for most types is of the order of their
    /// encoding. Holding the oldest undelivered records, this serves a
    /// delivery up to that far behind the senders; beyond it, records are
    /// decoded from the log, as after a restart. Decoding is most of the
    /// delivery's own CPU with JSON records (a `FileSink` takes 100-byte
    /// records about 1.5× as fast without it: BENCHMARKS.md).
    pub fn max_held_bytes(mut self, bytes: u64) -> Self {
        self.max_held_bytes = bytes;
        self
    }

    /// When an acknowledged record is on disk: see [`Fsync`].
    pub fn fsync(mut self, fsync: Fsync) -> Self {
        self.fsync = Some(fsync);
        self
    }

    /// Caps the bytes the log keeps on disk. When the cap is reached, senders
    /// wait or fail, as chosen by [`when_full`](Self::when_full).
    pub fn max_wal_bytes(mut self, bytes: u64) -> Self {
        self.max_wal_bytes = Some(bytes);
        self
    }

    /// What a sender does when the log is at its cap: wait (backpressure,
    /// the default) or fail.
    pub fn when_full(mut self, when_full: WhenFull) -> Self {
        self.when_full = Some(when_full);
        self
    }

    /// Size at which the log starts a new segment file. Committed records
    /// are freed a whole segment at a time, so smaller segments free disk
    /// space sooner.
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = Some(bytes);
        self
    }

    /// What opening the log does with a complete frame that fails its
    /// checksum: fail (the default) or move it aside and go on.
    pub fn on_corruption(mut self, on_corruption: OnCorruption) -> Self {
        self.on_corruption = Some(on_corruption);
        self
    }

    /// How deliveries to the target are retried.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Encodes records with `codec` instead of JSON.
    pub fn codec<C2>(self, codec: C2) -> WalConfig<C2, D> {
        WalConfig {
            dir: self.dir,
            max_records: self.max_records,
            max_bytes: self.max_bytes,
            max_age: self.max_age,
            max_held_bytes: self.max_held_bytes,
            fsync: self.fsync,
            max_wal_bytes: self.max_wal_bytes,
            when_full: self.when_full,
            segment_bytes: self.segment_bytes,
            on_corruption: self.on_corruption,
            retry: self.retry,
            codec,
            dead_letter: self.dead_letter,
            name: self.name,
        }
    }

    /// Sends records that are given up on — a batch that exhausted its
    /// attempts, a record the target rejected permanently, bytes in the log
    /// that no longer decode — to `sink`, any `Sink<Vec<DeadLetter<T>>>`
    /// whose error converts into [`Error`](crate::Error) (a
    /// [`FileSink`](crate::sink::FileSink), a
    /// [`MemorySink`](crate::sink::MemorySink), your own).
    ///
    /// Records are committed only after the dead-letter write succeeded.
    /// Without a dead-letter destination nothing is ever given up on: the
    /// delivery stops with the error instead, and the records stay in the
    /// log.
    ///
    /// ```
    /// use futures::{stream, StreamExt};
    /// use unistream::sink::{FileSink, MemorySink, WalConfig, WalSinkExt};
    /// use unistream::RetryPolicy;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), unistream::Error> {
    /// let dir = tempfile::tempdir().unwrap();
    /// let target = MemorySink::<u64>::new();
    /// target.handle().fail_next(u64::MAX); // a target that never recovers
    ///
    /// let dead = dir.path().join("dead.jsonl");
    /// let sink = target
    ///     .buffered_wal(
    ///         WalConfig::new(dir.path().join("wal"))
    ///             .retry(RetryPolicy::no_retry())
    ///             .dead_letter(FileSink::open(&dead).await?),
    ///     )
    ///     .await?;
    /// stream::iter([1u64, 2]).map(Ok).forward(sink).await?;
    ///
    /// let lines = std::fs::read_to_string(&dead).unwrap();
    /// assert_eq!(lines.lines().count(), 2); // {"record":1,"reason":"gave up after 1 attempt(s): …",…}
    /// # Ok(()) }
    /// ```
    pub fn dead_letter<D2>(self, sink: D2) -> WalConfig<C, D2> {
        WalConfig {
            dir: self.dir,
            max_records: self.max_records,
            max_bytes: self.max_bytes,
            max_age: self.max_age,
            max_held_bytes: self.max_held_bytes,
            fsync: self.fsync,
            max_wal_bytes: self.max_wal_bytes,
            when_full: self.when_full,
            segment_bytes: self.segment_bytes,
            on_corruption: self.on_corruption,
            retry: self.retry,
            codec: self.codec,
            dead_letter: sink,
            name: self.name,
        }
    }

    /// Splits the configuration into the log's options, the batching
    /// limits, the retry policy, the codec and the dead-letter destination.
    pub(super) fn into_parts(self) -> (WalOptions, Batching, RetryPolicy, C, D) {
        let mut options = WalOptions::new(self.dir);
        if let Some(name) = self.name {
            options = options.name(name);
        }
        if let Some(fsync) = self.fsync {
            options = options.fsync(fsync);
        }
        if let Some(bytes) = self.max_wal_bytes {
            options = options.max_bytes(bytes);
        }
        if let Some(when_full) = self.when_full {
            options = options.when_full(when_full);
        }
        if let Some(bytes) = self.segment_bytes {
            options = options.segment_bytes(bytes);
        }
        if let Some(on_corruption) = self.on_corruption {
            options = options.on_corruption(on_corruption);
        }
        let batching = Batching {
            max_records: self.max_records,
            max_bytes: self.max_bytes,
            max_age: self.max_age,
            max_held_bytes: self.max_held_bytes,
        };
        (options, batching, self.retry, self.codec, self.dead_letter)
    }
}

/// The limits of one batch handed to the target, and of the appended
/// records held in memory for it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Batching {
    pub(super) max_records: usize,
    pub(super) max_bytes: usize,
    pub(super) max_age: Duration,
    pub(super) max_held_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let config = WalConfig::new("/tmp/x");
        assert_eq!(config.max_records, DEFAULT_MAX_RECORDS);
        assert_eq!(config.max_bytes, DEFAULT_MAX_BYTES);
        assert_eq!(config.max_age, DEFAULT_MAX_AGE);
        assert_eq!(config.max_held_bytes, DEFAULT_MAX_HELD_BYTES);
        assert_eq!(config.retry, RetryPolicy::default());
    }

    #[test]
    #[should_panic(expected = "max_records must be at least 1")]
    fn zero_records_is_a_programming_error() {
        let _ = WalConfig::new("/tmp/x").max_records(0);
    }

    #[test]
    #[should_panic(expected = "max_bytes must be at least 1")]
    fn zero_bytes_is_a_programming_error() {
        let _ = WalConfig::new("/tmp/x").max_bytes(0);
    }
}
