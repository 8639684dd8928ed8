//! Per-record retry and dead-lettering: retries follow the policy's backoff
//! (paused time), a record given up on is dead-lettered before its token is
//! released, and a failing dead-letter sink fails the stream without
//! releasing the token.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use tokio::time::Instant;
use unistream::checkpoint::{CheckpointStreamExt, MemoryCheckpointStore, Position};
use unistream::process::{ProcessStreamExt, Processed};
use unistream::sink::MemorySink;
use unistream::source::MemorySource;
use unistream::{DeadLetter, Error};

use crate::support::retry::deterministic;

#[tokio::test(start_paused = true)]
async fn a_failing_handler_is_retried_after_the_policy_backoff() {
    let start = Instant::now();
    let attempts: Arc<Mutex<Vec<(u32, Duration)>>> = Arc::default();
    let log = attempts.clone();
    let outcomes: Vec<Processed<u32>> = MemorySource::new([("p", vec![7u32, 8])])
        .retry_each(deterministic(5), move |record| {
            let log = log.clone();
            async move {
                let mut log = log.lock().unwrap();
                log.push((record, start.elapsed()));
                // Record 7 fails twice, then succeeds.
                if record == 7 && log.iter().filter(|(r, _)| *r == 7).count() < 3 {
                    Err(Error::handler("not yet"))
                } else {
                    Ok(())
                }
            }
        })
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        attempts.lock().unwrap().clone(),
        vec![
            (7, Duration::ZERO),
            (7, Duration::from_millis(100)),
            (7, Duration::from_millis(300)),
            (8, Duration::from_millis(300)),
        ]
    );
    assert!(outcomes.iter().all(|o| matches!(o, Processed::Done(_))));
    let seqs: Vec<u64> = outcomes.iter().map(|o| o.token().seq()).collect();
    assert_eq!(seqs, vec![0, 1]);
}

#[tokio::test(start_paused = true)]
async fn a_record_that_exhausts_its_attempts_is_dead_lettered_before_its_token_is_released() {
    let dead = MemorySink::<DeadLetter<i32>>::new();
    let dead_handle = dead.handle();
    let start = Instant::now();
    let mut tokens = Box::pin(
        MemorySource::new([("p", vec![1, -2, 3])])
            .retry_each(deterministic(3), |n: i32| async move {
                if n < 0 {
                    Err(Error::handler(format!("cannot handle {n}")))
                } else {
                    Ok(())
                }
            })
            .dead_letter(dead),
    );
    let first = tokens.next().await.unwrap().unwrap();
    assert_eq!(first.position(), &Position::Offset(1));
    assert_eq!(dead_handle.record_count(), 0);

    let second = tokens.next().await.unwrap().unwrap();
    assert_eq!(second.position(), &Position::Offset(2));
    // Three attempts: at 0, 100 ms and 300 ms.
    assert_eq!(start.elapsed(), Duration::from_millis(300));
    // When the token of the failed record is released, its dead letter is
    // already delivered.
    let letters = dead_handle.records();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].record, Some(-2));
    assert_eq!(letters[0].attempts, 3);
    assert!(
        letters[0].reason.contains("cannot handle -2"),
        "{}",
        letters[0].reason
    );
    assert_eq!(letters[0].origin.as_deref(), Some("p offset 2"));

    let third = tokens.next().await.unwrap().unwrap();
    assert_eq!(third.position(), &Position::Offset(3));
    assert!(tokens.next().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_failing_dead_letter_sink_fails_the_stream_and_the_token_is_never_checkpointed() {
    let dead = MemorySink::<DeadLetter<i32>>::new();
    let dead_handle = dead.handle();
    dead_handle.fail_next(1);
    let store = MemoryCheckpointStore::new();
    let results: Vec<Result<Position, Error>> = MemorySource::new([("p", vec![1, 2, -3, 4])])
        .retry_each(deterministic(2), |n: i32| async move {
            if n < 0 {
                Err(Error::handler("negative"))
            } else {
                Ok(())
            }
        })
        .dead_letter(dead)
        .map_ok(|token| (token.position().clone(), token))
        .checkpoint_batched(100, Duration::from_secs(3600), store.clone())
        .collect()
        .await;
    assert_eq!(results.len(), 3, "{results:?}");
    assert_eq!(results[0].as_ref().unwrap(), &Position::Offset(1));
    assert_eq!(results[1].as_ref().unwrap(), &Position::Offset(2));
    match &results[2] {
        Err(Error::DeadLetter(inner)) => {
            assert!(matches!(**inner, Error::Target { .. }), "{inner:?}")
        }
        other => panic!("unexpected {other:?}"),
    }
    // Saved before the error was passed on, and not past the failed record.
    assert_eq!(store.position("p"), Some(Position::Offset(2)));
    assert_eq!(dead_handle.record_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn upstream_errors_pass_through_retry_and_dead_letter() {
    let dead = MemorySink::<DeadLetter<u32>>::new();
    let items: Vec<Result<u64, Error>> = futures::stream::iter(vec![
        Ok((
            1u32,
            unistream::CheckpointToken::new("p", Position::Offset(1), 0),
        )),
        Err(Error::handler("source broke")),
        Ok((
            2u32,
            unistream::CheckpointToken::new("p", Position::Offset(2), 1),
        )),
    ])
    .retry_each(deterministic(1), |_| async { Ok::<_, Error>(()) })
    .dead_letter(dead)
    .map_ok(|t| t.seq())
    .collect()
    .await;
    assert_eq!(items.len(), 3);
    assert_eq!(items[0].as_ref().unwrap(), &0);
    assert!(matches!(items[1], Err(Error::Handler(_))));
    assert_eq!(items[2].as_ref().unwrap(), &1);
}
