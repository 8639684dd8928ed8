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

use crate::kinesis::failure::{classify_code, FailureKind, HasStatus};

/// The class of a failed Kinesis call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    ExpiredIterator,
    Throttled,
    Transient,
    Fatal,
}

/// Classifies a failed read-side call: the read-specific codes first, then
/// the codes the sink knows ([`classify_code`]), then the HTTP status (429
/// throttled, 5xx transient).
pub(crate) fn classify<E, R>(err: &SdkError<E, R>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + HasStatus,
{
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Failure::Transient
        }
        // The request could not even be built: sending it again won't help.
        SdkError::ConstructionFailure(_) => Failure::Fatal,
        SdkError::ServiceError(service) => {
            let code = service.err().code();
            if let Some(class) = code.and_then(classify_read_code) {
                return class;
            }
            let status = service.raw().status_code();
            match code.map(classify_code) {
                Some(FailureKind::Throttled) => Failure::Throttled,
                Some(FailureKind::Transient) => Failure::Transient,
                _ if status == 429 => Failure::Throttled,
                _ if status >= 500 => Failure::Transient,
                _ => Failure::Fatal,
            }
        }
        // `SdkError` is non-exhaustive: an unknown kind is retried within
        // the policy rather than ending the stream at once.
        _ => Failure::Transient,
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
