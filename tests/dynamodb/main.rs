//! The DynamoDB checkpoint stores (feature `dynamodb`) against moto: one
//! test binary (one moto for all), one module per store.
#![cfg(feature = "dynamodb")]

#[path = "../support/mod.rs"]
mod support;

/// `DynamoDbCheckpointStore`: the KCL item layout, sentinels, fencing.
mod checkpoint_store;
/// `DynamoDbS3CheckpointStore`: batches in S3 behind the lease item.
#[cfg(feature = "s3")]
mod s3_checkpoint_store;
