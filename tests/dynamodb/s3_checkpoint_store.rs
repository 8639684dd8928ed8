//! `DynamoDbS3CheckpointStore` on moto: the batch life cycle, what a restart
//! sees, refusals that protect the checkpoint, and fencing.

use unistream::checkpoint::{DynamoDbCheckpointStore, DynamoDbS3CheckpointStore, RecordStatus};
use unistream::{CheckpointStore, Position};

use crate::support::emulators::{moto, s3_client, sdk_config, unique_name};

struct Env {
    conf: aws_config::SdkConfig,
    table: String,
    bucket: String,
    s3: aws_sdk_s3::Client,
}

async fn env() -> Env {
    let conf = sdk_config(moto()).await;
    let s3 = s3_client(&conf);
    let bucket = unique_name("batches").to_lowercase();
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let env = Env {
        table: unique_name("batch-leases"),
        conf,
        bucket,
        s3,
    };
    env.store("setup").create_table_if_missing().await.unwrap();
    env
}

impl Env {
    fn store(&self, owner: &str) -> DynamoDbS3CheckpointStore {
        DynamoDbS3CheckpointStore::from_clients(
            DynamoDbCheckpointStore::new(&self.conf, &self.table).owner(owner),
            self.s3.clone(),
            &self.bucket,
        )
    }

    async fn objects(&self) -> Vec<String> {
        self.s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .send()
            .await
            .unwrap()
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect()
    }
}

fn records(range: std::ops::Range<u32>) -> Vec<(String, Position)> {
    range
        .map(|i| {
            (
                format!("record {i}"),
                Position::sequence((i + 1).to_string()),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_batch_survives_a_restart_with_its_marks_and_finishes_into_the_checkpoint() {
    let env = env().await;
    let p = "shardId-000000000000";
    let store = env.store("a");
    store.save(p, &Position::sequence("0")).await.unwrap();

    let mut batch = store.begin_batch(p, records(0..5)).await.unwrap();
    assert_eq!(batch.to_process(), vec![0, 1, 2, 3, 4]);
    // The source resumes after the batch: its records are held in S3.
    assert_eq!(store.load(p).await.unwrap(), Some(Position::sequence("5")));
    batch.mark(0, RecordStatus::Succeeded);
    batch.mark(1, RecordStatus::Failed);
    batch.mark(2, RecordStatus::Exhausted);
    store.persist(&mut batch).await.unwrap();
    batch.mark(3, RecordStatus::Succeeded); // not persisted: lost in a crash
    assert_eq!(
        env.objects().await.len(),
        1,
        "the replaced object is deleted"
    );

    // A restart (a new store) sees the persisted marks only.
    let restarted = env.store("a2");
    let mut replay = restarted.in_flight::<String>(p).await.unwrap().unwrap();
    let statuses: Vec<RecordStatus> = replay.entries().iter().map(|e| e.status).collect();
    use RecordStatus::*;
    assert_eq!(
        statuses,
        vec![Succeeded, Failed, Exhausted, Pending, Pending]
    );
    assert_eq!(replay.entries()[1].attempts, 1);
    assert_eq!(replay.entries()[3].record, "record 3");
    assert_eq!(replay.to_process(), vec![1, 3, 4]);
    assert_eq!(replay.to_dead_letter(), vec![2]);

    // Unfinished: the checkpoint cannot move, a new batch cannot start, a
    // plain save is refused.
    for i in [1, 3] {
        replay.mark(i, RecordStatus::Succeeded);
    }
    let refused = restarted.finish_batch(replay.clone()).await.unwrap_err();
    let chain = unistream::ErrorChain(&refused).to_string();
    assert!(chain.contains("record 2"), "{chain}");
    assert!(restarted.begin_batch(p, records(5..6)).await.is_err());
    assert!(restarted.save(p, &Position::sequence("99")).await.is_err());

    replay.mark(2, RecordStatus::DeadLettered);
    replay.mark(4, RecordStatus::Succeeded);
    assert!(replay.is_complete());
    restarted.finish_batch(replay).await.unwrap();
    assert_eq!(
        restarted.load(p).await.unwrap(),
        Some(Position::sequence("5"))
    );
    assert!(restarted.in_flight::<String>(p).await.unwrap().is_none());
    assert!(
        env.objects().await.is_empty(),
        "a finished batch leaves no object"
    );
    let fresh = DynamoDbCheckpointStore::new(&env.conf, &env.table);
    let lease = fresh.lease(p).await.unwrap().unwrap();
    assert_eq!(lease.checkpoint.as_deref(), Some("5"));
}

#[tokio::test]
async fn a_fenced_writer_cannot_move_the_pointer_or_the_checkpoint() {
    let env = env().await;
    let p = "shardId-000000000001";
    let ours = env.store("ours");
    let mut batch = ours.begin_batch(p, records(0..3)).await.unwrap();

    let theirs = env.store("theirs");
    theirs.leases().claim(p).await.unwrap();
    let mut their_batch = theirs.in_flight::<String>(p).await.unwrap().unwrap();
    their_batch.mark(0, RecordStatus::Succeeded);
    theirs.persist(&mut their_batch).await.unwrap();

    batch.mark(0, RecordStatus::Succeeded);
    batch.mark(1, RecordStatus::Succeeded);
    assert!(ours.persist(&mut batch).await.unwrap_err().is_fenced());
    batch.mark(2, RecordStatus::Succeeded);
    assert!(ours.finish_batch(batch).await.unwrap_err().is_fenced());

    // Their view is intact: one record done, the checkpoint not moved.
    let view = env
        .store("observer")
        .in_flight::<String>(p)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.to_process(), vec![1, 2]);
    let lease = DynamoDbCheckpointStore::new(&env.conf, &env.table)
        .lease(p)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lease.position, None);
    assert_eq!(lease.owner.as_deref(), Some("theirs"));
}
