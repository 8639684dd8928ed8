//! Property: after `buffer_unordered(16)` with random processing delays,
//! `checkpoint_batched` never saves a position past a record that is not
//! processed yet — checked at every save, by a store that compares each
//! saved position with the set of processed records at that moment.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use proptest::prelude::*;
use unistream::checkpoint::{
    CheckpointError, CheckpointStore, CheckpointStreamExt, MemoryCheckpointStore, Position,
};
use unistream::source::MemorySource;

use crate::support::paused::block_on_paused;
use crate::support::seed;

type Processed = Arc<Mutex<HashSet<(String, u64)>>>;

/// A store that checks every save against the processed set, then saves
/// into a memory store (with an optional latency, so saves overlap
/// processing).
#[derive(Clone)]
struct CheckingStore {
    inner: MemoryCheckpointStore,
    processed: Processed,
    violations: Arc<Mutex<Vec<String>>>,
}

impl CheckingStore {
    fn check(&self, partition: &str, position: &Position) {
        let Position::Offset(end) = position else {
            self.violations
                .lock()
                .unwrap()
                .push(format!("{partition}: unexpected position {position}"));
            return;
        };
        let processed = self.processed.lock().unwrap();
        // Offset(k) covers the records at indices 0..k.
        for index in 0..*end {
            if !processed.contains(&(partition.to_owned(), index)) {
                self.violations.lock().unwrap().push(format!(
                    "{partition}: saved offset {end} while record {index} is unprocessed"
                ));
                return;
            }
        }
    }
}

impl CheckpointStore for CheckingStore {
    async fn load(&self, partition: &str) -> Result<Option<Position>, CheckpointError> {
        self.inner.load(partition).await
    }

    async fn save(&self, partition: &str, position: &Position) -> Result<(), CheckpointError> {
        self.check(partition, position);
        self.inner.save(partition, position).await
    }

    async fn save_many(&self, entries: &[(String, Position)]) -> Result<(), CheckpointError> {
        for (partition, position) in entries {
            self.check(partition, position);
        }
        self.inner.save_many(entries).await
    }
}

fn run_case(
    partitions: Vec<Vec<u64>>,
    n: usize,
    interval_ms: u64,
    save_latency_ms: u64,
) -> Result<(), TestCaseError> {
    block_on_paused(async move {
        let processed: Processed = Arc::default();
        let inner = MemoryCheckpointStore::new();
        inner.set_latency(Duration::from_millis(save_latency_ms));
        let store = CheckingStore {
            inner: inner.clone(),
            processed: processed.clone(),
            violations: Arc::default(),
        };
        let source = MemorySource::new(
            partitions
                .iter()
                .enumerate()
                .map(|(i, delays)| (format!("p{i}"), delays.clone())),
        );
        let seen = processed.clone();
        let yielded = source
            .map_ok(move |(delay_ms, token)| {
                let processed = seen.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                    let index = match token.position() {
                        Position::Offset(end) => end - 1,
                        _ => unreachable!("memory source positions are offsets"),
                    };
                    processed
                        .lock()
                        .unwrap()
                        .insert((token.partition().to_owned(), index));
                    Ok::<_, unistream::Error>(token)
                }
            })
            .try_buffer_unordered(16)
            .checkpoint_batched(n, Duration::from_millis(interval_ms), store.clone())
            .try_collect::<Vec<_>>()
            .await
            .expect("pipeline");

        let violations = store.violations.lock().unwrap().clone();
        prop_assert!(violations.is_empty(), "{:?}", violations);
        let total: usize = partitions.iter().map(Vec::len).sum();
        prop_assert_eq!(yielded.len(), total);
        // The final save reaches the end of every non-empty partition.
        for (i, delays) in partitions.iter().enumerate() {
            let expected = (!delays.is_empty()).then_some(Position::Offset(delays.len() as u64));
            prop_assert_eq!(inner.position(&format!("p{i}")), expected);
        }
        prop_assert!(inner.saves().iter().all(|(p, _)| p.starts_with('p')));
        Ok(())
    })
}

proptest! {
    #![proptest_config(seed::proptest_config(
        module_path!(),
        "saved_position_never_passes_an_unprocessed_record",
        ProptestConfig { cases: 128, ..ProptestConfig::default() },
    ))]

    #[test]
    fn saved_position_never_passes_an_unprocessed_record(
        partitions in prop::collection::vec(prop::collection::vec(0u64..50, 0..120), 1..4),
        n in 1usize..40,
        interval_ms in 1u64..100,
        save_latency_ms in 0u64..20,
    ) {
        run_case(partitions, n, interval_ms, save_latency_ms)?;
    }
}

/// The property test's checker must be able to fail: a store that saves a
/// position ahead of processing is caught.
#[test]
fn the_checker_catches_a_premature_save() {
    let processed: Processed = Arc::default();
    processed.lock().unwrap().insert(("p0".into(), 0));
    let store = CheckingStore {
        inner: MemoryCheckpointStore::new(),
        processed,
        violations: Arc::default(),
    };
    store.check("p0", &Position::Offset(1));
    assert!(store.violations.lock().unwrap().is_empty());
    store.check("p0", &Position::Offset(2));
    assert_eq!(store.violations.lock().unwrap().len(), 1);
}

/// Saves observed in order are monotonic per partition, across the whole
/// run (a save never goes backwards).
#[test]
fn saves_are_monotonic_per_partition() {
    block_on_paused(async {
        let store = MemoryCheckpointStore::new();
        let delays: Vec<u64> = (0..500).map(|i| (i * 7919) % 37).collect();
        MemorySource::new([("a", delays.clone()), ("b", delays)])
            .map_ok(|(d, t)| async move {
                tokio::time::sleep(Duration::from_millis(d)).await;
                Ok::<_, unistream::Error>(t)
            })
            .try_buffer_unordered(16)
            .checkpoint_batched(10, Duration::from_millis(5), store.clone())
            .for_each(|r| async move {
                r.unwrap();
            })
            .await;
        for partition in ["a", "b"] {
            let saved: Vec<Position> = store
                .saves()
                .into_iter()
                .filter(|(p, _)| p == partition)
                .map(|(_, pos)| pos)
                .collect();
            assert!(saved.len() > 10, "{partition}: {} saves", saved.len());
            assert!(saved.windows(2).all(|w| w[0] < w[1]), "{saved:?}");
            assert_eq!(saved.last(), Some(&Position::Offset(500)));
        }
    });
}
