//! Errors of enhanced fan-out that are not the service's own.
//!
//! They reach the user as the source of an [`Error::Target`](crate::Error::Target)
//! naming the stream, the shard or the consumer; SDK errors (access denied,
//! a missing stream, retries exhausted) come the same way, unchanged.

/// Why enhanced fan-out could not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FanOutError {
    /// The consumer did not become `ACTIVE` within the activation timeout.
    #[error("consumer {consumer} still {status} after {waited:?}")]
    NotActive {
        /// The consumer's name.
        consumer: String,
        /// Its last status (`CREATING`, `DELETING`).
        status: String,
        /// How long the source waited.
        waited: std::time::Duration,
    },
    /// A call that must describe the consumer answered without it.
    #[error("{operation} answered without the consumer {consumer}")]
    NoConsumer {
        /// The call (`RegisterStreamConsumer`, `DescribeStreamConsumer`).
        operation: &'static str,
        /// The consumer's name.
        consumer: String,
    },
}
