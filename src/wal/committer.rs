//! The committer task: persists the committed position in the background
//! and deletes the segments it covers.
//!
//! [`WalReader::start_commit`](super::WalReader::start_commit) only records
//! the newest position to persist; this task persists it, then deletes
//! every segment wholly below it and frees cap space. Positions requested
//! while a persist is in progress are coalesced into the next one, so a
//! reader that commits after every batch pays for at most one persist at a
//! time, whatever the batch rate.
//!
//! A persist writes the older of the `committed` file's two checksummed
//! slots in place and fdatasyncs it (see [`format`](super::format)): one
//! data-only flush, and the position moves atomically (a torn slot leaves
//! the other in force). The file itself is created — or converted from the
//! version-1 layout — by an atomic replacement (temporary file, fsync,
//! rename, directory fsync), once.
//!
//! Segments are deleted only after the position that covers them is
//! durable, so a crash can never leave a position older than the oldest
//! segment (which would lose records).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use tokio::sync::watch;

use super::format::{
    encode_position_file, encode_position_slot, position_slot_offset, StoredPosition, POSITION_FILE,
};
use super::ledger::WalShared;
use super::segment::delete_segments;
use super::{Lsn, WalError};
use crate::durable_fs;

/// What the committer has persisted, published to the reader.
#[derive(Debug, Clone, Default)]
pub(crate) struct PersistedPosition {
    /// Every lsn below is durably committed.
    pub(crate) lsn: u64,
    /// The last failed attempt, if the position has not been persisted
    /// since.
    pub(crate) failed: Option<FailedPersist>,
}

/// A persist of the committed position that failed.
#[derive(Debug, Clone)]
pub(crate) struct FailedPersist {
    /// The position it tried to persist.
    pub(crate) upto: u64,
    pub(crate) error: Arc<WalError>,
}

/// The two steps of a persist, each with its result.
struct PersistSteps {
    /// Writing and fdatasyncing the position.
    position: Result<(), WalError>,
    /// Deleting the segments it covers (tried only once the position is
    /// durable).
    deletion: Result<(), WalError>,
}

pub(crate) struct CommitterTask {
    shared: Arc<WalShared>,
    /// Keeps the directory claimed until the last commit is persisted.
    _guard: Arc<super::dir_guard::DirGuard>,
    requested: watch::Receiver<u64>,
    persisted: watch::Sender<PersistedPosition>,
    /// Moved to the blocking thread for each persist and back.
    position: Option<PositionFile>,
}

/// The `committed` file, written in place once it has the two-slot layout.
struct PositionFile {
    /// Whether the file on disk has the two-slot layout.
    slotted: bool,
    /// Open for writing in place (opened at the first persist).
    file: Option<File>,
    /// Sequence number of the newest durable slot.
    seq: u64,
}

impl PositionFile {
    /// Makes `upto` the durable committed position.
    fn persist(&mut self, dir: &std::path::Path, upto: u64) -> Result<(), WalError> {
        let path = dir.join(POSITION_FILE);
        let seq = self.seq + 1;
        if !self.slotted {
            durable_fs::replace_atomically(&path, &encode_position_file(Lsn(upto), seq))?;
            self.slotted = true;
            self.seq = seq;
            return Ok(());
        }
        let file = match &mut self.file {
            Some(file) => file,
            none => none.insert(
                durable_fs::private_options()
                    .write(true)
                    .open(&path)
                    .map_err(|e| WalError::io("open", &path, e))?,
            ),
        };
        file.write_all_at(
            &encode_position_slot(Lsn(upto), seq),
            position_slot_offset(seq),
        )
        .map_err(|e| WalError::io("write", &path, e))?;
        file.sync_data()
            .map_err(|e| WalError::io("fdatasync", &path, e))?;
        self.seq = seq;
        Ok(())
    }
}

impl CommitterTask {
    /// `found`: the committed-position file as recovery read it.
    pub(crate) fn new(
        shared: Arc<WalShared>,
        requested: watch::Receiver<u64>,
        persisted: watch::Sender<PersistedPosition>,
        guard: Arc<super::dir_guard::DirGuard>,
        found: Option<StoredPosition>,
    ) -> Self {
        Self {
            shared,
            _guard: guard,
            requested,
            persisted,
            position: Some(PositionFile {
                slotted: found.is_some_and(|p| p.slotted),
                file: None,
                seq: found.map_or(0, |p| p.seq),
            }),
        }
    }

    /// Runs until the reader is dropped (persisting its last request first).
    pub(crate) async fn run(mut self) {
        // `changed` reports a value sent just before the sender was dropped
        // before it reports the closing, so the last request is not lost.
        while self.requested.changed().await.is_ok() {
            let target = *self.requested.borrow_and_update();
            if target <= self.persisted.borrow().lsn && self.persisted.borrow().failed.is_none() {
                continue;
            }
            let Some(mut file) = self.position.take() else {
                break;
            };
            let shared = self.shared.clone();
            let started = std::time::Instant::now();
            let joined = tokio::task::spawn_blocking(move || {
                let steps = persist_commit(&shared, &mut file, target);
                (file, steps)
            })
            .await;
            let PersistSteps { position, deletion } = match joined {
                Ok((file, steps)) => {
                    self.position = Some(file);
                    steps
                }
                // The file's state is unknown: it is opened afresh and
                // replaced whole at the next persist.
                Err(e) => {
                    self.position = Some(PositionFile {
                        slotted: false,
                        file: None,
                        seq: 0,
                    });
                    PersistSteps {
                        position: Err(super::error::join_error(e)),
                        deletion: Ok(()),
                    }
                }
            };
            let metrics = &self.shared.metrics;
            metrics.commit_seconds.record_duration(started.elapsed());
            match &position {
                Ok(()) => metrics.commits.increment(1),
                Err(_) => metrics.commit_failures.increment(1),
            }
            self.shared.publish_gauges();
            match position {
                Ok(()) => {
                    self.shared.space_freed.notify_one();
                    self.persisted.send_modify(|p| {
                        p.lsn = p.lsn.max(target);
                        p.failed = None;
                    });
                }
                Err(e) => {
                    tracing::error!(error = %crate::ErrorChain(&e), upto = target, "WAL: persisting the committed position failed");
                    self.persisted.send_modify(|p| {
                        p.failed = Some(FailedPersist {
                            upto: target,
                            error: Arc::new(e),
                        })
                    });
                }
            }
            if let Err(e) = deletion {
                // The position is durable; the files are deleted again (or
                // by recovery) at a later commit.
                tracing::error!(error = %crate::ErrorChain(&e), "WAL: deleting committed segments failed");
            }
        }
    }
}

/// Writes the committed position, then deletes the segments it covers.
fn persist_commit(shared: &WalShared, file: &mut PositionFile, upto: u64) -> PersistSteps {
    let dir = shared.options.dir.as_path();
    if let Err(e) = file.persist(dir, upto) {
        return PersistSteps {
            position: Err(e),
            deletion: Ok(()),
        };
    }
    let victims = {
        let mut st = shared.lock();
        // A commit never goes past the written end: the reader refuses one
        // beyond the records it returned, which were all written.
        debug_assert!(
            upto <= st.written,
            "commit {upto} past written {}",
            st.written
        );
        st.committed = st.committed.max(upto);
        let committed = st.committed;
        st.prune_marks(committed);
        st.take_segments_below(committed)
    };
    if victims.is_empty() {
        return PersistSteps {
            position: Ok(()),
            deletion: Ok(()),
        };
    }
    PersistSteps {
        position: Ok(()),
        deletion: delete_segments(dir, &victims),
    }
}
