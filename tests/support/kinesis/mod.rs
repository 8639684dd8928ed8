//! Kinesis for tests and benches: in-process fakes behind the real SDK
//! client ([`fake_write_stream`] for producers, [`fake_read_stream`] for
//! consumers), streams on the emulators ([`emulator_stream`]), and a local
//! endpoint with latency and the per-shard write limits ([`stub`]: on a
//! loopback port in real time, or in process for paused-time tests).
//!
//! The fakes answer through `aws-smithy-mocks` interceptors: requests are
//! built and checked by the SDK as usual, nothing goes to the network, and
//! nothing in the library knows it is being tested.

pub mod emulator_stream;
pub mod fake_read_stream;
pub mod fake_write_stream;
pub mod stub;

use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::Client;
use aws_smithy_mocks::{create_mock_http_client, MockResponseInterceptor, Rule, RuleMode};
use aws_smithy_types::retry::RetryConfig;

/// A client answered only by `rules` (any rule that matches, in order),
/// with static credentials and the SDK's own retries off, so that every
/// failure reaches the code under test.
pub fn mocked_client(rules: &[&Rule]) -> Client {
    let mut interceptor = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
    for rule in rules {
        interceptor = interceptor.with_rule(rule);
    }
    let config = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .http_client(create_mock_http_client())
        .interceptor(interceptor)
        .retry_config(RetryConfig::disabled())
        .build();
    Client::from_conf(config)
}

/// The id of the shard numbered `index`, as Kinesis names it.
pub fn shard_id(index: usize) -> String {
    format!("shardId-{index:012}")
}
