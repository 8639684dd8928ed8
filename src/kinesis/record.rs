//! The Kinesis record type shared by the sink and the source.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::codec::{Codec, CodecError};

/// One Kinesis record: data bytes, a partition key, and optionally an
/// explicit hash key that overrides the key's hash for shard placement.
///
/// The data is serialized as base64 when a `KinesisRecord` itself is
/// encoded (for example into a write-ahead log with
/// [`JsonCodec`](crate::codec::JsonCodec)).
///
/// ```
/// use unistream::kinesis::KinesisRecord;
///
/// #[derive(serde::Serialize)]
/// struct Order { id: u64 }
///
/// let record = KinesisRecord::json(&Order { id: 7 }, "customer-42").unwrap();
/// assert_eq!(&record.data[..], br#"{"id":7}"#);
/// assert_eq!(record.partition_key, "customer-42");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KinesisRecord {
    /// The payload.
    #[serde(with = "base64_data")]
    pub data: Bytes,
    /// The partition key (1 to 256 characters).
    pub partition_key: String,
    /// A decimal 128-bit hash key that places the record on a shard
    /// explicitly, instead of the MD5 of the partition key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explicit_hash_key: Option<String>,
}

impl KinesisRecord {
    /// A record with `data` under `partition_key`.
    pub fn new(data: impl Into<Bytes>, partition_key: impl Into<String>) -> Self {
        Self {
            data: data.into(),
            partition_key: partition_key.into(),
            explicit_hash_key: None,
        }
    }

    /// A record whose data is `value` encoded with `codec`.
    pub fn encode<T, C: Codec<T>>(
        codec: &C,
        value: &T,
        partition_key: impl Into<String>,
    ) -> Result<Self, CodecError> {
        Ok(Self::new(codec.encode_to_vec(value)?, partition_key))
    }

    /// A record whose data is `value` as compact JSON.
    pub fn json<T: Serialize>(
        value: &T,
        partition_key: impl Into<String>,
    ) -> Result<Self, CodecError> {
        let data = serde_json::to_vec(value).map_err(|e| CodecError::encode("json", e))?;
        Ok(Self::new(data, partition_key))
    }

    /// Sets the explicit hash key.
    #[must_use = "returns the record with the hash key; the original is moved"]
    pub fn with_explicit_hash_key(mut self, hash_key: impl Into<String>) -> Self {
        self.explicit_hash_key = Some(hash_key.into());
        self
    }

    /// Decodes the data with `codec`.
    pub fn decode<T, C: Codec<T>>(&self, codec: &C) -> Result<T, CodecError> {
        codec.decode(&self.data)
    }

    /// Bytes this record counts against Kinesis size limits: data plus the
    /// UTF-8 bytes of the partition key.
    pub fn billed_bytes(&self) -> usize {
        self.data.len() + self.partition_key.len()
    }
}

mod base64_data {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        STANDARD
            .decode(text.as_bytes())
            .map(Bytes::from)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::JsonCodec;

    #[test]
    fn json_codec_round_trip_keeps_binary_data() {
        let record = KinesisRecord::new(vec![0u8, 255, b'\n'], "k").with_explicit_hash_key("42");
        let encoded = JsonCodec.encode_to_vec(&record).unwrap();
        let back: KinesisRecord = JsonCodec.decode(&encoded).unwrap();
        assert_eq!(back, record);
        assert_eq!(record.billed_bytes(), 4);
    }
}
