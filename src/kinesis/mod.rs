//! AWS Kinesis Data Streams: records, limits, the producer sink, KPL
//! aggregation (and, as it lands, the source).
//!
//! Enabled by the `kinesis` cargo feature.
//!
//! | item | what it is |
//! |---|---|
//! | [`KinesisSink`] | `Sink<Vec<KinesisRecord>>` over `PutRecords`: limits, partial-failure retries, ordering, per-shard pacing, optional aggregation |
//! | [`aggregation`] | KPL aggregation and deaggregation |
//! | [`KinesisMetrics`] | producer counters and distributions |
//! | [`KinesisCodec`] | compact binary encoding of records for `buffered_wal` |
//! | [`limits`] | every service limit, as named constants |

pub mod aggregation;
mod codec;
mod failure;
mod hash_key;
pub mod limits;
mod metrics;
mod put;
pub mod rate_limit;
mod record;
mod shard_map;
mod sink;
mod target;
mod validation;

pub use codec::KinesisCodec;
pub use hash_key::{HashKey, InvalidHashKey};
pub use metrics::{KinesisMetrics, KinesisMetricsHandle};
pub use rate_limit::ShardRateLimit;
pub use record::KinesisRecord;
pub use sink::{KinesisSink, KinesisSinkBuilder};
pub use target::StreamTarget;
pub use validation::{validate, InvalidRecord};

// The consumer side (issue 6).
pub mod source;

pub use source::{InitialPosition, KinesisSource, KinesisStream};
