//! `checkpoint_batched`: the `n` and interval triggers, the final save on end
//! and on error, out-of-order tokens, fenced partitions, failed saves and
//! back-pressure while a save is in flight. All timed tests run on paused
//! `tokio::time`.

use std::time::Duration;

use futures::channel::mpsc;
use futures::StreamExt;
use tokio_test::{assert_pending, assert_ready};
use unistream::checkpoint::{
    CheckpointError, CheckpointStreamExt, CheckpointToken, MemoryCheckpointStore, PartitionControl,
    Position,
};
use unistream::Error;

/// Items are `((partition, seq), token)`: the combinator yields the
/// `(partition, seq)` part once the token is counted.
type Item = Result<(Seen, CheckpointToken), Error>;
type Seen = (String, u64);

fn token(partition: &str, seq: u64) -> (Seen, CheckpointToken) {
    (
        (partition.to_owned(), seq),
        CheckpointToken::new(partition, Position::Offset(seq + 1), seq),
    )
}

fn offsets(store: &MemoryCheckpointStore, partition: &str) -> Vec<u64> {
    store
        .saves()
        .into_iter()
        .filter(|(p, _)| p == partition)
        .map(|(_, pos)| match pos {
            Position::Offset(o) => o,
            other => panic!("unexpected position {other}"),
        })
        .collect()
}

fn channel() -> (mpsc::UnboundedSender<Item>, mpsc::UnboundedReceiver<Item>) {
    mpsc::unbounded()
}

#[tokio::test(start_paused = true)]
async fn saves_every_n_tokens_of_a_partition_and_at_the_end() {
    let store = MemoryCheckpointStore::new();
    let (tx, rx) = channel();
    let mut s = rx.checkpoint_batched(3, Duration::from_secs(3600), store.clone());
    for seq in 0..10 {
        tx.unbounded_send(Ok(token("p", seq))).unwrap();
        let (_, yielded) = s.next().await.unwrap().unwrap();
        assert_eq!(yielded, seq);
        let expected: Vec<u64> = (1..=seq + 1).filter(|k| k % 3 == 0).collect();
        assert_eq!(offsets(&store, "p"), expected, "after token {seq}");
    }
    drop(tx);
    assert!(s.next().await.is_none());
    assert_eq!(offsets(&store, "p"), vec![3, 6, 9, 10]);
    assert_eq!(store.save_calls(), 4);
}

#[tokio::test(start_paused = true)]
async fn count_trigger_saves_only_the_partition_that_reached_n() {
    let store = MemoryCheckpointStore::new();
    let (tx, rx) = channel();
    let mut s = rx.checkpoint_batched(2, Duration::from_secs(3600), store.clone());
    for t in [token("a", 0), token("b", 0), token("a", 1)] {
        tx.unbounded_send(Ok(t)).unwrap();
        s.next().await.unwrap().unwrap();
    }
    assert_eq!(offsets(&store, "a"), vec![2]);
    assert_eq!(offsets(&store, "b"), Vec::<u64>::new());
    drop(tx);
    assert!(s.next().await.is_none());
    assert_eq!(offsets(&store, "b"), vec![1]);
    assert_eq!(
        offsets(&store, "a"),
        vec![2],
        "nothing new for a at the end"
    );
}

