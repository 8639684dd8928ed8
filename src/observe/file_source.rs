//! The metrics of one `FileSource` run (label [`LABEL_PATH`]): recorded once
//! per block read, never per line.

use super::handles::{Counter, Gauge, Labels, ENABLED};
use super::names::*;

/// The handles of one file source run.
#[derive(Clone, Default, Debug)]
pub(crate) struct FileSourceMetrics {
    pub(crate) records: Counter,
    pub(crate) lag_bytes: Gauge,
}

impl FileSourceMetrics {
    pub(crate) fn new(path: &str) -> Self {
        if !ENABLED {
            return Self::default();
        }
        let labels: Labels = vec![(LABEL_PATH, path.to_owned())];
        Self {
            records: Counter::new(FILE_SOURCE_RECORDS, &labels),
            lag_bytes: Gauge::new(FILE_SOURCE_LAG_BYTES, &labels),
        }
    }
}
