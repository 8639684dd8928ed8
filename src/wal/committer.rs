//! The committer task: persists the committed position in the background
//! and deletes the segments it covers.
//!
//! [`WalReader::start_commit`](super::WalReader::start_commit) only records
//! the newest position to persist; this task persists it (atomic
//! replacement of the `committed` file: temporary file, fsync, rename,
//! directory fsync), then deletes every segment wholly below it and frees
//! cap space. Positions requested while a persist is in progress are
//! coalesced into the next one, so a reader that commits after every batch
//! pays for at most one persist at a time, whatever the batch rate.
//!
//! Segments are deleted only after the position that covers them is
//! durable, so a crash can never leave a position older than the oldest
//! segment (which would lose records).

use std::sync::Arc;

use tokio::sync::watch;

use super::format::{encode_position, POSITION_FILE};
use super::shared::Shared;
use super::writer::delete_segments;
use super::{Lsn, WalError};
use crate::durable_fs;

/// What the committer has persisted, published to the reader.
#[derive(Debug, Clone, Default)]
pub(crate) struct Persisted {
    /// Every lsn below is durably committed.
    pub(crate) lsn: u64,
    /// The last failed attempt: the position it tried to persist and why.
    pub(crate) failed: Option<(u64, Arc<WalError>)>,
}

pub(crate) struct CommitterTask {
    shared: Arc<Shared>,
    /// Keeps the directory claimed until the last commit is persisted.
    _guard: Arc<super::dir_guard::DirGuard>,
    requested: watch::Receiver<u64>,
    persisted: watch::Sender<Persisted>,
}

impl CommitterTask {
    pub(crate) fn new(
        shared: Arc<Shared>,
        requested: watch::Receiver<u64>,
        persisted: watch::Sender<Persisted>,
        guard: Arc<super::dir_guard::DirGuard>,
    ) -> Self {
        Self {
            shared,
            _guard: guard,
            requested,
            persisted,
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
            let shared = self.shared.clone();
            let joined = tokio::task::spawn_blocking(move || persist_commit(&shared, target)).await;
            let (position, deletion) = match joined {
                Ok(results) => results,
                Err(e) => (Err(super::error::join_error(e)), Ok(())),
            };
            match position {
                Ok(()) => {
                    self.shared.space_freed.notify_one();
                    self.persisted.send_modify(|p| {
                        p.lsn = p.lsn.max(target);
                        p.failed = None;
                    });
                }
                Err(e) => {
                    tracing::error!(error = %e, upto = target, "WAL: persisting the committed position failed");
                    self.persisted
                        .send_modify(|p| p.failed = Some((target, Arc::new(e))));
                }
            }
            if let Err(e) = deletion {
                // The position is durable; the files are deleted again (or
                // by recovery) at a later commit.
                tracing::error!(error = %e, "WAL: deleting committed segments failed");
            }
        }
    }
}

/// Writes the committed position, then deletes the segments it covers.
/// Returns the result of each step.
fn persist_commit(shared: &Shared, upto: u64) -> (Result<(), WalError>, Result<(), WalError>) {
    let dir = shared.options.dir.as_path();
    if let Err(e) =
        durable_fs::replace_atomically(&dir.join(POSITION_FILE), &encode_position(Lsn(upto)))
    {
        return (Err(e.into()), Ok(()));
    }
    let victims = {
        let mut st = shared.lock();
        st.committed = st.committed.max(upto);
        let committed = st.committed;
        st.prune_marks(committed);
        st.take_segments_below(committed)
    };
    if victims.is_empty() {
        return (Ok(()), Ok(()));
    }
    (Ok(()), delete_segments(dir, &victims))
}
