//! AWS DynamoDB (and S3) storage for Kinesis consumers: the KCL 2.x lease
//! table as a checkpoint store, and the in-flight batch store layered on it.
//!
//! Enabled by the `dynamodb` cargo feature (the batch store also needs `s3`).
//! The public types are re-exported from [`checkpoint`](crate::checkpoint),
//! beside the other checkpoint stores.
//!
//! | file | concept |
//! |---|---|
//! | `lease_item.rs` | the KCL lease item: attribute names, sentinels, [`Lease`] |
//! | `table.rs` | creating the lease table |
//! | `checkpoint_store.rs` | [`DynamoDbCheckpointStore`]: conditional (fenced) checkpoint writes |
//! | `s3_batch_store.rs` | `DynamoDbS3CheckpointStore`: a batch consumer's in-flight batch in S3 |

mod checkpoint_store;
mod lease_item;
#[cfg(feature = "s3")]
mod s3_batch_store;
mod table;

pub use checkpoint_store::DynamoDbCheckpointStore;
pub use lease_item::Lease;
#[cfg(feature = "s3")]
pub use s3_batch_store::{Batch, BatchEntry, DynamoDbS3CheckpointStore, RecordStatus};
