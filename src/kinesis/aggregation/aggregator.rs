//! Packing user records into KPL aggregated records.
//!
//! An [`Aggregator`] collects user records and emits one Kinesis record that
//! holds them all, in the format the KPL writes and the KCL reads. It tracks
//! the encoded size exactly as records are added, so an aggregate never
//! exceeds the configured size; it does not decide which records belong
//! together (the sink groups them by predicted shard, so that the aggregate,
//! placed by its first record's hash key, lands where each of its records
//! would have).

use std::hash::BuildHasher;

use bytes::Bytes;
use hashbrown::{DefaultHashBuilder, HashTable};
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
    /// Protobuf field 1 (partition-key table), encoded as keys are added.
    partition_keys: EncodedKeyTable,
    /// Protobuf field 2 (explicit-hash-key table).
    explicit_hash_keys: EncodedKeyTable,
    /// Protobuf field 3 entries (records).
    records: Vec<u8>,
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
            partition_keys: EncodedKeyTable::new(1),
            explicit_hash_keys: EncodedKeyTable::new(2),
            records: Vec::new(),
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

    /// Makes room for about `records` more records holding `data_bytes`
    /// bytes of data in all (never more than one full aggregate), so that
    /// adding them does not grow the buffers step by step.
    // Used by the Kinesis sink (feature `kinesis`), not by `kpl` alone.
    #[cfg_attr(not(feature = "kinesis"), allow(dead_code))]
    pub(crate) fn reserve(&mut self, records: usize, data_bytes: usize) {
        // Per record: the record's tag and length, the key index and the
        // data's tag and length, a few bytes each.
        let bytes = data_bytes.saturating_add(records.saturating_mul(8));
        self.records.reserve(bytes.min(self.max_bytes));
        let records = records.min(self.max_bytes);
        self.partition_keys.reserve(records);
    }

    /// Exact length of the protobuf message so far.
    fn encoded_len(&self) -> usize {
        self.partition_keys.encoded.len()
            + self.explicit_hash_keys.encoded.len()
            + self.records.len()
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
        let hash_key = match &record.explicit_hash_key {
            Some(explicit) => HashKey::parse_explicit(explicit).map_err(Refused::InvalidHashKey)?,
            None if self.is_empty() => HashKey::from_partition_key(&record.partition_key),
            // Only the first record's hash key is used: spare the MD5.
            None => HashKey::MIN,
        };
        self.add(record, hash_key)
    }

    /// Like [`try_add_ref`](Aggregator::try_add_ref) for a record whose
    /// explicit hash key is known to be valid and whose hash key the caller
    /// computed already ([`HashKey::of`]); never refuses it as invalid.
    // Used by the Kinesis sink (feature `kinesis`), not by `kpl` alone.
    #[cfg_attr(not(feature = "kinesis"), allow(dead_code))]
    pub(crate) fn try_add_with_hash_key(
        &mut self,
        record: &KinesisRecord,
        hash_key: HashKey,
    ) -> Result<(), Refused> {
        self.add(record, hash_key)
    }

    fn add(&mut self, record: &KinesisRecord, hash_key: HashKey) -> Result<(), Refused> {
        let mut added = 0;
        let partition_key = self.partition_keys.lookup(&record.partition_key);
        if partition_key.index.is_none() {
            added += table_entry_len(record.partition_key.len());
        }
        let explicit_hash_key = record
            .explicit_hash_key
            .as_deref()
            .map(|key| (key, self.explicit_hash_keys.lookup(key)));
        if let Some((key, KeyLookup { index: None, .. })) = explicit_hash_key {
            added += table_entry_len(key.len());
        }
        let partition_key_index = partition_key.index_or_next(&self.partition_keys);
        let explicit_hash_key_index =
            explicit_hash_key.map(|(_, lookup)| lookup.index_or_next(&self.explicit_hash_keys));
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
        if partition_key.index.is_none() {
            self.partition_keys
                .push(partition_key.hash, &record.partition_key);
        }
        if let Some((key, KeyLookup { index: None, hash })) = explicit_hash_key {
            self.explicit_hash_keys.push(hash, key);
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
            self.first_hash_key = hash_key;
        }
        self.count += 1;
        Ok(())
    }

    /// Takes the collected records as one Kinesis record and starts a new,
    /// empty aggregate. `None` when empty.
    pub fn finish(&mut self) -> Option<KinesisRecord> {
        let count = std::mem::replace(&mut self.count, 0);
        let first = self.first.take();
        let result = match count {
            0 => None,
            1 => first,
            _ => {
                let fields = [
                    &self.partition_keys.encoded[..],
                    &self.explicit_hash_keys.encoded[..],
                    &self.records[..],
                ];
                let mut md5 = Md5::new();
                let mut framed = Vec::with_capacity(FIXED_OVERHEAD_BYTES + self.encoded_len());
                framed.extend_from_slice(&MAGIC);
                for field in fields {
                    md5.update(field);
                    framed.extend_from_slice(field);
                }
                framed.extend_from_slice(&md5.finalize());
                Some(
                    KinesisRecord::new(Bytes::from(framed), AGGREGATE_PARTITION_KEY)
                        .with_explicit_hash_key(self.first_hash_key.to_string()),
                )
            }
        };
        self.partition_keys.clear();
        self.explicit_hash_keys.clear();
        self.records.clear();
        result
    }
}

