//! What the AWS modules (`kinesis`, `cloudwatch_logs`, `dynamodb`) share:
//! one rule for telling throttled, transient and permanent failures apart,
//! and SDK errors boxed for the crate's error types.

#[cfg(any(feature = "kinesis", feature = "cloudwatch-logs"))]
pub(crate) mod failure;
#[cfg(feature = "dynamodb")]
pub(crate) mod sdk_error;
