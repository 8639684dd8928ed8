//! AWS Kinesis Data Streams: records, limits, the producer sink, the
//! consumer source and KPL aggregation.
//!
//! Enabled by the `kinesis` cargo feature.
//!
//! | item | where | what it is |
//! |---|---|---|
//! | [`KinesisRecord`], [`StreamTarget`], [`HashKey`] | `record.rs`, `target.rs`, `hash_key.rs` | what both sides share |
//! | [`limits`] | `limits.rs` | every service limit, as named constants |
//! | [`KinesisSink`] | `sink/` | `Sink<Vec<KinesisRecord>>` over `PutRecords`: limits, partial-failure retries, ordering, per-shard pacing, optional aggregation |
//! | [`KinesisMetrics`] | `sink/` | producer counters and distributions |
//! | [`KinesisCodec`] | `sink/` | compact binary encoding of records for `buffered_wal` |
//! | [`KinesisSource`] | [`source`] | every shard of a stream as one checkpointed stream |
//! | [`aggregation`] | `aggregation/` | KPL aggregation and deaggregation |

pub mod aggregation;
mod hash_key;
pub mod limits;
mod record;
mod sink;
pub mod source;
mod target;

pub use hash_key::{HashKey, InvalidHashKey};
pub use record::KinesisRecord;
pub use sink::rate_limit;
pub use sink::{
    validate, InvalidRecord, KinesisCodec, KinesisMetrics, KinesisMetricsHandle, KinesisSink,
    KinesisSinkBuilder, ShardRateLimit,
};
pub use source::{InitialPosition, KinesisSource, KinesisStream};
pub use target::StreamTarget;
