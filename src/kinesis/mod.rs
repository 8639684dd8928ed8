//! AWS Kinesis Data Streams: records, limits, and (as they land) the sink
//! and the source.
//!
//! Enabled by the `kinesis` cargo feature.

pub mod aggregation;
mod hash_key;
pub mod limits;
mod record;
mod validation;

pub use hash_key::{HashKey, InvalidHashKey};
pub use record::KinesisRecord;
pub use validation::{validate, InvalidRecord};

// The consumer side (issue 6).
pub mod source;

pub use source::{InitialPosition, KinesisSource, KinesisStream};
