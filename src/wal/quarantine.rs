//! Moving damaged bytes aside ([`OnCorruption::Quarantine`]).
//!
//! Quarantining *copies* the damaged bytes into
//! `<log dir>/quarantine/<segment>-<offset>.bad` (mode `0600`, fsynced, the
//! directory fsynced) and reports them; the segment file itself is never
//! rewritten (the last segment is only cut after its last intact frame). The
//! reader then steps over the damaged frame, or, after a damaged header,
//! over the damaged bytes up to the next intact frame (found by
//! resynchronising, see the [log's guarantees](super#guarantees)), or to the
//! next segment when none follows. The same damage found again after a
//! restart is copied to the same file name again, so quarantining is
//! idempotent.
//!
//! [`OnCorruption::Quarantine`]: super::OnCorruption::Quarantine

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::format::QUARANTINE_DIR;
use super::{Lsn, WalError};
use crate::durable_fs;

/// Damaged bytes of a segment that were moved aside and skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinedFrame {
    /// The segment file the bytes are in.
    pub file: PathBuf,
    /// Byte offset of the damaged frame (or header) in that file.
    pub offset: u64,
    /// How many bytes were moved aside (one frame, or the rest of the
    /// segment when the frame boundaries are lost).
    pub bytes: u64,
    /// Lsns of the records lost with these bytes: `[first, end)`. Reading
    /// goes on at `end` (frames after damage are found again by
    /// resynchronising, see the [module docs](crate::wal)); no lsn of the
    /// range is ever given to another record.
    pub lsns: (Lsn, Lsn),
    /// Records lost with these bytes (`end - first` of
    /// [`lsns`](Self::lsns)): one for a damaged payload, as many as the
    /// damaged bytes held for a damaged header.
    pub records: u64,
    /// Whether [`records`](Self::records) is exact. It is, except for a
    /// damaged header in the last segment whose frames cannot be told
    /// apart any more: then it is the most records the bytes can have held
    /// (a frame takes at least 12 bytes), so that lsns are never reused.
    pub records_exact: bool,
    /// What is wrong with it.
    pub reason: String,
    /// Where the bytes were copied to.
    pub moved_to: PathBuf,
}

/// Damaged bytes copied into the quarantine directory.
#[derive(Debug)]
pub(crate) struct CopiedAside {
    /// The file written.
    pub(crate) moved_to: PathBuf,
    /// How many bytes were copied.
    pub(crate) bytes: u64,
}

/// Copies `len` bytes (or everything to the end when `None`) of `segment`
/// starting at `offset` into the quarantine directory of `dir`.
pub(crate) fn copy_aside(
    dir: &Path,
    segment: &Path,
    offset: u64,
    len: Option<u64>,
) -> Result<CopiedAside, WalError> {
    let qdir = dir.join(QUARANTINE_DIR);
    durable_fs::create_dir_all_durable(&qdir)?;
    let stem = segment
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "segment".to_owned());
    let target = qdir.join(format!("{stem}-{offset}.bad"));
    let mut source = File::open(segment).map_err(|e| WalError::io("open segment", segment, e))?;
    source
        .seek(SeekFrom::Start(offset))
        .map_err(|e| WalError::io("seek in segment", segment, e))?;
    let mut out = durable_fs::private_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&target)
        .map_err(|e| WalError::io("create quarantine file", &target, e))?;
    let copied = match len {
        Some(n) => io::copy(&mut source.take(n), &mut out),
        None => io::copy(&mut source, &mut out),
    }
    .map_err(|e| WalError::io("copy into quarantine file", &target, e))?;
    out.flush()
        .map_err(|e| WalError::io("write quarantine file", &target, e))?;
    out.sync_all()
        .map_err(|e| WalError::io("fsync", &target, e))?;
    durable_fs::sync_dir(&qdir)?;
    Ok(CopiedAside {
        moved_to: target,
        bytes: copied,
    })
}

/// Moves a whole segment file into the quarantine directory (used when its
/// header is damaged, so that a fresh segment can take its name).
pub(crate) fn move_segment_aside(dir: &Path, segment: &Path) -> Result<PathBuf, WalError> {
    let qdir = dir.join(QUARANTINE_DIR);
    durable_fs::create_dir_all_durable(&qdir)?;
    let name = segment
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "segment".to_owned());
    let target = qdir.join(format!("{name}.bad"));
    std::fs::rename(segment, &target)
        .map_err(|e| WalError::io("move into quarantine", segment, e))?;
    durable_fs::sync_dir(&qdir)?;
    durable_fs::sync_dir(dir)?;
    Ok(target)
}
