//! Real crash tests: the test binary re-runs one of its own ignored tests
//! as a child process and kills it with SIGKILL at random moments, over
//! and over; after the last run, nothing acknowledged or checkpointed is
//! lost. One test binary, one module per pipeline under test. Every kill
//! plan comes from a printed seed (`UNISTREAM_SEED`).

#[path = "../support/mod.rs"]
mod support;

/// A checkpointed `FileSource` consumer.
mod consumer;
/// A batch consumer on `DynamoDbS3CheckpointStore` (moto).
#[cfg(all(feature = "dynamodb", feature = "s3"))]
mod dynamodb_s3;
/// `buffered_wal` in front of a `FileSink`.
mod producer;
/// `buffered_wal` + `KinesisSink` with producer record ids, and an
/// idempotent consumer (kinesis-mock, moto).
#[cfg(all(feature = "kinesis", feature = "dynamodb"))]
mod record_ids;
