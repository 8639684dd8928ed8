//! Service limits of Kinesis Data Streams, in one place, each with its unit
//! in its name. The sink and the source enforce these; tests check them.

use std::time::Duration;

/// Records in one `PutRecords` call.
pub const MAX_PUT_RECORDS_COUNT: usize = 500;
/// Bytes in one `PutRecords` call (data plus partition keys of all records).
pub const MAX_PUT_RECORDS_BYTES: usize = 5 * 1024 * 1024;
/// Bytes of one record: data plus partition key.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// Shortest partition key, in Unicode characters.
pub const MIN_PARTITION_KEY_CHARS: usize = 1;
/// Longest partition key, in Unicode characters.
pub const MAX_PARTITION_KEY_CHARS: usize = 256;
/// Records one shard ingests per second.
pub const MAX_SHARD_WRITE_RECORDS_PER_SEC: u32 = 1000;
/// Bytes one shard ingests per second (data plus partition keys).
pub const MAX_SHARD_WRITE_BYTES_PER_SEC: u64 = 1024 * 1024;

/// `GetRecords` calls per shard per second.
pub const MAX_GET_RECORDS_CALLS_PER_SEC: u32 = 5;
/// Records one `GetRecords` call returns at most (its `Limit`).
pub const MAX_GET_RECORDS_COUNT: i32 = 10_000;
/// Bytes one `GetRecords` call returns at most.
pub const MAX_GET_RECORDS_BYTES: usize = 10 * 1024 * 1024;
/// How long a shard iterator stays valid.
pub const SHARD_ITERATOR_TTL: Duration = Duration::from_secs(5 * 60);
