//! The Kinesis producer: [`KinesisSink`], a `Sink<Vec<KinesisRecord>>` over
//! `PutRecords`, and what it is made of.
//!
//! | file | concept |
//! |---|---|
//! | `kinesis_sink.rs` | the `Sink` (one batch in flight, resumption of a failed batch) and its builder |
//! | `put/` | delivering one batch: shared state, entries and aggregation, call planning, calls and partial failures, resumable progress |
//! | `shard_map.rs` | predicting a record's shard from `ListShards` |
//! | [`rate_limit`] | per-shard pacing |
//! | `validation.rs` | the records Kinesis can never accept |
//! | `failure.rs` | telling throttling, transient and permanent failures apart |
//! | `metrics.rs` | producer counters and distributions |
//! | `codec.rs` | the compact binary encoding of records for `buffered_wal` |
//!
//! [`KinesisSink`]: crate::kinesis::KinesisSink

mod codec;
mod failure;
mod kinesis_sink;
mod metrics;
mod put;
pub mod rate_limit;
mod shard_map;
mod validation;

pub use codec::KinesisCodec;
pub use kinesis_sink::{KinesisSink, KinesisSinkBuilder};
pub use metrics::{KinesisMetrics, KinesisMetricsHandle};
pub use rate_limit::ShardRateLimit;
pub use validation::{validate, InvalidRecord};
