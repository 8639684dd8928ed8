//! Producer record ids: a stable id per record, written with it into the
//! write-ahead log, so that every copy of a record that reaches a stream —
//! the target's own retries (Kinesis stores each retried record under a new
//! sequence number), and the batch `buffered_wal` sends again after a crash
//! — carries the same id, and a consumer can drop the copies
//! ([`Idempotency`](crate::idempotency::Idempotency) keyed by the id).
//!
//! ```
//! use unistream::record_id::{Identified, IdentifiedCodec, RecordIds};
//! use unistream::{Codec, JsonCodec};
//!
//! let ids = RecordIds::new();
//! let first = ids.identify("order 17".to_owned());
//! let second = ids.identify("order 18".to_owned());
//! assert_eq!(first.id.producer, second.id.producer);
//! assert_eq!(second.id.seq, first.id.seq + 1);
//!
//! // In the log, the id goes with the record; the codec of the record
//! // itself is unchanged behind it.
//! let codec = IdentifiedCodec(JsonCodec);
//! let bytes = codec.encode_to_vec(&first).unwrap();
//! let back: Identified<String> = codec.decode(&bytes).unwrap();
//! assert_eq!(back, first);
//! // The id as text, for a payload field or an idempotency key.
//! let text = first.id.to_string();
//! assert_eq!(text.parse::<unistream::record_id::RecordId>().unwrap(), first.id);
//! ```
//!
//! # What is guaranteed
//!
//! - **Stable**: an id is assigned once, by [`RecordIds::identify`] before
//!   the record is sent to `buffered_wal`, and stored with it in the log
//!   ([`IdentifiedCodec`]): every delivery of that record carries it.
//! - **Unique**: a [`RecordIds`] numbers its records from 0 under a
//!   producer id drawn at random (64 bits, from the operating system's
//!   randomness): two generators share a producer id with probability about
//!   `n² / 2⁶⁵` for `n` generators. Create one per process (or per log), not
//!   one per record.
//!
//! # What it does not do
//!
//! Put the id on the wire: the target's encoder does (a field of the
//! payload, a message attribute), as its format allows — see
//! `tests/kinesis/record_ids.rs` for a Kinesis payload carrying it. A
//! record the user sends again because its `send` never returned (the
//! process died first) is a new record with a new id: only what the log
//! acknowledged is the log's to deliver once.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::codec::{Codec, CodecError};

/// The id of one record: its producer and its number there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RecordId {
    /// The producer (a [`RecordIds`]) that numbered it.
    pub producer: u64,
    /// Its number in that producer, from 0.
    pub seq: u64,
}

impl RecordId {
    /// Bytes of [`to_bytes`](Self::to_bytes).
    pub const BYTES: usize = 16;

    /// The id as 16 bytes (big-endian producer, then seq).
    pub fn to_bytes(&self) -> [u8; Self::BYTES] {
        let mut bytes = [0; Self::BYTES];
        bytes[..8].copy_from_slice(&self.producer.to_be_bytes());
        bytes[8..].copy_from_slice(&self.seq.to_be_bytes());
        bytes
    }

    /// The id of [`to_bytes`](Self::to_bytes).
    pub fn from_bytes(bytes: [u8; Self::BYTES]) -> Self {
        let (producer, seq) = bytes.split_at(8);
        Self {
            producer: u64::from_be_bytes(producer.try_into().unwrap_or_default()),
            seq: u64::from_be_bytes(seq.try_into().unwrap_or_default()),
        }
    }
}

/// `{producer:016x}-{seq:016x}`: 33 characters, sorting as the ids do.
impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}-{:016x}", self.producer, self.seq)
    }
}

/// A string that is not a [`RecordId`]'s [`Display`](fmt::Display) form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a record id (16 hex digits, '-', 16 hex digits)")]
pub struct InvalidRecordId(String);

impl FromStr for RecordId {
    type Err = InvalidRecordId;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidRecordId(text.to_owned());
        let (producer, seq) = text.split_once('-').ok_or_else(invalid)?;
        let hex = |part: &str| {
            if part.len() == 16 && part.bytes().all(|b| b.is_ascii_hexdigit()) {
                u64::from_str_radix(part, 16).map_err(|_| invalid())
            } else {
                Err(invalid())
            }
        };
        Ok(Self {
            producer: hex(producer)?,
            seq: hex(seq)?,
        })
    }
}

/// A record with its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identified<T> {
    /// The id, assigned by [`RecordIds::identify`].
    pub id: RecordId,
    /// The record.
    pub record: T,
}

/// Numbers records under one random producer id; see the
/// [module docs](self). Clones share the numbering.
#[derive(Debug, Clone)]
pub struct RecordIds {
    producer: u64,
    next: Arc<AtomicU64>,
}

impl Default for RecordIds {
    fn default() -> Self {
        Self::new()
    }
}

impl RecordIds {
    /// A generator with a random producer id.
    pub fn new() -> Self {
        // `RandomState` keys come from the operating system's randomness;
        // the clock and the process id only make two draws in one process
        // differ for certain.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        hasher.write_u32(std::process::id());
        hasher.write_u64(fastrand::u64(..));
        Self::with_producer(hasher.finish())
    }

