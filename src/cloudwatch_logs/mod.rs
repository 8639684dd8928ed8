//! AWS CloudWatch Logs: a batch sink for `PutLogEvents`.
//!
//! Enabled by the `cloudwatch-logs` cargo feature.
//!
//! - [`LogEvent`]: a timestamp and a message (serde-serializable, so it goes
//!   through the write-ahead log).
//! - [`Batcher`]: turns a batch into valid requests — validated, stably
//!   sorted by timestamp, split by count, bytes and 24-hour span — pure and
//!   fast.
//! - [`CloudWatchLogsSink`]: a `Sink<Vec<LogEvent>>` that sends those
//!   requests one at a time to one log stream, retries throttling and
//!   service errors, and reports events the service can never accept
//!   through [`Error::Rejected`](crate::Error::Rejected) so that
//!   `buffered_wal` dead-letters exactly them.
//! - [`limits`]: every `PutLogEvents` limit as a named constant.

mod batcher;
mod event;
pub mod limits;
mod sink;

pub use batcher::{Batcher, Plan};
pub use event::LogEvent;
pub use sink::{CloudWatchLogsSink, CloudWatchLogsSinkBuilder};
