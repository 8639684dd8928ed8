//! End to end, effectively once: a producer (`buffered_wal` in front of a
//! `KinesisSink` on kinesis-mock, records carrying producer record ids) is
//! SIGKILLed at random and restarted, over and over; a consumer reads the
//! stream and runs each record's effect through `Idempotency`, keyed by
//! the record id, on moto's DynamoDB. The log re-sends the batches in
//! flight at each kill, so the stream holds copies of some records; every
//! acknowledged record's effect still happens exactly once, and no record
//! has more than one.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, TryStreamExt};
use unistream::checkpoint::MemoryCheckpointStore;
use unistream::dynamodb::DynamoDbIdempotencyStore;
use unistream::idempotency::Idempotency;
use unistream::kinesis::{KinesisCodec, KinesisRecord, KinesisSink, KinesisSource};
use unistream::record_id::{Identified, IdentifiedCodec, RecordId, RecordIds};
use unistream::sink::{WalConfig, WalSinkExt};

use crate::support::emulators::{kinesis_mock, moto, sdk_config, sdk_config_at, unique_name};
use crate::support::kinesis::emulator_stream::{create_stream, wait_active};
use crate::support::{child, seed};

/// `<dir>;<stream>;<kinesis endpoint>;<first number>;<last number or "none">`.
const CHILD_ENV: &str = "UNISTREAM_RECORD_IDS_CHILD";
const CHILD_TEST: &str = "record_ids_producer_child";
const KILLS: usize = 25;
const FINAL_RECORDS: u64 = 100;

/// The payload a record carries: its id, a space, its number.
fn payload(id: RecordId, number: u64) -> Bytes {
    Bytes::from(format!("{id} {number}"))
}

fn parse(data: &[u8]) -> (RecordId, u64) {
    let text = std::str::from_utf8(data).expect("utf-8 payload");
    let (id, number) = text.split_once(' ').expect("`id number`");
    (
        id.parse().expect("a record id"),
        number.parse().expect("a number"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_producers_copies_have_their_effect_once() {
    let mut rng = seed::rng(
        module_path!(),
        "a_killed_producers_copies_have_their_effect_once",
    );
    let kinesis = aws_sdk_kinesis::Client::new(&sdk_config(kinesis_mock()).await);
    let stream = unique_name("record-ids");
    create_stream(&kinesis, &stream, 2).await;
    wait_active(&kinesis, &stream).await;
    let dir = tempfile::tempdir().unwrap();

    let mut acknowledged: Vec<(u64, RecordId)> = Vec::new();
    let mut next = 0u64;
    for _ in 0..KILLS {
        let child = spawn_child(dir.path(), &stream, next, None);
        let (acks, _) = run_child(child, Some(Duration::from_millis(rng.u64(200..800))));
        // Resumed after the last number seen acknowledged: numbers the
        // child logged but was killed before acknowledging are sent again
        // as new records (new ids), as a real producer would.
        if let Some(&(last, _)) = acks.last() {
            next = last + 1;
        }
        acknowledged.extend(acks);
    }
    let last = next + FINAL_RECORDS - 1;
    let (acks, closed) = run_child(spawn_child(dir.path(), &stream, next, Some(last)), None);
    assert!(closed, "the final run closed cleanly");
    acknowledged.extend(acks);
    assert!(
        acknowledged.len() as u64 > FINAL_RECORDS,
        "the killed runs acknowledged records too ({} in all)",
        acknowledged.len()
    );

    // The consumer: every record's effect through Idempotency, keyed by
    // its producer record id.
    let dynamodb = sdk_config(moto()).await;
    let store = DynamoDbIdempotencyStore::new(&dynamodb, unique_name("record-ids-once").as_str());
    store.create_table_if_missing().await.unwrap();
    let once = Idempotency::new(store);
    // Effects per record id.
    let effects: Arc<Mutex<BTreeMap<RecordId, u64>>> = Arc::default();
    let mut copies: HashMap<RecordId, u64> = HashMap::new();
    let mut records =
        KinesisSource::from_client(kinesis.clone(), &stream, MemoryCheckpointStore::new())
            .idle_interval(Duration::from_millis(50))
            .stream();
    let wanted = acknowledged.len();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while acknowledged
        .iter()
        .any(|(_, id)| !effects.lock().unwrap().contains_key(id))
    {
        let next = tokio::time::timeout_at(deadline, records.try_next())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "not every acknowledged record read within 2 minutes ({} effects for {wanted})",
                    effects.lock().unwrap().len()
                )
            });
        let (record, _token) = next
            .expect("reading the stream")
            .expect("the stream never ends");
        let (id, _number) = parse(&record.data);
        *copies.entry(id).or_default() += 1;
        let effects = effects.clone();
        once.run(&id.to_string(), || async move {
            *effects.lock().unwrap().entry(id).or_default() += 1;
            Ok(())
        })
        .await
        .unwrap();
    }
    drop(records);

    let effects = effects.lock().unwrap().clone();
    let repeated: Vec<_> = effects.iter().filter(|(_, n)| **n != 1).collect();
    assert!(repeated.is_empty(), "effects repeated: {repeated:?}");
    for (n, id) in &acknowledged {
        assert_eq!(effects.get(id), Some(&1), "acknowledged record {n} ({id})");
    }
    let resent = copies.values().filter(|c| **c > 1).count();
    println!(
        "{} acknowledged over {KILLS} kills, {} effects, {resent} records in the stream more than once",
        acknowledged.len(),
        effects.len()
    );
    assert!(
        resent > 0,
        "the kills made the log send records again (else this test shows nothing)"
    );
}

