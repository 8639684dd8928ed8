//! # unistream
//!
//! Durable, batched producers and checkpointed consumers for stream systems
//! (AWS Kinesis, AWS CloudWatch Logs, local files, your own), in the
//! `futures` [`Stream`](futures::Stream) / [`Sink`](futures::Sink) style.
//!
//! - **Producers** are sinks of record batches ([`sink::FileSink`],
//!   [`sink::MemorySink`], Kinesis, CloudWatch Logs, your own) made durable
//!   and batched by one adapter, `.buffered_wal(config)`, backed by a
//!   write-ahead log on local disk.
//! - **Consumers** are streams of `(record, CheckpointToken)`, and
//!   checkpointing is a combinator over pluggable [`checkpoint`] stores.
//!
//! ## AWS clients and retries
//!
//! Every AWS type is made the same way (`T` below is `KinesisSink`,
//! `CloudWatchLogsSink`, `KinesisSource`, `DynamoDbCheckpointStore`,
//! `DynamoDbLeaseTable`, `DynamoDbIdempotencyStore`, …):
//!
//! | constructor | the client |
//! |---|---|
//! | `T::new(&SdkConfig, ..)` | built from the config, retries as in the table below |
//! | `T::from_client(client, ..)` | yours, used as it is (its own retry settings stay in force) |
//! | `T::builder(&SdkConfig, ..)`, `T::builder_from_client(client, ..)` | the same two, for the sinks, whose options are checked by `build()` |
//!
//! For a sink, `new` and `from_client` are `builder(..).build()`, and
//! every `build()` returns `Result<T, Error>`: [`Error::Config`] for an
//! option the service cannot accept (a stream or log group name, a
//! retention), before anything is sent; nothing does I/O until used. The
//! sources and stores have no options a service could refuse: `new` and
//! `from_client` return them directly and their options are methods; a
//! source starts reading with `.stream()`, like [`source::FileSource`].
//!
//! **One retry layer per call.** Each call to AWS is retried by exactly one
//! layer, so attempts never multiply unseen:
//!
//! | who calls | retried by | attempts with defaults |
//! |---|---|---|
//! | `KinesisSink` (`PutRecords`), `CloudWatchLogsSink` (`PutLogEvents`) | the sink's `retry_policy`; the SDK's retries are off on a client built from an `SdkConfig` | 10 per call and per record |
//! | `KinesisSource` (`GetRecords`, `ListShards`, `SubscribeToShard`, …) | its `retry_policy` (transient), `throttle_backoff` (throttling, waited out without a limit); SDK retries off | 10 |
//! | DynamoDB and S3 stores, the lease table | the SDK's standard mode (the stores do not retry; the lease worker retries on its own schedule) | 3 |
//!
//! Under `buffered_wal` a batch the sink gave up on (a transient
//! [`Error::Target`]) is sent again by the write-ahead log after its own
//! [`RetryPolicy`] backoff (the Kinesis sink resumes with the records not
//! yet stored; the CloudWatch Logs sink sends the whole batch again). A
//! record that never gets through is therefore sent at most *sink attempts
//! × `buffered_wal` attempts* times (10 × 10 = 100 with both defaults, over
//! 3 to 6 minutes of back-off in all), then dead-lettered. Lower either policy to bound it tighter. A client you
//! pass to `from_client` keeps its SDK retries: build it with
//! `RetryConfig::disabled()` to keep one layer.
//!
//! ## Observability
//!
//! With the cargo feature `metrics` the log, `buffered_wal` delivery, the
//! sinks, the sources and `checkpoint_batched` record counters, gauges and
//! histograms into the [`metrics`](https://docs.rs/metrics) facade: install
//! a recorder (`metrics-exporter-prometheus`, `metrics-util`, your own)
//! before opening logs and building sinks, and every metric listed in
//! [`observe`] — names in [`observe::names`], all prefixed `unistream_` —
//! is recorded, once per group write, batch, call or save (never per
//! record). [`WalConfig::name`](sink::WalConfig::name) gives a log a short
//! label instead of its directory. Without the feature nothing is recorded
//! and `metrics` is not a dependency.
//!
//! Background tasks run inside `tracing` spans naming their log directory
//! (`wal_writer`, `wal_committer`, `buffered_wal_delivery`), Kinesis stream
//! and shard (`kinesis_shard`, `kinesis_put`) or log group and stream
//! (`cloudwatch_logs_put`); see [`observe`].
//!
//! ## Map of the crate
//!
//! One folder per concept, one concept per file. Modules without a feature
//! build with the default features; the AWS ones sit behind cargo features
//! (`aws` enables `kinesis`, `cloudwatch-logs`, `dynamodb` and `s3`; `kpl`
//! builds KPL aggregation and the Kinesis record types without the SDK).
//!
//! | path | what it holds | feature |
//! |---|---|---|
//! | `lib.rs` | this map and the re-exports at the crate root | |
//! | `error.rs` | [`Error`], [`RejectedRecord`]: one typed error for every piece | |
//! | [`codec.rs`](codec) | record encodings ([`JsonCodec`], [`RawCodec`]); sizes are encoded sizes | |
//! | [`record_id.rs`](record_id) | producer record ids kept with each record in the log: `RecordIds`, `Identified`, `IdentifiedCodec` | |
//! | [`retry.rs`](retry) | [`RetryPolicy`]: bounded attempts, exponential backoff, jitter | |
//! | [`dead_letter.rs`](dead_letter) | [`DeadLetter`]: what a record given up on becomes | |
//! | `durable_fs.rs` | (private) `0600` files, directory fsync, atomic replace | |
//! | [`wal/`](wal) | the write-ahead log: format, options, recovery, quarantine, the committer and the state its tasks share | |
//! | `wal/writer/` | the append side: [`WalWriter`](wal::WalWriter), the writer task, one group write | |
//! | `wal/reader/` | the read side: [`WalReader`](wal::WalReader) and its blocking read job | |
//! | `wal/segment/` | segment files: the active one, scanning at recovery, reading frames | |
//! | [`sink/`](sink) | batch targets: [`FileSink`](sink::FileSink), [`MemorySink`](sink::MemorySink), [`batch_target`](fn@sink::batch_target) for your own | |
//! | `sink/buffered_wal/` | the durable, batching adapter: [`WalConfig`](sink::WalConfig), the delivery task, the dead-letter destination | |
//! | [`source/`](source) | record sources: [`MemorySource`](source::MemorySource) | |
//! | `source/file/` | [`FileSource`](source::FileSource): builder and stream, the async run, the blocking line reader | |
//! | [`process/`](process) | per-record `retry_each` and `dead_letter`, and their outcomes | |
//! | [`idempotency/`](idempotency) | running a handler at most once per key: [`Idempotency`](idempotency::Idempotency), the store contract, the memory store | |
//! | [`checkpoint/`](checkpoint) | tokens, positions, partition control, fencing tokens, the out-of-order position tracker, checkpointed filtering | |
//! | `checkpoint/store/` | the [`CheckpointStore`] contract and its memory and JSON file stores | |
//! | `checkpoint/batched/` | the `checkpoint_batched` combinator and its partition table | |
//! | `checkpoint/transactional/` | `checkpoint_transactional`: outputs and checkpoint in one transaction, the `TransactionalCheckpointStore` contract | |
//! | [`observe/`](observe) | metrics through the `metrics` facade (the names in [`observe::names`]), `tracing` spans | recording: `metrics` |
//! | [`lease/`](lease) | lease coordination: [`LeaseWorker`](lease::LeaseWorker), the [`LeaseTable`](lease::LeaseTable) contract, memory and fault-injecting tables, transactions of outputs with a lease write | |
//! | `aws/` | (private) telling throttled, transient and permanent AWS failures apart; SDK errors boxed | `kinesis`, `cloudwatch-logs` or `dynamodb` |
//! | `kinesis/` | records, stream targets, hash keys, service limits | `kinesis` (`kpl`: records, hash keys, limits) |
//! | `kinesis/sink/` | `KinesisSink` and its builder: shard map, per-shard pacing, validation, metrics, the WAL codec | `kinesis` |
//! | `kinesis/sink/put/` | delivering one batch: shared state, entries with aggregation, call planning, the call and its failures, progress | `kinesis` |
//! | `kinesis/source/` | `KinesisSource`: shard listing and lineage, one reader per shard (polling or enhanced fan-out), the merged stream, leased mode | `kinesis` |
//! | `kinesis/aggregation/` | KPL aggregation: the aggregator, deaggregation, the protobuf messages | `kinesis` or `kpl` |
//! | `cloudwatch_logs/` | `LogEvent`, the `Batcher` that plans `PutLogEvents` requests, service limits | `cloudwatch-logs` |
//! | `cloudwatch_logs/sink/` | `CloudWatchLogsSink` and its builder: names, the writer, halving, one request, setup, rejected events | `cloudwatch-logs` |
//! | `dynamodb/` | the KCL lease table: item codec, `DynamoDbLeaseTable`, `DynamoDbCheckpointStore`, table creation; outputs with the lease in `TransactWriteItems`; `DynamoDbIdempotencyStore` | `dynamodb` |
//! | `dynamodb/s3_batch_store.rs`, `dynamodb/in_flight_batch.rs` | `DynamoDbS3CheckpointStore`: a batch consumer's in-flight batch in S3 | `dynamodb` + `s3` |
//!
//! The DynamoDB checkpoint stores are also re-exported from [`checkpoint`],
//! beside the other stores.

