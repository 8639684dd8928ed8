//! Reading user records back out of KPL aggregated records.
//!
//! [`deaggregate`] tells three cases apart: a payload that does not start
//! with the KPL magic number is an ordinary record (`Ok(None)`, hand it on
//! as is); a well-formed aggregate yields its user records in order; and a
//! payload that starts with the magic number but is damaged (too short for
//! the MD5 trailer, a checksum that does not match, a protobuf that does not
//! decode, a key index outside its table) is an [`AggregationError`]. Nothing
//! from a damaged aggregate is returned: its contents are not trusted.
//!
//! The KCL handles the damaged case by passing the payload through as an
//! ordinary record. That is one `match` away for a caller who wants it
//! (`Err(_) => vec![record]`); the error makes the choice explicit.

use bytes::Bytes;
use md5::{Digest, Md5};
use prost::Message;

use super::proto;
use super::{MAGIC, MD5_BYTES};
use crate::kinesis::KinesisRecord;

/// The user records of an aggregated Kinesis payload, in order, or `None`
/// when `data` is not an aggregate (no KPL magic number).
///
/// The index of a user record in the returned vector is its sub-sequence
/// number within the Kinesis record. The data of each user record is copied
/// out of `data`; [`deaggregate_bytes`] shares the buffer instead.
///
/// ```
/// use unistream::kinesis::aggregation::{deaggregate, Aggregator};
/// use unistream::kinesis::KinesisRecord;
///
/// // Not an aggregate: passes through.
/// assert_eq!(deaggregate(b"plain payload").unwrap(), None);
///
/// let mut aggregator = Aggregator::default();
/// aggregator.try_add(KinesisRecord::new("one", "k1")).unwrap();
/// aggregator.try_add(KinesisRecord::new("two", "k2").with_explicit_hash_key("99")).unwrap();
/// let aggregate = aggregator.finish().unwrap();
///
/// let users = deaggregate(&aggregate.data).unwrap().unwrap();
/// assert_eq!(users, vec![
///     KinesisRecord::new("one", "k1"),
///     KinesisRecord::new("two", "k2").with_explicit_hash_key("99"),
/// ]);
///
/// // One flipped bit and the aggregate is refused, not trusted.
/// let mut damaged = aggregate.data.to_vec();
/// damaged[10] ^= 1;
/// assert!(deaggregate(&damaged).is_err());
/// ```
pub fn deaggregate(data: &[u8]) -> Result<Option<Vec<KinesisRecord>>, AggregationError> {
    let Some(protobuf) = checked_protobuf(data)? else {
        return Ok(None);
    };
    let message = proto::AggregatedRecord::decode(protobuf)
        .map_err(|e| AggregationError::Malformed { source: e.into() })?;
    user_records(message).map(Some)
}

/// Like [`deaggregate`], but the user records' data share `data`'s buffer
/// instead of being copied.
pub fn deaggregate_bytes(data: &Bytes) -> Result<Option<Vec<KinesisRecord>>, AggregationError> {
    let Some(protobuf) = checked_protobuf(data)? else {
        return Ok(None);
    };
    // Decoding from a `Bytes` makes prost slice `bytes` fields out of it.
    let protobuf = data.slice_ref(protobuf);
    let message = proto::AggregatedRecord::decode(protobuf)
        .map_err(|e| AggregationError::Malformed { source: e.into() })?;
    user_records(message).map(Some)
}

/// `true` when `data` starts with the KPL magic number (whether or not the
/// rest is intact).
pub fn is_aggregated(data: &[u8]) -> bool {
    data.starts_with(&MAGIC)
}

/// The protobuf bytes of an aggregate whose checksum matches; `None` when
/// `data` is not an aggregate.
fn checked_protobuf(data: &[u8]) -> Result<Option<&[u8]>, AggregationError> {
    if !is_aggregated(data) {
        return Ok(None);
    }
    if data.len() < MAGIC.len() + MD5_BYTES {
        return Err(AggregationError::Truncated { len: data.len() });
    }
    let (protobuf, trailer) = data[MAGIC.len()..].split_at(data.len() - MAGIC.len() - MD5_BYTES);
    let digest = Md5::digest(protobuf);
    if digest.as_slice() != trailer {
        return Err(AggregationError::ChecksumMismatch {
            len: data.len(),
            expected: hex(trailer),
            actual: hex(&digest),
        });
    }
    Ok(Some(protobuf))
}

fn user_records(message: proto::AggregatedRecord) -> Result<Vec<KinesisRecord>, AggregationError> {
    let proto::AggregatedRecord {
        partition_key_table,
        explicit_hash_key_table,
        records,
    } = message;
    records
        .into_iter()
        .enumerate()
        .map(|(position, record)| {
            let partition_key = lookup(&partition_key_table, record.partition_key_index).ok_or(
                AggregationError::KeyIndexOutOfRange {
                    record: position,
                    table: KeyTable::PartitionKey,
                    index: record.partition_key_index,
                    table_len: partition_key_table.len(),
                },
            )?;
            let explicit_hash_key = match record.explicit_hash_key_index {
                None => None,
                Some(index) => Some(lookup(&explicit_hash_key_table, index).ok_or(
                    AggregationError::KeyIndexOutOfRange {
                        record: position,
                        table: KeyTable::ExplicitHashKey,
                        index,
                        table_len: explicit_hash_key_table.len(),
                    },
                )?),
            };
            Ok(KinesisRecord {
                data: record.data,
                partition_key,
                explicit_hash_key,
            })
        })
        .collect()
}

fn lookup(table: &[String], index: u64) -> Option<String> {
    usize::try_from(index)
        .ok()
        .and_then(|i| table.get(i))
        .cloned()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Which key table of an aggregate an index points into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyTable {
    /// `partition_key_table`.
    PartitionKey,
    /// `explicit_hash_key_table`.
    ExplicitHashKey,
}

/// A payload that starts with the KPL magic number but is not a valid
/// aggregate. Its contents must not be trusted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AggregationError {
    /// Too short to hold the magic number and the MD5 trailer.
    #[error("aggregated record of {len} bytes is too short for the magic number and MD5 trailer")]
    Truncated {
        /// Length of the payload.
        len: usize,
    },
    /// The MD5 trailer does not match the protobuf bytes.
    #[error("aggregated record of {len} bytes fails its MD5 check (trailer {expected}, computed {actual})")]
    ChecksumMismatch {
        /// Length of the payload.
        len: usize,
        /// The trailer, in hex.
        expected: String,
        /// The MD5 of the protobuf bytes, in hex.
        actual: String,
    },
    /// The checksum matches but the protobuf does not decode.
    #[error("aggregated record has a malformed protobuf message")]
    Malformed {
        /// The decoder's error.
        #[source]
        source: crate::BoxError,
    },
    /// A user record points past the end of a key table.
    #[error("user record {record} of the aggregate has {table:?} index {index}, but the table has {table_len} entries")]
    KeyIndexOutOfRange {
        /// Position of the user record in the aggregate.
        record: usize,
        /// The table indexed.
        table: KeyTable,
        /// The index found.
        index: u64,
        /// The table's length.
        table_len: usize,
    },
}
