//! Packing user records into KPL aggregated records.
//!
//! An [`Aggregator`] collects user records and emits one Kinesis record that
//! holds them all, in the format the KPL writes and the KCL reads. It tracks
//! the encoded size exactly as records are added, so an aggregate never
//! exceeds the configured size; it does not decide which records belong
//! together (the sink groups them by predicted shard, so that the aggregate,
//! placed by its first record's hash key, lands where each of its records
//! would have).

use std::collections::HashMap;
use std::mem;

use bytes::Bytes;
use md5::{Digest, Md5};
use prost::encoding::encoded_len_varint;
use prost::Message;

use super::proto;
use super::{AGGREGATE_PARTITION_KEY, FIXED_OVERHEAD_BYTES, MAGIC};
use crate::kinesis::hash_key::{HashKey, InvalidHashKey};
use crate::kinesis::limits::MAX_RECORD_BYTES;
use crate::kinesis::KinesisRecord;

/// Packs user records into KPL-compatible aggregated records.
///
/// Add records with [`try_add`](Aggregator::try_add) until one does not fit,
/// then take the aggregate with [`finish`](Aggregator::finish) and start the
/// next one with the refused record. As the KPL does:
///
/// - an aggregate of one record is that record, unchanged (no framing);
/// - an aggregate of several has the partition key `"a"` and, as explicit
///   hash key, the hash key of its first record, so it lands on that
///   record's shard;
/// - partition keys and explicit hash keys are stored once per aggregate and
///   referenced by index.
///
/// The size limit counts what Kinesis bills: the framed aggregate
/// (magic, protobuf, MD5) plus its one-byte partition key.
///
/// ```
/// use unistream::kinesis::aggregation::{deaggregate, Aggregator};
/// use unistream::kinesis::KinesisRecord;
///
/// let mut aggregator = Aggregator::new(64 * 1024);
/// for i in 0..100 {
///     aggregator
///         .try_add(KinesisRecord::new(format!("event {i}"), format!("user-{}", i % 7)))
///         .unwrap();
/// }
/// let aggregate = aggregator.finish().unwrap();
/// assert!(aggregate.billed_bytes() <= 64 * 1024);
///
/// let users = deaggregate(&aggregate.data).unwrap().expect("an aggregate");
/// assert_eq!(users.len(), 100);
/// assert_eq!(users[8].partition_key, "user-1");
/// assert_eq!(&users[8].data[..], b"event 8");
/// ```
#[derive(Debug)]
pub struct Aggregator {
    max_bytes: usize,
    message: proto::AggregatedRecord,
    partition_keys: HashMap<String, u64>,
    explicit_hash_keys: HashMap<String, u64>,
    /// Exact encoded length of `message`.
    encoded_len: usize,
    /// Hash key of the first record, the aggregate's placement.
    first_hash_key: Option<HashKey>,
}

impl Default for Aggregator {
    /// An aggregator filling records up to the 1 MiB record limit.
    fn default() -> Self {
        Self::new(MAX_RECORD_BYTES)
    }
}

