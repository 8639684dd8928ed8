//! The SDK clients the crate builds from an `SdkConfig`.
//!
//! # Guaranteed
//!
//! A Kinesis or CloudWatch Logs client built here has the SDK's own retries
//! turned off (`RetryConfig::disabled()`), everything else (region,
//! credentials, endpoint, timeouts, HTTP client, interceptors) as in the
//! `SdkConfig`: the sink's or source's [`RetryPolicy`](crate::RetryPolicy)
//! is then the only layer that retries a call, so attempts do not multiply.
//! DynamoDB and S3 clients are built by the stores themselves with the
//! SDK's retries kept: those stores do not retry, and the SDK's layer is
//! their only one.

#[cfg(feature = "kinesis")]
pub(crate) fn kinesis(config: &aws_config::SdkConfig) -> aws_sdk_kinesis::Client {
    let conf = aws_sdk_kinesis::config::Builder::from(config)
        .retry_config(aws_sdk_kinesis::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_kinesis::Client::from_conf(conf)
}

#[cfg(feature = "cloudwatch-logs")]
pub(crate) fn cloudwatch_logs(config: &aws_config::SdkConfig) -> aws_sdk_cloudwatchlogs::Client {
    let conf = aws_sdk_cloudwatchlogs::config::Builder::from(config)
        .retry_config(aws_sdk_cloudwatchlogs::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_cloudwatchlogs::Client::from_conf(conf)
}
