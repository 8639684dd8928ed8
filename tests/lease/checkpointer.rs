//! What `checkpoint_batched` does for a lease drain: it saves a partition
//! at once when the partition's control asks, and tells the control how
//! many tokens each completed save covers; a partition taken again (a new
//! control, tokens from 0 again) is checkpointed from its first token, and
//! late tokens of its old lease are dropped.

use std::time::Duration;

use futures::{SinkExt, StreamExt, TryStreamExt};
use unistream::checkpoint::{
    CheckpointStreamExt, CheckpointToken, FencingToken, MemoryCheckpointStore, PartitionControl,
    Position,
};
use unistream::Error;

#[tokio::test(start_paused = true)]
async fn a_checkpoint_request_saves_at_once_and_durable_tokens_follow_each_save() {
    let store = MemoryCheckpointStore::new();
    let root = PartitionControl::new();
    let (a, b) = (root.sibling(), root.sibling());
    let (mut tx, rx) = futures::channel::mpsc::channel::<Result<CheckpointToken, Error>>(16);
    // n and interval far away: only a request (or the end) saves.
    let checkpointed = tokio::spawn(
        rx.checkpoint_batched(1_000, Duration::from_secs(3_600), store.clone())
            .try_collect::<()>(),
    );
    for seq in 0..3u64 {
        let token =
            CheckpointToken::new("a", Position::Offset(seq + 1), seq).with_control(a.clone());
        tx.send(Ok(token)).await.unwrap();
    }
    let token = CheckpointToken::new("b", Position::Offset(1), 0).with_control(b.clone());
    tx.send(Ok(token)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(store.position("a"), None, "nothing due yet");
    assert_eq!(a.durable_tokens(), None);

    a.request_checkpoint();
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(
        store.position("a"),
        Some(Position::Offset(3)),
        "saved on request"
    );
    assert_eq!(a.durable_tokens(), Some(3));
    assert_eq!(
        b.durable_tokens(),
        Some(1),
        "the others with unsaved progress too"
    );

    // A later token of a, then the end: the final save moves it on.
    let token = CheckpointToken::new("a", Position::Offset(4), 3).with_control(a.clone());
    tx.send(Ok(token)).await.unwrap();
    drop(tx);
    checkpointed.await.unwrap().unwrap();
    assert_eq!(a.durable_tokens(), Some(4));
    assert_eq!(store.position("a"), Some(Position::Offset(4)));
}

#[tokio::test(start_paused = true)]
async fn a_request_while_upstream_keeps_yielding_is_seen_within_32_tokens() {
    let store = MemoryCheckpointStore::new();
    let control = PartitionControl::new();
    let tokens = futures::stream::iter((0..200u64).map(|seq| {
        Ok::<_, Error>(
            CheckpointToken::new("p", Position::Offset(seq + 1), seq).with_control(control.clone()),
        )
    }));
    let mut stream =
        Box::pin(tokens.checkpoint_batched(10_000, Duration::from_secs(3_600), store.clone()));
    for _ in 0..50 {
        stream.next().await.unwrap().unwrap();
    }
    control.request_checkpoint();
    for _ in 0..33 {
        stream.next().await.unwrap().unwrap();
    }
    let saved = store.position("p");
    assert!(
        matches!(saved, Some(Position::Offset(o)) if (51..=83).contains(&o)),
        "{saved:?}"
    );
}

/// One checkpointer over a worker's leases sees a partition taken again:
/// a new control, tokens from 0 again, perhaps late tokens of the old
/// lease. Returns the store and the new control.
async fn read_again(
    old_ends: impl FnOnce(&PartitionControl),
) -> (MemoryCheckpointStore, PartitionControl, PartitionControl) {
    let store = MemoryCheckpointStore::new();
    let root = PartitionControl::new();
    let first = root.leased_sibling(FencingToken::new("p", "w", 1));
    let again = root.leased_sibling(FencingToken::new("p", "w", 2));
    let (mut tx, rx) = futures::channel::mpsc::channel::<Result<CheckpointToken, Error>>(16);
    let checkpointed = tokio::spawn(
        rx.checkpoint_batched(1_000, Duration::from_secs(3_600), store.clone())
            .try_collect::<()>(),
    );
    let token = |control: &PartitionControl, offset: u64, seq: u64| {
        Ok(CheckpointToken::new("p", Position::Offset(offset), seq).with_control(control.clone()))
    };
    for seq in 0..4 {
        tx.send(token(&first, 101 + seq, seq)).await.unwrap();
    }
    first.request_checkpoint();
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(first.durable_tokens(), Some(4));
    assert_eq!(store.position("p"), Some(Position::Offset(104)));
    old_ends(&first);
    // The new lease starts at the saved checkpoint.
    for seq in 0..6 {
        tx.send(token(&again, 105 + seq, seq)).await.unwrap();
    }
    // A token of the first lease still in flight when it ended.
    tx.send(token(&first, 105, 4)).await.unwrap();
    drop(tx);
    checkpointed.await.unwrap().unwrap();
    (store, first, again)
}

#[tokio::test(start_paused = true)]
async fn a_partition_read_again_under_a_new_lease_is_checkpointed_from_its_first_token() {
    let (store, first, again) = read_again(PartitionControl::drain).await;
    assert_eq!(store.position("p"), Some(Position::Offset(110)));
    assert_eq!(
        again.durable_tokens(),
        Some(6),
        "a drain of the new lease learns its tokens are saved"
    );
    assert_eq!(
        first.durable_tokens(),
        Some(4),
        "the old lease's count stays"
    );
}

#[tokio::test(start_paused = true)]
async fn a_partition_taken_again_after_its_lease_was_lost_is_checkpointed_again() {
    let (store, _, again) = read_again(PartitionControl::fence).await;
    assert_eq!(store.position("p"), Some(Position::Offset(110)));
    assert_eq!(again.durable_tokens(), Some(6));
}
