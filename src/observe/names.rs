//! The names of every metric the crate records and of their labels, as
//! constants, so that dashboards, alerts and tests can refer to them
//! without spelling them out. What each one means, its type and its unit
//! are in the [module docs](super).
//!
//! The constants exist with or without the `metrics` feature; only the
//! recording needs it.

// Labels.

/// Label: the write-ahead log, its name ([`WalConfig::name`](crate::sink::WalConfig::name),
/// [`WalOptions::name`](crate::wal::WalOptions::name)) or else its directory.
pub const LABEL_WAL: &str = "wal";
/// Label: the short type name of the target behind `buffered_wal`
/// (`MemorySink`, `KinesisSink`, …; generic parameters stripped of their paths).
pub const LABEL_TARGET: &str = "target";
/// Label: the Kinesis stream (its name, or its ARN when given one).
pub const LABEL_STREAM: &str = "stream";
/// Label: the Kinesis shard id.
pub const LABEL_SHARD: &str = "shard";
/// Label: the CloudWatch Logs log group.
pub const LABEL_LOG_GROUP: &str = "log_group";
/// Label: the CloudWatch Logs log stream.
pub const LABEL_LOG_STREAM: &str = "log_stream";
/// Label: the file a [`FileSource`](crate::source::FileSource) reads (its
/// partition name).
pub const LABEL_PATH: &str = "path";
/// Label: the short type name of the checkpoint store of `checkpoint_batched`.
pub const LABEL_STORE: &str = "store";

// The write-ahead log.

/// Counter, records: records appended to the log (written; under
/// `Fsync::Always` also fdatasynced).
pub const WAL_APPENDED_RECORDS: &str = "unistream_wal_appended_records_total";
/// Counter, bytes: payload bytes of the records appended (frame headers excluded).
pub const WAL_APPENDED_BYTES: &str = "unistream_wal_appended_bytes_total";
/// Counter: group writes (one `write` per segment touched, plus one
/// fdatasync under `Fsync::Always`, for all the appends queued together).
pub const WAL_GROUP_WRITES: &str = "unistream_wal_group_writes_total";
/// Histogram, seconds: how long one group write took, its fdatasync included
/// when it had one (the fsync latency of appends under `Fsync::Always`).
pub const WAL_GROUP_WRITE_SECONDS: &str = "unistream_wal_group_write_seconds";
/// Counter: committed positions persisted (each an fdatasync of the
/// `committed` file; positions requested while one is persisted are
/// coalesced into the next).
pub const WAL_COMMITS: &str = "unistream_wal_commits_total";
/// Counter: persists of the committed position that failed (retried with
/// the next commit).
pub const WAL_COMMIT_FAILURES: &str = "unistream_wal_commit_failures_total";
/// Histogram, seconds: how long persisting one committed position took (its
/// fdatasync, and deleting the segments it covers).
pub const WAL_COMMIT_SECONDS: &str = "unistream_wal_commit_seconds";
/// Gauge, records: records appended and not yet delivered (committed by the
/// reader): the backlog.
pub const WAL_BACKLOG_RECORDS: &str = "unistream_wal_backlog_records";
/// Gauge, bytes: payload bytes of the backlog.
pub const WAL_BACKLOG_BYTES: &str = "unistream_wal_backlog_bytes";
/// Gauge, bytes: bytes of all segment files (what the log's cap limits).
pub const WAL_DISK_BYTES: &str = "unistream_wal_disk_bytes";

// `buffered_wal` delivery.

/// Counter: batches the target took (delivered, possibly with some records
/// rejected).
pub const DELIVERY_BATCHES: &str = "unistream_delivery_batches_total";
/// Counter, records: records the target stored.
pub const DELIVERY_RECORDS: &str = "unistream_delivery_records_total";
/// Histogram, seconds: from the first attempt to deliver a batch to the
/// target's answer that it took the batch, retries and their backoff included.
pub const DELIVERY_SECONDS: &str = "unistream_delivery_seconds";
/// Counter: attempts to deliver a batch that failed and were retried.
pub const DELIVERY_RETRIES: &str = "unistream_delivery_retries_total";
/// Counter, records: records the target rejected (`Error::Rejected`).
pub const DELIVERY_REJECTED_RECORDS: &str = "unistream_delivery_rejected_records_total";
/// Counter, records: records written to the dead-letter destination
/// (rejected, out of attempts, or no longer decodable).
pub const DELIVERY_DEAD_LETTERS: &str = "unistream_delivery_dead_letter_records_total";

// The Kinesis sink.

