//! # unistream
//!
//! Durable, batched producers and checkpointed consumers for stream systems
//! (AWS Kinesis, AWS CloudWatch Logs, local files, your own), in the
//! `futures` [`Stream`](futures::Stream) / [`Sink`](futures::Sink) style.
//!
//! - **Producers** are sinks of record batches ([`sink::FileSink`],
//!   [`sink::MemorySink`], Kinesis, CloudWatch Logs, your own) made durable
//!   and batched by one adapter, `.buffered_wal(config)`, backed by a
//!   write-ahead log on local disk.
//! - **Consumers** are streams of `(record, CheckpointToken)`, and
//!   checkpointing is a combinator over pluggable [`checkpoint`] stores.
//!
//! ## Map of the crate
//!
//! | module | what it holds |
//! |---|---|
//! | [`sink`] | batch targets (file, memory) and the durable `buffered_wal` adapter |
//! | [`wal`] | the write-ahead log |
//! | [`source`] | record sources: file, memory |
//! | [`process`] | per-record retry and dead-lettering |
//! | [`checkpoint`] | tokens, positions, checkpoint stores, `checkpoint_batched` |
//! | [`codec`] | record encodings (JSON, raw bytes) |
//! | [`retry`] | retry policy with backoff and jitter |
//! | [`dead_letter`] | what a record given up on becomes |
//! | `kinesis` | Kinesis sink and source, KPL aggregation (feature `kinesis`) |
//! | `cloudwatch_logs` | CloudWatch Logs sink (feature `cloudwatch-logs`) |
//!
//! AWS targets sit behind cargo features: `kinesis`, `cloudwatch-logs`,
//! `dynamodb`, `s3` (`aws` enables all four). The DynamoDB checkpoint stores
//! live in [`checkpoint`] behind `dynamodb` (and `s3`).

#![forbid(unsafe_code)]
#![warn(missing_docs, rust_2018_idioms)]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

#[cfg(any(feature = "kinesis", feature = "cloudwatch-logs", feature = "dynamodb"))]
mod aws;
pub mod checkpoint;
pub mod codec;
pub mod dead_letter;
mod durable_fs;
mod error;
pub mod lease;
pub mod process;
pub mod retry;
pub mod sink;
pub mod source;
pub mod wal;

#[cfg(feature = "kinesis")]
pub mod kinesis;

#[cfg(feature = "cloudwatch-logs")]
pub mod cloudwatch_logs;

#[cfg(feature = "dynamodb")]
pub mod dynamodb;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
#[path = "fuzz/mod.rs"]
pub mod __fuzz;

pub use checkpoint::{CheckpointStore, CheckpointStreamExt, CheckpointToken, Position};
pub use codec::{Codec, JsonCodec, RawCodec};
pub use dead_letter::DeadLetter;
pub use error::{BoxError, Error, RejectedRecord, Result};
pub use retry::RetryPolicy;