impl Aggregator {
    /// An aggregator whose aggregates bill at most `max_bytes` (data plus
    /// partition key); values above the 1 MiB record limit are lowered to it.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes: max_bytes.min(MAX_RECORD_BYTES),
            message: proto::AggregatedRecord::default(),
            partition_keys: HashMap::new(),
            explicit_hash_keys: HashMap::new(),
            encoded_len: 0,
            first_hash_key: None,
        }
    }

    /// The size limit of an aggregate, in billed bytes.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Number of user records collected.
    pub fn len(&self) -> usize {
        self.message.records.len()
    }

    /// `true` when no record has been collected.
    pub fn is_empty(&self) -> bool {
        self.message.records.is_empty()
    }

    /// Billed bytes (data plus partition key) of the record
    /// [`finish`](Aggregator::finish) would return now; 0 when empty.
    pub fn billed_bytes(&self) -> usize {
        match self.message.records.as_slice() {
            [] => 0,
            [only] => only.data.len() + self.message.partition_key_table[0].len(),
            _ => FIXED_OVERHEAD_BYTES + self.encoded_len + AGGREGATE_PARTITION_KEY.len(),
        }
    }

    /// Adds `record` if the aggregate stays within the size limit.
    ///
    /// The first record of an aggregate is always taken, whatever its size:
    /// alone it is emitted unchanged, so only the record limits apply to it.
    /// A record that does not fit comes back in [`TryAddError::Full`]; a
    /// record with a malformed explicit hash key in
    /// [`TryAddError::InvalidHashKey`].
    pub fn try_add(&mut self, record: KinesisRecord) -> Result<(), TryAddError> {
        let first_hash_key = if self.is_empty() {
            match HashKey::of(&record) {
                Ok(key) => Some(key),
                Err(reason) => return Err(TryAddError::InvalidHashKey { record, reason }),
            }
        } else {
            if let Some(explicit) = &record.explicit_hash_key {
                if let Err(reason) = HashKey::parse_explicit(explicit) {
                    return Err(TryAddError::InvalidHashKey { record, reason });
                }
            }
            None
        };

        let mut added = 0;
        let partition_key_index = match self.partition_keys.get(&record.partition_key) {
            Some(&index) => index,
            None => {
                added += table_entry_len(record.partition_key.len());
                self.message.partition_key_table.len() as u64
            }
        };
        let explicit_hash_key_index = match &record.explicit_hash_key {
            None => None,
            Some(key) => Some(match self.explicit_hash_keys.get(key) {
                Some(&index) => index,
                None => {
                    added += table_entry_len(key.len());
                    self.message.explicit_hash_key_table.len() as u64
                }
            }),
        };
        let inner = 1
            + encoded_len_varint(partition_key_index)
            + explicit_hash_key_index.map_or(0, |i| 1 + encoded_len_varint(i))
            + 1
            + encoded_len_varint(record.data.len() as u64)
            + record.data.len();
        added += 1 + encoded_len_varint(inner as u64) + inner;

        let framed =
            FIXED_OVERHEAD_BYTES + self.encoded_len + added + AGGREGATE_PARTITION_KEY.len();
        if !self.is_empty() && framed > self.max_bytes {
            return Err(TryAddError::Full(record));
        }

        if first_hash_key.is_some() {
            self.first_hash_key = first_hash_key;
        }
        let KinesisRecord {
            data,
            partition_key,
            explicit_hash_key,
        } = record;
        if partition_key_index == self.message.partition_key_table.len() as u64 {
            self.partition_keys
                .insert(partition_key.clone(), partition_key_index);
            self.message.partition_key_table.push(partition_key);
        }
        if let (Some(index), Some(key)) = (explicit_hash_key_index, explicit_hash_key) {
            if index == self.message.explicit_hash_key_table.len() as u64 {
                self.explicit_hash_keys.insert(key.clone(), index);
                self.message.explicit_hash_key_table.push(key);
            }
        }
        self.message.records.push(proto::Record {
            partition_key_index,
            explicit_hash_key_index,
            data,
            tags: Vec::new(),
        });
        self.encoded_len += added;
        Ok(())
    }

    /// Takes the collected records as one Kinesis record and starts a new,
    /// empty aggregate. `None` when empty.
    pub fn finish(&mut self) -> Option<KinesisRecord> {
        let message = mem::take(&mut self.message);
        let encoded_len = mem::replace(&mut self.encoded_len, 0);
        let first_hash_key = self.first_hash_key.take();
        self.partition_keys.clear();
        self.explicit_hash_keys.clear();

        match message.records.len() {
            0 => None,
            1 => {
                let proto::AggregatedRecord {
                    partition_key_table,
                    explicit_hash_key_table,
                    records,
                } = message;
                let record = records.into_iter().next()?;
                Some(KinesisRecord {
                    data: record.data,
                    partition_key: partition_key_table.into_iter().next()?,
                    explicit_hash_key: explicit_hash_key_table.into_iter().next(),
                })
            }
            _ => {
                let mut framed = Vec::with_capacity(FIXED_OVERHEAD_BYTES + encoded_len);
                framed.extend_from_slice(&MAGIC);
                message.encode_raw(&mut framed);
                debug_assert_eq!(framed.len(), MAGIC.len() + encoded_len);
                let digest = Md5::digest(&framed[MAGIC.len()..]);
                framed.extend_from_slice(&digest);
                let hash_key = first_hash_key.unwrap_or(HashKey::MIN);
                Some(
                    KinesisRecord::new(Bytes::from(framed), AGGREGATE_PARTITION_KEY)
                        .with_explicit_hash_key(hash_key.to_string()),
                )
            }
        }
    }
}

/// Encoded length of one string entry of a key table (tag, length, bytes).
fn table_entry_len(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

/// Why [`Aggregator::try_add`] did not take a record; the record comes back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TryAddError {
    /// The aggregate would exceed its size limit: finish it and add the
    /// record to the next one.
    #[error("the aggregate is full")]
    Full(KinesisRecord),
    /// The record's explicit hash key is malformed; Kinesis would refuse it.
    #[error("cannot aggregate record: {reason}")]
    InvalidHashKey {
        /// The record.
        record: KinesisRecord,
        /// What is wrong with its explicit hash key.
        reason: InvalidHashKey,
    },
}

impl TryAddError {
    /// The record that was not added.
    pub fn into_record(self) -> KinesisRecord {
        match self {
            TryAddError::Full(record) | TryAddError::InvalidHashKey { record, .. } => record,
        }
    }
}
