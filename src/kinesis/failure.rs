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
use aws_sdk_kinesis::operation::put_records::PutRecordsError;
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

/// The kind of a failed `PutRecords` call, and a description for logs and
/// dead letters.
///
/// The modeled error variant decides first (it does not depend on how the
/// response carried its code), then the error code, then the HTTP status.
pub(crate) fn classify_put_records_error<R>(
    err: &SdkError<PutRecordsError, R>,
) -> (FailureKind, String)
where
    R: std::fmt::Debug + HasStatus,
{
    let kind = match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            FailureKind::Transient
        }
        // The request could not even be built: sending it again won't help.
        SdkError::ConstructionFailure(_) => FailureKind::Permanent,
        SdkError::ServiceError(service) => match service.err() {
            PutRecordsError::ProvisionedThroughputExceededException(_) => FailureKind::Throttled,
            PutRecordsError::InternalFailureException(_)
            | PutRecordsError::KmsThrottlingException(_) => FailureKind::Transient,
            PutRecordsError::AccessDeniedException(_)
            | PutRecordsError::InvalidArgumentException(_)
            | PutRecordsError::ResourceNotFoundException(_)
            | PutRecordsError::KmsAccessDeniedException(_)
            | PutRecordsError::KmsDisabledException(_)
            | PutRecordsError::KmsInvalidStateException(_)
            | PutRecordsError::KmsNotFoundException(_)
            | PutRecordsError::KmsOptInRequired(_) => FailureKind::Permanent,
            other => {
                let status = service.raw().status_code();
                match other.code() {
                    Some(code) if classify_code(code) != FailureKind::Permanent => {
                        classify_code(code)
                    }
                    Some(code) if is_known_permanent(code) => FailureKind::Permanent,
                    _ if status == 429 => FailureKind::Throttled,
                    _ if status >= 500 => FailureKind::Transient,
                    _ => FailureKind::Permanent,
                }
            }
        },
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
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

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

    fn service_error(err: PutRecordsError, status: u16) -> SdkError<PutRecordsError, HttpResponse> {
        SdkError::service_error(
            err,
            HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::empty()),
        )
    }

    #[test]
    fn failed_calls_are_classified_by_variant_then_code_then_status() {
        use aws_sdk_kinesis::types::error::{
            AccessDeniedException, ProvisionedThroughputExceededException,
        };
        use aws_smithy_types::error::ErrorMetadata;

        // The variant decides even without a code or a telling status.
        let throttled = PutRecordsError::ProvisionedThroughputExceededException(
            ProvisionedThroughputExceededException::builder().build(),
        );
        assert_eq!(
            classify_put_records_error(&service_error(throttled, 418)).0,
            FailureKind::Throttled
        );
        let denied =
            PutRecordsError::AccessDeniedException(AccessDeniedException::builder().build());
        assert_eq!(
            classify_put_records_error(&service_error(denied, 400)).0,
            FailureKind::Permanent
        );
        // Unmodeled: by code, then by status.
        let generic = |code: Option<&str>| {
            let mut meta = ErrorMetadata::builder();
            if let Some(code) = code {
                meta = meta.code(code);
            }
            PutRecordsError::generic(meta.build())
        };
        let kind =
            |code, status| classify_put_records_error(&service_error(generic(code), status)).0;
        assert_eq!(
            kind(Some("ValidationException"), 400),
            FailureKind::Permanent
        );
        assert_eq!(
            kind(Some("ServiceUnavailable"), 400),
            FailureKind::Transient
        );
        assert_eq!(kind(Some("Whatever"), 503), FailureKind::Transient);
        assert_eq!(kind(None, 500), FailureKind::Transient);
        assert_eq!(kind(None, 429), FailureKind::Throttled);
        assert_eq!(kind(None, 400), FailureKind::Permanent);

        let timeout: SdkError<PutRecordsError, HttpResponse> =
            SdkError::timeout_error("took too long");
        let (kind, reason) = classify_put_records_error(&timeout);
        assert_eq!(kind, FailureKind::Transient);
        assert!(reason.contains("took too long"), "{reason}");
    }
}
