//! A checkpoint store in one local JSON file, replaced atomically (temp file,
//! fsync, rename, directory fsync) on every save. The guarantees are
//! documented on [`JsonFileCheckpointStore`], where users read them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::{CheckpointError, CheckpointStore};
use crate::checkpoint::Position;
use crate::durable_fs;
use crate::error::Error;

const FORMAT_VERSION: u32 = 1;

/// A [`CheckpointStore`] keeping every partition in one JSON file, replaced
/// atomically on each save. Clones share the file and its lock.
///
/// ```
/// use unistream::checkpoint::{CheckpointStore, JsonFileCheckpointStore, Position};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let store = JsonFileCheckpointStore::new(dir.path().join("checkpoints.json"));
/// assert_eq!(store.load("orders").await?, None);
/// store.save("orders", &Position::Offset(4096)).await?;
///
/// let reopened = JsonFileCheckpointStore::new(dir.path().join("checkpoints.json"));
/// assert_eq!(reopened.load("orders").await?, Some(Position::Offset(4096)));
/// # Ok(()) }
/// ```
///
/// It keeps the positions of many partitions in one
/// JSON document:
///
/// ```json
/// {"version":1,"partitions":{"orders.jsonl":{"offset":4096},"shard-0":{"sequence":{"sequence":"4959","sub":0}}}}
/// ```
///
/// Guarantees:
/// - Every save rewrites the whole document through a temporary file that is
///   fsynced, renamed over the document, after which the directory is
///   fsynced. A kill or power loss at any moment leaves the old or the new
///   document, never a torn one; `Ok` from a save means the new one is on
///   disk.
/// - [`save_many`](CheckpointStore::save_many) writes all its partitions in
///   one document write.
/// - Saves from clones of one store are serialized (a blocking lock held for
///   the whole write, so even a save whose future was dropped mid-way cannot
///   overlap the next one).
/// - A missing file is an empty store. A document that does not parse is
///   [`CheckpointError::Corrupt`] naming the file, for loads and saves alike:
///   the store never overwrites a document it cannot read, so other
///   partitions' checkpoints are never lost silently.
/// - The file is created with mode `0600`, its directory (and missing
///   parents) on the first save.
///
/// - The document is read once, on first use, and then kept in memory: a
///   change made to the file by someone else afterwards is not seen (and is
///   overwritten by the next save).
///
/// Not provided: coordination between processes. One file belongs to one
/// consumer process at a time (two processes would overwrite each other's
/// partitions and share the temporary file name); use the DynamoDB store for
/// several workers.
#[derive(Debug, Clone)]
pub struct JsonFileCheckpointStore {
    inner: Arc<JsonFileStoreInner>,
}

#[derive(Debug)]
struct JsonFileStoreInner {
    path: PathBuf,
    /// The document as last read or written; `None` until first used. Held
    /// for the whole of a write, which serializes saves.
    document: Mutex<Option<Document>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Document {
    version: u32,
    partitions: BTreeMap<String, Position>,
}

impl JsonFileCheckpointStore {
    /// A store in the file `path` (read on first use, created on first save).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            inner: Arc::new(JsonFileStoreInner {
                path: path.into(),
                document: Mutex::new(None),
            }),
        }
    }

    /// The document's path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Every saved position, read from the file.
    pub async fn positions(&self) -> Result<BTreeMap<String, Position>, CheckpointError> {
        self.blocking(|inner| inner.with_document(|doc| Ok(doc.partitions.clone())))
            .await
    }

    async fn blocking<R, F>(&self, f: F) -> Result<R, CheckpointError>
    where
        F: FnOnce(&JsonFileStoreInner) -> Result<R, CheckpointError> + Send + 'static,
        R: Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| CheckpointError::backend(self.inner.path.display().to_string(), e))?
    }
}

impl JsonFileStoreInner {
    fn store_name(&self) -> String {
        self.path.display().to_string()
    }

