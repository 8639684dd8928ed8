//! Configuration of a write-ahead log: where it lives, how large it may grow,
//! when it fsyncs and what it does with a corrupt frame.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// When appended records are made durable with `fdatasync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// Every append resolves only once its records are written **and**
    /// fdatasynced. Concurrent appends share one fdatasync (group commit).
    /// The active segment is zero-filled up to 1 MiB ahead of its frames,
    /// so that most fdatasyncs write data only, not the inode of a file that
    /// grew (on this project's ext4 machines: ~5,300 instead of ~3,600
    /// fdatasyncs/s for small writes).
    Always,
    /// Appends resolve once written (to the OS page cache); a background
    /// timer fdatasyncs within this interval of the first unsynced write.
    /// A full segment is fdatasynced when it is sealed.
    /// A crash of the process loses nothing; a power loss or kernel crash
    /// loses at most the last interval.
    Interval(Duration),
    /// The log does not fdatasync appended records (only an explicit
    /// [`WalWriter::sync`](crate::wal::WalWriter::sync) does, and sealing a
    /// full segment does, once per segment): durability is left to the
    /// operating system. A crash of the process loses nothing; a power loss
    /// may lose any amount of recent records.
    Never,
}

impl Default for Fsync {
    fn default() -> Self {
        Fsync::Interval(Duration::from_millis(10))
    }
}

/// What damage (a complete frame with a bad checksum, a damaged frame
/// header) in records still needed does. Damage only in committed records
/// (delivered, not needed any more) and in space never published (zero
/// fill) never stops the log, whichever is chosen (see the
/// [module docs](crate::wal#guarantees)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnCorruption {
    /// Opening or reading stops with
    /// [`WalError::Corrupt`](crate::wal::WalError::Corrupt) naming the file
    /// and byte offset; the records before it are returned first. Nothing
    /// is skipped.
    #[default]
    Fail,
    /// The damaged bytes are copied into the `quarantine/` directory of the
    /// log, reported (a [`QuarantinedFrame`](crate::wal::QuarantinedFrame)
    /// with the lsns and number of records they held, and a `tracing` error
    /// event) and stepped over: reading goes on at the next intact frame,
    /// found by resynchronising. No lsn of a lost record is given again.
    Quarantine,
}

/// What an append does when the log already holds its cap of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhenFull {
    /// The append waits until commits free enough space (backpressure).
    #[default]
    Wait,
    /// The append fails at once with
    /// [`WalError::Full`](crate::wal::WalError::Full).
    Error,
}

/// Default size of one segment file: 16 MiB.
pub const DEFAULT_SEGMENT_BYTES: u64 = 16 << 20;
/// Default cap on the bytes of all segment files
/// ([`WalOptions::max_bytes`]): 1 GiB.
pub const DEFAULT_MAX_WAL_BYTES: u64 = 1 << 30;
/// The former name of [`DEFAULT_MAX_WAL_BYTES`], the log's 1 GiB cap. Not
/// to be confused with
/// [`sink::DEFAULT_MAX_BYTES`](crate::sink::DEFAULT_MAX_BYTES), the default
/// size of one delivered batch.
#[deprecated(
    note = "renamed `DEFAULT_MAX_WAL_BYTES` (the cap on the log's bytes); \
                     `sink::DEFAULT_MAX_BYTES` is the default batch size"
)]
pub const DEFAULT_MAX_BYTES: u64 = DEFAULT_MAX_WAL_BYTES;
/// Largest allowed segment size: frame lengths are 32-bit.
pub const MAX_SEGMENT_BYTES: u64 = u32::MAX as u64;
/// Smallest allowed segment size.
pub const MIN_SEGMENT_BYTES: u64 = 64;

