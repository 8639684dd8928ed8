//! Errors of the write-ahead log.

use std::path::PathBuf;

/// The write-ahead log failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    /// A complete frame failed its checksum: the log is corrupt at this place.
    #[error("corrupt WAL frame in {} at byte offset {offset}: {reason}", file.display())]
    Corrupt {
        /// The segment file.
        file: PathBuf,
        /// Byte offset of the frame in the file.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
}
