//! The active segment: the one file the writer task appends frames to,
//! with its preallocated zero fill.
//!
//! Guarantees: frames are written at the end of the frames (never into
//! bytes already holding one); a new segment's header is durable, and its
//! directory entry too, before any frame is written to it; sealing trims
//! the zero fill and fdatasyncs, so a sealed segment holds exactly its
//! frames, on disk. Not guaranteed: that a write is durable before the next
//! [`ActiveSegment::sync`], nor that preallocation succeeds (a caller
//! treats it as an optimization).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::durable_fs;
use crate::wal::format::{encode_segment_header, parse_segment_name, segment_name};
use crate::wal::{Lsn, WalError};

/// Zero-filled bytes a preallocation writes ahead of the frames at most.
/// One group write in ~128 (of 64 small records) pays for the file growing.
pub(crate) const PREALLOCATE_BYTES: u64 = 1 << 20;

/// Zeros to preallocate from.
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

/// The segment the writer appends to.
#[derive(Debug)]
pub(crate) struct ActiveSegment {
    pub(crate) file: File,
    pub(crate) path: PathBuf,
    pub(crate) first: u64,
    /// Bytes of the header and frames (where the next frame goes).
    pub(crate) size: u64,
    /// Bytes of the file: `size` plus the zero-filled bytes preallocated
    /// after it.
    pub(crate) allocated: u64,
}

impl ActiveSegment {
    /// Writes `bytes` (whole frames) after the frames of the file.
    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<(), WalError> {
        self.file
            .write_all_at(bytes, self.size)
            .map_err(|e| WalError::io("write", &self.path, e))?;
        self.size += bytes.len() as u64;
        self.allocated = self.allocated.max(self.size);
        Ok(())
    }

    /// Whether the last write grew the file (no preallocated bytes left).
    pub(crate) fn is_at_file_end(&self) -> bool {
        self.allocated <= self.size
    }

    /// Zero-fills the file up to `upto` bytes (no-op when it is that long
    /// already). Durable with the next [`sync`](Self::sync).
    pub(crate) fn preallocate(&mut self, upto: u64) -> Result<(), WalError> {
        while self.allocated < upto {
            let n = (upto - self.allocated).min(ZEROS.len() as u64) as usize;
            self.file
                .write_all_at(&ZEROS[..n], self.allocated)
                .map_err(|e| WalError::io("preallocate", &self.path, e))?;
            self.allocated += n as u64;
        }
        Ok(())
    }

    /// Cuts preallocated bytes off, leaving exactly the frames. Durable
    /// with the next [`sync`](Self::sync).
    pub(crate) fn trim(&mut self) -> Result<(), WalError> {
        if self.allocated > self.size {
            self.file
                .set_len(self.size)
                .map_err(|e| WalError::io("trim preallocated bytes of", &self.path, e))?;
            self.allocated = self.size;
        }
        Ok(())
    }

    /// Trims and fdatasyncs the segment: a sealed segment holds exactly its
    /// frames, on disk.
    pub(crate) fn seal(&mut self) -> Result<(), WalError> {
        self.trim()?;
        debug_assert_eq!(self.allocated, self.size);
        self.sync()
    }

    /// fdatasyncs the file.
    pub(crate) fn sync(&self) -> Result<(), WalError> {
        self.file
            .sync_data()
            .map_err(|e| WalError::io("fdatasync", &self.path, e))
    }
}

/// Creates the segment whose first record is `first`: `0600`, header
/// written and fdatasynced, directory fsynced. Fails if the file exists.
pub(crate) fn create_segment(dir: &Path, first: u64) -> Result<ActiveSegment, WalError> {
    let path = dir.join(segment_name(Lsn(first)));
    let file = durable_fs::private_options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| WalError::io("create segment", &path, e))?;
    let mut segment = ActiveSegment {
        file,
        path,
        first,
        size: 0,
        allocated: 0,
    };
    segment.write(&encode_segment_header(Lsn(first)))?;
    segment.sync()?;
    durable_fs::sync_dir(dir)?;
    Ok(segment)
}

/// Opens an existing segment for appending after its `size` bytes of
/// frames, followed by zero fill up to `allocated` bytes.
pub(crate) fn open_active(
    path: &Path,
    first: u64,
    size: u64,
    allocated: u64,
) -> Result<ActiveSegment, WalError> {
    let file = durable_fs::private_options()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| WalError::io("open segment", path, e))?;
    // A segment's file is named after its first lsn.
    debug_assert_eq!(
        path.file_name()
            .and_then(|n| n.to_str())
            .and_then(parse_segment_name),
        Some(Lsn(first))
    );
    Ok(ActiveSegment {
        file,
        path: path.to_path_buf(),
        first,
        size,
        allocated: allocated.max(size),
    })
}
