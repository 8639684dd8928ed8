//! The write-ahead log behind [`buffered_wal`](crate::sink::WalSinkExt).
//!
//! (Being built: segment files, CRC32C frames, atomic committed position,
//! recovery, group commit. See the module documentation once it lands.)

mod error;
mod stub;

pub use error::WalError;
pub use stub::*;
