//! Batch sinks: the targets records are delivered to.
//!
//! Every target is a `Sink<Vec<T>>` (a sink of record batches) with
//! [`Error`](crate::Error) as its error type, following the crate's batch-sink
//! protocol: a failed batch leaves the sink usable and may be sent again, and
//! records the target can never accept are reported by index through
//! [`Error::Rejected`](crate::Error::Rejected).
//!
//! A new target is one `async` closure over a batch: [`batch_target`](fn@batch_target) (or
//! one `async fn` of a [`BatchTarget`], for a target with state), which
//! follows the protocol for it.

pub mod batch_target;
pub mod buffered_wal;
mod file;
mod memory;

pub use batch_target::{batch_target, BatchTarget, BatchTargetSink, FnBatchTarget};
pub use buffered_wal::{
    BufferedWal, DeadLetterTarget, DeliveryStopped, NoDeadLetter, WalConfig, WalSinkExt,
    DEFAULT_MAX_AGE, DEFAULT_MAX_BYTES, DEFAULT_MAX_HELD_BYTES, DEFAULT_MAX_RECORDS,
};
pub use file::FileSink;
pub use memory::{MemorySink, MemorySinkHandle};
