//! AWS Kinesis Data Streams: records, limits, the producer sink, the
//! consumer source and KPL aggregation.
//!
//! Enabled by the `kinesis` cargo feature. The `kpl` feature alone builds
//! only what needs no AWS SDK: [`aggregation`], [`KinesisRecord`],
//! [`HashKey`] and [`limits`].
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
#[cfg(feature = "kinesis")]
mod sink;
#[cfg(feature = "kinesis")]
pub mod source;
#[cfg(feature = "kinesis")]
mod target;

pub use hash_key::{HashKey, InvalidHashKey};
pub use record::KinesisRecord;
#[cfg(feature = "kinesis")]
pub use sink::rate_limit;
#[cfg(feature = "kinesis")]
pub use sink::{
    validate, InvalidRecord, KinesisCodec, KinesisMetrics, KinesisMetricsHandle, KinesisSink,
    KinesisSinkBuilder, ShardRateLimit,
};
#[cfg(feature = "kinesis")]
pub use source::{EnhancedFanOut, FanOutError, InitialPosition, KinesisSource, KinesisStream};
#[cfg(feature = "kinesis")]
pub use target::StreamTarget;
