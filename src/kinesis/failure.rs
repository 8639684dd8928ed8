//! Telling Kinesis failures apart: throttling, transient, permanent.
//!
//! The sink retries every failure within its [`RetryPolicy`]; the kind
//! decides what happens when the policy is exhausted. A *permanent* failure
//! (the service will refuse this record again: access denied, KMS key
//! disabled, validation, stream not found) makes the record
//! [`Rejected`](crate::Error::Rejected) — the dead-letter path. A *transient*
//! one (throttling, internal failure, 5xx, timeouts, connection trouble)
//! fails the batch instead, so the caller (for example `buffered_wal`) sends
//! it again later: the record is fine, the service was not.
//!
//! Codes come from the per-record `ErrorCode` of a `PutRecords` answer or
//! from a failed call; unknown codes of failed calls count by HTTP status
//! (5xx transient, 4xx permanent), unknown per-record codes as permanent.
//!
//! [`RetryPolicy`]: crate::RetryPolicy

use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_types::error::display::DisplayErrorContext;

/// What a failure means for the record(s) it hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureKind {
    /// The shard's write limit: transient, and a signal to slow down.
    Throttled,
    /// Transient: the same request may succeed later.
    Transient,
    /// The service will refuse the record again.
    Permanent,
}

impl FailureKind {
    pub(crate) fn is_permanent(self) -> bool {
        self == FailureKind::Permanent
    }
}

/// The kind of a per-record error code of a `PutRecords` answer.
pub(crate) fn classify_code(code: &str) -> FailureKind {
    match code {
        "ProvisionedThroughputExceededException" | "ThrottlingException" => FailureKind::Throttled,
        "InternalFailure"
        | "InternalFailureException"
        | "InternalServerError"
        | "ServiceUnavailable"
        | "ServiceUnavailableException"
        | "KMSThrottlingException"
        | "LimitExceededException"
        | "RequestTimeout"
        | "RequestTimeoutException"
        | "SlowDown" => FailureKind::Transient,
        _ => FailureKind::Permanent,
    }
}

/// The kind of a failed call, and a description for logs and dead letters.
pub(crate) fn classify_sdk_error<E, R>(err: &SdkError<E, R>) -> (FailureKind, String)
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + HasStatus,
{
    let kind = match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            FailureKind::Transient
        }
        // The request could not even be built: sending it again won't help.
        SdkError::ConstructionFailure(_) => FailureKind::Permanent,
        SdkError::ServiceError(service) => {
            let status = service.raw().status_code();
            match err.code() {
                Some(code) if classify_code(code) != FailureKind::Permanent => classify_code(code),
                Some(code) if is_known_permanent(code) => FailureKind::Permanent,
                _ if status == 429 => FailureKind::Throttled,
                _ if status >= 500 => FailureKind::Transient,
                _ => FailureKind::Permanent,
            }
        }
        // `SdkError` is non-exhaustive; a new kind is treated as transient,
        // which fails the batch for a later retry rather than dropping it.
        _ => FailureKind::Transient,
    };
    (kind, describe_sdk_error(err))
}

/// Codes documented as permanent for `PutRecords`.
fn is_known_permanent(code: &str) -> bool {
    matches!(
        code,
        "AccessDeniedException"
            | "InvalidArgumentException"
            | "ValidationException"
            | "ResourceNotFoundException"
            | "KMSAccessDeniedException"
            | "KMSDisabledException"
            | "KMSInvalidStateException"
            | "KMSNotFoundException"
            | "KMSOptInRequired"
            | "UnrecognizedClientException"
            | "MissingAuthenticationToken"
            | "InvalidSignatureException"
    )
}

/// The whole error chain of an SDK error, on one line.
pub(crate) fn describe_sdk_error<E, R>(err: &SdkError<E, R>) -> String
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    DisplayErrorContext(err).to_string()
}

/// The HTTP status of a raw response.
pub(crate) trait HasStatus {
    fn status_code(&self) -> u16;
}

impl HasStatus for aws_smithy_runtime_api::client::orchestrator::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_record_codes() {
        assert_eq!(
            classify_code("ProvisionedThroughputExceededException"),
            FailureKind::Throttled
        );
        assert_eq!(classify_code("InternalFailure"), FailureKind::Transient);
        assert_eq!(
            classify_code("KMSThrottlingException"),
            FailureKind::Transient
        );
        assert_eq!(
            classify_code("KMSDisabledException"),
            FailureKind::Permanent
        );
        assert_eq!(
            classify_code("AccessDeniedException"),
            FailureKind::Permanent
        );
        assert_eq!(classify_code("SomethingNew"), FailureKind::Permanent);
    }
}
