//! [`KinesisCodec`]: a compact binary encoding of [`KinesisRecord`] for the
//! write-ahead log.
//!
//! `buffered_wal` stores each record with a [`Codec`]. The default,
//! JSON, writes a Kinesis record's data as base64 — a third larger, and
//! slow to encode and decode at hundreds of thousands of records a second.
//! This codec writes the bytes as they are:
//!
//! ```text
//! u8  version (1)
//! u32 little-endian partition-key length, partition-key bytes (UTF-8)
//! u32 little-endian explicit-hash-key length + 1 (0 = none), its bytes
//! data: the rest
//! ```
//!
//! Decoding checks every length against the input and the UTF-8 of the
//! keys, and fails with a typed [`CodecError`] — never a panic. It does not
//! check the Kinesis limits: the sink does, and reports violations as
//! rejections. A log written with one codec must be read with the same one.

use bytes::Bytes;

use crate::codec::{Codec, CodecError};
use crate::kinesis::KinesisRecord;

const VERSION: u8 = 1;
const FORMAT: &str = "kinesis-binary";

/// Binary [`Codec`] for [`KinesisRecord`]s (see the module documentation).
///
/// ```
/// use unistream::kinesis::{KinesisCodec, KinesisRecord};
/// use unistream::Codec;
///
/// let record = KinesisRecord::new(vec![0u8, 255], "key").with_explicit_hash_key("42");
/// let bytes = KinesisCodec.encode_to_vec(&record).unwrap();
/// assert_eq!(bytes.len(), 1 + 4 + 3 + 4 + 2 + 2);
/// assert_eq!(KinesisCodec.decode(&bytes).unwrap(), record);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KinesisCodec;

impl Codec<KinesisRecord> for KinesisCodec {
    fn encode(&self, item: &KinesisRecord, buf: &mut Vec<u8>) -> Result<(), CodecError> {
        let too_long = || CodecError::encode(FORMAT, "a key longer than 4 GiB");
        let key_len = u32::try_from(item.partition_key.len()).map_err(|_| too_long())?;
        let explicit_len = match &item.explicit_hash_key {
            None => 0,
            Some(key) => u32::try_from(key.len())
                .ok()
                .and_then(|n| n.checked_add(1))
                .ok_or_else(too_long)?,
        };
        buf.reserve(9 + item.partition_key.len() + item.data.len());
        buf.push(VERSION);
        buf.extend_from_slice(&key_len.to_le_bytes());
        buf.extend_from_slice(item.partition_key.as_bytes());
        buf.extend_from_slice(&explicit_len.to_le_bytes());
        if let Some(key) = &item.explicit_hash_key {
            buf.extend_from_slice(key.as_bytes());
        }
        buf.extend_from_slice(&item.data);
        Ok(())
    }

    fn decode(&self, bytes: &[u8]) -> Result<KinesisRecord, CodecError> {
        let DecodedParts {
            partition_key,
            explicit_hash_key,
            data,
        } = decode_parts(bytes)?;
        Ok(KinesisRecord {
            data: Bytes::copy_from_slice(data),
            partition_key,
            explicit_hash_key,
        })
    }

    /// The records' data are slices of their inputs: no copy.
    fn decode_batch<'a, I>(&self, inputs: I) -> Vec<Result<KinesisRecord, CodecError>>
    where
        I: IntoIterator<Item = &'a Bytes>,
    {
        inputs
            .into_iter()
            .map(|input| {
                let DecodedParts {
                    partition_key,
                    explicit_hash_key,
                    data,
                } = decode_parts(input)?;
                Ok(KinesisRecord {
                    data: input.slice_ref(data),
                    partition_key,
                    explicit_hash_key,
                })
            })
            .collect()
    }
}

/// The keys of an encoded record, and its data still in the input.
struct DecodedParts<'a> {
    partition_key: String,
    explicit_hash_key: Option<String>,
    data: &'a [u8],
}

