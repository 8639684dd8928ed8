//! Runs the quickstart's consumer half (`examples/quickstart/consume.rs`)
//! on a file written by `FileSink`, and checks what it leaves behind.

#[path = "../../examples/quickstart/consume.rs"]
mod consume;

use futures::SinkExt;
use unistream::checkpoint::{CheckpointStore, JsonFileCheckpointStore};
use unistream::sink::FileSink;
use unistream::source::FileSource;
use unistream::Position;

#[tokio::test]
async fn quickstart_consumer_resumes_after_the_simulated_crash() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    let mut sink = FileSink::open(&file).await.unwrap();
    let events: Vec<serde_json::Value> = (0..1000)
        .map(|i| serde_json::json!({"id": i, "kind": "click"}))
        .collect();
    sink.send(events).await.unwrap();
    sink.close().await.unwrap();

    consume::run(&file, dir.path()).await.unwrap();

    let store = JsonFileCheckpointStore::new(dir.path().join("checkpoints.json"));
    let partition = FileSource::<serde_json::Value>::new(&file).partition();
    let len = std::fs::metadata(&file).unwrap().len();
    assert_eq!(
        store.load(&partition).await.unwrap(),
        Some(Position::Offset(len))
    );
    // Nothing was dead-lettered: every line is valid JSON.
    let dead = std::fs::read(dir.path().join("dead-letters.jsonl")).unwrap();
    assert!(dead.is_empty());

    // Running it again starts from scratch and ends at the end again.
    std::fs::write(dir.path().join("checkpoints.json"), b"not even json").unwrap();
    consume::run(&file, dir.path()).await.unwrap();
    let reopened = JsonFileCheckpointStore::new(dir.path().join("checkpoints.json"));
    assert_eq!(
        reopened.load(&partition).await.unwrap(),
        Some(Position::Offset(len))
    );
}
