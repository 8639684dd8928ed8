//! `checkpoint_batched` with a memory store: saves counted as the store
//! saw them, failures, the tokens held back behind a missing one.

use std::time::Duration;

use futures::{stream, StreamExt};
use unistream::checkpoint::{
    CheckpointStreamExt, CheckpointToken, MemoryCheckpointStore, Position,
};
use unistream::observe::names::*;
use unistream::Error;

use crate::recorder::{run, TestRecorder};

fn token(partition: &str, seq: u64) -> Result<((), CheckpointToken), Error> {
    Ok((
        (),
        CheckpointToken::new(partition, Position::Offset(seq + 1), seq),
    ))
}

const STORE: [(&str, &str); 1] = [(LABEL_STORE, "MemoryCheckpointStore")];

#[test]
fn every_save_is_counted_with_its_latency() {
    let recorder = TestRecorder::default();
    let store = MemoryCheckpointStore::new();
    run(&recorder, async {
        let tokens = stream::iter((0..10).map(|seq| token("p", seq)));
        let results: Vec<_> = tokens
            .checkpoint_batched(3, Duration::from_secs(3600), store.clone())
            .collect()
            .await;
        assert!(results.iter().all(Result::is_ok));
    });
    // At 3, 6, 9 and at the end.
    assert_eq!(store.save_calls(), 4);
    assert_eq!(recorder.counter(CHECKPOINT_SAVES, &STORE), 4);
    assert_eq!(recorder.histogram(CHECKPOINT_SAVE_SECONDS, &STORE).len(), 4);
    assert_eq!(recorder.counter(CHECKPOINT_SAVE_FAILURES, &STORE), 0);
    assert_eq!(
        recorder.gauge(CHECKPOINT_HELD_BACK_TOKENS, &STORE),
        Some(0.0)
    );
}

#[test]
fn a_failed_save_is_counted() {
    let recorder = TestRecorder::default();
    let store = MemoryCheckpointStore::new();
    store.fail_next_saves(1);
    let results: Vec<_> = run(&recorder, async {
        stream::iter((0..3).map(|seq| token("p", seq)))
            .checkpoint_batched(3, Duration::from_secs(3600), store.clone())
            .collect()
            .await
    });
    assert!(
        matches!(results.last(), Some(Err(Error::Checkpoint(_)))),
        "{results:?}"
    );
    assert_eq!(recorder.counter(CHECKPOINT_SAVE_FAILURES, &STORE), 1);
    assert_eq!(recorder.counter(CHECKPOINT_SAVES, &STORE), 0);
}

#[test]
fn tokens_held_back_behind_a_missing_one_show_in_the_gauge() {
    let recorder = TestRecorder::default();
    let store = MemoryCheckpointStore::new();
    run(&recorder, async {
        // Token 1 never comes: 2, 3 and 4 wait behind it.
        let tokens = stream::iter([0, 2, 3, 4].map(|seq| token("p", seq)));
        let results: Vec<_> = tokens
            .checkpoint_batched(100, Duration::from_secs(3600), store.clone())
            .collect()
            .await;
        assert_eq!(results.len(), 4);
    });
    assert_eq!(store.position("p"), Some(Position::Offset(1)));
    assert_eq!(recorder.counter(CHECKPOINT_SAVES, &STORE), 1);
    assert_eq!(
        recorder.gauge(CHECKPOINT_HELD_BACK_TOKENS, &STORE),
        Some(3.0)
    );
}
