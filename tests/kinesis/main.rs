//! Kinesis (feature `kinesis`): `KinesisSink` and `KinesisSource` against
//! in-process fakes and against the emulators (moto, kinesis-mock). One
//! test binary (one of each emulator for all), one module per topic.
#![cfg(feature = "kinesis")]

#[path = "../support/mod.rs"]
mod support;

/// The emulator harness itself.
mod emulators;
/// `KinesisSink` pacing and calls in flight against the in-process stub,
/// on paused time.
mod pacing;
/// `KinesisSink` behind `buffered_wal`, against the emulators.
mod producer_emulator;
/// `KinesisSink` against the write fake: limits, failures, pacing, resharding.
mod sink;
/// `KinesisSource` against the emulators: consumption, restarts, fencing,
/// resharding (with DynamoDB checkpoints, so also feature `dynamodb`).
#[cfg(feature = "dynamodb")]
mod source;
/// KPL aggregates read back one user record at a time (moto).
mod source_aggregated;
/// `KinesisSource` with enhanced fan-out (kinesis-mock).
mod source_fanout;
/// Enhanced fan-out against mocked event streams: faults lose nothing.
mod source_fanout_faults;
/// `KinesisSource` against the read fake: injected faults and pacing.
mod source_faults;
/// A KCL-written lease table taken over and resumed (moto).
#[cfg(feature = "dynamodb")]
mod source_kcl_table;
/// `KinesisSource::leased`: workers sharing a stream (kinesis-mock).
mod source_leased;
/// Stopping `KinesisSource` pipelines: a shutdown signal, a batch job caught up (moto).
mod source_shutdown;
/// The local Kinesis stub with latency and per-shard limits.
mod stub;
/// Calls that get no answer: abandoned after `request_timeout`, retried.
mod timeouts;
