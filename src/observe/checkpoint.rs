//! The metrics of one `checkpoint_batched` stream (label [`LABEL_STORE`]):
//! recorded once per save, never per token.

use super::handles::{short_type_name, Counter, Gauge, Histogram, Labels, ENABLED};
use super::names::*;

/// The handles of one `checkpoint_batched` stream.
#[derive(Clone, Default, Debug)]
pub(crate) struct CheckpointMetrics {
    pub(crate) saves: Counter,
    pub(crate) save_failures: Counter,
    pub(crate) save_seconds: Histogram,
    pub(crate) held_back_tokens: Gauge,
}

impl CheckpointMetrics {
    /// For a store of type `S`.
    pub(crate) fn new<S>() -> Self {
        if !ENABLED {
            return Self::default();
        }
        let labels: Labels = vec![(LABEL_STORE, short_type_name::<S>())];
        Self {
            saves: Counter::new(CHECKPOINT_SAVES, &labels),
            save_failures: Counter::new(CHECKPOINT_SAVE_FAILURES, &labels),
            save_seconds: Histogram::new(CHECKPOINT_SAVE_SECONDS, &labels),
            held_back_tokens: Gauge::new(CHECKPOINT_HELD_BACK_TOKENS, &labels),
        }
    }
}
