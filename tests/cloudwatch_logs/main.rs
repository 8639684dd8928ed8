//! `CloudWatchLogsSink` (feature `cloudwatch-logs`): against moto, under
//! injected faults, and behind `buffered_wal`. One test binary (one moto
//! for all), one module per topic.
#![cfg(feature = "cloudwatch-logs")]

#[path = "../support/mod.rs"]
mod support;

/// Faults injected with `aws-smithy-mocks`.
mod faults;
/// Against moto: volume, ordering, splitting, rejection, setup.
mod sink;
/// Behind `buffered_wal`, and a shipper killed at a random moment.
mod wal;
