//! KPL aggregation: many user records in one Kinesis record, byte-compatible
//! with the Kinesis Producer Library (which writes it) and the Kinesis Client
//! Library (which reads it).
//!
//! Kinesis bills and limits per record (1000 records/s per shard), so small
//! records waste capacity. The KPL's answer, which this module implements,
//! packs user records into one Kinesis record:
//!
//! ```text
//! 0               4                  N          N+15
//! +---+---+---+---+==================+---+...+---+
//! |  MAGIC NUMBER | PROTOBUF MESSAGE |    MD5    |
//! +---+---+---+---+==================+---+...+---+
//! ```
//!
//! The magic number is `F3 89 9A C2`; the protobuf message is an
//! `AggregatedRecord` (proto2: a partition-key table, an explicit-hash-key
//! table, and records that point into them); the trailer is the MD5 of the
//! protobuf bytes.
//!
//! - [`Aggregator`] packs records, tracking the exact encoded size.
//! - [`deaggregate()`] / [`deaggregate_bytes`] unpack them; a payload without
//!   the magic number is reported as not aggregated, a damaged one as an
//!   [`AggregationError`] — never trusted, never a panic.
//!
//! User records come back as [`KinesisRecord`](crate::kinesis::KinesisRecord)s
//! (data, partition key, explicit hash key); their index in the aggregate is
//! their sub-sequence number. Tags, which the format reserves and neither the
//! KPL nor the KCL uses, are neither written nor returned.

mod aggregator;
mod deaggregate;
mod proto;

#[cfg(test)]
mod tests;

pub use aggregator::{Aggregator, Refused, TryAddError};
pub use deaggregate::{deaggregate, deaggregate_bytes, is_aggregated, AggregationError, KeyTable};

/// The four bytes that open every aggregated record.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

/// Length of the MD5 trailer.
pub const MD5_BYTES: usize = 16;

/// Bytes an aggregated record adds around its protobuf message (magic
/// number and MD5 trailer).
pub const FIXED_OVERHEAD_BYTES: usize = MAGIC.len() + MD5_BYTES;

/// Partition key of an aggregated record of several user records. The
/// explicit hash key places the record; the key only has to be valid, and
/// one byte bills least (the KPL uses the same).
pub const AGGREGATE_PARTITION_KEY: &str = "a";
