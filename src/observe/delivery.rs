//! The metrics of one `buffered_wal` delivery task (labels [`LABEL_WAL`],
//! [`LABEL_TARGET`]): recorded once per batch, never per record.

use super::handles::{short_type_name, Counter, Histogram, Labels, ENABLED};
use super::names::*;

/// The handles of one `buffered_wal` delivery task.
#[derive(Clone, Default, Debug)]
pub(crate) struct DeliveryMetrics {
    pub(crate) batches: Counter,
    pub(crate) records: Counter,
    pub(crate) seconds: Histogram,
    pub(crate) retries: Counter,
    pub(crate) rejected_records: Counter,
    pub(crate) dead_letters: Counter,
}

impl DeliveryMetrics {
    /// For the log `options` and a target of type `S`.
    pub(crate) fn new<S>(options: &crate::wal::WalOptions) -> Self {
        if !ENABLED {
            return Self::default();
        }
        let labels: Labels = vec![
            (LABEL_WAL, options.label()),
            (LABEL_TARGET, short_type_name::<S>()),
        ];
        Self {
            batches: Counter::new(DELIVERY_BATCHES, &labels),
            records: Counter::new(DELIVERY_RECORDS, &labels),
            seconds: Histogram::new(DELIVERY_SECONDS, &labels),
            retries: Counter::new(DELIVERY_RETRIES, &labels),
            rejected_records: Counter::new(DELIVERY_REJECTED_RECORDS, &labels),
            dead_letters: Counter::new(DELIVERY_DEAD_LETTERS, &labels),
        }
    }
}
