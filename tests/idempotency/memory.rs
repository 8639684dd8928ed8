//! The rules on [`MemoryIdempotencyStore`], on paused time.

use std::time::Duration;

use unistream::idempotency::{
    idempotency_key, Idempotency, IdempotencyError, MemoryIdempotencyStore, Once,
};
use unistream::{CheckpointToken, Error, Position};

use super::contract;

const EXPIRY: Duration = Duration::from_secs(30);

fn once() -> Idempotency<MemoryIdempotencyStore> {
    Idempotency::new(MemoryIdempotencyStore::new()).in_progress_expiry(EXPIRY)
}

#[tokio::test(start_paused = true)]
async fn concurrent_duplicates_run_once() {
    contract::concurrent_duplicates_run_once(once(), "k", 20, Duration::from_secs(5)).await;
}

#[tokio::test(start_paused = true)]
async fn a_failure_frees_the_key() {
    contract::a_failure_frees_the_key(once(), "k").await;
}

#[tokio::test(start_paused = true)]
async fn a_crashed_run_is_run_again_only_after_its_claim_expires() {
    let waited =
        contract::a_crashed_run_is_run_again_after_its_claim_expires(once(), "k", EXPIRY).await;
    assert!(waited <= EXPIRY + Duration::from_secs(4), "{waited:?}");
}

#[tokio::test(start_paused = true)]
async fn a_long_run_keeps_its_claim() {
    contract::a_long_run_keeps_its_claim(once(), "k", 4 * EXPIRY).await;
}

#[tokio::test(start_paused = true)]
async fn results_are_kept_for_keep_for_then_the_key_runs_again() {
    let once = once().keep_for(Duration::from_secs(3600));
    assert_eq!(
        once.run("k", || async { Ok::<_, Error>(1u8) })
            .await
            .unwrap(),
        Once::Ran(1)
    );
    tokio::time::sleep(Duration::from_secs(3599)).await;
    assert_eq!(
        once.run("k", || async { Ok::<_, Error>(2u8) })
            .await
            .unwrap(),
        Once::AlreadyDone(1)
    );
    assert_eq!(once.store().completed(), 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        once.run("k", || async { Ok::<_, Error>(3u8) })
            .await
            .unwrap(),
        Once::Ran(3)
    );
}

#[tokio::test(start_paused = true)]
async fn a_stored_result_of_another_type_is_a_typed_error() {
    let once = once();
    once.run("k", || async { Ok::<_, Error>("text".to_owned()) })
        .await
        .unwrap();
    let err = once
        .run("k", || async { Ok::<_, Error>(1u64) })
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Idempotency(IdempotencyError::Corrupt { ref key, .. }) if key == "k"),
        "{err:?}"
    );
}

#[test]
fn the_default_key_names_partition_and_position() {
    let token = CheckpointToken::new("shardId-000000000001", Position::sequence("49590"), 0);
    assert_eq!(
        idempotency_key(&token),
        "shardId-000000000001:sequence 49590"
    );
    let sub = CheckpointToken::new(
        "shardId-000000000001",
        Position::Sequence {
            sequence: "49590".into(),
            sub: 3,
        },
        1,
    );
    assert_ne!(idempotency_key(&token), idempotency_key(&sub));
}