/// Options of [`Wal::open`](crate::wal::Wal::open), built fluently.
///
/// ```
/// use std::time::Duration;
/// use unistream::wal::{Fsync, OnCorruption, WalOptions, WhenFull};
///
/// let options = WalOptions::new("/var/lib/app/wal")
///     .segment_bytes(4 << 20)
///     .max_bytes(256 << 20)
///     .fsync(Fsync::Interval(Duration::from_millis(5)))
///     .on_corruption(OnCorruption::Quarantine)
///     .when_full(WhenFull::Error);
/// assert_eq!(options.dir().to_str(), Some("/var/lib/app/wal"));
/// ```
#[derive(Clone, Debug)]
pub struct WalOptions {
    pub(crate) dir: PathBuf,
    pub(crate) segment_bytes: u64,
    pub(crate) max_bytes: u64,
    pub(crate) fsync: Fsync,
    pub(crate) on_corruption: OnCorruption,
    pub(crate) when_full: WhenFull,
    pub(crate) name: Option<String>,
}

impl WalOptions {
    /// Options for a log in directory `dir` (created when missing), with
    /// 16 MiB segments ([`DEFAULT_SEGMENT_BYTES`]), a 1 GiB cap
    /// ([`DEFAULT_MAX_WAL_BYTES`]), `Fsync::Interval(10 ms)`,
    /// `OnCorruption::Fail` and `WhenFull::Wait`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            max_bytes: DEFAULT_MAX_WAL_BYTES,
            fsync: Fsync::default(),
            on_corruption: OnCorruption::default(),
            when_full: WhenFull::default(),
            name: None,
        }
    }

    /// Size at which a segment file is sealed and a new one started (default
    /// 16 MiB, clamped to 64 B ..= 4 GiB − 1). A frame never spans segments,
    /// so this also bounds the size of one record.
    pub fn segment_bytes(mut self, n: u64) -> Self {
        self.segment_bytes = n.clamp(MIN_SEGMENT_BYTES, MAX_SEGMENT_BYTES);
        self
    }

    /// Cap on the bytes of all segment files on disk (default 1 GiB,
    /// [`DEFAULT_MAX_WAL_BYTES`]). Space is freed when a commit deletes
    /// whole segments.
    pub fn max_bytes(mut self, n: u64) -> Self {
        self.max_bytes = n;
        self
    }

    /// When appends are fdatasynced (default `Fsync::Interval(10 ms)`).
    pub fn fsync(mut self, f: Fsync) -> Self {
        self.fsync = f;
        self
    }

    /// What reading a corrupt frame does (default `OnCorruption::Fail`).
    pub fn on_corruption(mut self, c: OnCorruption) -> Self {
        self.on_corruption = c;
        self
    }

    /// What an append does at the cap (default `WhenFull::Wait`).
    pub fn when_full(mut self, w: WhenFull) -> Self {
        self.when_full = w;
        self
    }

    /// Names the log in its metrics (label `wal`, see
    /// [`observe`](crate::observe)) instead of its directory: a short, stable
    /// name such as `"orders"` that does not change with the deployment path.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The directory of the log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What the log's metrics call it: its [`name`](Self::name), or else its
    /// directory.
    pub fn label(&self) -> String {
        match &self.name {
            Some(name) => name.clone(),
            None => self.dir.display().to_string(),
        }
    }

    /// The configured segment size.
    pub fn get_segment_bytes(&self) -> u64 {
        self.segment_bytes
    }

    /// The configured cap on bytes on disk.
    pub fn get_max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// The configured fsync policy.
    pub fn get_fsync(&self) -> Fsync {
        self.fsync
    }

    /// The largest record payload an append accepts with these options: one
    /// frame plus a segment header must fit both a segment and the cap.
    pub fn max_record_bytes(&self) -> u64 {
        use super::format::{FRAME_HEADER_LEN, SEGMENT_HEADER_LEN};
        self.segment_bytes
            .min(self.max_bytes)
            .saturating_sub(SEGMENT_HEADER_LEN + FRAME_HEADER_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(deprecated)]
    fn the_former_name_of_the_default_cap_still_means_the_cap() {
        assert_eq!(crate::wal::DEFAULT_MAX_BYTES, DEFAULT_MAX_WAL_BYTES);
        assert_eq!(
            WalOptions::new("wal").get_max_bytes(),
            crate::wal::DEFAULT_MAX_WAL_BYTES
        );
    }
}
