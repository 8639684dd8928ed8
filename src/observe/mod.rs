//! Observability: metrics through the [`metrics`](https://docs.rs/metrics)
//! facade (cargo feature `metrics`) and `tracing` spans (always).
//!
//! # Metrics
//!
//! With the feature `metrics` on, the crate records into whatever recorder
//! the program installed (`metrics-exporter-prometheus`, `metrics-util`'s
//! `DebuggingRecorder`, your own `metrics::Recorder`); without a recorder
//! the facade drops everything. With the feature off nothing is recorded,
//! the `metrics` crate is not a dependency and the hooks compile to
//! nothing. The names are constants in [`names`].
//!
//! Handles are registered, with their labels, when the thing they measure
//! is made — a log opened, a sink built, a shard reader started, a
//! `checkpoint_batched` stream created — so install the recorder before
//! that. Hooks record once per group write, batch, call or save, never per
//! record, so the write-ahead log's hot path is unchanged.
//!
//! Labels are bounded: a log's name or directory, a target's or store's
//! type name, a stream, a shard id, a log group and stream, a file path.
//! Record keys and partition keys never are labels.
//!
//! | name | type | unit | labels | meaning |
//! |---|---|---|---|---|
//! | `unistream_wal_appended_records_total` | counter | records | `wal` | records appended to the log |
//! | `unistream_wal_appended_bytes_total` | counter | bytes | `wal` | their payload bytes |
//! | `unistream_wal_group_writes_total` | counter | writes | `wal` | group writes (appends queued together share one) |
//! | `unistream_wal_group_write_seconds` | histogram | seconds | `wal` | one group write, its fdatasync included (`Fsync::Always`) |
//! | `unistream_wal_commits_total` | counter | commits | `wal` | committed positions persisted (fdatasynced) |
//! | `unistream_wal_commit_failures_total` | counter | commits | `wal` | persists of the committed position that failed |
//! | `unistream_wal_commit_seconds` | histogram | seconds | `wal` | one persist of the committed position, segment deletion included |
//! | `unistream_wal_backlog_records` | gauge | records | `wal` | appended, not yet delivered (committed by the reader) |
//! | `unistream_wal_backlog_bytes` | gauge | bytes | `wal` | their payload bytes |
//! | `unistream_wal_disk_bytes` | gauge | bytes | `wal` | bytes of all segment files (what the cap limits) |
//! | `unistream_delivery_batches_total` | counter | batches | `wal`, `target` | batches the target took |
//! | `unistream_delivery_records_total` | counter | records | `wal`, `target` | records the target stored |
//! | `unistream_delivery_seconds` | histogram | seconds | `wal`, `target` | first attempt to the target's answer, retries included |
//! | `unistream_delivery_retries_total` | counter | attempts | `wal`, `target` | failed attempts that were retried |
//! | `unistream_delivery_rejected_records_total` | counter | records | `wal`, `target` | records the target rejected |
//! | `unistream_delivery_dead_letter_records_total` | counter | records | `wal`, `target` | records written to the dead-letter destination |
//! | `unistream_kinesis_sink_records_total` | counter | records | `stream` | user records Kinesis stored |
//! | `unistream_kinesis_sink_failed_records_total` | counter | records | `stream` | user-record attempts that failed |
//! | `unistream_kinesis_sink_retried_records_total` | counter | records | `stream` | user-record attempts that were retries |
//! | `unistream_kinesis_sink_rejected_records_total` | counter | records | `stream` | user records rejected (dead-letter path) |
//! | `unistream_kinesis_sink_put_records_calls_total` | counter | calls | `stream` | `PutRecords` calls |
//! | `unistream_kinesis_sink_put_records_failures_total` | counter | calls | `stream` | `PutRecords` calls failed as a whole |
//! | `unistream_kinesis_sink_throttles_total` | counter | answers | `stream` | throttled records and calls |
//! | `unistream_kinesis_sink_put_records_seconds` | histogram | seconds | `stream` | `PutRecords` latency |
//! | `unistream_kinesis_source_records_total` | counter | records | `stream`, `shard` | user records read |
//! | `unistream_kinesis_source_millis_behind_latest` | gauge | milliseconds | `stream`, `shard` | `MillisBehindLatest` of the last response: lag behind the tip |
//! | `unistream_kinesis_source_get_records_calls_total` | counter | calls | `stream`, `shard` | `GetRecords` calls (polling) |
//! | `unistream_kinesis_source_throttles_total` | counter | calls | `stream`, `shard` | throttled calls of the shard reader |
//! | `unistream_cloudwatch_logs_put_log_events_calls_total` | counter | calls | `log_group`, `log_stream` | `PutLogEvents` calls |
//! | `unistream_cloudwatch_logs_retries_total` | counter | calls | `log_group`, `log_stream` | failed calls that were retried |
//! | `unistream_cloudwatch_logs_put_log_events_seconds` | histogram | seconds | `log_group`, `log_stream` | `PutLogEvents` latency |
//! | `unistream_cloudwatch_logs_events_total` | counter | events | `log_group`, `log_stream` | events stored |
//! | `unistream_cloudwatch_logs_rejected_events_total` | counter | events | `log_group`, `log_stream` | events rejected (plan or service) |
//! | `unistream_file_source_records_total` | counter | records | `path` | lines read from the file |
//! | `unistream_file_source_lag_bytes` | gauge | bytes | `path` | bytes of the file after the last complete line read |
//! | `unistream_checkpoint_saves_total` | counter | saves | `store` | `checkpoint_batched` saves completed |
//! | `unistream_checkpoint_save_failures_total` | counter | saves | `store` | saves that failed (fenced ones included) |
//! | `unistream_checkpoint_save_seconds` | histogram | seconds | `store` | one save |
//! | `unistream_checkpoint_held_back_tokens` | gauge | tokens | `store` | tokens waiting behind a missing one, after the last save |
//!
//! The Kinesis sink's own snapshot (`KinesisMetricsHandle`) and the lease
//! worker's [`LeaseMetrics`](crate::lease::LeaseMetrics) stay as they are;
//! the sink's facade counters are forwarded from the same updates.
//!
//! # Spans
//!
//! Background work runs inside a `tracing` span naming what it works on, so
//! its events (and a subscriber's output) say which log, stream or shard
//! they are about:
//!
//! | span | fields | around |
//! |---|---|---|
//! | `wal_writer`, `wal_committer` | `wal_dir` | the log's writer and committer tasks |
//! | `buffered_wal_delivery` | `wal_dir` | the delivery task of `buffered_wal` |
//! | `kinesis_shard` | `stream`, `shard` | a `KinesisSource` shard reader (polling or fan-out) |
//! | `kinesis_put` | `stream` | one batch of `KinesisSink` |
//! | `cloudwatch_logs_put` | `log_group`, `log_stream` | one batch of `CloudWatchLogsSink` |
//!
//! # Not guaranteed
//!
//! A handle registered before a recorder is installed records nothing
//! (the facade's rule). A gauge keeps its last value when what it measures
//! goes away: the `MillisBehindLatest` of a shard whose lease moved to
//! another worker, or that is finished, stays as its last response said. Gauges are set from the task that changed the
//! value; a recorder that scrapes between two related updates (records
//! appended, not yet counted in the backlog) sees them apart for a moment.

pub(crate) mod checkpoint;
pub(crate) mod delivery;
pub(crate) mod file_source;
pub(crate) mod handles;
pub mod names;
pub(crate) mod wal;

#[cfg(feature = "cloudwatch-logs")]
pub(crate) mod cloudwatch_logs;
#[cfg(feature = "kinesis")]
pub(crate) mod kinesis_sink;
#[cfg(feature = "kinesis")]
pub(crate) mod kinesis_source;