/// One key table of the aggregate being built: its protobuf field entries
/// and an index from key to position, so that each distinct key is stored
/// once. The index holds positions, not copies of the keys: adding a key
/// costs no allocation beyond the growth of the encoded field.
#[derive(Debug)]
struct EncodedKeyTable {
    field: u32,
    /// The field's entries (tag, length, key bytes), in table order.
    encoded: Vec<u8>,
    /// Where each key's bytes are in `encoded`, by table index.
    spans: Vec<(usize, usize)>,
    /// Table indices, found by the hash of their key.
    index: HashTable<(u64, u64)>,
    hasher: DefaultHashBuilder,
}

/// Where a key is in an [`EncodedKeyTable`], if it is there.
#[derive(Debug, Clone, Copy)]
struct KeyLookup {
    hash: u64,
    index: Option<u64>,
}

impl KeyLookup {
    /// The key's index: where it is, or where it goes when added.
    fn index_or_next(self, table: &EncodedKeyTable) -> u64 {
        self.index.unwrap_or(table.spans.len() as u64)
    }
}

impl EncodedKeyTable {
    fn new(field: u32) -> Self {
        Self {
            field,
            encoded: Vec::new(),
            spans: Vec::new(),
            index: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
        }
    }

    // Used by the Kinesis sink (feature `kinesis`), not by `kpl` alone.
    #[cfg_attr(not(feature = "kinesis"), allow(dead_code))]
    fn reserve(&mut self, keys: usize) {
        self.spans.reserve(keys);
        self.index.reserve(keys, |&(hash, _)| hash);
    }

    fn key(&self, index: u64) -> &[u8] {
        let (start, end) = self.spans[index as usize];
        &self.encoded[start..end]
    }

    fn lookup(&self, key: &str) -> KeyLookup {
        let hash = self.hasher.hash_one(key);
        let index = self
            .index
            .find(hash, |&(h, i)| h == hash && self.key(i) == key.as_bytes())
            .map(|&(_, i)| i);
        KeyLookup { hash, index }
    }

    /// Appends `key` (not in the table yet; `hash` from [`lookup`](Self::lookup)).
    fn push(&mut self, hash: u64, key: &str) {
        encode_key(self.field, WireType::LengthDelimited, &mut self.encoded);
        encode_varint(key.len() as u64, &mut self.encoded);
        let start = self.encoded.len();
        self.encoded.extend_from_slice(key.as_bytes());
        let index = self.spans.len() as u64;
        self.spans.push((start, self.encoded.len()));
        self.index.insert_unique(hash, (hash, index), |&(h, _)| h);
    }

    fn clear(&mut self) {
        self.encoded.clear();
        self.spans.clear();
        self.index.clear();
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
