//! What the AWS modules (`kinesis`, `cloudwatch_logs`, `dynamodb`) share:
//! one rule for telling throttled, transient and permanent failures apart,
//! SDK errors boxed for the crate's error types, the clients built from
//! an `SdkConfig` (with the SDK's retries off where the crate retries), and
//! a time limit on each call.

#[cfg(any(feature = "kinesis", feature = "cloudwatch-logs"))]
pub(crate) mod clients;
#[cfg(any(feature = "kinesis", feature = "cloudwatch-logs"))]
pub(crate) mod failure;
#[cfg(any(feature = "kinesis", feature = "cloudwatch-logs"))]
pub(crate) mod request_timeout;
#[cfg(feature = "dynamodb")]
pub(crate) mod sdk_error;