    /// Runs `f` on the document (read from disk when not cached) under the
    /// lock.
    fn with_document<R>(
        &self,
        f: impl FnOnce(&mut Document) -> Result<R, CheckpointError>,
    ) -> Result<R, CheckpointError> {
        // The cached document is only replaced after a successful write, so
        // a panic under the lock cannot leave it torn.
        let mut guard = self.document.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            *guard = Some(self.read()?);
        }
        match guard.as_mut() {
            Some(doc) => f(doc),
            None => Err(CheckpointError::backend(
                self.store_name(),
                "checkpoint document missing after load",
            )),
        }
    }

    fn read(&self) -> Result<Document, CheckpointError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Document {
                    version: FORMAT_VERSION,
                    partitions: BTreeMap::new(),
                })
            }
            Err(e) => {
                return Err(CheckpointError::backend(
                    self.store_name(),
                    Error::io("read", &self.path, e),
                ))
            }
        };
        let doc: Document =
            serde_json::from_slice(&bytes).map_err(|e| CheckpointError::Corrupt {
                store: self.store_name(),
                reason: format!("not a checkpoint document: {e}"),
            })?;
        if doc.version != FORMAT_VERSION {
            return Err(CheckpointError::Corrupt {
                store: self.store_name(),
                reason: format!(
                    "document version {} (this build reads version {FORMAT_VERSION})",
                    doc.version
                ),
            });
        }
        Ok(doc)
    }

    fn save_entries(&self, entries: &[(String, Position)]) -> Result<(), CheckpointError> {
        self.with_document(|doc| {
            let mut next = doc.clone();
            for (partition, position) in entries {
                next.partitions.insert(partition.clone(), position.clone());
            }
            let bytes = serde_json::to_vec(&next)
                .map_err(|e| CheckpointError::backend(self.store_name(), e))?;
            if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
                durable_fs::create_dir_all_durable(parent)
                    .map_err(|e| CheckpointError::backend(self.store_name(), e))?;
            }
            durable_fs::replace_atomically(&self.path, &bytes)
                .map_err(|e| CheckpointError::backend(self.store_name(), e))?;
            *doc = next;
            Ok(())
        })
    }
}

impl CheckpointStore for JsonFileCheckpointStore {
    async fn load(&self, partition: &str) -> Result<Option<Position>, CheckpointError> {
        let partition = partition.to_owned();
        self.blocking(move |inner| {
            inner.with_document(|doc| Ok(doc.partitions.get(&partition).cloned()))
        })
        .await
    }

    async fn save(&self, partition: &str, position: &Position) -> Result<(), CheckpointError> {
        let entries = vec![(partition.to_owned(), position.clone())];
        self.blocking(move |inner| inner.save_entries(&entries))
            .await
    }

    /// Writes every entry in one atomic document replacement.
    async fn save_many(&self, entries: &[(String, Position)]) -> Result<(), CheckpointError> {
        let entries = entries.to_vec();
        self.blocking(move |inner| inner.save_entries(&entries))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn missing_file_is_empty_and_saves_create_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/dir/cp.json");
        let store = JsonFileCheckpointStore::new(&path);
        assert_eq!(store.load("a").await.unwrap(), None);
        store
            .save_many(&[
                ("a".into(), Position::Offset(3)),
                ("b".into(), Position::sequence("99")),
            ])
            .await
            .unwrap();
        store.save("c", &Position::End).await.unwrap();
        let reread = JsonFileCheckpointStore::new(&path);
        let all = reread.positions().await.unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all["b"], Position::sequence("99"));
        assert_eq!(all["c"], Position::End);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[tokio::test]
    async fn corrupt_document_is_reported_and_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp.json");
        std::fs::write(&path, b"{\"version\":1,\"partit").unwrap();
        let store = JsonFileCheckpointStore::new(&path);
        let err = store.load("a").await.unwrap_err();
        match &err {
            CheckpointError::Corrupt { store, .. } => assert!(store.contains("cp.json")),
            other => panic!("unexpected {other:?}"),
        }
        let err = store.save("a", &Position::Offset(1)).await.unwrap_err();
        assert!(matches!(err, CheckpointError::Corrupt { .. }));
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"{\"version\":1,\"partit".to_vec()
        );
    }

    #[tokio::test]
    async fn unknown_version_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp.json");
        std::fs::write(&path, br#"{"version":9,"partitions":{}}"#).unwrap();
        let err = JsonFileCheckpointStore::new(&path)
            .load("a")
            .await
            .unwrap_err();
        assert!(matches!(err, CheckpointError::Corrupt { .. }), "{err:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_saves_from_clones_are_all_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = JsonFileCheckpointStore::new(dir.path().join("cp.json"));
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let s = store.clone();
                tokio::spawn(async move { s.save(&format!("p{i}"), &Position::Offset(i)).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let reread = JsonFileCheckpointStore::new(store.path());
        assert_eq!(reread.positions().await.unwrap().len(), 16);
    }
}
