//! Record encodings.
//!
//! A [`Codec`] turns a record into bytes and back. Sizes that batching limits
//! count (`max_bytes`, target request limits) are always *encoded* sizes, as
//! produced by the codec, never in-memory sizes.
//!
//! - [`JsonCodec`] (the default) encodes any `serde` type as compact JSON.
//!   Its output never contains a raw newline, so it is safe for JSON-lines
//!   files.
//! - [`RawCodec`] passes binary payloads (`Vec<u8>`, [`bytes::Bytes`],
//!   `String`) through unchanged.
//!
//! Decoding never panics: malformed input yields [`CodecError`].

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Turns records of type `T` into bytes and back.
pub trait Codec<T>: Clone + Send + Sync + 'static {
    /// Appends the encoding of `item` to `buf`.
    fn encode(&self, item: &T, buf: &mut Vec<u8>) -> Result<(), CodecError>;

    /// Decodes one record from exactly `bytes`.
    fn decode(&self, bytes: &[u8]) -> Result<T, CodecError>;

    /// Encodes `item` into a new buffer.
    fn encode_to_vec(&self, item: &T) -> Result<Vec<u8>, CodecError> {
        let mut buf = Vec::new();
        self.encode(item, &mut buf)?;
        Ok(buf)
    }

    /// Decodes several records: one result per input, in order, each what
    /// [`decode`](Codec::decode) gives for that input.
    ///
    /// `buffered_wal` decodes the records it reads from its log with this;
    /// the inputs are slices of the log's read buffer. The default decodes
    /// each input on its own; a codec whose records hold [`bytes::Bytes`]
    /// may override it to slice its inputs instead of copying them (as
    /// [`RawCodec`] and `KinesisCodec` do) — the read buffer then stays
    /// allocated until the last of those records is dropped.
    fn decode_batch<'a, I>(&self, inputs: I) -> Vec<Result<T, CodecError>>
    where
        I: IntoIterator<Item = &'a bytes::Bytes>,
    {
        inputs.into_iter().map(|bytes| self.decode(bytes)).collect()
    }
}

/// Compact JSON through `serde_json`, for any `Serialize + DeserializeOwned` type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JsonCodec;

impl<T> Codec<T> for JsonCodec
where
    T: Serialize + DeserializeOwned,
{
    fn encode(&self, item: &T, buf: &mut Vec<u8>) -> Result<(), CodecError> {
        serde_json::to_writer(&mut *buf, item).map_err(|e| CodecError::encode("json", e))
    }

    fn decode(&self, bytes: &[u8]) -> Result<T, CodecError> {
        serde_json::from_slice(bytes).map_err(|e| CodecError::decode("json", e))
    }
}

/// Binary payloads, passed through unchanged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawCodec;

impl Codec<Vec<u8>> for RawCodec {
    fn encode(&self, item: &Vec<u8>, buf: &mut Vec<u8>) -> Result<(), CodecError> {
        buf.extend_from_slice(item);
        Ok(())
    }

    fn decode(&self, bytes: &[u8]) -> Result<Vec<u8>, CodecError> {
        Ok(bytes.to_vec())
    }
}

impl Codec<bytes::Bytes> for RawCodec {
    fn encode(&self, item: &bytes::Bytes, buf: &mut Vec<u8>) -> Result<(), CodecError> {
        buf.extend_from_slice(item);
        Ok(())
    }

    fn decode(&self, bytes: &[u8]) -> Result<bytes::Bytes, CodecError> {
        Ok(bytes::Bytes::copy_from_slice(bytes))
    }

    /// Shares the inputs: no copy.
    fn decode_batch<'a, I>(&self, inputs: I) -> Vec<Result<bytes::Bytes, CodecError>>
    where
        I: IntoIterator<Item = &'a bytes::Bytes>,
    {
        inputs.into_iter().map(|input| Ok(input.clone())).collect()
    }
}

impl Codec<String> for RawCodec {
    fn encode(&self, item: &String, buf: &mut Vec<u8>) -> Result<(), CodecError> {
        buf.extend_from_slice(item.as_bytes());
        Ok(())
    }

    fn decode(&self, bytes: &[u8]) -> Result<String, CodecError> {
        String::from_utf8(bytes.to_vec()).map_err(|e| CodecError::decode("utf-8", e))
    }
}

/// Whether encoding or decoding failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecDirection {
    /// Turning a record into bytes.
    Encode,
    /// Turning bytes into a record.
    Decode,
}

/// A record could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub struct CodecError {
    direction: CodecDirection,
    format: &'static str,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl CodecError {
    /// An encoding failure in `format`.
    pub fn encode(
        format: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Self {
            direction: CodecDirection::Encode,
            format,
            source: source.into(),
        }
    }

    /// A decoding failure in `format`.
    pub fn decode(
        format: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Self {
            direction: CodecDirection::Decode,
            format,
            source: source.into(),
        }
    }

    /// Whether encoding or decoding failed.
    pub fn direction(&self) -> CodecDirection {
        self.direction
    }

    /// The format that failed ("json", "utf-8", …).
    pub fn format(&self) -> &'static str {
        self.format
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.direction {
            CodecDirection::Encode => "encode",
            CodecDirection::Decode => "decode",
        };
        write!(f, "cannot {what} {}", self.format)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Order {
        id: u64,
        note: String,
    }

    #[test]
    fn json_round_trip_has_no_newline() {
        let order = Order {
            id: 7,
            note: "two\nlines".into(),
        };
        let bytes = JsonCodec.encode_to_vec(&order).unwrap();
        assert!(!bytes.contains(&b'\n'));
        let back: Order = JsonCodec.decode(&bytes).unwrap();
        assert_eq!(back, order);
    }

    #[test]
    fn json_decode_error_is_typed() {
        let err = <JsonCodec as Codec<Order>>::decode(&JsonCodec, b"{not json").unwrap_err();
        assert_eq!(err.direction(), CodecDirection::Decode);
        assert_eq!(err.format(), "json");
    }

    #[test]
    fn raw_passes_bytes_through() {
        let data = vec![0u8, 255, 10, 13];
        let enc = RawCodec.encode_to_vec(&data).unwrap();
        assert_eq!(enc, data);
        let back: Vec<u8> = RawCodec.decode(&enc).unwrap();
        assert_eq!(back, data);
        assert!(<RawCodec as Codec<String>>::decode(&RawCodec, &[0xff, 0xfe]).is_err());
    }

    #[test]
    fn batch_decoding_gives_what_single_decoding_gives() {
        let inputs: Vec<bytes::Bytes> = [&b"one"[..], b"", b"three", &[0xff, 0xfe]]
            .into_iter()
            .map(bytes::Bytes::copy_from_slice)
            .collect();
        let shared: Vec<bytes::Bytes> = RawCodec
            .decode_batch(&inputs)
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
        let single: Vec<bytes::Bytes> =
            inputs.iter().map(|b| RawCodec.decode(b).unwrap()).collect();
        assert_eq!(shared, single);
        // The default: per input, errors included.
        let strings = <RawCodec as Codec<String>>::decode_batch(&RawCodec, &inputs);
        assert_eq!(strings.len(), 4);
        assert_eq!(strings[2].as_ref().unwrap(), "three");
        assert!(strings[3].is_err());
        assert!(<RawCodec as Codec<bytes::Bytes>>::decode_batch(&RawCodec, []).is_empty());
    }
}
