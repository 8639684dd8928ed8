//! A limit on how long one SDK call may take.
//!
//! The SDK has no operation timeout unless the `SdkConfig` sets one, and a
//! connection that goes silent (a peer gone without a reset, a stalled
//! proxy) then holds a call forever: a sink or a shard reader would wait
//! for an answer that never comes. [`within`] abandons a call after its
//! limit and returns the SDK's own timeout error, which every failure
//! classifier of the crate treats as transient, so the caller's
//! [`RetryPolicy`](crate::RetryPolicy) retries it like a lost connection.
//!
//! A call abandoned this way may still have been served (its answer was
//! what got lost): for a write, retrying it can store its records twice,
//! as retrying after any network failure can.

use std::future::Future;
use std::time::Duration;

use aws_smithy_runtime_api::client::result::SdkError;

/// The source of the error of an abandoned call.
#[derive(Debug, thiserror::Error)]
#[error("{operation} got no answer within {limit:?} (request_timeout): abandoned")]
pub(crate) struct RequestTimedOut {
    operation: &'static str,
    limit: Duration,
}

/// `call`, abandoned with [`SdkError::TimeoutError`] when it takes longer
/// than `limit` (`None`: no limit).
pub(crate) async fn within<O, E, R>(
    limit: Option<Duration>,
    operation: &'static str,
    call: impl Future<Output = Result<O, SdkError<E, R>>>,
) -> Result<O, SdkError<E, R>> {
    let Some(limit) = limit else {
        return call.await;
    };
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result,
        Err(_) => Err(SdkError::timeout_error(RequestTimedOut {
            operation,
            limit,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Result<T> = std::result::Result<T, SdkError<std::io::Error, ()>>;

    #[tokio::test(start_paused = true)]
    async fn a_call_past_its_limit_is_a_timeout_error_naming_it() {
        let hung = std::future::pending::<Result<()>>();
        let err = within(Some(Duration::from_secs(2)), "GetRecords", hung)
            .await
            .unwrap_err();
        assert!(matches!(err, SdkError::TimeoutError(_)), "{err:?}");
        let source = std::error::Error::source(&err).expect("a source");
        assert_eq!(
            source.to_string(),
            "GetRecords got no answer within 2s (request_timeout): abandoned"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_within_its_limit_or_without_one_is_left_alone() {
        let quick = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Result::Ok(7)
        };
        assert_eq!(
            within(Some(Duration::from_secs(2)), "x", quick)
                .await
                .unwrap(),
            7
        );
        let slow = async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Result::Ok(8)
        };
        assert_eq!(within(None, "x", slow).await.unwrap(), 8);
    }
}
