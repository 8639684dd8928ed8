//! Opening a log directory: finding the segments and the committed
//! position, repairing the last segment ([`last_segment`]), and locating
//! where reading resumes.
//!
//! Recovery reads at most two segments (the last one, to find its torn
//! tail, its damage and the next lsn, and the one holding the committed
//! position, to find its byte offset past any damage in committed
//! records), so the time to open does not grow with the backlog. Earlier
//! frames are verified lazily, when the reader reaches them. What it found
//! is reported as a [`Recovery`]; the next lsn is above every lsn any frame
//! had or may have had, and at or above the committed position.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use super::format::{
    check_segment_header, decode_position, segment_name, StoredPosition, LSN_LIMIT, POSITION_FILE,
    SEGMENT_HEADER_LEN,
};
use super::quarantine::copy_aside;
use super::segment::{
    create_segment, map_segment, remove_if_present, ActiveSegment, SegmentExtent,
};
use super::{Lsn, QuarantinedFrame, WalError, WalOptions};
use crate::durable_fs;
use last_segment::{recover_last_segment, RecoveredTail};

mod last_segment;

/// What recovery found when the log was opened: the report of
/// [`Wal::open`](super::Wal::open) (also
/// [`BufferedWal::recovery`](crate::sink::BufferedWal::recovery)).
///
/// Damage that recovery does not reach (in segments before the last one,
/// read lazily) is found and reported by the reader
/// ([`WalReader::quarantined`](super::WalReader::quarantined),
/// [`WalWriter::quarantined`](super::WalWriter::quarantined)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Records appended before and not committed that the reader returns
    /// again, first: the lsns from the committed position to
    /// [`next_lsn`](Self::next_lsn), less those of records quarantined at
    /// open (segments recovery does not scan are counted by their lsns).
    pub uncommitted_records: u64,
    /// Bytes cut from the end of the last segment: a torn tail (an
    /// incomplete frame left by a crash in the middle of a write, with any
    /// zero fill after it), or nonzero bytes where no frame was ever
    /// published (damaged zero fill). Clean zero fill after whole frames is
    /// space preallocated under [`Fsync::Always`](super::Fsync::Always): it
    /// is kept, not counted.
    pub truncated_tail_bytes: u64,
    /// Damaged bytes moved aside while recovering, with the lsns and number
    /// of records they held ([`OnCorruption::Quarantine`](super::OnCorruption::Quarantine), or, in either
    /// mode, damage only in records below the committed position).
    pub quarantined: Vec<QuarantinedFrame>,
    /// Intact records found after damaged bytes in the last segment (by
    /// resynchronising on the next intact frame), kept and read.
    pub salvaged_records: u64,
    /// The lsn the next appended record gets: above every lsn any frame on
    /// disk had or may have had, and at or above the committed position.
    pub next_lsn: Lsn,
}

/// Where the reader resumes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReaderStart {
    pub(crate) lsn: u64,
    pub(crate) segment: u64,
    /// Byte offset of the frame of `lsn` in `segment`, when the scan could
    /// find it (otherwise the reader scans for it and meets the damage).
    pub(crate) offset: Option<u64>,
}

/// Everything the open log starts from.
pub(crate) struct RecoveredLog {
    pub(crate) segments: BTreeMap<u64, u64>,
    pub(crate) active: ActiveSegment,
    pub(crate) next_lsn: u64,
    pub(crate) committed: u64,
    pub(crate) reader: ReaderStart,
    /// Payload bytes from the committed position to the end.
    pub(crate) backlog_payload: u64,
    pub(crate) recovery: Recovery,
    /// The committed-position file as found (`None`: none yet).
    pub(crate) stored_position: Option<StoredPosition>,
}

