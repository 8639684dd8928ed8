//! AWS Kinesis Data Streams: records, limits, and (as they land) the sink
//! and the source.
//!
//! Enabled by the `kinesis` cargo feature.

pub mod limits;
mod record;

pub use record::KinesisRecord;

pub mod source;

pub use source::{InitialPosition, KinesisSource, KinesisStream};
