//! The protobuf messages of the KPL aggregation format, derived by hand
//! (no build script, no `protoc`).
//!
//! They mirror `messages.proto` of the Kinesis Producer Library (proto2):
//!
//! ```text
//! message AggregatedRecord {
//!   repeated string partition_key_table     = 1;
//!   repeated string explicit_hash_key_table = 2;
//!   repeated Record records                 = 3;
//! }
//! message Tag {
//!   required string key   = 1;
//!   optional string value = 2;
//! }
//! message Record {
//!   required uint64 partition_key_index     = 1;
//!   optional uint64 explicit_hash_key_index = 2;
//!   required bytes  data                    = 3;
//!   repeated Tag    tags                    = 4;
//! }
//! ```
//!
//! prost writes fields in tag order and always writes `required` fields, as
//! the C++ protobuf runtime of the KPL does, so equal tables give equal bytes.
//! prost does not enforce `required` on decode: a missing field reads as its
//! default (index 0, empty data), which the deaggregator then checks against
//! the key tables like any other index.

use bytes::Bytes;

/// The top-level message between the magic number and the MD5 trailer.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct AggregatedRecord {
    #[prost(string, repeated, tag = "1")]
    pub partition_key_table: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub explicit_hash_key_table: Vec<String>,
    #[prost(message, repeated, tag = "3")]
    pub records: Vec<Record>,
}

/// One user record inside an aggregate.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Record {
    #[prost(uint64, required, tag = "1")]
    pub partition_key_index: u64,
    #[prost(uint64, optional, tag = "2")]
    pub explicit_hash_key_index: Option<u64>,
    #[prost(bytes = "bytes", required, tag = "3")]
    pub data: Bytes,
    #[prost(message, repeated, tag = "4")]
    pub tags: Vec<Tag>,
}

/// Reserved by the format; neither the KPL nor the KCL uses tags. Decoded so
/// that an aggregate carrying them still reads, and otherwise ignored.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Tag {
    #[prost(string, required, tag = "1")]
    pub key: String,
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
}
