//! What `buffered_wal` tells about damage in its log, as typed values: the
//! report of opening it ([`BufferedWal::recovery`]) and every range of
//! damaged bytes quarantined since, at open or while delivering
//! ([`BufferedWal::quarantined`]).
//!
//! Guarantees: every quarantined range is listed once, with its file,
//! offset, bytes, the lsns and number of records it held and where its
//! bytes were copied to; nothing is reported only through a log event.

use super::BufferedWal;
use crate::wal::{QuarantinedFrame, Recovery};

impl<T, C> BufferedWal<T, C> {
    /// What opening the log found: records a previous run left undelivered
    /// (delivered first), bytes cut off (a torn tail, damaged zero fill),
    /// damaged ranges quarantined at open and intact records salvaged after
    /// them, and the next lsn (above every lsn the log ever gave).
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// Damaged bytes quarantined so far, at open and while delivering
    /// ([`OnCorruption::Quarantine`](crate::wal::OnCorruption::Quarantine)),
    /// each once; shared by every handle of this sink.
    pub fn quarantined(&self) -> Vec<QuarantinedFrame> {
        self.writer.quarantined()
    }
}
