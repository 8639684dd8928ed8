//! Property: `and_then_per_partition(limit, handler)` runs one handler per
//! partition at a time, in the partition's delivery order, never more than
//! `limit` at once, and every record's token reaches `checkpoint_batched`
//! (the final checkpoint of every partition is its last record) — under
//! random partitions, handler durations and limits, on paused time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::TryStreamExt;
use proptest::prelude::*;
use unistream::checkpoint::{CheckpointStreamExt, MemoryCheckpointStore, Position};
use unistream::source::MemorySource;

use crate::support::paused::block_on_paused;
use crate::support::seed;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Start { partition: usize, index: u64 },
    End { partition: usize, index: u64 },
}

fn run_case(
    partitions: Vec<Vec<u64>>,
    limit: usize,
    max_queued: usize,
) -> Result<(), TestCaseError> {
    block_on_paused(async move {
        let store = MemoryCheckpointStore::new();
        let events: Arc<Mutex<Vec<Event>>> = Arc::default();
        let log = events.clone();
        let source = MemorySource::new(
            partitions
                .iter()
                .enumerate()
                .map(|(i, delays)| (format!("p{i}"), delays.clone())),
        );
        let outputs: Vec<(usize, u64)> = source
            .and_then_per_partition(limit, move |(delay_ms, token)| {
                let log = log.clone();
                async move {
                    let partition: usize = token.partition()[1..].parse().unwrap();
                    let index = match token.position() {
                        Position::Offset(end) => end - 1,
                        other => panic!("memory source position {other}"),
                    };
                    log.lock().unwrap().push(Event::Start { partition, index });
                    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                    log.lock().unwrap().push(Event::End { partition, index });
                    Ok::<_, unistream::Error>(((partition, index), token))
                }
            })
            .max_queued(max_queued)
            .checkpoint_batched(7, Duration::from_millis(50), store.clone())
            .try_collect()
            .await
            .expect("pipeline");

        let events = events.lock().unwrap().clone();
        let mut running: Vec<Option<u64>> = vec![None; partitions.len()];
        let mut next: Vec<u64> = vec![0; partitions.len()];
        let mut concurrent = 0usize;
        for event in &events {
            match *event {
                Event::Start { partition, index } => {
                    prop_assert_eq!(
                        running[partition],
                        None,
                        "two handlers at once on p{}",
                        partition
                    );
                    prop_assert_eq!(index, next[partition], "p{} out of order", partition);
                    running[partition] = Some(index);
                    next[partition] += 1;
                    concurrent += 1;
                    prop_assert!(
                        concurrent <= limit,
                        "{} handlers at once, limit {}",
                        concurrent,
                        limit
                    );
                }
                Event::End { partition, index } => {
                    prop_assert_eq!(running[partition], Some(index));
                    running[partition] = None;
                    concurrent -= 1;
                }
            }
        }
        // Outputs: every record once, in order within each partition.
        let total: usize = partitions.iter().map(Vec::len).sum();
        prop_assert_eq!(outputs.len(), total);
        for (p, delays) in partitions.iter().enumerate() {
            let of_p: Vec<u64> = outputs
                .iter()
                .filter(|(q, _)| *q == p)
                .map(|(_, i)| *i)
                .collect();
            prop_assert_eq!(of_p, (0..delays.len() as u64).collect::<Vec<_>>());
            let expected = (!delays.is_empty()).then_some(Position::Offset(delays.len() as u64));
            prop_assert_eq!(store.position(&format!("p{p}")), expected);
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(seed::proptest_config(
        module_path!(),
        "one_handler_per_partition_in_order_within_the_limit",
        ProptestConfig { cases: 128, ..ProptestConfig::default() },
    ))]

    #[test]
    fn one_handler_per_partition_in_order_within_the_limit(
        partitions in prop::collection::vec(prop::collection::vec(0u64..30, 0..60), 1..8),
        limit in 1usize..6,
        max_queued in 1usize..40,
    ) {
        run_case(partitions, limit, max_queued)?;
    }
}

/// Partitions do run concurrently: with a limit of 4 and four partitions of
/// equal work, four handlers are running at some moment (the property above
/// holds for a combinator that runs one handler at a time too).
#[test]
fn partitions_run_concurrently_up_to_the_limit() {
    block_on_paused(async {
        let running = Arc::new(Mutex::new((0usize, 0usize))); // (now, most)
        let counter = running.clone();
        let source = MemorySource::new((0..4).map(|p| (format!("p{p}"), vec![(); 5])));
        source
            .and_then_per_partition(4, move |((), token)| {
                let counter = counter.clone();
                async move {
                    {
                        let mut c = counter.lock().unwrap();
                        c.0 += 1;
                        c.1 = c.1.max(c.0);
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    counter.lock().unwrap().0 -= 1;
                    Ok::<_, unistream::Error>(token)
                }
            })
            .checkpoint_batched(100, Duration::from_secs(60), MemoryCheckpointStore::new())
            .try_collect::<()>()
            .await
            .unwrap();
        assert_eq!(running.lock().unwrap().1, 4);
    });
}
