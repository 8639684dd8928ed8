//! What the AWS modules (`kinesis`, `cloudwatch_logs`, `dynamodb`) share:
//! one rule for telling throttled, transient and permanent failures apart,
//! SDK errors boxed for the crate's error types, and the clients built from
//! an `SdkConfig` (with the SDK's retries off where the crate retries).

#[cfg(any(feature = "kinesis", feature = "cloudwatch-logs"))]
pub(crate) mod clients;
#[cfg(any(feature = "kinesis", feature = "cloudwatch-logs"))]
pub(crate) mod failure;
#[cfg(feature = "dynamodb")]
pub(crate) mod sdk_error;
