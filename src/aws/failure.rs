//! Telling AWS failures apart: throttled, transient, permanent.
//!
//! One rule for every AWS client in the crate (Kinesis sink and source,
//! CloudWatch Logs sink), so that a code or a status means the same thing
//! everywhere:
//!
//! 1. the kind of SDK failure: timeouts, connection trouble and unreadable
//!    responses are transient; a request that could not even be built is
//!    permanent; an SDK failure kind this crate does not know yet is
//!    transient (retried within the caller's policy rather than given up on);
//! 2. the service's error code (a machine-readable identifier, never the
//!    message): known throttling and transient codes, known permanent ones;
//! 3. the HTTP status of the response: 429 throttled, 5xx transient,
//!    anything else permanent.
//!
//! Callers that know an operation's modeled error variants decide those
//! first and fall back on [`classify_sdk_error`]. What a kind *means* for a
//! record (retry, fail the batch, dead-letter) stays with each caller.

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// What a failure means for the request or record it hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureKind {
    /// A rate limit: transient, and a signal to slow down.
    Throttled,
    /// Transient: the same request may succeed later.
    Transient,
    /// The service will refuse the same request again.
    Permanent,
}

impl FailureKind {
    pub(crate) fn is_permanent(self) -> bool {
        self == FailureKind::Permanent
    }
}

/// The kind of an AWS error code; unknown codes are permanent (callers with
/// an HTTP status to go on use [`classify_sdk_error`] instead).
pub(crate) fn classify_code(code: &str) -> FailureKind {
    match code {
        "ProvisionedThroughputExceededException"
        | "ThrottlingException"
        | "Throttling"
        | "TooManyRequestsException" => FailureKind::Throttled,
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

/// Codes documented as permanent: they win over a 5xx or 429 status.
fn is_known_permanent(code: &str) -> bool {
    matches!(
        code,
        "AccessDeniedException"
            | "InvalidArgumentException"
            | "InvalidParameterException"
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

/// The kind of a failed call, by SDK failure kind, then code, then status.
pub(crate) fn classify_sdk_error<E, R>(err: &SdkError<E, R>) -> FailureKind
where
    E: ProvideErrorMetadata,
    R: HasStatus,
{
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            FailureKind::Transient
        }
        // The request could not even be built: sending it again won't help.
        SdkError::ConstructionFailure(_) => FailureKind::Permanent,
        SdkError::ServiceError(service) => {
            let status = service.raw().status_code();
            match service.err().code() {
                Some(code) if !classify_code(code).is_permanent() => classify_code(code),
                Some(code) if is_known_permanent(code) => FailureKind::Permanent,
                _ if status == 429 => FailureKind::Throttled,
                _ if status >= 500 => FailureKind::Transient,
                _ => FailureKind::Permanent,
            }
        }
        // `SdkError` is non-exhaustive; a new kind is treated as transient,
        // which fails the attempt for a later retry rather than dropping it.
        _ => FailureKind::Transient,
    }
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
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    #[test]
    fn codes() {
        assert_eq!(
            classify_code("ProvisionedThroughputExceededException"),
            FailureKind::Throttled
        );
        assert_eq!(classify_code("ThrottlingException"), FailureKind::Throttled);
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

    #[test]
    fn failed_calls_by_code_then_status() {
        let kind = |code: Option<&str>, status: u16| {
            let mut meta = ErrorMetadata::builder();
            if let Some(code) = code {
                meta = meta.code(code);
            }
            let err: SdkError<ErrorMetadata, HttpResponse> = SdkError::service_error(
                meta.build(),
                HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::empty()),
            );
            classify_sdk_error(&err)
        };
        assert_eq!(
            kind(Some("ValidationException"), 500),
            FailureKind::Permanent
        );
        assert_eq!(
            kind(Some("ServiceUnavailable"), 400),
            FailureKind::Transient
        );
        assert_eq!(kind(Some("Throttling"), 400), FailureKind::Throttled);
        assert_eq!(kind(Some("Whatever"), 503), FailureKind::Transient);
        assert_eq!(kind(None, 500), FailureKind::Transient);
        assert_eq!(kind(None, 429), FailureKind::Throttled);
        assert_eq!(kind(None, 400), FailureKind::Permanent);

        let timeout: SdkError<ErrorMetadata, HttpResponse> = SdkError::timeout_error("slow");
        assert_eq!(classify_sdk_error(&timeout), FailureKind::Transient);
    }
}
