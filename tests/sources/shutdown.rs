//! Stopping file-source pipelines: a `Shutdown` signal ends intake at the
//! source, the records in flight finish, the final checkpoint is the last
//! processed record and the next run resumes right after it; a follow-mode
//! batch job ends by itself once caught up.

use std::time::Duration;

use futures::TryStreamExt;
use unistream::checkpoint::{CheckpointStore, CheckpointStreamExt, JsonFileCheckpointStore};
use unistream::source::{FileSource, Shutdown, SourceExt};
use unistream::Position;

fn write_lines(path: &std::path::Path, range: std::ops::Range<u32>) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for i in range {
        writeln!(file, "{i}").unwrap();
    }
}

/// Byte offset just past the line of record `i` in a file of `0\n1\n…`.
fn offset_after(i: u32) -> u64 {
    (0..=i).map(|n| n.to_string().len() as u64 + 1).sum()
}

#[tokio::test]
async fn shutdown_saves_the_last_processed_position_and_the_next_run_resumes_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orders.jsonl");
    write_lines(&path, 0..1000);
    let store = JsonFileCheckpointStore::new(dir.path().join("checkpoints.json"));

    let shutdown = Shutdown::new();
    let stop = shutdown.clone();
    let processed: Vec<u32> = FileSource::<u32>::new(&path)
        .resume_from(store.clone())
        .follow(Duration::from_millis(20)) // never ends by itself
        .stream()
        .until(shutdown.signal())
        .and_then(|(record, token)| {
            if record == 417 {
                stop.trigger();
            }
            async move { Ok((record, token)) }
        })
        .checkpoint_batched(10_000, Duration::from_secs(3600), store.clone())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(processed, (0..=417).collect::<Vec<_>>());
    let partition = path.to_string_lossy().into_owned();
    assert_eq!(
        store.load(&partition).await.unwrap(),
        Some(Position::Offset(offset_after(417)))
    );

    // The next run starts right after the last processed record.
    let rest: Vec<u32> = FileSource::<u32>::new(&path)
        .resume_from(store.clone())
        .stream()
        .map_ok(|(record, _)| record)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(rest, (418..1000).collect::<Vec<_>>());
}

#[tokio::test]
async fn records_in_flight_when_the_signal_comes_are_finished_and_saved() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orders.jsonl");
    write_lines(&path, 0..500);
    let store = JsonFileCheckpointStore::new(dir.path().join("checkpoints.json"));
    let shutdown = Shutdown::new();
    let stop = shutdown.clone();
    let done = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = done.clone();
    FileSource::<u32>::new(&path)
        .follow(Duration::from_millis(20))
        .stream()
        .until(shutdown.signal())
        .map_ok(move |(record, token)| {
            if record == 100 {
                stop.trigger();
            }
            let seen = seen.clone();
            async move {
                // Later records finish first: out of order within the window.
                tokio::time::sleep(Duration::from_millis(u64::from(20 - record % 20))).await;
                seen.lock().unwrap().push(record);
                Ok::<_, unistream::Error>(token)
            }
        })
        .try_buffer_unordered(8)
        .checkpoint_batched(10_000, Duration::from_secs(3600), store.clone())
        .try_collect::<()>()
        .await
        .unwrap();
    let mut done = done.lock().unwrap().clone();
    done.sort_unstable();
    // Everything taken from the source before the signal is processed, and
    // nothing after it: the signal is seen before the next record is taken.
    assert_eq!(done, (0..=100).collect::<Vec<_>>());
    let partition = path.to_string_lossy().into_owned();
    assert_eq!(
        store.load(&partition).await.unwrap(),
        Some(Position::Offset(offset_after(100)))
    );
}

#[tokio::test]
async fn a_follow_mode_batch_job_ends_once_caught_up_with_every_complete_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orders.jsonl");
    write_lines(&path, 0..200);
    let writer_path = path.clone();
    // A writer still appending while the job runs, then a partial line.
    let writer = tokio::spawn(async move {
        for chunk in 0..5u32 {
            tokio::time::sleep(Duration::from_millis(30)).await;
            write_lines(&writer_path, 200 + chunk * 10..210 + chunk * 10);
        }
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&writer_path)
            .unwrap();
        file.write_all(b"99").unwrap(); // no newline: never emitted
    });
    let store = JsonFileCheckpointStore::new(dir.path().join("checkpoints.json"));
    let records: Vec<u32> = FileSource::<u32>::new(&path)
        .stop_when_caught_up(Duration::from_millis(10), Duration::from_secs(2))
        .stream()
        .and_then(|(record, token)| async move { Ok((record, token)) })
        .checkpoint_batched(64, Duration::from_secs(3600), store.clone())
        .try_collect()
        .await
        .unwrap();
    writer.await.unwrap();
    assert_eq!(records, (0..250).collect::<Vec<_>>());
    let partition = path.to_string_lossy().into_owned();
    assert_eq!(
        store.load(&partition).await.unwrap(),
        Some(Position::Offset(offset_after(249)))
    );
}
