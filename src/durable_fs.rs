//! Durable file-system primitives shared by the WAL, the file sink and the
//! JSON checkpoint store.
//!
//! - Files are created with mode `0600` (owner read/write only): records and
//!   checkpoints may hold private data.
//! - A directory is fsynced after an entry in it is created, renamed or
//!   deleted, so the entry itself survives a power loss, not only the data.
//! - [`replace_atomically`] writes a temporary file, fsyncs it, renames it
//!   over the target and fsyncs the directory: a crash at any moment leaves
//!   either the old or the new content, never a torn one.
//!
//! These are blocking calls; async code runs them on
//! `tokio::task::spawn_blocking`. They fail with [`FsError`] (the operation,
//! the path and the I/O error), which the crate's [`Error`](crate::Error)
//! and the WAL's [`WalError`](crate::wal::WalError) each take as their `Io`
//! variant.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A file-system operation failed: what was being done, on which path.
#[derive(Debug, thiserror::Error)]
#[error("{op} {}", path.display())]
pub(crate) struct FsError {
    /// What was being done ("open", "fsync directory", …).
    pub(crate) op: &'static str,
    /// The file or directory involved.
    pub(crate) path: PathBuf,
    /// The underlying error.
    #[source]
    pub(crate) source: io::Error,
}

impl FsError {
    fn new(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Options that create a file with mode `0600` when it does not exist.
pub(crate) fn private_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

/// Opens `path` for appending, creating it (`0600`) when missing; a newly
/// created file is made durable by fsyncing its directory.
pub(crate) fn open_append(path: &Path) -> Result<File, FsError> {
    let existed = path.exists();
    let file = private_options()
        .create(true)
        .append(true)
        .read(true)
        .open(path)
        .map_err(|e| FsError::new("open", path, e))?;
    if !existed {
        sync_parent(path)?;
    }
    Ok(file)
}

/// Fsyncs the directory that holds `path`.
pub(crate) fn sync_parent(path: &Path) -> Result<(), FsError> {
    let parent = parent_of(path);
    sync_dir(&parent)
}

/// Fsyncs the directory `dir`, making entries created, renamed or removed in
/// it durable. A no-op where directories cannot be opened (non-Unix).
pub(crate) fn sync_dir(dir: &Path) -> Result<(), FsError> {
    #[cfg(unix)]
    {
        let handle = File::open(dir).map_err(|e| FsError::new("open directory", dir, e))?;
        handle
            .sync_all()
            .map_err(|e| FsError::new("fsync directory", dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Creates `dir` and its missing parents, fsyncing each parent of a created
/// directory.
pub(crate) fn create_dir_all_durable(dir: &Path) -> Result<(), FsError> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_all_durable(parent)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(FsError::new("create directory", dir, e)),
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| FsError::new("set permissions of", dir, e))?;
    }
    sync_parent(dir)
}

/// Replaces the content of `path` with `bytes` atomically and durably.
pub(crate) fn replace_atomically(path: &Path, bytes: &[u8]) -> Result<(), FsError> {
    let tmp = temp_path_for(path);
    let mut file = private_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| FsError::new("create", &tmp, e))?;
    file.write_all(bytes)
        .map_err(|e| FsError::new("write", &tmp, e))?;
    file.sync_all()
        .map_err(|e| FsError::new("fsync", &tmp, e))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(|e| FsError::new("rename over", path, e))?;
    sync_parent(path)
}

/// The temporary sibling used by [`replace_atomically`] for `path`.
pub(crate) fn temp_path_for(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_is_visible_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("doc.json");
        replace_atomically(&path, b"one").unwrap();
        replace_atomically(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert!(!temp_path_for(&path).exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn nested_directories_are_created() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b/c");
        create_dir_all_durable(&nested).unwrap();
        assert!(nested.is_dir());
        create_dir_all_durable(&nested).unwrap();
    }

    #[test]
    fn open_append_creates_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let mut f = open_append(&path).unwrap();
        f.write_all(b"x\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
