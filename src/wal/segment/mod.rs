//! Segment files: the active one the writer appends to ([`active`]),
//! scanning one's frame headers at recovery ([`scan`]), mapping one around
//! a damaged frame header and resynchronising on the frames after it
//! ([`resync`]), reading frames from one with a bounded buffer
//! ([`reader`]), and deleting committed ones.
//!
//! Everything here is blocking file I/O; the async parts of the log run it
//! on `tokio::task::spawn_blocking`.
//!
//! The active segment may be **preallocated**: zero-filled bytes written
//! ahead of its frames (under `Fsync::Always`), so that the fdatasync after
//! each group write flushes only data, not also the inode of a file that
//! grew. Such zeros are never mistaken for records: readers stop at the
//! bytes the writer has published ([`SegmentReader::set_limit`]), recovery
//! treats a zero-filled rest of the last segment as its end (and a frame cut
//! short just before it as torn), and a segment is trimmed to its frames
//! when it is sealed or the log is closed.
//!
//! A segment's file is named after its first lsn, which its header repeats;
//! segments are never rewritten, only appended to while active, and deleted
//! whole. Not guaranteed here: that a segment's frames are intact — a scan
//! checks frame headers only, and a reader reports damage it meets for the
//! caller to handle.

mod active;
mod damaged_frames;
mod reader;
mod resync;
mod scan;

use super::format::segment_name;
use super::ledger::SegmentSize;
use super::{Lsn, WalError};

pub(crate) use active::{create_segment, open_active, ActiveSegment, PREALLOCATE_BYTES};
pub(crate) use reader::{FrameDamage, SegmentReader};
pub(crate) use resync::{map_segment, DamagedBytes, SegmentExtent};
pub(crate) use scan::{rest_is_zero, ScanEnd};

/// Size of the read buffer of a segment reader or scan. Reading (replay)
/// memory is this plus the records of one batch, whatever the backlog.
pub(crate) const READ_BUFFER_BYTES: usize = 256 << 10;

/// Deletes the given segments' files and fsyncs the directory.
/// Removes `path`; a file already gone is fine (a crash may have removed
/// it, or never created it).
pub(crate) fn remove_if_present(path: &std::path::Path) -> Result<(), WalError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(WalError::io("remove", path, e)),
    }
}

pub(crate) fn delete_segments(
    dir: &std::path::Path,
    victims: &[SegmentSize],
) -> Result<(), WalError> {
    for victim in victims {
        let path = dir.join(segment_name(Lsn(victim.first)));
        remove_if_present(&path)?;
    }
    crate::durable_fs::sync_dir(dir)?;
    Ok(())
}
