//! The crate's error type.
//!
//! Every fallible operation in `unistream` returns [`Error`] (or a typed
//! sub-error that converts into it), so pipelines built from several of the
//! crate's pieces compose with `?` and `TryStreamExt`. Match on the variant,
//! never on the message: the variants carry the context (file, offset,
//! partition, target) needed to act on them.
//!
//! Batch sinks in this crate follow one protocol that the write-ahead-log
//! adapter relies on: a sink that fails a batch stays usable, and sending the
//! same batch again is allowed (delivery is at least once). A sink that
//! delivered a batch *except* some records it can never accept reports
//! [`Error::Rejected`], naming those records by their index in the batch, so
//! that the caller dead-letters exactly them and treats the rest as delivered.
//! [`sink::batch_target`](crate::sink::batch_target) makes such a sink from
//! one `async` closure. A sink that cannot be used after an error (such as
//! `futures::sink::unfold`) breaks the protocol; the write-ahead-log adapter
//! then stops with [`Error::BrokenTarget`] instead of retrying.
//!
//! Messages do not repeat their cause: an error that wraps another returns
//! it from [`source`](std::error::Error::source) and leaves it out of its
//! own `Display`, so that reporters walking the chain (`anyhow`, `eyre`,
//! `tracing`'s error values) print every cause once. [`ErrorChain`] prints
//! the whole chain on one line, where one string is wanted (a log field, a
//! dead-letter reason).

use std::fmt;
use std::path::PathBuf;

use crate::checkpoint::CheckpointError;
use crate::codec::CodecError;
use crate::idempotency::IdempotencyError;
use crate::lease::LeaseError;
use crate::wal::WalError;

