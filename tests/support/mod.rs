//! Code shared by the integration tests and the benches: the only place
//! where a function used by more than one test file lives.
//!
//! Each test binary that needs it (`tests/<area>/main.rs`) includes it
//! with `#[path = "../support/mod.rs"] mod support;`, each bench that needs it
//! with `#[path = "../tests/support/mod.rs"] mod test_support;`; each uses
//! the parts it needs (hence `dead_code` allowed). The AWS parts build only
//! with their features.
//!
//! - [`child`]: re-running the test binary as a child process.
//! - [`seed`]: seeds of the random tests, printed and taken back.
//! - [`emulators`]: the local AWS emulators, started on first use.
//! - [`http_client`]: an SDK HTTP client answering in process.
//! - [`paused`]: a future run on paused time outside `#[tokio::test]`.
//! - [`wal`]: reading and damaging write-ahead-log segment files.
//! - [`retry`]: a retry policy with an exact schedule.
//! - `kinesis`: in-process Kinesis fakes and streams on the emulators.
//! - `cloudwatch_logs`: reading CloudWatch Logs back from the emulator.
#![allow(dead_code)]

pub mod child;
#[cfg(feature = "cloudwatch-logs")]
pub mod cloudwatch_logs;
pub mod emulators;
pub mod http_client;
#[cfg(feature = "kinesis")]
pub mod kinesis;
pub mod paused;
pub mod retry;
pub mod seed;
pub mod wal;
