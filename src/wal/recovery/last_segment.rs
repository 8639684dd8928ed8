//! Repairing the last segment at open and opening it for appending.
//!
//! Guarantees:
//!
//! - A torn tail (an incomplete frame, or a frame cut short by zero fill:
//!   what a crash in the middle of a write leaves) is cut off; so are
//!   nonzero bytes in space never published (zero fill after the last
//!   frame with flipped bits, see [`resync`](crate::wal::segment)): both
//!   are counted in [`Recovery::truncated_tail_bytes`]. Clean zero fill is
//!   kept as preallocated space.
//! - A damaged frame header is resynchronised over: the frames after the
//!   damage are kept and read, the damaged bytes are copied to
//!   `quarantine/` and reported with the lsns they held
//!   ([`QuarantinedFrame`]), the segment is sealed after its last intact
//!   frame and new records go to a new segment named after the first lsn
//!   above every lsn the damaged segment accounts for. No lsn is given
//!   twice.
//! - Under [`OnCorruption::Fail`] damage is [`WalError::Corrupt`] naming the
//!   file and offset, unless every record it can have held is below the
//!   committed position (delivered, not needed any more): then it is
//!   handled as under quarantine, in either mode.

use std::collections::BTreeMap;
use std::path::Path;

use super::{check_header, Recovery};
use crate::durable_fs;
use crate::wal::format::{segment_name, SEGMENT_HEADER_LEN};
use crate::wal::quarantine::{copy_aside, move_segment_aside};
use crate::wal::segment::{
    create_segment, map_segment, open_active, remove_if_present, rest_is_zero, ActiveSegment,
    DamagedBytes, ScanEnd, SegmentExtent,
};
use crate::wal::{Lsn, OnCorruption, QuarantinedFrame, WalError, WalOptions};

/// The last segment, repaired and open for appending.
pub(super) struct RecoveredTail {
    pub(super) active: ActiveSegment,
    /// The lsn the next appended record gets.
    pub(super) next_lsn: u64,
}

