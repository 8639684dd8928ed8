//! `FileSource`: reading what `FileSink` wrote, byte-offset tokens, resuming
//! by seeking, corrupt lines, partial last lines in both modes.

use std::io::Write;
use std::time::Duration;

use futures::{SinkExt, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use unistream::checkpoint::{CheckpointStore, JsonFileCheckpointStore, Position};
use unistream::sink::{FileSink, MemorySink};
use unistream::source::FileSource;
use unistream::{CheckpointToken, DeadLetter, Error, RawCodec};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u64,
    note: String,
}

fn order(id: u64) -> Order {
    Order {
        id,
        note: format!("order number {id}"),
    }
}

fn append(path: &std::path::Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
}

/// `1`, a line that does not decode, `3`, read with a dead-letter sink
/// whose first write fails.
fn source_with_a_failing_dead_letter_sink(dir: &std::path::Path) -> FileSource<u32> {
    let path = dir.join("x.jsonl");
    append(&path, b"1\nnope\n3\n");
    let dead = MemorySink::<DeadLetter<u32>>::new();
    dead.handle().fail_next(1);
    FileSource::<u32>::new(&path).dead_letters(dead)
}

#[tokio::test]
async fn reads_back_what_file_sink_wrote_with_byte_offset_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orders.jsonl");
    let mut sink = FileSink::open(&path).await.unwrap();
    for batch in 0..10u64 {
        sink.send((batch * 100..batch * 100 + 100).map(order).collect())
            .await
            .unwrap();
    }
    sink.close().await.unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let line_ends: Vec<u64> = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .map(|(i, _)| i as u64 + 1)
        .collect();

    // A small block size makes lines straddle block boundaries.
    let items: Vec<(Order, CheckpointToken)> = FileSource::new(&path)
        .chunk_bytes(4096)
        .stream()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(items.len(), 1000);
    for (i, (record, token)) in items.iter().enumerate() {
        assert_eq!(record, &order(i as u64));
        assert_eq!(token.position(), &Position::Offset(line_ends[i]));
        assert_eq!(token.seq(), i as u64);
        assert_eq!(token.partition(), path.to_string_lossy());
    }
}

#[tokio::test]
async fn resuming_seeks_past_the_checkpoint_without_reading_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orders.jsonl");
    // Bytes before the checkpoint are not JSON: if the source read them,
    // they would reach the dead-letter sink.
    let garbage = b"not json at all\n{broken\n".repeat(1000);
    append(&path, &garbage);
    append(
        &path,
        b"{\"id\":1,\"note\":\"a\"}\n{\"id\":2,\"note\":\"b\"}\n",
    );
    let store = JsonFileCheckpointStore::new(dir.path().join("cp.json"));
    let source = FileSource::<Order>::new(&path);
    store
        .save(&source.partition(), &Position::Offset(garbage.len() as u64))
        .await
        .unwrap();

    let dead = MemorySink::<DeadLetter<Order>>::new();
    let dead_handle = dead.handle();
    let items: Vec<(Order, CheckpointToken)> = source
        .resume_from(store)
        .dead_letters(dead)
        .chunk_bytes(4096)
        .stream()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        items.iter().map(|(o, _)| o.id).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(items[0].1.seq(), 0, "seq restarts at 0 on every run");
    assert_eq!(dead_handle.record_count(), 0);
}

#[tokio::test]
async fn a_checkpoint_that_is_not_a_line_end_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.jsonl");
    append(&path, b"1\n22\n333\n");
    for bad in [1u64, 3, 100] {
        let mut s = FileSource::<u32>::new(&path)
            .start_after(Position::Offset(bad))
            .stream();
        let err = s.next().await.unwrap().unwrap_err();
        assert!(
            matches!(&err, Error::Io { path: p, .. } if p == &path),
            "offset {bad}: {err:?}"
        );
        assert!(s.next().await.is_none());
    }
    let rest: Vec<(u32, _)> = FileSource::new(&path)
        .start_after(Position::Offset(5))
        .stream()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].0, 333);
    let err = FileSource::<u32>::new(&path)
        .start_after(Position::sequence("5"))
        .stream()
        .next()
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
}

