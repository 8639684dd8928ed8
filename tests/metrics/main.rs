//! Metrics (feature `metrics`) and `tracing` spans: known workloads run
//! against a recorder of our own, installed for the test's thread only
//! (`metrics::with_local_recorder` around a current-thread runtime), and
//! the exact counts checked. One test binary, one module per area.

#[path = "../support/mod.rs"]
mod support;

/// The recorder the tests read back, and the runtime that uses it.
mod recorder;

/// The Kinesis sink and source, CloudWatch Logs (in-process fakes).
#[cfg(all(feature = "kinesis", feature = "cloudwatch-logs"))]
mod aws;
/// `checkpoint_batched`: saves, failures, held-back tokens.
mod checkpoint;
/// `FileSource`: lines read, lag behind the file's end.
mod file_source;
/// Spans carrying the log's directory, the stream and the shard.
mod spans;
/// The write-ahead log and `buffered_wal`: appends, backlog, delivery,
/// retries, rejections, dead letters.
mod wal;