/// Repairs the last segment and opens it for appending (see the module
/// docs). `committed` is the committed position.
pub(super) fn recover_last_segment(
    options: &WalOptions,
    segments: &mut BTreeMap<u64, u64>,
    committed: u64,
    recovery: &mut Recovery,
) -> Result<RecoveredTail, WalError> {
    let dir = options.dir.as_path();
    let Some((&first, &len)) = segments.last_key_value() else {
        return Err(WalError::Failed {
            reason: "internal: no segment to recover".to_owned(),
        });
    };
    let path = dir.join(segment_name(Lsn(first)));

    // The header: missing or zero-filled means the crash came right after
    // the file was created; anything else wrong is damage.
    let header_torn = len < SEGMENT_HEADER_LEN || rest_is_zero(&path, 0, len)?;
    if header_torn {
        tracing::warn!(file = %path.display(), bytes = len, "WAL: segment header torn by a crash; recreating the segment");
        recovery.truncated_tail_bytes += len;
        remove_if_present(&path)?;
        let active = create_segment(dir, first)?;
        segments.insert(first, active.size);
        return Ok(RecoveredTail {
            active,
            next_lsn: first,
        });
    }
    let map = map_segment(&path, len, SegmentExtent::Last)?;
    if let Err(reason) = check_header(&path) {
        // Its frames cannot be trusted to be this segment's: every record
        // it accounts for is lost, and none of their lsns is reused.
        let records = map.records();
        let exact = map.damage.as_ref().is_none_or(|d| d.exact);
        let lost = first..first + records;
        if options.on_corruption == OnCorruption::Fail && lost.end > committed {
            return Err(WalError::Corrupt {
                file: path,
                offset: 0,
                reason,
            });
        }
        let moved_to = move_segment_aside(dir, &path)?;
        let damage = DamagedBytes {
            offset: 0,
            bytes: len,
            records: lost.end - lost.start,
            exact,
            reason,
        };
        report(recovery, &path, &damage, lost.start, moved_to);
        let active = create_segment(dir, lost.end)?;
        segments.remove(&first);
        segments.insert(lost.end, active.size);
        return Ok(RecoveredTail {
            active,
            next_lsn: lost.end,
        });
    }

    let Some(damage) = map.damage.clone() else {
        let end = map.head.end;
        let next_lsn = first + map.head.frames;
        let active = match &map.head.end_kind {
            ScanEnd::Clean => open_active(&path, first, len, len)?,
            ScanEnd::ZeroFill if !map.unpublished_damage => {
                // Preallocated space (see `segment`): new frames go there.
                segments.insert(first, end);
                open_active(&path, first, end, len)?
            }
            kind => {
                let what = match kind {
                    ScanEnd::Torn(reason) => reason.clone(),
                    _ => "nonzero bytes in unpublished (preallocated) space".to_owned(),
                };
                tracing::warn!(
                    file = %path.display(),
                    offset = end,
                    bytes = len - end,
                    reason = %what,
                    "WAL: truncating torn tail left by a crash"
                );
                cut_at(&path, end)?;
                recovery.truncated_tail_bytes += len - end;
                segments.insert(first, end);
                open_active(&path, first, end, end)?
            }
        };
        return Ok(RecoveredTail { active, next_lsn });
    };

    let lost_first = first + map.head.frames;
    let lost_end = lost_first + damage.records;
    if options.on_corruption == OnCorruption::Fail && lost_end > committed {
        return Err(WalError::Corrupt {
            file: path,
            offset: damage.offset,
            reason: damage.reason,
        });
    }
    let copied = copy_aside(dir, &path, damage.offset, Some(damage.bytes))?;
    report(recovery, &path, &damage, lost_first, copied.moved_to);
    let (end, salvaged) = map
        .tail
        .as_ref()
        .map_or((damage.offset + damage.bytes, 0), |t| (t.end, t.frames));
    if let Some(ScanEnd::Torn(reason)) = map.tail.as_ref().map(|t| &t.end_kind) {
        tracing::warn!(
            file = %path.display(),
            offset = end,
            bytes = len - end,
            %reason,
            "WAL: truncating torn tail left by a crash"
        );
        recovery.truncated_tail_bytes += len - end;
    }
    // Sealed after its last frame (zero fill and a torn tail cut off):
    // reading it later finds the same damage and the same frames after it.
    if end < len {
        cut_at(&path, end)?;
    }
    segments.insert(first, end);
    recovery.salvaged_records += salvaged;
    let next_lsn = lost_end + salvaged;
    // The damaged segment accounts for every lsn below `next_lsn`.
    debug_assert!(next_lsn > first);
    let active = create_segment(dir, next_lsn)?;
    segments.insert(next_lsn, active.size);
    Ok(RecoveredTail { active, next_lsn })
}

/// Cuts the segment at `path` to `len` bytes, durably.
fn cut_at(path: &Path, len: u64) -> Result<(), WalError> {
    let file = durable_fs::private_options()
        .write(true)
        .open(path)
        .map_err(|e| WalError::io("open segment", path, e))?;
    file.set_len(len)
        .map_err(|e| WalError::io("truncate torn tail of", path, e))?;
    file.sync_all()
        .map_err(|e| WalError::io("fsync", path, e))?;
    Ok(())
}

/// Logs and records damaged bytes moved aside at open, which held the
/// records from lsn `first` on.
pub(super) fn report(
    recovery: &mut Recovery,
    file: &Path,
    damage: &DamagedBytes,
    first: u64,
    moved_to: std::path::PathBuf,
) {
    tracing::error!(
        file = %file.display(),
        offset = damage.offset,
        bytes = damage.bytes,
        first_lsn = first,
        records = damage.records,
        records_exact = damage.exact,
        moved_to = %moved_to.display(),
        reason = damage.reason.as_str(),
        "WAL: damaged bytes quarantined"
    );
    recovery.quarantined.push(QuarantinedFrame {
        file: file.to_path_buf(),
        offset: damage.offset,
        bytes: damage.bytes,
        lsns: (Lsn(first), Lsn(first + damage.records)),
        records: damage.records,
        records_exact: damage.exact,
        reason: damage.reason.clone(),
        moved_to,
    });
}
