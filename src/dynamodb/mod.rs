//! AWS DynamoDB (and S3) storage for Kinesis consumers, on one table in the
//! KCL's lease table layout: the [`DynamoDbLeaseTable`] that lease workers
//! coordinate through, the [`DynamoDbCheckpointStore`] for consumers
//! without lease coordination, and the in-flight batch store layered on
//! it.
//!
//! Enabled by the `dynamodb` cargo feature (the batch store also needs
//! `s3`). The checkpoint stores are re-exported from
//! [`checkpoint`](crate::checkpoint), beside the other checkpoint stores;
//! the lease table is used with [`lease`](crate::lease)'s
//! [`LeaseWorker`](crate::lease::LeaseWorker).
//!
//! # Item layout
//!
//! One item per partition (shard), exactly as the KCL's
//! `DynamoDBLeaseSerializer` writes and reads it, so the KCL (2.x and 3.x)
//! and this crate can read each other's tables:
//!
//! | attribute | type | [`Lease`](crate::lease::Lease) field |
//! |---|---|---|
//! | `leaseKey` | S (hash key) | `key` |
//! | `leaseOwner` | S | `owner` (absent: nobody) |
//! | `leaseCounter` | N | `counter`: incremented by every write, each conditional on it |
//! | `checkpoint` | S | `checkpoint`: a sequence number, `TRIM_HORIZON`, `LATEST`, `AT_TIMESTAMP` or `SHARD_END` |
//! | `checkpointSubSequenceNumber` | N | `checkpoint`: the user record inside a KPL aggregate (0 for the sentinels) |
//! | `ownerSwitchesSinceCheckpoint` | N | `owner_switches_since_checkpoint` |
//! | `parentShardId` | SS | `parents` |
//! | `childShardIds` | SS | `children` |
//! | `startingHashKey`, `endingHashKey` | S (decimal) | `hash_range` |
//! | `checkpointOwner` | S | `checkpoint_owner`: the owner finishing a graceful handoff (KCL 3) |
//! | `entityType` | S | – (`LEASE`, written on create as the KCL 3 does) |
//!
//! A checkpoint is [`Position::Sequence`](crate::Position::Sequence) (the
//! sequence number and sub-sequence) or [`Position::End`](crate::Position::End)
//! (`SHARD_END`, sub-sequence 0); a byte offset cannot be stored and is
//! refused before anything is sent ([`UnstorableCheckpoint`]). The string
//! sets are sets: written without duplicates, read back sorted, absent
//! when empty. Items with another `entityType` (the KCL 3 keeps
//! coordinator state in the same table) are not leases:
//! [`list`](crate::lease::LeaseTable::list) leaves them out.
//!
//! Reading is strict: an attribute of the wrong type or form (a counter
//! that is not a non-negative integer, a checkpoint that is neither a
//! sequence number nor a sentinel, one hash key without the other), or a
//! lease without `leaseCounter` or `checkpoint`, is
//! [`LeaseError::Corrupt`](crate::lease::LeaseError::Corrupt) naming the
//! table and the key — also from `list`, where the KCL would skip the item
//! and leave its shard unread without a word.
//!
//! # Writes, and what survives them
//!
//! Every write of a lease worker is one conditional `UpdateItem`
//! (condition `attribute_exists(leaseKey) AND leaseCounter = :expected`,
//! `SET leaseCounter = :expected + 1`, `ReturnValues` `ALL_NEW`) that sets
//! and removes only the attributes the write changes, so every other
//! attribute — written by the KCL (`throughputKBps`, `pendingCheckpoint`,
//! `pendingCheckpointSubSequenceNumber`, `pendingCheckpointState`,
//! `entityType`, …) or by you — survives every write. Creating a lease is a
//! `PutItem` conditional on `attribute_not_exists(leaseKey)` writing what
//! the KCL writes for a new lease.
//!
//! # Consistency
//!
//! [`get`](crate::lease::LeaseTable::get) is a consistent read; `list` is
//! an eventually consistent, paginated `Scan` (the KCL's choice too),
//! consistent on request ([`DynamoDbLeaseTable::consistent_list`]). A stale
//! list can only make a worker attempt a write that then fails its
//! condition.
//!
//! # The SDK configuration to use
//!
//! The lease table does not retry: throttling and transient failures are
//! retried by the SDK's retry layer, then reported as
//! [`LeaseError::Backend`](crate::lease::LeaseError::Backend) (with the AWS
//! error code in the message) for the worker to retry on its own schedule.
//! So:
//!
//! - **Retries**: the standard retry mode (the default of
//!   `BehaviorVersion::latest()`: 3 attempts with jittered back-off,
//!   throttling and transient errors included) suits. More attempts, or the
//!   adaptive mode's client-side rate limiting, can hold a renewal past the
//!   lease duration, when other workers may take the lease.
//! - **Timeouts**: give the client an operation timeout below the renew
//!   interval (the SDK sets none), so that a hung request fails in time for
//!   the next renewal: for the default 10 s lease renewed every 3.3 s,
//!   `TimeoutConfig::builder().operation_timeout(Duration::from_secs(2))`.
//! - **Lost answers** are safe: when a write is applied but its answer is
//!   lost, the SDK sends it again and the retry fails its condition (the
//!   counter moved). The worker receives a
//!   [`Conflict`](crate::lease::LeaseError::Conflict) whose current lease
//!   is still its own at the counter it wrote, adopts that counter and goes
//!   on. Since every attempt is conditional on the same counter, no write is
//!   ever applied twice.
//!
//! | file | concept |
//! |---|---|
//! | `lease_item.rs` | the lease item codec: attribute names, sentinels, item ↔ lease |
//! | `item_update.rs` | building one conditional `UpdateItem` |
//! | `lease_update.rs` | each lease write as its `UpdateItem` |
//! | `lease_table.rs` | [`DynamoDbLeaseTable`]: the lease coordinator's table |
//! | `table.rs` | creating the lease table |
//! | `idempotency_store.rs` | [`DynamoDbIdempotencyStore`]: idempotency records with conditional writes and a TTL |
//! | `checkpoint_store.rs` | [`DynamoDbCheckpointStore`], [`Lease`]: conditional (fenced) checkpoint writes |
//! | `s3_batch_store.rs` | `DynamoDbS3CheckpointStore`: a batch consumer's in-flight batch in S3, and the write order that never skips a record (feature `s3`) |
//! | `in_flight_batch.rs` | `Batch`, `BatchEntry`, `RecordStatus`: the in-flight batch's records and their statuses (feature `s3`) |

mod checkpoint_store;
mod idempotency_store;
#[cfg(feature = "s3")]
mod in_flight_batch;
mod item_update;
mod lease_item;
mod lease_table;
mod lease_transaction;
mod lease_update;
#[cfg(feature = "s3")]
mod s3_batch_store;
mod table;

pub use checkpoint_store::{DynamoDbCheckpointStore, Lease};
pub use idempotency_store::DynamoDbIdempotencyStore;
#[cfg(feature = "s3")]
pub use in_flight_batch::{Batch, BatchEntry, RecordStatus};
pub use lease_item::UnstorableCheckpoint;
pub use lease_table::{DynamoDbLeaseTable, MAX_WRITE_ATTEMPTS};
#[cfg(feature = "s3")]
pub use s3_batch_store::DynamoDbS3CheckpointStore;