#[tokio::test]
async fn a_corrupt_line_in_the_middle_is_dead_lettered_and_reading_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orders.jsonl");
    append(&path, b"{\"id\":1,\"note\":\"a\"}\n");
    let corrupt: &[u8] = b"{\"id\":2,\"no\xffte\":\x00 oops";
    append(&path, corrupt);
    append(&path, b"\n{\"id\":3,\"note\":\"c\"}\n");
    let dead = MemorySink::<DeadLetter<Order>>::new();
    let dead_handle = dead.handle();
    let items: Vec<(Order, CheckpointToken)> = FileSource::new(&path)
        .dead_letters(dead)
        .stream()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        items.iter().map(|(o, _)| o.id).collect::<Vec<_>>(),
        vec![1, 3]
    );
    // The next record's token covers the corrupt line.
    let file_len = std::fs::metadata(&path).unwrap().len();
    assert_eq!(items[1].1.position(), &Position::Offset(file_len));
    assert_eq!(items[1].1.seq(), 1);

    let letters = dead_handle.records();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].raw.as_deref(), Some(corrupt));
    assert_eq!(letters[0].record, None);
    assert!(letters[0].reason.contains("json"), "{}", letters[0].reason);
    let origin = letters[0].origin.as_deref().unwrap();
    assert!(origin.ends_with("offset 20"), "{origin}");
}

#[tokio::test]
async fn without_a_dead_letter_sink_a_corrupt_line_is_an_error_item_and_reading_can_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.jsonl");
    append(&path, b"1\nnope\n3\n");
    let items: Vec<Result<u32, String>> = FileSource::<u32>::new(&path)
        .stream()
        .map(|r| {
            r.map(|(v, _)| v)
                .map_err(|e| unistream::ErrorChain(&e).to_string())
        })
        .collect()
        .await;
    assert_eq!(items.len(), 3);
    assert_eq!(items[0], Ok(1));
    let err = items[1].as_ref().unwrap_err();
    assert!(err.contains("x.jsonl offset 2"), "{err}");
    assert_eq!(items[2], Ok(3));
}

#[tokio::test]
async fn a_failing_dead_letter_sink_fails_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let items: Vec<Result<u32, Error>> = source_with_a_failing_dead_letter_sink(dir.path())
        .stream()
        .map(|r| r.map(|(v, _)| v))
        .collect()
        .await;
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(items[0].as_ref().unwrap(), &1);
    assert!(matches!(items[1], Err(Error::DeadLetter(_))), "{items:?}");
}

#[tokio::test]
async fn read_to_end_stops_cleanly_before_a_truncated_last_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.jsonl");
    append(&path, b"{\"id\":1,\"note\":\"a\"}\n{\"id\":2,\"no");
    let dead = MemorySink::<DeadLetter<Order>>::new();
    let dead_handle = dead.handle();
    let items: Vec<(Order, CheckpointToken)> = FileSource::new(&path)
        .dead_letters(dead)
        .stream()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].1.position(), &Position::Offset(20));
    assert_eq!(
        dead_handle.record_count(),
        0,
        "a partial line is not corrupt"
    );

    // Once the writer finishes the line, a resumed read gets it.
    append(&path, b"te\":\"b\"}\n");
    let rest: Vec<(Order, CheckpointToken)> = FileSource::new(&path)
        .start_after(items[0].1.position().clone())
        .stream()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].0.id, 2);
}

