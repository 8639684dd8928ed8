//! The metrics of one CloudWatch Logs sink (labels [`LABEL_LOG_GROUP`],
//! [`LABEL_LOG_STREAM`]): recorded once per call or batch, never per event.

use super::handles::{Counter, Histogram, Labels, ENABLED};
use super::names::*;

/// The handles of one sink, registered when it is built.
#[derive(Clone, Default, Debug)]
pub(crate) struct CloudWatchLogsMetrics {
    pub(crate) calls: Counter,
    pub(crate) retries: Counter,
    pub(crate) call_seconds: Histogram,
    pub(crate) events: Counter,
    pub(crate) rejected_events: Counter,
}

impl CloudWatchLogsMetrics {
    pub(crate) fn new(group: &str, stream: &str) -> Self {
        if !ENABLED {
            return Self::default();
        }
        let labels: Labels = vec![
            (LABEL_LOG_GROUP, group.to_owned()),
            (LABEL_LOG_STREAM, stream.to_owned()),
        ];
        Self {
            calls: Counter::new(CLOUDWATCH_LOGS_CALLS, &labels),
            retries: Counter::new(CLOUDWATCH_LOGS_RETRIES, &labels),
            call_seconds: Histogram::new(CLOUDWATCH_LOGS_CALL_SECONDS, &labels),
            events: Counter::new(CLOUDWATCH_LOGS_EVENTS, &labels),
            rejected_events: Counter::new(CLOUDWATCH_LOGS_REJECTED_EVENTS, &labels),
        }
    }
}
