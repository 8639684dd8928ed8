//! Opening a log directory: finding the segments and the committed
//! position, repairing a torn tail, and locating where reading resumes.
//!
//! Recovery reads at most two segments (the last one, to find its torn
//! tail and the next lsn, and the one holding the committed position, to
//! find its byte offset), so the time to open does not grow with the
//! backlog. Earlier frames are verified lazily, when the reader reaches
//! them.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use super::format::{
    check_segment_header, decode_position, segment_name, StoredPosition, LSN_LIMIT, POSITION_FILE,
    SEGMENT_HEADER_LEN,
};
use super::quarantine::{copy_aside, move_segment_aside};
use super::segment::{
    create_segment, open_active, remove_if_present, rest_is_zero, scan_frames, ActiveSegment,
    ScanEnd,
};
use super::{Lsn, OnCorruption, QuarantinedFrame, WalError, WalOptions};
use crate::durable_fs;

/// What recovery found when the log was opened.
#[derive(Debug, Clone, Default)]
pub struct Recovery {
    /// Records appended before and not committed: they are read again,
    /// first, by the reader.
    pub uncommitted_records: u64,
    /// Bytes of a torn tail (an incomplete frame left by a crash in the
    /// middle of a write, with any zero fill after it) cut from the last
    /// segment. Zero fill after whole frames is space preallocated under
    /// [`Fsync::Always`](super::Fsync::Always): it is kept, not counted.
    pub truncated_tail_bytes: u64,
    /// Damaged bytes moved aside while recovering
    /// ([`OnCorruption::Quarantine`]); damage found later by reading is
    /// reported by [`WalReader::quarantined`](super::WalReader::quarantined).
    pub quarantined: Vec<QuarantinedFrame>,
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
    } = recover_last_segment(options, &mut segments, &mut recovery)?;

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
    let skip = committed - reader_segment;
    let mut offset = None;
    let mut payload_before = 0;
    if skip == 0 {
        offset = Some(SEGMENT_HEADER_LEN);
    } else {
        let path = dir.join(segment_name(Lsn(reader_segment)));
        let len = segments.get(&reader_segment).copied().unwrap_or(0);
        if check_header(&path).is_ok() {
            let scan = scan_frames(&path, len, skip)?;
            if scan.frames == skip {
                offset = Some(scan.end);
                payload_before = scan.payload;
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
    debug_assert!(reader_segment <= committed);
    recovery.uncommitted_records = next_lsn - committed;
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

/// The last segment, repaired and open for appending.
struct RecoveredTail {
    active: ActiveSegment,
    /// The lsn the next appended record gets.
    next_lsn: u64,
}

/// Repairs the last segment and opens it for appending: a torn tail is cut
/// off; damage that a crash cannot explain is an error, or is quarantined.
fn recover_last_segment(
    options: &WalOptions,
    segments: &mut BTreeMap<u64, u64>,
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
    if let Err(reason) = check_header(&path) {
        match options.on_corruption {
            OnCorruption::Fail => {
                return Err(WalError::Corrupt {
                    file: path,
                    offset: 0,
                    reason,
                })
            }
            OnCorruption::Quarantine => {
                let moved_to = move_segment_aside(dir, &path)?;
                report(recovery, &path, 0, len, first, &reason, moved_to);
                let active = create_segment(dir, first)?;
                segments.insert(first, active.size);
                return Ok(RecoveredTail {
                    active,
                    next_lsn: first,
                });
            }
        }
    }

    let scan = scan_frames(&path, len, u64::MAX)?;
    let next = first + scan.frames;
    match scan.end_kind {
        ScanEnd::Clean => Ok(RecoveredTail {
            active: open_active(&path, first, len, len)?,
            next_lsn: next,
        }),
        ScanEnd::ZeroFill => {
            // Preallocated space (see `segment`): new frames go there.
            segments.insert(first, scan.end);
            Ok(RecoveredTail {
                active: open_active(&path, first, scan.end, len)?,
                next_lsn: next,
            })
        }
        ScanEnd::Torn(reason) => {
            let cut = len - scan.end;
            tracing::warn!(
                file = %path.display(),
                offset = scan.end,
                bytes = cut,
                %reason,
                "WAL: truncating torn tail left by a crash"
            );
            let file = durable_fs::private_options()
                .write(true)
                .open(&path)
                .map_err(|e| WalError::io("open segment", &path, e))?;
            file.set_len(scan.end)
                .map_err(|e| WalError::io("truncate torn tail of", &path, e))?;
            file.sync_all()
                .map_err(|e| WalError::io("fsync", &path, e))?;
            drop(file);
            recovery.truncated_tail_bytes += cut;
            segments.insert(first, scan.end);
            Ok(RecoveredTail {
                active: open_active(&path, first, scan.end, scan.end)?,
                next_lsn: next,
            })
        }
        ScanEnd::BadHeader(reason) => match options.on_corruption {
            OnCorruption::Fail => Err(WalError::Corrupt {
                file: path,
                offset: scan.end,
                reason,
            }),
            OnCorruption::Quarantine if scan.frames == 0 => {
                let moved_to = move_segment_aside(dir, &path)?;
                report(
                    recovery,
                    &path,
                    scan.end,
                    len - scan.end,
                    first,
                    &reason,
                    moved_to,
                );
                let active = create_segment(dir, first)?;
                segments.insert(first, active.size);
                Ok(RecoveredTail {
                    active,
                    next_lsn: first,
                })
            }
            OnCorruption::Quarantine => {
                // Leave the damaged segment as it is (sealed); the reader
                // steps over its damaged rest. New records go to a new one.
                let copied = copy_aside(dir, &path, scan.end, None)?;
                report(
                    recovery,
                    &path,
                    scan.end,
                    copied.bytes,
                    next,
                    &reason,
                    copied.moved_to,
                );
                let active = create_segment(dir, next)?;
                segments.insert(next, active.size);
                Ok(RecoveredTail {
                    active,
                    next_lsn: next,
                })
            }
        },
    }
}

fn report(
    recovery: &mut Recovery,
    file: &Path,
    offset: u64,
    bytes: u64,
    lsn: u64,
    reason: &str,
    moved_to: std::path::PathBuf,
) {
    tracing::error!(
        file = %file.display(),
        offset,
        bytes,
        moved_to = %moved_to.display(),
        reason,
        "WAL: damaged bytes quarantined"
    );
    recovery.quarantined.push(QuarantinedFrame {
        file: file.to_path_buf(),
        offset,
        bytes,
        lsns: (Lsn(lsn), Lsn(lsn)),
        reason: reason.to_owned(),
        moved_to,
    });
}

fn check_header(path: &Path) -> Result<(), String> {
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
