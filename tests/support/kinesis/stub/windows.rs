//! The stub's write limits, as Kinesis applies them: per shard, records and
//! billed bytes (data plus partition key) counted on *arrival*, in fixed
//! one-second windows; a record that does not fit its window's remainder is
//! refused (`ProvisionedThroughputExceededException`), later smaller ones of
//! the same window may still fit.

use std::time::Duration;

use tokio::time::Instant;

/// The length of one counting window.
pub const WINDOW: Duration = Duration::from_secs(1);

/// Per-shard limits per window.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub records: u64,
    pub bytes: u64,
}

/// One shard's current window, and what the earlier ones took.
#[derive(Debug, Default)]
pub struct ShardWindow {
    index: u64,
    records: u64,
    bytes: u64,
    throttled: u64,
    /// Windows before the current one that saw an arrival, oldest first.
    history: Vec<WindowCount>,
}

/// What one window of one shard took and refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowCount {
    /// The window's number, counted from the stub's start.
    pub index: u64,
    pub records: u64,
    pub bytes: u64,
    pub throttled: u64,
}

impl ShardWindow {
    /// Whether a record of `bytes` arriving at `at` fits (and counts it if
    /// so); windows are numbered from `epoch`.
    pub fn admit(&mut self, epoch: Instant, at: Instant, bytes: u64, limits: Limits) -> bool {
        let index = (at.saturating_duration_since(epoch).as_nanos() / WINDOW.as_nanos()) as u64;
        if index != self.index {
            if self.records + self.throttled > 0 {
                self.history.push(self.current());
            }
            self.index = index;
            self.records = 0;
            self.bytes = 0;
            self.throttled = 0;
        }
        if self.records < limits.records && self.bytes + bytes <= limits.bytes {
            self.records += 1;
            self.bytes += bytes;
            true
        } else {
            self.throttled += 1;
            false
        }
    }

    fn current(&self) -> WindowCount {
        WindowCount {
            index: self.index,
            records: self.records,
            bytes: self.bytes,
            throttled: self.throttled,
        }
    }

    /// Every window that saw an arrival, the current one last.
    pub fn counts(&self) -> Vec<WindowCount> {
        let mut counts = self.history.clone();
        if self.records + self.throttled > 0 {
            counts.push(self.current());
        }
        counts
    }
}
