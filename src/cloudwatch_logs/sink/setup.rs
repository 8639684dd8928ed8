//! Setting up a sink's destination: `CreateLogGroup` and `CreateLogStream`
//! (when the sink creates missing resources), then `PutRetentionPolicy`
//! (when a retention is configured).
//!
//! # Guarantees
//!
//! - Idempotent: a group or stream that already exists counts as created,
//!   and the retention is simply set again.
//! - Runs before the first request of a sink (or on
//!   [`CloudWatchLogsSink::prepare`](super::CloudWatchLogsSink::prepare)),
//!   and again when a request finds the stream or group gone; the
//!   destination counts as ready only once every step succeeded.
//!
//! # Not guaranteed
//!
//! - No retries here: a failed step fails the batch with [`Error::Target`]
//!   naming the operation, and the setup starts over with the next batch.
//! - Without `create_missing` nothing checks that the group and stream
//!   exist: the first request finds out.

use std::fmt;

use aws_sdk_cloudwatchlogs::error::SdkError;

use super::writer::{LogStreamState, LogStreamWriter};
use crate::error::{BoxError, Error};

impl LogStreamWriter {
    /// Creates the group and stream (when configured to) and sets the
    /// retention, then marks the destination ready in `state`.
    pub(super) async fn prepare(&self, state: &mut LogStreamState) -> Result<(), Error> {
        if self.create_missing {
            let created = self
                .client
                .create_log_group()
                .log_group_name(&self.group)
                .send()
                .await;
            match created {
                Ok(_) => tracing::info!(group = %self.group, "created log group"),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_resource_already_exists_exception()) => {}
                Err(e) => return Err(self.setup_error("CreateLogGroup", e)),
            }
            let created = self
                .client
                .create_log_stream()
                .log_group_name(&self.group)
                .log_stream_name(&self.stream)
                .send()
                .await;
            match created {
                Ok(_) => tracing::info!(target_name = %self.target, "created log stream"),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_resource_already_exists_exception()) => {}
                Err(e) => return Err(self.setup_error("CreateLogStream", e)),
            }
        }
        if let Some(days) = self.retention_days {
            self.client
                .put_retention_policy()
                .log_group_name(&self.group)
                .retention_in_days(days)
                .send()
                .await
                .map_err(|e| self.setup_error("PutRetentionPolicy", e))?;
        }
        state.destination_ready = true;
        Ok(())
    }

    fn setup_error<E, R>(&self, operation: &'static str, err: SdkError<E, R>) -> Error
    where
        E: std::error::Error + Send + Sync + 'static,
        R: fmt::Debug + Send + Sync + 'static,
    {
        Error::target(
            &self.target,
            SetupFailed {
                operation,
                source: Box::new(err),
            },
        )
    }
}

/// A failed setup call (create group or stream, set retention).
#[derive(Debug, thiserror::Error)]
#[error("{operation} failed")]
struct SetupFailed {
    operation: &'static str,
    #[source]
    source: BoxError,
}
