//! The metrics of one Kinesis shard reader (labels [`LABEL_STREAM`],
//! [`LABEL_SHARD`]): recorded once per response or call.

use super::handles::{Counter, Gauge, Labels, ENABLED};
use super::names::*;

/// The handles of one shard reader, registered when it starts.
#[derive(Clone, Default, Debug)]
pub(crate) struct ShardMetrics {
    pub(crate) records: Counter,
    pub(crate) millis_behind: Gauge,
    pub(crate) get_records_calls: Counter,
    pub(crate) throttles: Counter,
}

impl ShardMetrics {
    pub(crate) fn new(stream: &str, shard: &str) -> Self {
        if !ENABLED {
            return Self::default();
        }
        let labels: Labels = vec![
            (LABEL_STREAM, stream.to_owned()),
            (LABEL_SHARD, shard.to_owned()),
        ];
        Self {
            records: Counter::new(KINESIS_SOURCE_RECORDS, &labels),
            millis_behind: Gauge::new(KINESIS_SOURCE_MILLIS_BEHIND, &labels),
            get_records_calls: Counter::new(KINESIS_SOURCE_GET_RECORDS_CALLS, &labels),
            throttles: Counter::new(KINESIS_SOURCE_THROTTLES, &labels),
        }
    }
}
