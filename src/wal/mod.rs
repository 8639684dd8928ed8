//! The write-ahead log behind `buffered_wal`: records are appended to
//! checksummed segment files, read back in order by one consumer, and
//! deleted a whole segment at a time once committed.
//!
//! ```text
//! <dir>/00000000000000000000.wal   segment: header + frames, first lsn in the name
//! <dir>/00000000000000041943.wal   the active segment (appended to)
//! <dir>/committed                  committed position: two checksummed slots
//! <dir>/quarantine/…               damaged bytes moved aside (opt-in)
//! ```
//!
//! # Guarantees
//!
//! - **Framing.** Every record is one frame; a frame never spans segments:
//!
//!   ```text
//!   segment header  magic "UNIWAL\0" + version byte 1 (8 bytes) | first lsn (u64 LE)
//!   frame           payload length L (u32 LE)
//!                   CRC32C of the payload (u32 LE)
//!                   CRC32C of the 8 bytes above (u32 LE)
//!                   L bytes payload
//!   committed file  two slots, at bytes 0 and 4096, each: magic "UNIWALC\x02" (8 bytes)
//!                   | sequence (u64 LE) | lsn (u64 LE) | CRC32C of the 24 bytes before
//!   ```
//!
//!   The header checksum tells a damaged length apart from a damaged
//!   payload: a bad payload is one frame that can be stepped over; after a
//!   bad header the next frame is found again by resynchronising (below).
//! - **Lsns** number records across the log's whole history, monotonic
//!   across restarts, and stay below 2^63: a segment name at or beyond it
//!   is [`WalError::Corrupt`], a committed-position slot holding such an
//!   lsn or sequence number is damaged (the other slot is used, else
//!   [`WalError::BadPositionFile`]).
//! - **Durability** follows [`Fsync`]: `Always` acknowledges an append only
//!   after `fdatasync`, with group commit (appends queued while one write +
//!   fdatasync runs share the next one); `Interval(d)` fdatasyncs within `d`
//!   of the first unsynced write; `Never` leaves it to the OS. A full
//!   segment is fdatasynced when sealed.
//! - **Commit** ([`WalReader::commit`]) moves the committed position
//!   atomically, then deletes whole segments below it; a segment is never
//!   rewritten. The position goes, with the next sequence number, into the
//!   `committed` file's slot that does not hold the newest one, written in
//!   place and fdatasynced (one data-only flush); the valid slot with the
//!   higher sequence is in force, so a commit torn by a crash leaves the
//!   previous position. The file is created by an atomic replacement
//!   (temporary file, fsync, rename, directory fsync). Files are created
//!   `0600`; the directory is fsynced after every create, rename and delete.
//! - **Recovery** ([`Wal::open`]) reads only the last segment (and the one
//!   holding the committed position), so the time to the first record does
//!   not grow with the backlog:
//!   - a *torn tail* — an incomplete frame at the end of the **last**
//!     segment, or its last frame cut short by zero fill, which is what a
//!     crash in the middle of a write leaves — is truncated (logged,
//!     counted in [`Recovery::truncated_tail_bytes`]); everything before it
//!     is kept;
//!   - zero bytes after the last frame are not a frame: under
//!     `Fsync::Always` the writer zero-fills the active segment up to 1 MiB
//!     ahead of its frames (within the segment size and the cap), so that
//!     the fdatasync after a group write flushes data only, not also the
//!     inode of a growing file. New frames overwrite them; sealed segments
//!     are trimmed to their frames;
//!   - nonzero bytes after the last frame of the last segment where no
//!     frame was ever published (damaged zero fill: no frame header starts
//!     there, or a burst of less than 16 bytes) are not records either: they
//!     are cut off (counted in [`Recovery::truncated_tail_bytes`]) and never
//!     block an open, in either mode;
//!   - a *complete* frame whose checksum fails, a damaged frame header, or a
//!     non-last segment that ends inside a frame, is corruption. After a
//!     damaged header the frames are found again by *resynchronising* on
//!     the first later offset where a frame header and its payload both
//!     pass their checksums and the frames from there run, header after
//!     header, exactly to the segment's end, and (in a sealed segment, whose
//!     record count its neighbour's name gives) leave at least one record to
//!     the damaged bytes: garbage cannot pass for a frame in practice. The
//!     records the damaged bytes held are counted exactly in sealed
//!     segments; in the last segment exactly when the damaged frames can
//!     still be walked (a header one byte away from passing, or whose
//!     length or payload checksum field agrees with what follows), else as
//!     the most records the bytes can have held, marked
//!     [`QuarantinedFrame::records_exact`]` = false`.
//!   - corruption in records still needed (at or above the committed
//!     position) fails with [`WalError::Corrupt`] naming the file and byte
//!     offset (at open for the last segment, when reading reaches it for
//!     earlier ones, after the records before it), or, with
//!     [`OnCorruption::Quarantine`], the damaged bytes are copied to
//!     `quarantine/`, reported ([`QuarantinedFrame`]: file, offset, bytes,
//!     lsns and number of records) and stepped over; every intact record
//!     after them is delivered. Corruption only in committed records is not
//!     needed: in either mode it is moved aside and reported, and never
//!     blocks the records after it. Nothing is ever skipped silently.
//!     Earlier segments are verified as they are read.
//!   - **No lsn is given twice.** After damage in the last segment, the
//!     records salvaged after it keep their place and new records go to a
//!     new segment named after the first lsn above every lsn the damaged
//!     segment accounts for (lost ones included) and at or above the
//!     committed position ([`Recovery::next_lsn`]). When a count is not
//!     exact the salvaged records get the lsns after the largest count, so
//!     they may come back with lsns above their former ones, and intact
//!     committed records among them may be delivered once more (at least
//!     once, never lost).
//!
//!   What recovery found is [`Recovery`], a typed report (also
//!   [`BufferedWal::recovery`](crate::sink::BufferedWal::recovery)); damage
//!   found later by reading is listed by [`WalReader::quarantined`] and
//!   [`WalWriter::quarantined`].
//! - **Bounded.** The bytes of all segment files stay under
//!   [`WalOptions::max_bytes`]: at the cap, appends wait for commits
//!   ([`WhenFull::Wait`]) or fail ([`WhenFull::Error`]). Reading uses one
//!   bounded buffer, so memory does not grow with the backlog.
//!
//! # Not guaranteed
//!
//! - Exclusion between processes on a file system without file locks (some
//!   network file systems): there, two processes opening the same log
//!   corrupt it. Elsewhere another process's open fails with
//!   [`WalError::LockedElsewhere`] (an exclusive `flock` on the directory's
//!   `lock` file, released by the kernel when the holder dies). Within a
//!   process, opening a directory whose previous instance's tasks are still
//!   finishing waits for them, and fails with [`WalError::AlreadyOpen`]
//!   while that instance's handles are alive.
//! - Under `Interval`/`Never`, a power loss (not a process crash) loses the
//!   unsynced records; with the committed position already past them,
//!   recovery starts a fresh segment at the committed position.
//!
//! # Example
//!
//! ```
//! use unistream::wal::{Fsync, Lsn, Wal, WalOptions};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), unistream::wal::WalError> {
//! let dir = tempfile::tempdir().unwrap();
//! let (writer, mut reader, recovery) =
//!     Wal::open(WalOptions::new(dir.path()).fsync(Fsync::Always)).await?;
//! assert_eq!(recovery.uncommitted_records, 0);
//!
//! let first = writer.append(vec![b"one".to_vec(), b"two".to_vec()]).await?;
//! assert_eq!(first, Lsn(0));
//!
//! let batch = reader.next_batch(100, 1 << 20).await?;
//! assert_eq!(batch.len(), 2);
//! assert_eq!(batch[1].payload, &b"two"[..]);
//! reader.commit(Lsn(2)).await?; // both delivered: never read again
//! # Ok(())
//! # }
//! ```

