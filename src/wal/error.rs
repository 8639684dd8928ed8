//! Errors of the write-ahead log.

use std::path::PathBuf;

use super::Lsn;

/// The write-ahead log failed.
///
/// Match on the variant: each carries the context (file, offset, sizes)
/// needed to act on it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    /// A file operation on the log failed.
    #[error("WAL: {op} {}", path.display())]
    Io {
        /// What was being done ("open", "write", "fdatasync", …).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A complete frame failed its checksum, or a segment is damaged in a
    /// way a crash cannot explain: the log is corrupt at this place.
    #[error("corrupt WAL frame in {} at byte offset {offset}: {reason}", file.display())]
    Corrupt {
        /// The segment file.
        file: PathBuf,
        /// Byte offset of the frame (or damaged header) in the file.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },

    /// The append does not fit under the cap on bytes on disk
    /// ([`WhenFull::Error`](crate::wal::WhenFull::Error)), or a batch is larger
    /// than the whole cap.
    #[error("WAL full: the append needs {bytes} bytes on disk, cap is {cap} bytes")]
    Full {
        /// Bytes on disk the log would hold with this append.
        bytes: u64,
        /// The cap ([`WalOptions::max_bytes`](crate::wal::WalOptions::max_bytes)).
        cap: u64,
    },

    /// One record is larger than a segment or the cap allows.
    #[error("record of {bytes} bytes is larger than the WAL allows ({limit} bytes)")]
    RecordTooLarge {
        /// Payload size of the record.
        bytes: u64,
        /// Largest payload the log accepts
        /// ([`WalOptions::max_record_bytes`](crate::wal::WalOptions::max_record_bytes)).
        limit: u64,
    },

    /// The committed-position file cannot be read as one.
    #[error("bad WAL position file {}: {reason}", path.display())]
    BadPositionFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// `commit` named records that were never returned by `next_batch`.
    #[error("cannot commit up to {upto}: only records below {returned} were returned")]
    CommitBeyondReturned {
        /// The requested commit position.
        upto: Lsn,
        /// The position after the last returned record.
        returned: Lsn,
    },

    /// An earlier I/O failure stopped the log's writer; reopen the log.
    #[error("WAL writer stopped after an earlier failure: {reason}")]
    Failed {
        /// The earlier failure.
        reason: String,
    },

    /// The log's writer is gone (the runtime is shutting down).
    #[error("WAL closed")]
    Closed,

    /// The directory is in use by another open instance of the log in this
    /// process (its handles are still alive).
    #[error("WAL directory {} is already open in this process", dir.display())]
    AlreadyOpen {
        /// The directory.
        dir: PathBuf,
    },

    /// Another process has the log open (it holds the lock on the
    /// directory's `lock` file).
    #[error("WAL directory {} is locked: another process has the log open", dir.display())]
    LockedElsewhere {
        /// The directory.
        dir: PathBuf,
    },
}

impl WalError {
    /// An I/O failure on `path` while doing `op`.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        WalError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// `true` for [`WalError::Corrupt`].
    pub fn is_corrupt(&self) -> bool {
        matches!(self, WalError::Corrupt { .. })
    }

    /// A copy good enough to hand to every waiter of a failed group write.
    pub(crate) fn duplicate(&self) -> WalError {
        match self {
            WalError::Io { op, path, source } => WalError::Io {
                op,
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            WalError::Corrupt {
                file,
                offset,
                reason,
            } => WalError::Corrupt {
                file: file.clone(),
                offset: *offset,
                reason: reason.clone(),
            },
            WalError::Full { bytes, cap } => WalError::Full {
                bytes: *bytes,
                cap: *cap,
            },
            WalError::RecordTooLarge { bytes, limit } => WalError::RecordTooLarge {
                bytes: *bytes,
                limit: *limit,
            },
            WalError::BadPositionFile { path, reason } => WalError::BadPositionFile {
                path: path.clone(),
                reason: reason.clone(),
            },
            WalError::CommitBeyondReturned { upto, returned } => WalError::CommitBeyondReturned {
                upto: *upto,
                returned: *returned,
            },
            WalError::Failed { reason } => WalError::Failed {
                reason: reason.clone(),
            },
            WalError::Closed => WalError::Closed,
            WalError::AlreadyOpen { dir } => WalError::AlreadyOpen { dir: dir.clone() },
            WalError::LockedElsewhere { dir } => WalError::LockedElsewhere { dir: dir.clone() },
        }
    }
}

/// The file-system errors of `durable_fs`, keeping the operation and path.
impl From<crate::durable_fs::FsError> for WalError {
    fn from(e: crate::durable_fs::FsError) -> Self {
        WalError::Io {
            op: e.op,
            path: e.path,
            source: e.source,
        }
    }
}

/// A blocking task of the log panicked or was cancelled.
pub(crate) fn join_error(e: tokio::task::JoinError) -> WalError {
    if e.is_cancelled() {
        WalError::Closed
    } else {
        WalError::Failed {
            reason: format!("WAL blocking task panicked: {e}"),
        }
    }
}