#[tokio::test(start_paused = true)]
async fn follow_mode_waits_for_the_rest_of_a_truncated_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.jsonl");
    append(&path, b"1\n2\n{\"id\":3,");
    let mut s = FileSource::<serde_json::Value>::new(&path)
        .follow(Duration::from_millis(100))
        .stream();
    assert_eq!(s.next().await.unwrap().unwrap().0, serde_json::json!(1));
    assert_eq!(s.next().await.unwrap().unwrap().0, serde_json::json!(2));
    // The partial line is not emitted, however long we wait (virtual time:
    // the source polls the file every 100 ms meanwhile).
    let waited = tokio::time::timeout(Duration::from_secs(3), s.next()).await;
    assert!(waited.is_err(), "emitted {waited:?}");

    append(&path, b"\"note\":\"c\"}\n4\n");
    let (value, token) = s.next().await.unwrap().unwrap();
    assert_eq!(value, serde_json::json!({"id": 3, "note": "c"}));
    assert_eq!(token.position(), &Position::Offset(24));
    assert_eq!(token.seq(), 2);
    assert_eq!(s.next().await.unwrap().unwrap().0, serde_json::json!(4));
}

#[tokio::test]
async fn a_custom_codec_reads_raw_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.log");
    append(&path, b"plain text\nmore text\n");
    let lines: Vec<String> = FileSource::<String>::new(&path)
        .with_codec(RawCodec)
        .stream()
        .map_ok(|(line, _)| line)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(lines, vec!["plain text", "more text"]);
}

#[tokio::test]
async fn a_missing_file_is_an_io_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.jsonl");
    let err = FileSource::<u32>::new(&path)
        .stream()
        .next()
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&err, Error::Io { op: "open", path: p, .. } if p == &path),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_line_longer_than_the_limit_fails_instead_of_growing_forever() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.jsonl");
    append(&path, b"1\n");
    append(&path, &vec![b'7'; 20_000]);
    let items: Vec<Result<u64, Error>> = FileSource::<u64>::new(&path)
        .chunk_bytes(4096)
        .max_line_bytes(10_000)
        .stream()
        .map(|r| r.map(|(v, _)| v))
        .collect()
        .await;
    assert_eq!(items.len(), 2, "{items:?}");
    assert!(matches!(items[1], Err(Error::Io { .. })), "{items:?}");
}

#[tokio::test]
async fn the_stream_is_terminated_once_it_ended_and_only_then() {
    use futures::stream::FusedStream;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.jsonl");
    append(&path, b"1\n2\n");
    let mut stream = FileSource::<u32>::new(&path).stream();
    assert!(!stream.is_terminated());
    assert_eq!(stream.try_next().await.unwrap().map(|(v, _)| v), Some(1));
    assert_eq!(stream.try_next().await.unwrap().map(|(v, _)| v), Some(2));
    assert!(!stream.is_terminated(), "the end is known only once polled");
    assert!(stream.try_next().await.unwrap().is_none());
    assert!(stream.is_terminated());
    // Polling a terminated stream again is allowed and yields nothing.
    assert!(stream.try_next().await.unwrap().is_none());
}

#[tokio::test]
async fn a_stream_ended_by_an_error_is_terminated_after_it() {
    use futures::stream::FusedStream;

    let dir = tempfile::tempdir().unwrap();
    let mut stream = source_with_a_failing_dead_letter_sink(dir.path()).stream();
    assert_eq!(stream.try_next().await.unwrap().map(|(v, _)| v), Some(1));
    assert!(matches!(stream.try_next().await, Err(Error::DeadLetter(_))));
    assert!(!stream.is_terminated());
    assert!(stream.try_next().await.unwrap().is_none());
    assert!(stream.is_terminated());
}

#[tokio::test]
async fn file_sink_creates_missing_parent_directories() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/dead/orders.dead.jsonl");
    let mut sink = FileSink::<Order>::open(&path).await.unwrap();
    sink.send(vec![order(1), order(2)]).await.unwrap();
    sink.close().await.unwrap();
    let read: Vec<Order> = FileSource::new(&path)
        .stream()
        .map_ok(|(record, _)| record)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(read, vec![order(1), order(2)]);
}
