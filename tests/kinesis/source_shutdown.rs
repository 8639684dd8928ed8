//! Stopping `KinesisSource` pipelines on an emulator (moto): a `Shutdown`
//! signal ends intake, and the checkpoint of every shard is the last record
//! processed there; a batch job with `stop_when_caught_up` reads every
//! record, saves the last position of every shard and ends by itself.

use std::collections::{BTreeMap as HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::TryStreamExt;
use unistream::checkpoint::{CheckpointStreamExt, MemoryCheckpointStore};
use unistream::kinesis::{KinesisRecord, KinesisSource};
use unistream::source::{Shutdown, SourceExt};
use unistream::Position;

use crate::support::emulators::{moto, sdk_config, unique_name};
use crate::support::kinesis::emulator_stream::{create_stream, put_ids};

fn id_of(record: &KinesisRecord) -> u64 {
    std::str::from_utf8(&record.data).unwrap().parse().unwrap()
}

#[tokio::test]
async fn shutdown_saves_the_last_processed_position_of_every_shard() {
    const TOTAL: u64 = 2_000;
    let conf = sdk_config(moto()).await;
    let client = aws_sdk_kinesis::Client::new(&conf);
    let name = unique_name("shutdown");
    create_stream(&client, &name, 2).await;
    put_ids(&client, &name, 0..TOTAL).await;

    let store = MemoryCheckpointStore::new();
    let shutdown = Shutdown::new();
    let stop = shutdown.clone();
    let last: Arc<Mutex<HashMap<String, Position>>> = Arc::default();
    let processed = Arc::new(Mutex::new(0u64));
    let (seen_last, seen_count) = (last.clone(), processed.clone());
    tokio::time::timeout(
        Duration::from_secs(120),
        KinesisSource::from_client(client.clone(), &name, store.clone())
            .idle_interval(Duration::from_millis(50))
            .stream()
            .until(shutdown.signal())
            .and_then(move |(_record, token)| {
                let mut count = seen_count.lock().unwrap();
                *count += 1;
                if *count == 700 {
                    stop.trigger();
                }
                seen_last
                    .lock()
                    .unwrap()
                    .insert(token.partition().to_owned(), token.position().clone());
                async move { Ok(token) }
            })
            .checkpoint_batched(100_000, Duration::from_secs(3600), store.clone())
            .try_collect::<()>(),
    )
    .await
    .expect("the pipeline ends after the shutdown signal")
    .unwrap();

    assert_eq!(
        *processed.lock().unwrap(),
        700,
        "nothing taken after the signal"
    );
    let last = last.lock().unwrap().clone();
    assert!(!last.is_empty());
    assert_eq!(
        store.positions(),
        last,
        "the final save is the last processed record of every shard"
    );
}

#[tokio::test]
async fn a_batch_job_stops_when_caught_up_with_every_record_read_and_saved() {
    const TOTAL: u64 = 3_000;
    let conf = sdk_config(moto()).await;
    let client = aws_sdk_kinesis::Client::new(&conf);
    let name = unique_name("caught-up");
    create_stream(&client, &name, 3).await;
    put_ids(&client, &name, 0..TOTAL).await;

    let store = MemoryCheckpointStore::new();
    let last: Arc<Mutex<HashMap<String, Position>>> = Arc::default();
    let seen_last = last.clone();
    let ids: Vec<u64> = tokio::time::timeout(
        Duration::from_secs(120),
        KinesisSource::from_client(client.clone(), &name, store.clone())
            .idle_interval(Duration::from_millis(50))
            .stop_when_caught_up(Duration::from_millis(500))
            .stream()
            .and_then(move |(record, token)| {
                seen_last
                    .lock()
                    .unwrap()
                    .insert(token.partition().to_owned(), token.position().clone());
                async move { Ok((id_of(&record), token)) }
            })
            .checkpoint_batched(250, Duration::from_secs(3600), store.clone())
            .try_collect(),
    )
    .await
    .expect("the batch job ends by itself once caught up")
    .unwrap();

    let distinct: HashSet<u64> = ids.iter().copied().collect();
    assert_eq!(ids.len() as u64, TOTAL, "each record once");
    assert_eq!(distinct, (0..TOTAL).collect());
    let last = last.lock().unwrap().clone();
    assert_eq!(last.len(), 3);
    assert_eq!(store.positions(), last);

    // A second run finds nothing new and ends too, without records.
    let again: Vec<KinesisRecord> = tokio::time::timeout(
        Duration::from_secs(120),
        KinesisSource::from_client(client, &name, store.clone())
            .idle_interval(Duration::from_millis(50))
            .stop_when_caught_up(Duration::from_millis(500))
            .stream()
            .map_ok(|(record, _)| record)
            .try_collect(),
    )
    .await
    .expect("ends when caught up")
    .unwrap();
    assert!(again.is_empty(), "{} records read again", again.len());
}