    /// A generator with the producer id `producer`, numbering from 0 (for
    /// a producer that keeps its id itself).
    pub fn with_producer(producer: u64) -> Self {
        Self {
            producer,
            next: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The producer id.
    pub fn producer(&self) -> u64 {
        self.producer
    }

    /// The next id.
    pub fn next_id(&self) -> RecordId {
        RecordId {
            producer: self.producer,
            seq: self.next.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// `record` with the next id.
    pub fn identify<T>(&self, record: T) -> Identified<T> {
        Identified {
            id: self.next_id(),
            record,
        }
    }
}

/// The codec of [`Identified`] records: the id's 16 bytes, then the
/// record in codec `C`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IdentifiedCodec<C>(pub C);

#[derive(Debug, thiserror::Error)]
#[error("{0} bytes: shorter than a record id")]
struct TooShort(usize);

impl<T, C: Codec<T>> Codec<Identified<T>> for IdentifiedCodec<C> {
    fn encode(&self, item: &Identified<T>, buf: &mut Vec<u8>) -> Result<(), CodecError> {
        buf.extend_from_slice(&item.id.to_bytes());
        self.0.encode(&item.record, buf)
    }

    fn decode(&self, bytes: &[u8]) -> Result<Identified<T>, CodecError> {
        let (id, record) = split(bytes)?;
        Ok(Identified {
            id,
            record: self.0.decode(record)?,
        })
    }

    fn decode_batch<'a, I>(&self, inputs: I) -> Vec<Result<Identified<T>, CodecError>>
    where
        I: IntoIterator<Item = &'a bytes::Bytes>,
    {
        // The records' own bytes as slices of the inputs, so that a codec
        // that slices its inputs keeps doing so.
        let mut ids = Vec::new();
        let mut records = Vec::new();
        let mut short = Vec::new();
        for (index, bytes) in inputs.into_iter().enumerate() {
            match split(bytes) {
                Ok((id, _)) => {
                    ids.push((index, id));
                    records.push(bytes.slice(RecordId::BYTES..));
                }
                Err(err) => short.push((index, err)),
            }
        }
        let mut decoded = self.0.decode_batch(records.iter()).into_iter();
        let mut out: Vec<Option<Result<Identified<T>, CodecError>>> =
            std::iter::repeat_with(|| None)
                .take(ids.len() + short.len())
                .collect();
        for (index, id) in ids {
            let record = decoded.next().unwrap_or_else(|| {
                Err(CodecError::decode(
                    "record id",
                    "the inner codec returned fewer records than it was given",
                ))
            });
            out[index] = Some(record.map(|record| Identified { id, record }));
        }
        for (index, err) in short {
            out[index] = Some(Err(err));
        }
        out.into_iter().flatten().collect()
    }
}

fn split(bytes: &[u8]) -> Result<(RecordId, &[u8]), CodecError> {
    if bytes.len() < RecordId::BYTES {
        return Err(CodecError::decode("record id", TooShort(bytes.len())));
    }
    let (id, record) = bytes.split_at(RecordId::BYTES);
    let mut raw = [0; RecordId::BYTES];
    raw.copy_from_slice(id);
    Ok((RecordId::from_bytes(raw), record))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{JsonCodec, RawCodec};

    #[test]
    fn ids_round_trip_as_bytes_and_text_and_bad_text_is_refused() {
        let id = RecordId {
            producer: 0xdead_beef,
            seq: 7,
        };
        assert_eq!(RecordId::from_bytes(id.to_bytes()), id);
        assert_eq!(id.to_string(), "00000000deadbeef-0000000000000007");
        assert_eq!(id.to_string().parse::<RecordId>().unwrap(), id);
        for bad in [
            "",
            "-",
            "deadbeef-7",
            "00000000deadbeef_0000000000000007",
            "00000000deadbeeg-0000000000000007",
        ] {
            assert!(bad.parse::<RecordId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn generators_number_from_zero_under_distinct_producers() {
        let (a, b) = (RecordIds::new(), RecordIds::new());
        assert_ne!(a.producer(), b.producer());
        let clone = a.clone();
        assert_eq!(a.next_id().seq, 0);
        assert_eq!(clone.next_id().seq, 1, "clones share the numbering");
    }

    #[test]
    fn the_batch_decode_keeps_order_and_reports_short_inputs_in_place() {
        let codec = IdentifiedCodec(RawCodec);
        let ids = RecordIds::with_producer(1);
        let a = codec
            .encode_to_vec(&ids.identify(bytes::Bytes::from_static(b"a")))
            .unwrap();
        let b = codec
            .encode_to_vec(&ids.identify(bytes::Bytes::from_static(b"bb")))
            .unwrap();
        let inputs = [
            bytes::Bytes::from(a),
            bytes::Bytes::from_static(b"short"),
            bytes::Bytes::from(b),
        ];
        let decoded: Vec<Result<Identified<bytes::Bytes>, _>> = codec.decode_batch(inputs.iter());
        assert_eq!(decoded.len(), 3);
        assert_eq!(decoded[0].as_ref().unwrap().id.seq, 0);
        assert!(decoded[1].is_err());
        let third = decoded[2].as_ref().unwrap();
        assert_eq!((third.id.seq, &third.record[..]), (1, &b"bb"[..]));
        let json = IdentifiedCodec(JsonCodec);
        assert!(Codec::<Identified<u32>>::decode(&json, &[0; 4]).is_err());
    }
}