/// The keys and the data of an encoded record.
fn decode_parts(bytes: &[u8]) -> Result<DecodedParts<'_>, CodecError> {
    let mut rest = bytes;
    let version = take(&mut rest, 1)?[0];
    if version != VERSION {
        return Err(CodecError::decode(
            FORMAT,
            format!("unknown version {version}"),
        ));
    }
    let key_len = u32_le(take(&mut rest, 4)?) as usize;
    let partition_key = utf8(take(&mut rest, key_len)?, "partition key")?;
    let explicit = u32_le(take(&mut rest, 4)?) as usize;
    let explicit_hash_key = match explicit {
        0 => None,
        n => Some(utf8(take(&mut rest, n - 1)?, "explicit hash key")?),
    };
    Ok(DecodedParts {
        partition_key,
        explicit_hash_key,
        data: rest,
    })
}

fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], CodecError> {
    if rest.len() < n {
        return Err(CodecError::decode(
            FORMAT,
            format!("truncated: {n} bytes needed, {} left", rest.len()),
        ));
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Ok(head)
}

fn u32_le(bytes: &[u8]) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(bytes);
    u32::from_le_bytes(word)
}

fn utf8(bytes: &[u8], what: &str) -> Result<String, CodecError> {
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|e| CodecError::decode(FORMAT, format!("{what} is not UTF-8: {e}")))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn damaged_input_is_an_error() {
        let record = KinesisRecord::new("data", "key").with_explicit_hash_key("7");
        let bytes = KinesisCodec.encode_to_vec(&record).unwrap();
        // Every cut inside the header is refused (a cut in the data is a
        // shorter record: the format has no data length by design).
        for cut in 0..bytes.len() - record.data.len() {
            assert!(KinesisCodec.decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut wrong_version = bytes.clone();
        wrong_version[0] = 2;
        assert!(KinesisCodec.decode(&wrong_version).is_err());
        let mut huge_key = bytes.clone();
        huge_key[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(KinesisCodec.decode(&huge_key).is_err());
        let mut bad_utf8 = bytes;
        bad_utf8[5] = 0xff;
        assert!(KinesisCodec.decode(&bad_utf8).is_err());
    }

    proptest! {
        #[test]
        fn round_trip(
            data in proptest::collection::vec(any::<u8>(), 0..200),
            key in "\\PC{0,40}",
            explicit in proptest::option::of("[0-9]{0,39}"),
        ) {
            let record = KinesisRecord { data: data.into(), partition_key: key, explicit_hash_key: explicit };
            let bytes = KinesisCodec.encode_to_vec(&record).unwrap();
            prop_assert_eq!(KinesisCodec.decode(&bytes).unwrap(), record);
        }

        #[test]
        fn batch_decoding_gives_what_single_decoding_gives(
            inputs in proptest::collection::vec(
                prop_oneof![
                    (
                        proptest::collection::vec(any::<u8>(), 0..50),
                        "\\PC{0,10}",
                        proptest::option::of("[0-9]{0,39}"),
                    )
                        .prop_map(|(data, key, explicit)| {
                            let record = KinesisRecord {
                                data: data.into(),
                                partition_key: key,
                                explicit_hash_key: explicit,
                            };
                            KinesisCodec.encode_to_vec(&record).unwrap()
                        }),
                    proptest::collection::vec(any::<u8>(), 0..20),
                ],
                0..20,
            ),
        ) {
            let inputs: Vec<Bytes> = inputs.into_iter().map(Bytes::from).collect();
            let batch = KinesisCodec.decode_batch(&inputs);
            prop_assert_eq!(batch.len(), inputs.len());
            for (input, decoded) in inputs.iter().zip(batch) {
                match (KinesisCodec.decode(input), decoded) {
                    (Ok(single), Ok(decoded)) => prop_assert_eq!(single, decoded),
                    (Err(_), Err(_)) => {}
                    (single, decoded) => {
                        prop_assert!(false, "single {:?}, batch {:?}", single, decoded)
                    }
                }
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = KinesisCodec.decode(&bytes);
        }
    }
}
