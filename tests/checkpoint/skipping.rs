//! Skipping records without losing checkpoints: `try_filter_checkpointed`
//! keeps a skipped record's token flowing to `checkpoint_batched`, whose
//! saves then include the skipped records' positions; and when the input
//! ends with tokens held back behind one that never arrived (the plain
//! `try_filter` case), `checkpoint_batched` logs a warning naming the count
//! and the partitions, lists them in `held_back()`, and with
//! `fail_on_held_back()` ends with `CheckpointError::HeldBack`.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{future, stream, StreamExt, TryStreamExt};
use unistream::checkpoint::{
    CheckpointError, CheckpointStreamExt, CheckpointToken, HeldBackTokens, MemoryCheckpointStore,
    Position,
};
use unistream::source::MemorySource;
use unistream::Error;

const HOUR: Duration = Duration::from_secs(3600);

/// Records 0..10 in "p0" and 0..4 in "p1"; record `i` is at `Offset(i + 1)`.
fn source() -> MemorySource<u32> {
    MemorySource::new([
        ("p0", (0..10).collect::<Vec<_>>()),
        ("p1", (0..4).collect()),
    ])
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

fn odd(item: &(u32, CheckpointToken)) -> future::Ready<bool> {
    future::ready(item.0 % 2 == 1)
}

fn held(partition: &str, tokens: usize, missing_seq: u64) -> HeldBackTokens {
    HeldBackTokens {
        partition: partition.to_string(),
        tokens,
        missing_seq,
    }
}

/// Log lines written by `tracing` while the guard lives (this thread only).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn start(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn skipped_records_keep_their_tokens_and_their_positions_are_saved() {
    let store = MemoryCheckpointStore::new();
    let log = Captured::default();
    let _guard = log.start();
    let mut handled = Vec::new();
    let mut stream = source()
        .try_filter_checkpointed(odd)
        .map_ok(|(record, token)| {
            if let Some(record) = record {
                handled.push((token.partition().to_string(), record));
            }
            token
        })
        .checkpoint_batched(3, HOUR, store.clone());
    (&mut stream).try_collect::<()>().await.unwrap();
    assert!(stream.held_back().is_empty());
    drop(stream);

    // Every third token saves, skipped or not, and the end saves the rest:
    // offsets 3 and 9 are those of skipped records (2 and 8).
    assert_eq!(offsets(&store, "p0"), vec![3, 6, 9, 10]);
    assert_eq!(offsets(&store, "p1"), vec![3, 4]);
    let kept: Vec<_> = handled
        .iter()
        .filter(|(p, _)| p == "p0")
        .map(|(_, r)| *r)
        .collect();
    assert_eq!(kept, vec![1, 3, 5, 7, 9]);
    assert_eq!(handled.len(), 7);
    assert!(!log.text().contains("held back"), "{}", log.text());
}

#[tokio::test]
async fn try_filter_checkpointed_yields_one_item_per_input_and_passes_errors_in_place() {
    let token = |seq| CheckpointToken::new("p", Position::Offset(seq + 1), seq);
    let items: Vec<Result<(u32, CheckpointToken), Error>> = vec![
        Ok((0, token(0))),
        Ok((1, token(1))),
        Err(Error::handler("upstream")),
        Ok((2, token(2))),
    ];
    let out: Vec<_> = stream::iter(items)
        .try_filter_checkpointed(|(x, _)| future::ready(*x != 1))
        .map(|item| item.map(|(value, token)| (value, token.seq())))
        .collect()
        .await;
    assert_eq!(out.len(), 4);
    assert_eq!(out[0].as_ref().unwrap(), &(Some(0), 0));
    assert_eq!(out[1].as_ref().unwrap(), &(None, 1));
    assert!(matches!(out[2], Err(Error::Handler(_))), "{:?}", out[2]);
    assert_eq!(out[3].as_ref().unwrap(), &(Some(2), 2));
}

#[tokio::test]
async fn plain_try_filter_ends_ok_but_warns_and_lists_the_held_back_tokens() {
    let store = MemoryCheckpointStore::new();
    let log = Captured::default();
    let _guard = log.start();
    // The obvious pipeline: record 0 of each partition is filtered out with
    // its token, so nothing behind it can ever be saved.
    let mut stream = source()
        .try_filter(odd)
        .map_ok(|(_, token)| token)
        .checkpoint_batched(3, HOUR, store.clone());
    (&mut stream).try_collect::<()>().await.unwrap();

    assert!(store.saves().is_empty(), "{:?}", store.saves());
    assert_eq!(stream.held_back(), vec![held("p0", 5, 0), held("p1", 2, 0)]);
    let text = log.text();
    assert!(text.contains("WARN"), "{text}");
    assert!(text.contains("held back"), "{text}");
    assert!(text.contains("tokens=7"), "{text}");
    assert!(
        text.contains("p0: 5 token(s) behind seq 0, p1: 2 token(s) behind seq 0"),
        "{text}"
    );
}

#[tokio::test]
async fn fail_on_held_back_saves_what_it_can_then_fails_with_the_partitions() {
    let store = MemoryCheckpointStore::new();
    // Record 4 of "p0" is dropped with its token; "p1" is complete.
    let mut stream = source()
        .try_filter(|(record, token)| future::ready(!(token.partition() == "p0" && *record == 4)))
        .map_ok(|(_, token)| token)
        .checkpoint_batched(100, HOUR, store.clone())
        .fail_on_held_back();
    let mut results = Vec::new();
    while let Some(item) = stream.next().await {
        results.push(item);
    }
    assert_eq!(results.len(), 14, "13 tokens, then the error");
    let (last, tokens) = results.split_last().unwrap();
    assert!(tokens.iter().all(Result::is_ok));
    match last {
        Err(Error::Checkpoint(CheckpointError::HeldBack { partitions })) => {
            assert_eq!(partitions, &vec![held("p0", 5, 4)]);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(last
        .as_ref()
        .unwrap_err()
        .to_string()
        .contains("p0: 5 token(s) behind seq 4"));
    // The final save came first: up to the missing record, and all of "p1".
    assert_eq!(store.position("p0"), Some(Position::Offset(4)));
    assert_eq!(store.position("p1"), Some(Position::Offset(4)));
    assert!(stream.next().await.is_none());
}