mod batch;
mod committer;
mod dir_guard;
mod error;
mod format;
mod ledger;
mod lsn;
mod options;
mod quarantine;
mod reader;
mod recovery;
mod segment;
mod writer;

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::Instrument;

pub use batch::WalBatch;
pub use error::WalError;
pub use lsn::Lsn;
// The former name stays valid (deprecated) so that the public path does not break.
#[allow(deprecated)]
pub use options::DEFAULT_MAX_BYTES;
pub use options::{
    Fsync, OnCorruption, WalOptions, WhenFull, DEFAULT_MAX_WAL_BYTES, DEFAULT_SEGMENT_BYTES,
    MAX_SEGMENT_BYTES, MIN_SEGMENT_BYTES,
};
pub use quarantine::QuarantinedFrame;
pub use reader::{Backlog, WalReader, WalRecord};
pub use recovery::Recovery;
pub(crate) use writer::OnWritten;
pub use writer::{WalStats, WalWriter};

use ledger::{AppendMark, WalLedger, WalShared};

/// The committed-position codec, for the fuzz bodies (feature `fuzzing`).
#[cfg(feature = "fuzzing")]
pub(crate) use format::{
    decode_position, encode_position_file, encode_position_slot, position_slot_offset,
    POSITION_FILE, POSITION_SLOT_LEN,
};
use writer::WriterTask;

