//! One open log per directory within a process.
//!
//! A log's background tasks (writer, committer) keep running briefly after
//! its last handle is dropped (a final fdatasync, the last commit). Opening
//! the same directory again must not overlap with them: the new instance
//! would read a position file or segment list that the old one is still
//! changing. [`acquire`] therefore waits until the previous instance's
//! tasks have finished, and fails with [`WalError::AlreadyOpen`] if they do
//! not finish in time (its handles are still in use).
//!
//! Not guaranteed: exclusion between processes (there is no lock file).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::Notify;

use super::WalError;

/// How long [`acquire`] waits for a previous instance to finish.
pub(crate) const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

fn registry() -> &'static Mutex<HashMap<PathBuf, Arc<Notify>>> {
    static OPEN: OnceLock<Mutex<HashMap<PathBuf, Arc<Notify>>>> = OnceLock::new();
    OPEN.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Held (shared) by the tasks of an open log; releases the directory when
/// the last holder drops it.
#[derive(Debug)]
pub(crate) struct DirGuard {
    dir: PathBuf,
    released: Arc<Notify>,
}

impl Drop for DirGuard {
    fn drop(&mut self) {
        let mut open = registry().lock().unwrap_or_else(|p| p.into_inner());
        open.remove(&self.dir);
        self.released.notify_waiters();
    }
}

/// Claims `dir` (an existing directory) for a new instance, waiting for a
/// previous one in this process to finish.
pub(crate) async fn acquire(dir: &Path) -> Result<Arc<DirGuard>, WalError> {
    let key = std::fs::canonicalize(dir).map_err(|e| WalError::io("resolve", dir, e))?;
    let deadline = tokio::time::Instant::now() + ACQUIRE_TIMEOUT;
    loop {
        let released = {
            let mut open = registry().lock().unwrap_or_else(|p| p.into_inner());
            match open.get(&key) {
                None => {
                    let released = Arc::new(Notify::new());
                    open.insert(key.clone(), released.clone());
                    return Ok(Arc::new(DirGuard { dir: key, released }));
                }
                Some(n) => n.clone(),
            }
        };
        let notified = released.notified();
        tokio::pin!(notified);
        // Register before re-checking, so a release in between is not missed.
        notified.as_mut().enable();
        if !registry()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&key)
        {
            continue;
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return Err(WalError::AlreadyOpen { dir: key });
        }
    }
}