#![forbid(unsafe_code)]
#![warn(missing_docs, rust_2018_idioms)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(any(feature = "kinesis", feature = "cloudwatch-logs", feature = "dynamodb"))]
mod aws;
pub mod checkpoint;
pub mod codec;
pub mod dead_letter;
mod durable_fs;
mod error;
pub mod idempotency;
pub mod lease;
pub mod observe;
pub mod process;
pub mod record_id;
pub mod retry;
pub mod sink;
pub mod source;
pub mod wal;

#[cfg(feature = "kpl")]
pub mod kinesis;

#[cfg(feature = "cloudwatch-logs")]
pub mod cloudwatch_logs;

#[cfg(feature = "dynamodb")]
pub mod dynamodb;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
#[path = "fuzz/mod.rs"]
pub mod __fuzz;

pub use checkpoint::{CheckpointStore, CheckpointStreamExt, CheckpointToken, Position};
pub use codec::{Codec, JsonCodec, RawCodec};
pub use dead_letter::DeadLetter;
pub use error::{BoxError, BrokenTarget, Error, ErrorChain, RejectedRecord, Result};
pub use retry::RetryPolicy;

/// The README's `rust` snippets, compiled as doctests (they need every AWS
/// feature; `scripts/test.sh` builds with all of them).
#[cfg(all(
    doctest,
    feature = "kinesis",
    feature = "dynamodb",
    feature = "cloudwatch-logs"
))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