fn spawn_child(dir: &Path, stream: &str, first: u64, last: Option<u64>) -> Child {
    let last = last.map_or("none".to_string(), |l| l.to_string());
    child::command(module_path!(), CHILD_TEST)
        .arg("--test-threads=1")
        .env(
            CHILD_ENV,
            format!(
                "{};{stream};{};{first};{last}",
                dir.display(),
                kinesis_mock().endpoint()
            ),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// The numbers and ids the child acknowledged; kills it after `kill_after`
/// (SIGKILL), or waits for it to exit. Returns them and whether it
/// reported a clean close.
fn run_child(mut child: Child, kill_after: Option<Duration>) -> (Vec<(u64, RecordId)>, bool) {
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut acks = Vec::new();
        let mut closed = false;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some((_, ack)) = line.rsplit_once("ACK ") {
                let (n, id) = ack.trim().split_once(' ').expect("`ACK number id`");
                acks.push((n.parse::<u64>().unwrap(), id.parse::<RecordId>().unwrap()));
            } else if line.contains("CLOSED") {
                closed = true;
            }
        }
        (acks, closed)
    });
    match kill_after {
        Some(delay) => {
            std::thread::sleep(delay);
            child.kill().unwrap();
            child.wait().unwrap();
        }
        None => {
            let status = child.wait().unwrap();
            assert!(status.success(), "child failed: {status}");
        }
    }
    reader.join().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of the record id test"]
async fn record_ids_producer_child() {
    let params = std::env::var(CHILD_ENV).expect("run by the record id test only");
    let parts: Vec<&str> = params.split(';').collect();
    let [dir, stream, endpoint, first, last] = parts[..] else {
        panic!("{CHILD_ENV}: {params:?}");
    };
    let first: u64 = first.parse().unwrap();
    let last: Option<u64> = last.parse().ok();
    let client = aws_sdk_kinesis::Client::new(&sdk_config_at(endpoint).await);
    // The target puts the id in the payload; the log keeps it with the
    // record (IdentifiedCodec), so a re-sent batch carries the same ids.
    let target = KinesisSink::builder(client, stream).build().with(
        |batch: Vec<Identified<KinesisRecord>>| async move {
            Ok::<_, unistream::Error>(
                batch
                    .into_iter()
                    .map(|r| {
                        KinesisRecord::new(
                            payload(r.id, parse_number(&r.record.data)),
                            r.record.partition_key.clone(),
                        )
                    })
                    .collect::<Vec<_>>(),
            )
        },
    );
    let mut sink = target
        .buffered_wal(
            WalConfig::new(Path::new(dir).join("wal"))
                .codec(IdentifiedCodec(KinesisCodec))
                .max_records(20)
                .max_age(Duration::from_millis(5)),
        )
        .await
        .unwrap();
    let ids = RecordIds::new();
    let mut next = first;
    loop {
        let end = last.map_or(next + 5, |last| (next + 5).min(last + 1));
        let mut sent = Vec::new();
        for n in next..end {
            let record = ids.identify(KinesisRecord::new(
                Bytes::from(n.to_string()),
                format!("key-{n}"),
            ));
            sent.push(record.id);
            sink.feed(record).await.unwrap();
        }
        sink.flush().await.unwrap();
        // About 100 records a second: each run acknowledges tens of
        // records before its kill, and the consumer's store keeps up.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut out = std::io::stdout().lock();
        for (n, id) in (next..end).zip(sent) {
            writeln!(out, "ACK {n} {id}").unwrap();
        }
        out.flush().unwrap();
        drop(out);
        next = end;
        if last.is_some_and(|last| next > last) {
            break;
        }
    }
    sink.close().await.unwrap();
    println!("CLOSED");
}

fn parse_number(data: &[u8]) -> u64 {
    std::str::from_utf8(data).unwrap().parse().unwrap()
}
