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

/// The class of a failed Kinesis call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    ExpiredIterator,
    Throttled,
    Transient,
    Fatal,
}

const EXPIRED: &[&str] = &["ExpiredIteratorException"];
const THROTTLED: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "LimitExceededException",
    "KMSThrottlingException",
    "ThrottlingException",
];
const TRANSIENT: &[&str] = &[
    "InternalFailure",
    "InternalFailureException",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
];

pub(crate) fn classify<E, R>(err: &SdkError<E, R>) -> Failure
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Failure::Transient
        }
        SdkError::ServiceError(service) => classify_code(service.err().code()),
        // Construction failures are bugs or configuration errors: retrying
        // cannot help.
        _ => Failure::Fatal,
    }
}

pub(crate) fn classify_code(code: Option<&str>) -> Failure {
    match code {
        Some(c) if EXPIRED.contains(&c) => Failure::ExpiredIterator,
        Some(c) if THROTTLED.contains(&c) => Failure::Throttled,
        Some(c) if TRANSIENT.contains(&c) => Failure::Transient,
        // An unmodeled error without a code is usually a 5xx page from a
        // proxy or an emulator.
        None => Failure::Transient,
        Some(_) => Failure::Fatal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_classes() {
        assert_eq!(
            classify_code(Some("ExpiredIteratorException")),
            Failure::ExpiredIterator
        );
        assert_eq!(
            classify_code(Some("ProvisionedThroughputExceededException")),
            Failure::Throttled
        );
        assert_eq!(
            classify_code(Some("LimitExceededException")),
            Failure::Throttled
        );
        assert_eq!(classify_code(Some("InternalFailure")), Failure::Transient);
        assert_eq!(classify_code(None), Failure::Transient);
        assert_eq!(
            classify_code(Some("ResourceNotFoundException")),
            Failure::Fatal
        );
        assert_eq!(classify_code(Some("AccessDeniedException")), Failure::Fatal);
    }
}