/// Opens (creating when missing) and recovers the log in `options.dir`.
pub(crate) fn recover(options: &WalOptions) -> Result<RecoveredLog, WalError> {
    let dir = options.dir.as_path();
    durable_fs::create_dir_all_durable(dir)?;
    let position_path = dir.join(POSITION_FILE);
    remove_if_present(&durable_fs::temp_path_for(&position_path))?;

    let mut segments = list_segments(dir)?;
    let stored_position = read_position(&position_path)?;
    let mut recovery = Recovery::default();

    let Some((&first_existing, _)) = segments.first_key_value() else {
        let start = stored_position.map_or(0, |p| p.lsn.0);
        recovery.next_lsn = Lsn(start);
        let active = create_segment(dir, start)?;
        segments.insert(start, active.size);
        return Ok(RecoveredLog {
            segments,
            active,
            next_lsn: start,
            committed: start,
            reader: ReaderStart {
                lsn: start,
                segment: start,
                offset: Some(SEGMENT_HEADER_LEN),
            },
            backlog_payload: 0,
            recovery,
            stored_position,
        });
    };

    let mut committed = stored_position.map_or(first_existing, |p| p.lsn.0);
    if committed < first_existing {
        // Segments are deleted only up to a commit, so this means files
        // were removed by hand: resume at the oldest record still there.
        tracing::warn!(
            dir = %dir.display(),
            committed,
            first_existing,
            "WAL committed position is below the oldest segment; resuming at the oldest segment"
        );
        committed = first_existing;
    }

    let RecoveredTail {
        mut active,
        mut next_lsn,
    } = recover_last_segment(options, &mut segments, committed, &mut recovery)?;

    if committed > next_lsn {
        // The position file is durable but unsynced records at the end were
        // lost (power loss under Fsync::Interval/Never after they had been
        // delivered). Everything on disk is committed; new records must get
        // lsns above the committed position, so start a fresh segment there.
        tracing::warn!(
            dir = %dir.display(),
            committed,
            next_lsn,
            "WAL committed position is past the last record on disk; starting a new segment at it"
        );
        active.seal()?;
        segments.insert(active.first, active.size);
        let fresh = create_segment(dir, committed)?;
        segments.insert(committed, fresh.size);
        active = fresh;
        next_lsn = committed;
    }

    // Delete segments wholly below the committed position (a crash between
    // persisting a commit and deleting its segments leaves them).
    let firsts: Vec<u64> = segments.keys().copied().collect();
    let mut deleted = false;
    for pair in firsts.windows(2) {
        if pair[1] <= committed && pair[0] != active.first {
            let path = dir.join(segment_name(Lsn(pair[0])));
            remove_if_present(&path)?;
            segments.remove(&pair[0]);
            deleted = true;
        }
    }
    if deleted {
        durable_fs::sync_dir(dir)?;
    }

    // Locate the committed position and count the payload bytes after it.
    let reader_segment = segments
        .range(..=committed)
        .next_back()
        .map(|(&f, _)| f)
        .unwrap_or(active.first);
    // A commit position below every segment starts at the first one.
    let skip = committed.saturating_sub(reader_segment);
    let mut offset = None;
    let mut payload_before = 0;
    if skip == 0 {
        offset = Some(SEGMENT_HEADER_LEN);
    } else {
        let path = dir.join(segment_name(Lsn(reader_segment)));
        let len = segments.get(&reader_segment).copied().unwrap_or(0);
        if check_header(&path).is_ok() {
            // Found through any damage below it (committed records are not
            // needed): only damage at the position itself leaves it unknown.
            let extent = if reader_segment == active.first {
                SegmentExtent::Last
            } else {
                let end = segments
                    .range(reader_segment + 1..)
                    .next()
                    .map_or(next_lsn, |(&f, _)| f);
                SegmentExtent::Sealed {
                    records: end.saturating_sub(reader_segment),
                }
            };
            let map = map_segment(&path, len, extent)?;
            if let Some(damage) = &map.damage {
                let lost_first = reader_segment + map.head.frames;
                let already = recovery
                    .quarantined
                    .iter()
                    .any(|q| q.file == path && q.offset == damage.offset);
                if lost_first + damage.records <= committed && !already {
                    // Delivered records only: not needed, so not an error
                    // in either mode, but moved aside and reported.
                    let copied = copy_aside(dir, &path, damage.offset, Some(damage.bytes))?;
                    last_segment::report(&mut recovery, &path, damage, lost_first, copied.moved_to);
                }
            }
            if let Ok(Some(found)) = map.locate(&path, len, skip)? {
                offset = Some(found.offset);
                payload_before = found.payload_before;
            }
        }
    }
    let mut backlog_payload = 0u64;
    let mut iter = segments.range(reader_segment..).peekable();
    while let Some((&first, &bytes)) = iter.next() {
        let end = iter.peek().map_or(next_lsn, |(&f, _)| f);
        // Saturating: segment names are read from disk, and a gap between
        // two of them can be any size.
        let records = end.saturating_sub(first);
        backlog_payload = backlog_payload.saturating_add(
            bytes
                .saturating_sub(SEGMENT_HEADER_LEN)
                .saturating_sub(records.saturating_mul(super::format::FRAME_HEADER_LEN)),
        );
    }
    backlog_payload = backlog_payload.saturating_sub(payload_before);

    // Reading resumes at or before the end: a committed position past the
    // last record was handled above by starting a new segment at it.
    debug_assert!(committed <= next_lsn);
    // `reader_segment` may lie above `committed` when recovery quarantined
    // everything between (a damaged segment replaced by one named above
    // its lsns): the reader steps over the quarantined range.
    let lost_uncommitted: u64 = recovery
        .quarantined
        .iter()
        .map(|q| {
            q.lsns
                .1
                 .0
                .min(next_lsn)
                .saturating_sub(q.lsns.0 .0.max(committed))
        })
        .sum();
    recovery.uncommitted_records = (next_lsn - committed).saturating_sub(lost_uncommitted);
    recovery.next_lsn = Lsn(next_lsn);
    if recovery.uncommitted_records > 0 || recovery.truncated_tail_bytes > 0 {
        tracing::info!(
            dir = %dir.display(),
            uncommitted = recovery.uncommitted_records,
            truncated_tail_bytes = recovery.truncated_tail_bytes,
            quarantined = recovery.quarantined.len(),
            "WAL recovered"
        );
    }
    Ok(RecoveredLog {
        segments,
        active,
        next_lsn,
        committed,
        reader: ReaderStart {
            lsn: committed,
            segment: reader_segment,
            offset,
        },
        backlog_payload,
        recovery,
        stored_position,
    })
}

