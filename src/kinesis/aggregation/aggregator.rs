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

use bytes::Bytes;
use md5::{Digest, Md5};
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, WireType};

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
    /// Protobuf field 1 entries (partition-key table), encoded as added.
    partition_key_table: Vec<u8>,
    /// Protobuf field 2 entries (explicit-hash-key table).
    explicit_hash_key_table: Vec<u8>,
    /// Protobuf field 3 entries (records).
    records: Vec<u8>,
    partition_keys: HashMap<String, u64>,
    explicit_hash_keys: HashMap<String, u64>,
    count: usize,
    /// The first record, returned unchanged when it stays alone.
    first: Option<KinesisRecord>,
    /// Hash key of the first record, the aggregate's placement.
    first_hash_key: HashKey,
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
            partition_key_table: Vec::new(),
            explicit_hash_key_table: Vec::new(),
            records: Vec::new(),
            partition_keys: HashMap::new(),
            explicit_hash_keys: HashMap::new(),
            count: 0,
            first: None,
            first_hash_key: HashKey::MIN,
        }
    }

    /// The size limit of an aggregate, in billed bytes.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Number of user records collected.
    pub fn len(&self) -> usize {
        self.count
    }

    /// `true` when no record has been collected.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Exact length of the protobuf message so far.
    fn encoded_len(&self) -> usize {
        self.partition_key_table.len() + self.explicit_hash_key_table.len() + self.records.len()
    }

    /// Billed bytes (data plus partition key) of the record
    /// [`finish`](Aggregator::finish) would return now; 0 when empty.
    pub fn billed_bytes(&self) -> usize {
        match (self.count, &self.first) {
            (0, _) => 0,
            (1, Some(first)) => first.billed_bytes(),
            _ => FIXED_OVERHEAD_BYTES + self.encoded_len() + AGGREGATE_PARTITION_KEY.len(),
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
        match self.try_add_ref(&record) {
            Ok(()) => Ok(()),
            Err(Refused::Full) => Err(TryAddError::Full(record)),
            Err(Refused::InvalidHashKey(reason)) => {
                Err(TryAddError::InvalidHashKey { record, reason })
            }
        }
    }

    /// Like [`try_add`](Aggregator::try_add), copying what it needs from
    /// `record` instead of taking it (the data is copied into the encoding
    /// right away, which is cheaper than keeping the record).
    pub fn try_add_ref(&mut self, record: &KinesisRecord) -> Result<(), Refused> {
        if self.is_empty() {
            self.first_hash_key = HashKey::of(record).map_err(Refused::InvalidHashKey)?;
        } else if let Some(explicit) = &record.explicit_hash_key {
            HashKey::parse_explicit(explicit).map_err(Refused::InvalidHashKey)?;
        }

        let mut added = 0;
        let known_key = self.partition_keys.get(&record.partition_key).copied();
        let partition_key_index = known_key.unwrap_or(self.partition_keys.len() as u64);
        if known_key.is_none() {
            added += table_entry_len(record.partition_key.len());
        }
        let (explicit_hash_key_index, known_explicit) = match &record.explicit_hash_key {
            None => (None, true),
            Some(key) => match self.explicit_hash_keys.get(key) {
                Some(&index) => (Some(index), true),
                None => {
                    added += table_entry_len(key.len());
                    (Some(self.explicit_hash_keys.len() as u64), false)
                }
            },
        };
        let inner = 1
            + encoded_len_varint(partition_key_index)
            + explicit_hash_key_index.map_or(0, |i| 1 + encoded_len_varint(i))
            + 1
            + encoded_len_varint(record.data.len() as u64)
            + record.data.len();
        added += 1 + encoded_len_varint(inner as u64) + inner;

        let framed =
            FIXED_OVERHEAD_BYTES + self.encoded_len() + added + AGGREGATE_PARTITION_KEY.len();
        if !self.is_empty() && framed > self.max_bytes {
            return Err(Refused::Full);
        }

        // Fields in the order the KPL (C++ protobuf) writes them: each table
        // entry and each record is appended to its field's buffer; `finish`
        // joins the buffers in field order.
        if known_key.is_none() {
            encode_table_entry(1, &record.partition_key, &mut self.partition_key_table);
            self.partition_keys
                .insert(record.partition_key.clone(), partition_key_index);
        }
        if let (false, Some(key)) = (known_explicit, &record.explicit_hash_key) {
            encode_table_entry(2, key, &mut self.explicit_hash_key_table);
            if let Some(index) = explicit_hash_key_index {
                self.explicit_hash_keys.insert(key.clone(), index);
            }
        }
        let out = &mut self.records;
        encode_key(3, WireType::LengthDelimited, out);
        encode_varint(inner as u64, out);
        encode_key(1, WireType::Varint, out);
        encode_varint(partition_key_index, out);
        if let Some(index) = explicit_hash_key_index {
            encode_key(2, WireType::Varint, out);
            encode_varint(index, out);
        }
        encode_key(3, WireType::LengthDelimited, out);
        encode_varint(record.data.len() as u64, out);
        out.extend_from_slice(&record.data);

        if self.count == 0 {
            self.first = Some(record.clone());
        }
        self.count += 1;
        Ok(())
    }

    /// Takes the collected records as one Kinesis record and starts a new,
    /// empty aggregate. `None` when empty.
    pub fn finish(&mut self) -> Option<KinesisRecord> {
        let count = std::mem::replace(&mut self.count, 0);
        let first = self.first.take();
        self.partition_keys.clear();
        self.explicit_hash_keys.clear();
        let result = match count {
            0 => None,
            1 => first,
            _ => {
                let mut framed = Vec::with_capacity(FIXED_OVERHEAD_BYTES + self.encoded_len());
                framed.extend_from_slice(&MAGIC);
                framed.extend_from_slice(&self.partition_key_table);
                framed.extend_from_slice(&self.explicit_hash_key_table);
                framed.extend_from_slice(&self.records);
                let digest = Md5::digest(&framed[MAGIC.len()..]);
                framed.extend_from_slice(&digest);
                Some(
                    KinesisRecord::new(Bytes::from(framed), AGGREGATE_PARTITION_KEY)
                        .with_explicit_hash_key(self.first_hash_key.to_string()),
                )
            }
        };
        self.partition_key_table.clear();
        self.explicit_hash_key_table.clear();
        self.records.clear();
        result
    }
}

fn encode_table_entry(field: u32, key: &str, out: &mut Vec<u8>) {
    encode_key(field, WireType::LengthDelimited, out);
    encode_varint(key.len() as u64, out);
    out.extend_from_slice(key.as_bytes());
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

/// Why [`Aggregator::try_add_ref`] did not take a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The aggregate would exceed its size limit.
    #[error("the aggregate is full")]
    Full,
    /// The record's explicit hash key is malformed.
    #[error("cannot aggregate record: {0}")]
    InvalidHashKey(InvalidHashKey),
}