/// Opens write-ahead logs.
#[derive(Debug)]
pub struct Wal;

impl Wal {
    /// Opens or creates the log in `options.dir()` and recovers it (see the
    /// [module docs](self)): returns the appending handle, the single
    /// reader, and what recovery found. Records not committed before are
    /// returned by the reader first.
    ///
    /// Must be called inside a tokio runtime: it spawns the writer task
    /// (which does its I/O on blocking threads). The writer task ends when
    /// every [`WalWriter`] clone is dropped, after writing (and, unless
    /// `Fsync::Never`, fdatasyncing) what was queued.
    pub async fn open(options: WalOptions) -> Result<(WalWriter, WalReader, Recovery), WalError> {
        let dir = options.dir.clone();
        tokio::task::spawn_blocking(move || crate::durable_fs::create_dir_all_durable(&dir))
            .await
            .map_err(error::join_error)??;
        let guard = dir_guard::acquire(&options.dir).await?;
        let opts = options.clone();
        let recovered = tokio::task::spawn_blocking(move || recovery::recover(&opts))
            .await
            .map_err(error::join_error)??;
        let bytes_on_disk = recovered.segments.values().sum();
        let mut marks = VecDeque::new();
        if recovered.next_lsn > recovered.committed {
            marks.push_back(AppendMark {
                first: recovered.committed,
                at: Instant::now(),
            });
        }
        let ledger = WalLedger {
            active: recovered.active.first,
            segments: recovered.segments,
            bytes_on_disk,
            written: recovered.next_lsn,
            synced: recovered.next_lsn,
            committed: recovered.committed,
            payload_appended: recovered.backlog_payload,
            delivered: recovered.committed,
            payload_delivered: 0,
            marks,
            group_writes: 0,
            fdatasyncs: 0,
        };
        let shared = Arc::new(WalShared::new(options, ledger));
        let (tx, rx) = mpsc::unbounded_channel();
        let (written_tx, written_rx) = watch::channel(recovered.next_lsn);
        let task = WriterTask::new(
            rx,
            shared.clone(),
            written_tx,
            recovered.active,
            recovered.next_lsn,
            guard.clone(),
        );
        let wal_dir = shared.options.dir.display().to_string();
        tokio::spawn(
            task.run()
                .instrument(tracing::info_span!("wal_writer", wal_dir = %wal_dir)),
        );
        let (commit_tx, commit_rx) = watch::channel(recovered.committed);
        let (persisted_tx, persisted_rx) = watch::channel(committer::PersistedPosition {
            lsn: recovered.committed,
            failed: None,
        });
        tokio::spawn(
            committer::CommitterTask::new(
                shared.clone(),
                commit_rx,
                persisted_tx,
                guard,
                recovered.stored_position,
            )
            .run()
            .instrument(tracing::info_span!("wal_committer", wal_dir = %wal_dir)),
        );
        let reader = WalReader::new(
            shared.clone(),
            written_rx,
            commit_tx,
            persisted_rx,
            recovered.reader,
            &recovered.recovery.quarantined,
        );
        Ok((WalWriter::new(tx, shared), reader, recovered.recovery))
    }
}