/// A boxed error from user code or a third-party target.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Convenient alias for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The error type of every sink, source and combinator in `unistream`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The write-ahead log failed (I/O, corruption, capacity).
    #[error(transparent)]
    Wal(#[from] WalError),

    /// A record could not be encoded or decoded.
    #[error(transparent)]
    Codec(#[from] CodecError),

    /// A checkpoint store failed, or a writer was fenced.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),

    /// A lease table failed (see [`lease`](crate::lease)).
    #[error(transparent)]
    Lease(#[from] LeaseError),

    /// An idempotency store failed, or a run lost its claim (see
    /// [`idempotency`](crate::idempotency)).
    #[error(transparent)]
    Idempotency(#[from] IdempotencyError),

    /// A file operation failed.
    #[error("{op} {}", path.display())]
    Io {
        /// What was being done ("open", "append to", "fsync", …).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The target delivered the batch except these records, which it can
    /// never accept (too large, invalid, rejected by the service).
    ///
    /// The caller must dead-letter exactly these records; the others are
    /// delivered.
    #[error("{} record(s) of the batch rejected permanently by the target (first: {})",
        .0.len(), .0.first().map(|r| r.reason.as_str()).unwrap_or("-"))]
    Rejected(Vec<RejectedRecord>),

    /// The target system failed to take a batch. Retrying may succeed.
    #[error("target {target} failed")]
    Target {
        /// Which target ("memory", "file /tmp/x", "kinesis stream orders", …).
        target: String,
        /// The underlying error.
        #[source]
        source: BoxError,
    },

    /// The target broke the batch-sink protocol (it panicked, or ended
    /// itself after an error) and cannot be used any more. Not retried: a
    /// write-ahead log in front of it stops delivering, commits nothing and
    /// keeps the records for the next open with a fixed target.
    #[error(transparent)]
    BrokenTarget(#[from] BrokenTarget),

    /// The handle was closed (by `close`) and takes no more records. Other
    /// handles of the same sink may still be open.
    #[error("{what} was closed: {hint}")]
    Closed {
        /// What was closed ("buffered_wal handle", …).
        what: &'static str,
        /// What to do instead.
        hint: &'static str,
    },

    /// A background task of the crate panicked: a bug in code it ran (a
    /// target, a codec, a handler). What the task was doing stopped; records
    /// acknowledged by a write-ahead log stay in it.
    #[error("{task} panicked: {message}")]
    Panicked {
        /// Which task ("buffered_wal delivery task", …).
        task: &'static str,
        /// The panic's message.
        message: String,
    },

    /// Writing to the dead-letter destination failed; nothing was committed.
    #[error("dead-letter destination failed")]
    DeadLetter(#[source] Box<Error>),

    /// A user handler failed (see [`Error::handler`]).
    #[error("handler failed")]
    Handler(#[source] BoxError),

    /// A configuration value is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl Error {
    /// Wraps the error of a user-supplied handler, for use in
    /// `.and_then(|x| async { handle(x).await.map_err(Error::handler) })`.
    pub fn handler(err: impl Into<BoxError>) -> Self {
        Error::Handler(err.into())
    }

    /// A failure of the named target system.
    pub fn target(target: impl Into<String>, err: impl Into<BoxError>) -> Self {
        Error::Target {
            target: target.into(),
            source: err.into(),
        }
    }

    /// The error of a background task that ended by `panic`: its message
    /// when it has one.
    pub(crate) fn panicked(task: &'static str, panic: &(dyn std::any::Any + Send)) -> Self {
        let message = BrokenTarget::panic_message(panic);
        Error::Panicked { task, message }
    }

    /// An I/O failure on `path` while doing `op`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// The checkpoint error inside, if this is one.
    pub fn as_checkpoint(&self) -> Option<&CheckpointError> {
        match self {
            Error::Checkpoint(e) => Some(e),
            _ => None,
        }
    }

    /// `true` when a checkpoint write was fenced because the lease was lost.
    pub fn is_fenced(&self) -> bool {
        matches!(self, Error::Checkpoint(e) if e.is_fenced())
    }
}

impl From<crate::durable_fs::FsError> for Error {
    fn from(e: crate::durable_fs::FsError) -> Self {
        Error::Io {
            op: e.op,
            path: e.path,
            source: e.source,
        }
    }
}

/// How a target broke the batch-sink protocol, so that it cannot be used
/// any more (see [`Error::BrokenTarget`]).
///
/// The protocol (see the [module documentation](crate::Error)) asks a
/// target to stay usable after a failed batch, because the same batch is
/// sent again. A `Sink` that ends itself after an error, such as
/// `futures::sink::unfold` (whose next `start_send` panics), cannot be
/// retried; [`batch_target`](fn@crate::sink::batch_target) makes a target from
/// an `async` closure that follows the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BrokenTarget {
    /// The target failed a batch, then panicked when it was given the next
    /// one (the same batch again, or the one after a rejection): it ended
    /// itself after the error.
    #[error(
        "the target ended after an error: a Sink that cannot be used after an error (such as \
         futures::sink::unfold) cannot be retried - use unistream::sink::batch_target \
         (the error: {error}; the next call panicked: {panic})"
    )]
    EndedAfterError {
        /// The error the target returned before it ended.
        error: String,
        /// The message of the panic on the call that followed.
        panic: String,
    },

    /// The target panicked (a bug in the target); what it was doing is lost
    /// and its state is unknown.
    #[error("the target panicked: {message}")]
    Panicked {
        /// The panic's message.
        message: String,
    },
}

impl BrokenTarget {
    /// The message of a caught panic: its text when it has one.
    pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
        panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string())
    }
}

/// An error and its causes on one line, `outer: cause: root cause`: what
/// to log or store where one string must carry the whole chain (each
/// error's own message leaves its cause out; see the [module
/// documentation](crate::Error)).
///
/// ```
/// use unistream::{Error, ErrorChain};
///
/// let error = Error::target("kinesis stream orders", std::io::Error::other("connection reset"));
/// assert_eq!(error.to_string(), "target kinesis stream orders failed");
/// assert_eq!(
///     ErrorChain(&error).to_string(),
///     "target kinesis stream orders failed: connection reset"
/// );
/// ```
#[derive(Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(error) = cause {
            write!(f, ": {error}")?;
            cause = error.source();
        }
        Ok(())
    }
}

impl fmt::Debug for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A record of a batch that the target can never accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedRecord {
    /// Index of the record in the batch handed to the sink.
    pub index: usize,
    /// Why the target rejected it, for the dead-letter entry.
    pub reason: String,
}

impl RejectedRecord {
    /// A rejection of the record at `index` for `reason`.
    pub fn new(index: usize, reason: impl Into<String>) -> Self {
        Self {
            index,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for RejectedRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "record {}: {}", self.index, self.reason)
    }
}
