//! Batch sinks: the targets records are delivered to.
//!
//! Every target is a `Sink<Vec<T>>` (a sink of record batches) with
//! [`Error`](crate::Error) as its error type, following the crate's batch-sink
//! protocol: a failed batch leaves the sink usable and may be sent again, and
//! records the target can never accept are reported by index through
//! [`Error::Rejected`](crate::Error::Rejected).

mod buffered_wal;
mod file;
mod memory;

pub use buffered_wal::{
    BufferedWal, DeadLetterTarget, DeliveryStopped, NoDeadLetter, WalConfig, WalSinkExt,
    DEFAULT_MAX_AGE, DEFAULT_MAX_BYTES, DEFAULT_MAX_RECORDS,
};
pub use file::FileSink;
pub use memory::{MemorySink, MemorySinkHandle};
