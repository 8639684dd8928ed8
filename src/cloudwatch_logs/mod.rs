//! AWS CloudWatch Logs: a batch sink for `PutLogEvents`.
//!
//! Enabled by the `cloudwatch-logs` cargo feature.
//!
//! - [`LogEvent`]: a timestamp and a message (serde-serializable, so it goes
//!   through the write-ahead log).
//! - [`Batcher`]: turns a batch into valid requests — validated, stably
//!   sorted by timestamp, split by count, bytes and 24-hour span — pure and
//!   fast.
//! - [`CloudWatchLogsSink`]: a `Sink<Vec<LogEvent>>` that sends those
//!   requests one at a time to one log stream, retries throttling and
//!   service errors, and reports events the service can never accept
//!   through [`Error::Rejected`](crate::Error::Rejected) so that
//!   `buffered_wal` dead-letters exactly them.
//! - [`limits`]: every `PutLogEvents` limit as a named constant.
//!
//! # Example
//!
//! A sink over a client whose answers are mocked (`aws-smithy-mocks`), so
//! that it runs anywhere: the event the service can never accept is
//! reported by its index in the batch, after the others were sent.
//!
//! ```
//! use aws_sdk_cloudwatchlogs::operation::put_log_events::PutLogEventsOutput;
//! use aws_sdk_cloudwatchlogs::{config::Region, Client, Config};
//! use aws_smithy_mocks::{create_mock_http_client, mock, MockResponseInterceptor};
//! use futures::SinkExt;
//! use unistream::cloudwatch_logs::{CloudWatchLogsSink, LogEvent};
//! use unistream::Error;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Error> {
//! let put = mock!(Client::put_log_events).then_output(|| PutLogEventsOutput::builder().build());
//! let client = Client::from_conf(
//!     Config::builder()
//!         .behavior_version_latest()
//!         .region(Region::new("us-east-1"))
//!         .credentials_provider(aws_credential_types::Credentials::new("k", "s", None, None, "doc"))
//!         .http_client(create_mock_http_client())
//!         .interceptor(MockResponseInterceptor::new().with_rule(&put))
//!         .build(),
//! );
//! let mut sink = CloudWatchLogsSink::builder_from_client(client, "/app/web", "host-1").build()?;
//!
//! let a_month_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(30 * 86_400);
//! let batch = vec![
//!     LogEvent::now("GET /orders 200"),
//!     LogEvent::at(a_month_ago, "far too old"),
//!     LogEvent::now("GET /orders/7 404"),
//! ];
//! match sink.send(batch).await {
//!     Err(Error::Rejected(rejected)) => {
//!         assert_eq!(rejected.len(), 1);
//!         assert_eq!(rejected[0].index, 1);
//!         assert!(rejected[0].reason.starts_with("too old"));
//!     }
//!     other => panic!("expected one rejected event, got {other:?}"),
//! }
//! assert_eq!(put.num_calls(), 1); // the two others went out in one request
//! # Ok(()) }
//! ```

mod batcher;
mod event;
pub mod limits;
mod sink;

pub use batcher::{Batcher, Plan};
pub use event::LogEvent;
pub use sink::{CloudWatchLogsSink, CloudWatchLogsSinkBuilder};
