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
//! Between processes, the guard holds an exclusive advisory lock
//! (`flock`) on the file `lock` in the directory for as long as the
//! instance lives: a second process (or anything else that takes the lock)
//! gets [`WalError::LockedElsewhere`] instead of corrupting the log. The
//! lock goes with the process, so a crashed process never leaves it behind.
//! On a file system without locks (some network file systems) the log opens
//! without one and says so in a warning.

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
    /// The locked `lock` file (closing it releases the lock); `None` until
    /// taken, or where the file system has no locks.
    lock: Option<std::fs::File>,
}

/// The file in a log directory that an open instance holds locked.
pub(crate) const LOCK_FILE: &str = "lock";

impl Drop for DirGuard {
    fn drop(&mut self) {
        // Unlock before the claim goes: the next instance in this process
        // may take the file lock as soon as it sees the claim gone.
        drop(self.lock.take());
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
        let claimed = {
            let mut open = registry().lock().unwrap_or_else(|p| p.into_inner());
            match open.get(&key) {
                None => {
                    let released = Arc::new(Notify::new());
                    open.insert(key.clone(), released.clone());
                    Ok(released)
                }
                Some(n) => Err(n.clone()),
            }
        };
        let released = match claimed {
            Ok(released) => {
                let mut guard = DirGuard {
                    dir: key,
                    released,
                    lock: None,
                };
                // On failure, dropping `guard` releases the claim (which
                // takes the registry lock: not held here).
                guard.lock = lock_with_fork_grace(&guard.dir).await?;
                return Ok(Arc::new(guard));
            }
            Err(released) => released,
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

/// How long a held lock is tried again before it counts as another
/// process's: a process of this one forked to start a program (a
/// `Command::spawn` anywhere in the process) holds copies of every open
/// file until its `exec`, a previous instance's lock file among them, for
/// the moments in between.
const FORK_GRACE: Duration = Duration::from_millis(250);

/// [`lock_against_other_processes`], tried again for [`FORK_GRACE`] while
/// the lock is held.
async fn lock_with_fork_grace(dir: &Path) -> Result<Option<std::fs::File>, WalError> {
    let deadline = tokio::time::Instant::now() + FORK_GRACE;
    loop {
        match lock_against_other_processes(dir) {
            Err(WalError::LockedElsewhere { .. }) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            other => return other,
        }
    }
}

/// Takes the exclusive lock on the directory's [`LOCK_FILE`] without
/// waiting: another holder means another process has the log open.
fn lock_against_other_processes(dir: &Path) -> Result<Option<std::fs::File>, WalError> {
    let path = dir.join(LOCK_FILE);
    let file = crate::durable_fs::private_options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| WalError::io("open", &path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Err(WalError::LockedElsewhere {
            dir: dir.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => {
            tracing::warn!(dir = %dir.display(), "WAL: the file system has no file locks; nothing keeps another process from opening this log");
            Ok(None)
        }
        Err(std::fs::TryLockError::Error(e)) => Err(WalError::io("lock", &path, e)),
    }
}
