//! KPL-aggregated records written by `KinesisSink` (aggregation on) come
//! back from `KinesisSource` one user record at a time, with sub-sequence
//! positions, and a restart from a checkpoint inside an aggregate resumes at
//! the next user record (moto).

use std::time::Duration;

use futures::{SinkExt, TryStreamExt};
use unistream::checkpoint::MemoryCheckpointStore;
use unistream::kinesis::{KinesisRecord, KinesisSink, KinesisSource, KinesisStream};
use unistream::{CheckpointStore, CheckpointToken, Position};

use crate::support::emulators::{moto, sdk_config, unique_name};
use crate::support::kinesis::emulator_stream::create_stream;

async fn next(stream: &mut KinesisStream) -> (KinesisRecord, CheckpointToken) {
    tokio::time::timeout(Duration::from_secs(30), stream.try_next())
        .await
        .expect("a record within 30 s")
        .unwrap()
        .expect("stream goes on")
}

fn sub_of(token: &CheckpointToken) -> (String, u64) {
    match token.position() {
        Position::Sequence { sequence, sub } => (sequence.to_string(), *sub),
        other => panic!("unexpected position {other:?}"),
    }
}

#[tokio::test]
async fn aggregates_come_back_one_by_one_and_resume_inside() {
    let conf = sdk_config(moto()).await;
    let client = aws_sdk_kinesis::Client::new(&conf);
    let name = unique_name("aggregated");
    create_stream(&client, &name, 1).await;

    let mut sink = KinesisSink::builder_from_client(client.clone(), name.as_str())
        .aggregation(true)
        .build()
        .unwrap();
    for batch in 0..4u32 {
        let records = (batch * 50..batch * 50 + 50)
            .map(|i| KinesisRecord::new(i.to_string(), format!("key-{i}")))
            .collect::<Vec<_>>();
        sink.send(records).await.unwrap();
    }
    sink.close().await.unwrap();

    let store = MemoryCheckpointStore::new();
    let mut stream = KinesisSource::from_client(client.clone(), name.as_str(), store.clone())
        .idle_interval(Duration::from_millis(50))
        .stream();
    let mut got = Vec::new();
    for _ in 0..200 {
        got.push(next(&mut stream).await);
    }
    drop(stream);
    for (i, (record, token)) in got.iter().enumerate() {
        assert_eq!(
            &record.data[..],
            i.to_string().as_bytes(),
            "user records in order"
        );
        assert_eq!(
            record.partition_key,
            format!("key-{i}"),
            "partition keys restored"
        );
        assert_eq!(token.seq(), i as u64);
    }
    let kinesis_records: std::collections::BTreeSet<String> =
        got.iter().map(|(_, t)| sub_of(t).0).collect();
    assert!(
        kinesis_records.len() < 20,
        "200 user records travelled in {} Kinesis records: aggregation was on",
        kinesis_records.len()
    );
    // Sub-sequence numbers count 0, 1, 2, … inside each Kinesis record.
    let mut expected_sub = 0;
    let mut current = None;
    for (_, token) in &got {
        let (sequence, sub) = sub_of(token);
        if current.as_ref() != Some(&sequence) {
            current = Some(sequence);
            expected_sub = 0;
        }
        assert_eq!(sub, expected_sub);
        expected_sub += 1;
    }

    // Checkpoint inside an aggregate, restart: the next user record follows.
    let (_, inside) = &got[120];
    assert!(sub_of(inside).1 > 0, "record 120 sits inside an aggregate");
    let shard = inside.partition().to_owned();
    store.save(&shard, inside.position()).await.unwrap();
    let mut stream = KinesisSource::from_client(client.clone(), name.as_str(), store.clone())
        .idle_interval(Duration::from_millis(50))
        .stream();
    for (i, (_, original)) in got.iter().enumerate().skip(121) {
        let (record, token) = next(&mut stream).await;
        assert_eq!(&record.data[..], i.to_string().as_bytes());
        assert_eq!(token.position(), original.position());
        assert_eq!(token.seq(), (i - 121) as u64, "a new run counts from 0");
    }
    // Nothing else is pending: the next poll finds no record.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), stream.try_next())
            .await
            .is_err(),
        "no record repeated or invented after the last one"
    );
}
