//! How the source reacts to a failed Kinesis call.
//!
//! Every error of `GetRecords`, `GetShardIterator` and `ListShards` falls in
//! one of four classes, decided from the error's AWS error code (a
//! machine-readable identifier, not the message) or from the kind of SDK
//! failure. The classes, not the codes, drive the shard reader:
//!
//! - [`Failure::ExpiredIterator`]: recreate the iterator from the last
//!   delivered position; nothing is lost or repeated.
//! - [`Failure::Throttled`]: the shard's or account's rate was exceeded;
//!   back off (without limit: throttling is not a fault) and call again.
//! - [`Failure::Transient`]: network trouble, timeouts, 5xx and internal
//!   failures; retried within the source's [`RetryPolicy`](crate::RetryPolicy).
//! - [`Failure::Fatal`]: anything else (missing stream, access denied, KMS
//!   misconfiguration, invalid argument); surfaces as an error naming the
//!   shard.

use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};

use crate::aws::failure::{classify_sdk_error, FailureKind, HasStatus};

/// The class of a failed Kinesis call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    ExpiredIterator,
    Throttled,
    Transient,
    Fatal,
}

/// Classifies a failed read-side call: the read-specific codes first, then
/// the crate-wide rule (`crate::aws::failure::classify_sdk_error`: SDK
/// failure kind, code, HTTP status).
pub(crate) fn classify<E, R>(err: &SdkError<E, R>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + HasStatus,
{
    if let SdkError::ServiceError(service) = err {
        if let Some(class) = service.err().code().and_then(classify_read_code) {
            return class;
        }
    }
    match classify_sdk_error(err) {
        FailureKind::Throttled => Failure::Throttled,
        FailureKind::Transient => Failure::Transient,
        FailureKind::Permanent => Failure::Fatal,
    }
}

/// Codes whose meaning on the read side differs from the write side.
fn classify_read_code(code: &str) -> Option<Failure> {
    match code {
        "ExpiredIteratorException" => Some(Failure::ExpiredIterator),
        // `GetShardIterator` and `ListShards` answer their own rate limits
        // (5 and 100 calls/s) with this one: wait, do not count attempts.
        "LimitExceededException"
        | "ProvisionedThroughputExceededException"
        | "KMSThrottlingException" => Some(Failure::Throttled),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_codes_map_to_classes() {
        assert_eq!(
            classify_read_code("ExpiredIteratorException"),
            Some(Failure::ExpiredIterator)
        );
        assert_eq!(
            classify_read_code("ProvisionedThroughputExceededException"),
            Some(Failure::Throttled)
        );
        assert_eq!(
            classify_read_code("LimitExceededException"),
            Some(Failure::Throttled)
        );
        assert_eq!(classify_read_code("ResourceNotFoundException"), None);
    }
}
