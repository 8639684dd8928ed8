//! Record sequence numbers.

use std::fmt;

/// Record sequence number: the index of a record in the whole history of a
/// log, monotonic across restarts (the first record ever appended is
/// `Lsn(0)`).
///
/// Lsns are dense as appended; a reader skips some only for records lost
/// to damage (reported as [`QuarantinedFrame`](crate::wal::QuarantinedFrame)s),
/// and an lsn a lost record had or may have had is never given again.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    /// The Lsn `n` records after this one.
    pub fn after(self, n: u64) -> Lsn {
        Lsn(self.0 + n)
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
