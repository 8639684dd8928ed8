//! An in-memory checkpoint store for tests, with inspection and fault
//! injection; documented on [`MemoryCheckpointStore`].

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::{CheckpointError, CheckpointStore};
use crate::checkpoint::Position;

const STORE_NAME: &str = "memory";

/// An in-memory [`CheckpointStore`]; clones share their state.
///
/// For tests, with inspection and fault injection. It keeps positions in a shared map: clones see the
/// same positions, so a test keeps one clone to look at what a consumer saved
/// (every save is also kept, in order, in [`saves`]) and to make the store
/// misbehave: fail the next saves with a backend error, fence a partition
/// (as a lost lease would), or add latency to every save.
///
/// It is not durable: positions live as long as the last clone.
///
/// ```
/// use unistream::checkpoint::{CheckpointStore, MemoryCheckpointStore, Position};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let store = MemoryCheckpointStore::new();
/// store.save("shard-0", &Position::Offset(10)).await.unwrap();
/// assert_eq!(store.position("shard-0"), Some(Position::Offset(10)));
///
/// store.fence("shard-0");
/// let err = store.save("shard-0", &Position::Offset(20)).await.unwrap_err();
/// assert!(err.is_fenced());
/// # }
/// ```
///
/// [`saves`]: MemoryCheckpointStore::saves
#[derive(Debug, Clone, Default)]
pub struct MemoryCheckpointStore {
    shared: Arc<Mutex<MemoryStoreState>>,
}

#[derive(Debug, Default)]
struct MemoryStoreState {
    positions: BTreeMap<String, Position>,
    saves: Vec<(String, Position)>,
    save_calls: u64,
    fail_next: u64,
    fenced: HashSet<String>,
    latency: Duration,
}

impl MemoryCheckpointStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store that already holds these positions (as if saved by an earlier
    /// run); they are not counted in [`saves`](Self::saves).
    pub fn with_positions<P: Into<String>>(
        positions: impl IntoIterator<Item = (P, Position)>,
    ) -> Self {
        let store = Self::new();
        store
            .lock()
            .positions
            .extend(positions.into_iter().map(|(p, pos)| (p.into(), pos)));
        store
    }

    fn lock(&self) -> MutexGuard<'_, MemoryStoreState> {
        // Every update below is applied whole under the lock, so a panic
        // elsewhere cannot leave the state torn: poisoning is ignored.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The saved position of `partition`.
    pub fn position(&self, partition: &str) -> Option<Position> {
        self.lock().positions.get(partition).cloned()
    }

    /// Every saved position, by partition.
    pub fn positions(&self) -> BTreeMap<String, Position> {
        self.lock().positions.clone()
    }

    /// Every successful save so far, in order, one entry per partition
    /// written (a `save_many` of three partitions adds three entries).
    pub fn saves(&self) -> Vec<(String, Position)> {
        self.lock().saves.clone()
    }

    /// The number of `save`/`save_many` calls, failed ones included.
    pub fn save_calls(&self) -> u64 {
        self.lock().save_calls
    }

    /// Makes the next `count` save calls fail with a backend error (nothing
    /// of a failed call is saved).
    pub fn fail_next_saves(&self, count: u64) {
        self.lock().fail_next = count;
    }

    /// Fences `partition`: every later save that includes it fails with
    /// [`CheckpointError::Fenced`], as when another worker took its lease.
    pub fn fence(&self, partition: &str) {
        self.lock().fenced.insert(partition.to_owned());
    }

    /// Lifts a [`fence`](Self::fence).
    pub fn unfence(&self, partition: &str) {
        self.lock().fenced.remove(partition);
    }

    /// Delays every save by `latency` (in `tokio::time`, so paused-time
    /// tests control it).
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Applies one save call of `entries` atomically: all or nothing.
    fn apply(&self, entries: &[(&str, &Position)]) -> Result<(), CheckpointError> {
        let mut state = self.lock();
        state.save_calls += 1;
        if state.fail_next > 0 {
            state.fail_next -= 1;
            return Err(CheckpointError::backend(
                STORE_NAME,
                "injected failure (fail_next_saves)",
            ));
        }
        if let Some((partition, _)) = entries.iter().find(|(p, _)| state.fenced.contains(*p)) {
            return Err(CheckpointError::Fenced {
                partition: (*partition).to_owned(),
                reason: "fenced by MemoryCheckpointStore::fence".to_owned(),
            });
        }
        for (partition, position) in entries {
            state
                .positions
                .insert((*partition).to_owned(), (*position).clone());
            state
                .saves
                .push(((*partition).to_owned(), (*position).clone()));
        }
        Ok(())
    }

    async fn delay(&self) {
        let latency = self.lock().latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
    }
}

impl CheckpointStore for MemoryCheckpointStore {
    async fn load(&self, partition: &str) -> Result<Option<Position>, CheckpointError> {
        Ok(self.position(partition))
    }

    async fn save(&self, partition: &str, position: &Position) -> Result<(), CheckpointError> {
        self.delay().await;
        self.apply(&[(partition, position)])
    }

    /// Saves every entry in one atomic step (one call for
    /// [`fail_next_saves`](Self::fail_next_saves); nothing is saved when
    /// any entry's partition is fenced).
    async fn save_many(&self, entries: &[(String, Position)]) -> Result<(), CheckpointError> {
        self.delay().await;
        let borrowed: Vec<(&str, &Position)> =
            entries.iter().map(|(p, pos)| (p.as_str(), pos)).collect();
        self.apply(&borrowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn saves_are_shared_and_recorded() {
        let store = MemoryCheckpointStore::with_positions([("a", Position::Offset(1))]);
        let clone = store.clone();
        assert_eq!(clone.load("a").await.unwrap(), Some(Position::Offset(1)));
        clone
            .save_many(&[
                ("a".into(), Position::Offset(5)),
                ("b".into(), Position::sequence("7")),
            ])
            .await
            .unwrap();
        assert_eq!(store.position("a"), Some(Position::Offset(5)));
        assert_eq!(store.saves().len(), 2);
        assert_eq!(store.save_calls(), 1);
        assert_eq!(store.load("missing").await.unwrap(), None);
    }

    #[tokio::test]
    async fn injected_failures_save_nothing() {
        let store = MemoryCheckpointStore::new();
        store.fail_next_saves(1);
        let err = store.save("a", &Position::Offset(1)).await.unwrap_err();
        assert!(matches!(err, CheckpointError::Backend { .. }));
        assert_eq!(store.position("a"), None);
        store.save("a", &Position::Offset(1)).await.unwrap();
        assert_eq!(store.position("a"), Some(Position::Offset(1)));
    }

    #[tokio::test]
    async fn fenced_partition_fails_the_whole_call() {
        let store = MemoryCheckpointStore::new();
        store.fence("b");
        let err = store
            .save_many(&[
                ("a".into(), Position::Offset(1)),
                ("b".into(), Position::Offset(1)),
            ])
            .await
            .unwrap_err();
        match err {
            CheckpointError::Fenced { partition, .. } => assert_eq!(partition, "b"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(store.positions().is_empty());
        store.unfence("b");
        store.save("b", &Position::Offset(2)).await.unwrap();
        assert_eq!(store.position("b"), Some(Position::Offset(2)));
    }

    #[tokio::test(start_paused = true)]
    async fn latency_is_in_tokio_time() {
        let store = MemoryCheckpointStore::new();
        store.set_latency(Duration::from_secs(3));
        let start = tokio::time::Instant::now();
        store.save("a", &Position::Offset(1)).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }
}