/// Counter, records: user records Kinesis stored.
pub const KINESIS_SINK_RECORDS: &str = "unistream_kinesis_sink_records_total";
/// Counter, records: user-record attempts that failed (a record failing
/// twice counts twice).
pub const KINESIS_SINK_FAILED_RECORDS: &str = "unistream_kinesis_sink_failed_records_total";
/// Counter, records: user-record attempts that were retries.
pub const KINESIS_SINK_RETRIED_RECORDS: &str = "unistream_kinesis_sink_retried_records_total";
/// Counter, records: user records rejected (the dead-letter path).
pub const KINESIS_SINK_REJECTED_RECORDS: &str = "unistream_kinesis_sink_rejected_records_total";
/// Counter: `PutRecords` calls, successful or not.
pub const KINESIS_SINK_CALLS: &str = "unistream_kinesis_sink_put_records_calls_total";
/// Counter: `PutRecords` calls that failed as a whole.
pub const KINESIS_SINK_CALL_FAILURES: &str = "unistream_kinesis_sink_put_records_failures_total";
/// Counter: throttling answers (records refused as throttled, and whole
/// calls throttled).
pub const KINESIS_SINK_THROTTLES: &str = "unistream_kinesis_sink_throttles_total";
/// Histogram, seconds: `PutRecords` latency.
pub const KINESIS_SINK_CALL_SECONDS: &str = "unistream_kinesis_sink_put_records_seconds";

// The Kinesis source.

/// Counter, records: user records read from a shard (KPL aggregates
/// unpacked; records a restart inside an aggregate skips are not counted).
pub const KINESIS_SOURCE_RECORDS: &str = "unistream_kinesis_source_records_total";
/// Gauge, milliseconds: `MillisBehindLatest` of the shard's last response
/// (`GetRecords` or a `SubscribeToShard` event): how far reading is behind
/// the stream's tip.
pub const KINESIS_SOURCE_MILLIS_BEHIND: &str = "unistream_kinesis_source_millis_behind_latest";
/// Counter: `GetRecords` calls (polling retrieval), successful or not.
pub const KINESIS_SOURCE_GET_RECORDS_CALLS: &str =
    "unistream_kinesis_source_get_records_calls_total";
/// Counter: throttled calls of a shard reader (`GetRecords`,
/// `GetShardIterator`, `SubscribeToShard`), each waited out.
pub const KINESIS_SOURCE_THROTTLES: &str = "unistream_kinesis_source_throttles_total";

// The CloudWatch Logs sink.

/// Counter: `PutLogEvents` calls, successful or not.
pub const CLOUDWATCH_LOGS_CALLS: &str = "unistream_cloudwatch_logs_put_log_events_calls_total";
/// Counter: `PutLogEvents` calls that failed and were retried.
pub const CLOUDWATCH_LOGS_RETRIES: &str = "unistream_cloudwatch_logs_retries_total";
/// Histogram, seconds: `PutLogEvents` latency.
pub const CLOUDWATCH_LOGS_CALL_SECONDS: &str = "unistream_cloudwatch_logs_put_log_events_seconds";
/// Counter, events: events of delivered batches that CloudWatch Logs stored.
pub const CLOUDWATCH_LOGS_EVENTS: &str = "unistream_cloudwatch_logs_events_total";
/// Counter, events: events rejected (by the plan or by the service).
pub const CLOUDWATCH_LOGS_REJECTED_EVENTS: &str = "unistream_cloudwatch_logs_rejected_events_total";

// `FileSource`.

/// Counter, records: lines read and decoded (or dead-lettered) from the
/// file, counted per block read.
pub const FILE_SOURCE_RECORDS: &str = "unistream_file_source_records_total";
/// Gauge, bytes: bytes of the file after the last complete line read, when
/// the last block was read (how far reading is behind the file's end).
pub const FILE_SOURCE_LAG_BYTES: &str = "unistream_file_source_lag_bytes";

// `checkpoint_batched`.

/// Counter: saves completed (one `save_many` call each, however many
/// partitions it covers).
pub const CHECKPOINT_SAVES: &str = "unistream_checkpoint_saves_total";
/// Counter: saves that failed (a fenced save included).
pub const CHECKPOINT_SAVE_FAILURES: &str = "unistream_checkpoint_save_failures_total";
/// Histogram, seconds: how long one save took.
pub const CHECKPOINT_SAVE_SECONDS: &str = "unistream_checkpoint_save_seconds";
/// Gauge, tokens: tokens held back behind a missing one (they cannot be
/// saved until it arrives), over all partitions, after the last save.
pub const CHECKPOINT_HELD_BACK_TOKENS: &str = "unistream_checkpoint_held_back_tokens";
