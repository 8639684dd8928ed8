//! Quickstart, second half: read the file back with `FileSource`, process
//! every record, checkpoint to a JSON file with `checkpoint_batched`, crash
//! part-way, and resume from the checkpoint.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use unistream::checkpoint::{CheckpointStore, CheckpointStreamExt, JsonFileCheckpointStore};
use unistream::sink::FileSink;
use unistream::source::{FileSource, Shutdown, SourceExt};
use unistream::{DeadLetter, Error, Position};

/// Checkpoint every `N` records (or every second).
const N: usize = 100;
/// The first run "crashes" after this many records.
const CRASH_AFTER: usize = 250;

/// Consumes `file` (JSON lines, e.g. written by the producer half),
/// keeping its checkpoint and dead letters in `work_dir`.
#[allow(dead_code)] // the quickstart's `main` stops on Ctrl-C: `run_until`
pub async fn run(file: &Path, work_dir: &Path) -> Result<(), Error> {
    run_until(file, work_dir, &Shutdown::new()).await
}

/// [`run`], stopping early when `shutdown` is triggered (Ctrl-C): intake
/// stops, the records taken are processed and the checkpoint is saved.
pub async fn run_until(file: &Path, work_dir: &Path, shutdown: &Shutdown) -> Result<(), Error> {
    let checkpoints = work_dir.join("checkpoints.json");
    // A fresh start for the demo; a real consumer keeps its checkpoints.
    match std::fs::remove_file(&checkpoints) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(Error::io("remove", &checkpoints, e))
        }
        _ => {}
    }
    let store = JsonFileCheckpointStore::new(&checkpoints);
    let dead_letters = work_dir.join("dead-letters.jsonl");

    // Run 1: process records, then "crash": the stream is dropped after
    // CRASH_AFTER records, with no final save.
    let first: Vec<u64> = consume(file, &store, &dead_letters, shutdown)
        .await?
        .take(CRASH_AFTER)
        .try_collect()
        .await?;
    let saved = offset(store.load(&partition(file)).await?);
    println!(
        "consume: run 1 processed {} records, then crashed; checkpoint at byte {saved}",
        first.len()
    );

    // Run 2: resume after the checkpoint and finish the file.
    let second: Vec<u64> = consume(file, &store, &dead_letters, shutdown)
        .await?
        .try_collect()
        .await?;
    let processed_before: HashSet<u64> = first.into_iter().collect();
    let seen_again = second
        .iter()
        .filter(|end| processed_before.contains(end))
        .count();
    println!(
        "consume: run 2 resumed at byte {saved}, processed {} records, {seen_again} of them seen again (at most n = {N})",
        second.len()
    );
    let end = offset(store.load(&partition(file)).await?);
    println!(
        "consume: checkpoint now at byte {end} (file is {} bytes)",
        file_len(file)?
    );
    Ok(())
}

/// One consumer run: yields, for every processed record, the byte offset
/// that ends it (its identity in this file).
async fn consume(
    file: &Path,
    store: &JsonFileCheckpointStore,
    dead_letters: &Path,
    shutdown: &Shutdown,
) -> Result<impl futures::Stream<Item = Result<u64, Error>>, Error> {
    let dead_letter_sink = FileSink::<DeadLetter<serde_json::Value>>::open(dead_letters).await?;
    Ok(FileSource::<serde_json::Value>::new(file)
        .resume_from(store.clone())
        .dead_letters(dead_letter_sink)
        .stream()
        .until(shutdown.signal()) // right after the source: Ctrl-C drains and saves
        .and_then(|(record, token)| async move {
            process(&record)?;
            Ok((offset(Some(token.position().clone())), token))
        })
        .checkpoint_batched(N, Duration::from_secs(1), store.clone()))
}

/// The "business logic": every record must be a JSON object.
fn process(record: &serde_json::Value) -> Result<(), Error> {
    if record.is_object() {
        Ok(())
    } else {
        Err(Error::handler(format!(
            "expected a JSON object, got {record}"
        )))
    }
}

fn partition(file: &Path) -> String {
    FileSource::<serde_json::Value>::new(file).partition()
}

fn offset(position: Option<Position>) -> u64 {
    match position {
        Some(Position::Offset(offset)) => offset,
        _ => 0,
    }
}

fn file_len(file: &Path) -> Result<u64, Error> {
    std::fs::metadata(file)
        .map(|m| m.len())
        .map_err(|e| Error::io("stat", file, e))
}
