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
//! from a failed call; the rule for codes and statuses is the crate-wide one
//! of `crate::aws::failure` (unknown codes of failed calls count by HTTP
//! status, unknown per-record codes as permanent).
//!
//! [`RetryPolicy`]: crate::RetryPolicy

use aws_sdk_kinesis::error::SdkError;
use aws_sdk_kinesis::operation::put_records::PutRecordsError;

use aws_smithy_types::error::display::DisplayErrorContext;

pub(crate) use crate::aws::failure::{classify_code, FailureKind, HasStatus};

/// A failed `PutRecords` call, told apart: its kind, and a description for
/// logs and dead letters.
#[derive(Debug)]
pub(crate) struct ClassifiedFailure {
    pub kind: FailureKind,
    pub reason: String,
}

/// The kind of a failed `PutRecords` call, and a description for logs and
/// dead letters.
///
/// The modeled error variant decides first (it does not depend on how the
/// response carried its code), then the crate-wide rule
/// ([`classify_sdk_error`](crate::aws::failure::classify_sdk_error)): code,
/// then HTTP status.
pub(crate) fn classify_put_records_error<R>(err: &SdkError<PutRecordsError, R>) -> ClassifiedFailure
where
    R: std::fmt::Debug + HasStatus,
{
    let modeled = match err {
        SdkError::ServiceError(service) => match service.err() {
            PutRecordsError::ProvisionedThroughputExceededException(_) => {
                Some(FailureKind::Throttled)
            }
            PutRecordsError::InternalFailureException(_)
            | PutRecordsError::KmsThrottlingException(_) => Some(FailureKind::Transient),
            PutRecordsError::AccessDeniedException(_)
            | PutRecordsError::InvalidArgumentException(_)
            | PutRecordsError::ResourceNotFoundException(_)
            | PutRecordsError::KmsAccessDeniedException(_)
            | PutRecordsError::KmsDisabledException(_)
            | PutRecordsError::KmsInvalidStateException(_)
            | PutRecordsError::KmsNotFoundException(_)
            | PutRecordsError::KmsOptInRequired(_) => Some(FailureKind::Permanent),
            _ => None,
        },
        _ => None,
    };
    let kind = modeled.unwrap_or_else(|| crate::aws::failure::classify_sdk_error(err));
    ClassifiedFailure {
        kind,
        reason: describe_sdk_error(err),
    }
}

/// The whole error chain of an SDK error, on one line.
pub(crate) fn describe_sdk_error<E, R>(err: &SdkError<E, R>) -> String
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    DisplayErrorContext(err).to_string()
}

#[cfg(test)]
mod tests {
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

    use super::*;

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
            classify_put_records_error(&service_error(throttled, 418)).kind,
            FailureKind::Throttled
        );
        let denied =
            PutRecordsError::AccessDeniedException(AccessDeniedException::builder().build());
        assert_eq!(
            classify_put_records_error(&service_error(denied, 400)).kind,
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
            |code, status| classify_put_records_error(&service_error(generic(code), status)).kind;
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
        let ClassifiedFailure { kind, reason } = classify_put_records_error(&timeout);
        assert_eq!(kind, FailureKind::Transient);
        assert!(reason.contains("took too long"), "{reason}");
    }
}