#[tokio::test(start_paused = true)]
async fn interval_starts_at_the_first_unsaved_token() {
    let store = MemoryCheckpointStore::new();
    let (tx, rx) = channel();
    let mut s = tokio_test::task::spawn(rx.checkpoint_batched(
        1000,
        Duration::from_secs(10),
        store.clone(),
    ));

    // Nothing arrives for a long time: no save, no timer running.
    assert_pending!(s.poll_next());
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_pending!(s.poll_next());
    assert_eq!(store.save_calls(), 0);

    // First token at t0 starts the clock; a second one at t0+6s does not.
    tx.unbounded_send(Ok(token("p", 0))).unwrap();
    assert!(assert_ready!(s.poll_next()).is_some());
    assert_pending!(s.poll_next());
    tokio::time::advance(Duration::from_secs(6)).await;
    tx.unbounded_send(Ok(token("p", 1))).unwrap();
    assert!(assert_ready!(s.poll_next()).is_some());
    assert_pending!(s.poll_next());
    tokio::time::advance(Duration::from_millis(3999)).await;
    assert_pending!(s.poll_next());
    assert_eq!(store.save_calls(), 0, "saved before the interval elapsed");
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(s.is_woken());
    assert_pending!(s.poll_next());
    assert_eq!(offsets(&store, "p"), vec![2]);

    // The next token restarts the clock from its own arrival.
    tokio::time::advance(Duration::from_secs(4)).await;
    tx.unbounded_send(Ok(token("p", 2))).unwrap();
    assert!(assert_ready!(s.poll_next()).is_some());
    assert_pending!(s.poll_next());
    tokio::time::advance(Duration::from_millis(9999)).await;
    assert_pending!(s.poll_next());
    assert_eq!(offsets(&store, "p"), vec![2]);
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_pending!(s.poll_next());
    assert_eq!(offsets(&store, "p"), vec![2, 3]);

    // With everything saved, the timer stays off.
    tokio::time::advance(Duration::from_secs(100)).await;
    assert_pending!(s.poll_next());
    assert_eq!(store.save_calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn interval_save_covers_every_partition_in_one_call() {
    let store = MemoryCheckpointStore::new();
    let (tx, rx) = channel();
    let mut s =
        tokio_test::task::spawn(rx.checkpoint_batched(1000, Duration::from_secs(1), store.clone()));
    for t in [token("a", 0), token("b", 0), token("c", 0), token("a", 1)] {
        tx.unbounded_send(Ok(t)).unwrap();
        assert!(assert_ready!(s.poll_next()).is_some());
    }
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_pending!(s.poll_next());
    assert_eq!(store.save_calls(), 1);
    assert_eq!(
        store.positions().into_iter().collect::<Vec<_>>(),
        vec![
            ("a".to_owned(), Position::Offset(2)),
            ("b".to_owned(), Position::Offset(1)),
            ("c".to_owned(), Position::Offset(1)),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn saves_before_passing_an_upstream_error_on_and_goes_on() {
    let store = MemoryCheckpointStore::new();
    let (tx, rx) = channel();
    let mut s = rx.checkpoint_batched(100, Duration::from_secs(3600), store.clone());
    for seq in 0..3 {
        tx.unbounded_send(Ok(token("p", seq))).unwrap();
        s.next().await.unwrap().unwrap();
    }
    tx.unbounded_send(Err(Error::handler("boom"))).unwrap();
    assert_eq!(store.save_calls(), 0);
    let err = s.next().await.unwrap().unwrap_err();
    assert!(matches!(err, Error::Handler(_)), "{err:?}");
    assert_eq!(
        offsets(&store, "p"),
        vec![3],
        "the save must happen before the error is yielded"
    );

    // The stream goes on after the error (upstream did not end).
    tx.unbounded_send(Ok(token("p", 3))).unwrap();
    assert_eq!(s.next().await.unwrap().unwrap().1, 3);
    drop(tx);
    assert!(s.next().await.is_none());
    assert_eq!(offsets(&store, "p"), vec![3, 4]);
}

#[tokio::test(start_paused = true)]
async fn end_waits_for_a_slow_final_save() {
    let store = MemoryCheckpointStore::new();
    store.set_latency(Duration::from_secs(5));
    let (tx, rx) = channel();
    let mut s = tokio_test::task::spawn(rx.checkpoint_batched(
        100,
        Duration::from_secs(3600),
        store.clone(),
    ));
    tx.unbounded_send(Ok(token("p", 0))).unwrap();
    assert!(assert_ready!(s.poll_next()).is_some());
    drop(tx);
    assert_pending!(s.poll_next());
    tokio::time::advance(Duration::from_millis(4999)).await;
    assert_pending!(s.poll_next());
    assert!(store.positions().is_empty());
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(assert_ready!(s.poll_next()).is_none());
    assert_eq!(offsets(&store, "p"), vec![1]);
}

#[tokio::test(start_paused = true)]
async fn out_of_order_tokens_never_save_past_a_gap() {
    let store = MemoryCheckpointStore::new();
    let (tx, rx) = channel();
    let mut s = rx.checkpoint_batched(1, Duration::from_secs(3600), store.clone());
    // seq 0 is still being processed somewhere; 1, 2, 3 arrive first.
    for seq in [1, 2, 3] {
        tx.unbounded_send(Ok(token("p", seq))).unwrap();
        s.next().await.unwrap().unwrap();
    }
    assert!(store.positions().is_empty(), "{:?}", store.saves());
    tx.unbounded_send(Ok(token("p", 0))).unwrap();
    s.next().await.unwrap().unwrap();
    assert_eq!(offsets(&store, "p"), vec![4]);
    tx.unbounded_send(Ok(token("p", 5))).unwrap();
    s.next().await.unwrap().unwrap();
    drop(tx);
    assert!(s.next().await.is_none());
    assert_eq!(offsets(&store, "p"), vec![4], "seq 4 was never seen");
}

#[tokio::test(start_paused = true)]
async fn a_fenced_partition_ends_cleanly_and_the_others_go_on() {
    let store = MemoryCheckpointStore::new();
    store.fence("a");
    let control = PartitionControl::new();
    let (tx, rx) = channel();
    let mut s = rx.checkpoint_batched(2, Duration::from_secs(3600), store.clone());
    let a = |seq| {
        let (seen, t) = token("a", seq);
        (seen, t.with_control(control.clone()))
    };

    tx.unbounded_send(Ok(a(0))).unwrap();
    tx.unbounded_send(Ok(token("b", 0))).unwrap();
    tx.unbounded_send(Ok(a(1))).unwrap(); // triggers a save of "a": fenced
    let mut yielded = Vec::new();
    for _ in 0..3 {
        yielded.push(s.next().await.unwrap().unwrap());
    }
    tx.unbounded_send(Ok(token("b", 1))).unwrap();
    yielded.push(s.next().await.unwrap().unwrap());
    assert!(control.is_fenced(), "the source must be told to stop");

    // Later tokens of "a" are dropped, "b" goes on, the stream ends Ok.
    tx.unbounded_send(Ok(a(2))).unwrap();
    tx.unbounded_send(Ok(token("b", 2))).unwrap();
    drop(tx);
    while let Some(item) = s.next().await {
        yielded.push(item.unwrap());
    }
    assert_eq!(
        yielded,
        vec![
            ("a".into(), 0),
            ("b".into(), 0),
            ("a".into(), 1),
            ("b".into(), 1),
            ("b".into(), 2)
        ]
    );
    assert_eq!(store.position("a"), None);
    assert_eq!(store.position("b"), Some(Position::Offset(3)));
}

#[tokio::test(start_paused = true)]
async fn partitions_saved_with_a_fenced_one_are_saved_again() {
    let store = MemoryCheckpointStore::new();
    let (tx, rx) = channel();
    let mut s =
        tokio_test::task::spawn(rx.checkpoint_batched(1000, Duration::from_secs(1), store.clone()));
    tx.unbounded_send(Ok(token("a", 0))).unwrap();
    tx.unbounded_send(Ok(token("b", 0))).unwrap();
    assert!(assert_ready!(s.poll_next()).is_some());
    assert!(assert_ready!(s.poll_next()).is_some());
    store.fence("a"); // the interval save of {a, b} fails as a whole
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_pending!(s.poll_next());
    assert_eq!(store.position("a"), None);
    assert_eq!(store.position("b"), Some(Position::Offset(1)));
    assert_eq!(store.save_calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_failed_save_is_yielded_and_ends_the_stream() {
    let store = MemoryCheckpointStore::new();
    store.fail_next_saves(1);
    let (tx, rx) = channel();
    let mut s = rx.checkpoint_batched(2, Duration::from_secs(3600), store.clone());
    for seq in 0..3 {
        tx.unbounded_send(Ok(token("p", seq))).unwrap();
    }
    assert_eq!(s.next().await.unwrap().unwrap().1, 0);
    assert_eq!(s.next().await.unwrap().unwrap().1, 1);
    let err = s.next().await.unwrap().unwrap_err();
    assert!(
        matches!(err.as_checkpoint(), Some(CheckpointError::Backend { .. })),
        "{err:?}"
    );
    assert!(s.next().await.is_none());
    assert!(store.positions().is_empty());
}

#[tokio::test(start_paused = true)]
async fn upstream_error_then_failed_flush_yields_both() {
    let store = MemoryCheckpointStore::new();
    let (tx, rx) = channel();
    let mut s = rx.checkpoint_batched(100, Duration::from_secs(3600), store.clone());
    tx.unbounded_send(Ok(token("p", 0))).unwrap();
    s.next().await.unwrap().unwrap();
    store.fail_next_saves(1);
    tx.unbounded_send(Err(Error::handler("boom"))).unwrap();
    assert!(matches!(s.next().await, Some(Err(Error::Handler(_)))));
    assert!(matches!(s.next().await, Some(Err(Error::Checkpoint(_)))));
    assert!(s.next().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn holds_upstream_back_only_when_a_partition_has_n_unsaved_tokens() {
    let store = MemoryCheckpointStore::new();
    store.set_latency(Duration::from_secs(5));
    let (tx, rx) = channel();
    let mut s =
        tokio_test::task::spawn(rx.checkpoint_batched(3, Duration::from_secs(1), store.clone()));
    tx.unbounded_send(Ok(token("p", 0))).unwrap();
    assert_eq!(assert_ready!(s.poll_next()).unwrap().unwrap().1, 0);
    // An interval save starts after 1 s; tokens keep flowing while it runs.
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_pending!(s.poll_next());
    // The save of offset 1 (seq 0) is in flight.
    for seq in 1..10 {
        tx.unbounded_send(Ok(token("p", seq))).unwrap();
    }
    assert_eq!(assert_ready!(s.poll_next()).unwrap().unwrap().1, 1);
    assert_eq!(assert_ready!(s.poll_next()).unwrap().unwrap().1, 2);
    // seq 0..=2 are processed and none durably saved: n = 3 reached, so
    // seq 3 is not pulled until the save in flight completes.
    assert_pending!(s.poll_next());
    assert!(store.positions().is_empty());
    tokio::time::advance(Duration::from_millis(4999)).await;
    assert_pending!(s.poll_next());
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(s.is_woken());
    // Offset 1 is durable; the next save (offset 3) starts and seq 3 flows.
    assert_eq!(assert_ready!(s.poll_next()).unwrap().unwrap().1, 3);
    assert_eq!(offsets(&store, "p"), vec![1]);
    assert_pending!(s.poll_next());
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(assert_ready!(s.poll_next()).unwrap().unwrap().1, 4);
    assert_eq!(offsets(&store, "p"), vec![1, 3]);
    assert_eq!(assert_ready!(s.poll_next()).unwrap().unwrap().1, 5);
    assert_pending!(s.poll_next());
}

#[tokio::test(start_paused = true)]
async fn an_unbounded_interval_means_count_and_end_only() {
    let store = MemoryCheckpointStore::new();
    let (tx, rx) = channel();
    let mut s = rx.checkpoint_batched(2, Duration::MAX, store.clone());
    tx.unbounded_send(Ok(token("p", 0))).unwrap();
    s.next().await.unwrap().unwrap();
    tokio::time::advance(Duration::from_secs(86_400 * 365)).await;
    tx.unbounded_send(Ok(token("p", 1))).unwrap();
    tx.unbounded_send(Ok(token("p", 2))).unwrap();
    drop(tx);
    while s.next().await.is_some() {}
    assert_eq!(offsets(&store, "p"), vec![2, 3]);
}

#[test]
#[should_panic(expected = "n must be at least 1")]
fn n_of_zero_is_refused() {
    let (_tx, rx) = channel();
    let _ = rx.checkpoint_batched(0, Duration::from_secs(1), MemoryCheckpointStore::new());
}

#[test]
#[should_panic(expected = "interval must be greater than zero")]
fn a_zero_interval_is_refused() {
    let (_tx, rx) = channel();
    let _ = rx.checkpoint_batched(1, Duration::ZERO, MemoryCheckpointStore::new());
}

#[tokio::test(start_paused = true)]
async fn a_fenced_save_stops_the_memory_source_reading_that_partition() {
    use futures::TryStreamExt;
    use unistream::source::MemorySource;

    let store = MemoryCheckpointStore::new();
    store.fence("a");
    let source = MemorySource::new([
        ("a", (0..100).collect::<Vec<u32>>()),
        ("b", (0..100).collect()),
    ]);
    let control_a = source.control("a").unwrap();
    let seen: Vec<(String, u32)> = source
        .map_ok(|(record, token)| ((token.partition().to_owned(), record), token))
        .checkpoint_batched(10, Duration::from_secs(3600), store.clone())
        .try_collect()
        .await
        .unwrap();
    assert!(control_a.is_fenced());
    let from_a = seen.iter().filter(|(p, _)| p == "a").count();
    let from_b = seen.iter().filter(|(p, _)| p == "b").count();
    // "a" stops right after its first (fenced) save; "b" is read to the end.
    assert_eq!(from_a, 10, "{seen:?}");
    assert_eq!(from_b, 100);
    assert_eq!(store.position("a"), None);
    assert_eq!(store.position("b"), Some(Position::Offset(100)));
}

#[tokio::test(start_paused = true)]
async fn a_busy_upstream_still_sees_the_interval_fire() {
    // Upstream never returns Pending: the deadline is still looked at
    // regularly (every few tokens), so the interval save happens.
    let store = MemoryCheckpointStore::new();
    let mut seq = 0;
    let busy = futures::stream::poll_fn(move |_| {
        let t = token("p", seq);
        seq += 1;
        std::task::Poll::Ready(Some(Ok::<_, Error>(t)))
    });
    let mut s = Box::pin(busy.checkpoint_batched(1_000_000, Duration::from_secs(1), store.clone()));
    s.next().await.unwrap().unwrap();
    tokio::time::advance(Duration::from_secs(1)).await;
    for _ in 0..100 {
        s.next().await.unwrap().unwrap();
    }
    let saved = offsets(&store, "p");
    assert_eq!(saved.len(), 1, "{saved:?}");
    assert!(saved[0] >= 2 && saved[0] <= 100, "{saved:?}");
}

#[tokio::test(start_paused = true)]
async fn many_partitions_are_each_tracked_and_saved() {
    use futures::TryStreamExt;
    use unistream::source::MemorySource;

    let store = MemoryCheckpointStore::new();
    let partitions: Vec<(String, Vec<u32>)> = (0..40u32)
        .map(|p| (format!("shard-{p}"), (0..p + 1).collect()))
        .collect();
    let count = MemorySource::new(partitions)
        .checkpoint_batched(7, Duration::from_secs(3600), store.clone())
        .try_fold(0usize, |n, _| async move { Ok(n + 1) })
        .await
        .unwrap();
    assert_eq!(count, (1..=40).sum::<usize>());
    let saved = store.positions();
    assert_eq!(saved.len(), 40);
    for p in 0..40u64 {
        assert_eq!(saved[&format!("shard-{p}")], Position::Offset(p + 1));
    }
}

#[tokio::test(start_paused = true)]
async fn a_dropped_token_holds_the_partition_back_but_not_the_others() {
    let store = MemoryCheckpointStore::new();
    let (tx, rx) = channel();
    let mut s = rx.checkpoint_batched(2, Duration::from_secs(1), store.clone());
    // seq 1 of "a" never arrives (filtered out upstream).
    for t in [
        token("a", 0),
        token("a", 2),
        token("a", 3),
        token("b", 0),
        token("b", 1),
    ] {
        tx.unbounded_send(Ok(t)).unwrap();
    }
    drop(tx);
    while let Some(item) = s.next().await {
        item.unwrap();
    }
    assert_eq!(offsets(&store, "a"), vec![1]);
    assert_eq!(store.position("b"), Some(Position::Offset(2)));
}