pub(super) fn check_header(path: &Path) -> Result<(), String> {
    let name_lsn = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(super::format::parse_segment_name)
        .ok_or_else(|| "not a segment file name".to_owned())?;
    let mut header = [0u8; SEGMENT_HEADER_LEN as usize];
    let mut file = File::open(path).map_err(|e| e.to_string())?;
    let mut read = 0;
    while read < header.len() {
        match file.read(&mut header[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    check_segment_header(&header[..read], name_lsn)
}

fn list_segments(dir: &Path) -> Result<BTreeMap<u64, u64>, WalError> {
    let mut segments = BTreeMap::new();
    let entries = std::fs::read_dir(dir).map_err(|e| WalError::io("list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| WalError::io("list", dir, e))?;
        let name = entry.file_name();
        let Some(first) = name.to_str().and_then(super::format::parse_segment_name) else {
            continue;
        };
        if first.0 >= LSN_LIMIT {
            return Err(WalError::Corrupt {
                file: entry.path(),
                offset: 0,
                reason: format!(
                    "segment name says first lsn {first}, at or beyond the limit {LSN_LIMIT}"
                ),
            });
        }
        let meta = entry
            .metadata()
            .map_err(|e| WalError::io("stat", entry.path(), e))?;
        if meta.is_file() {
            segments.insert(first.0, meta.len());
        }
    }
    Ok(segments)
}

fn read_position(path: &Path) -> Result<Option<StoredPosition>, WalError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            decode_position(&bytes)
                .map(Some)
                .map_err(|reason| WalError::BadPositionFile {
                    path: path.to_path_buf(),
                    reason,
                })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(WalError::io("read", path, e)),
    }
}
