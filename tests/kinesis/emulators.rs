//! The emulator harness itself: each emulator starts, answers, and is shared.

use crate::support::emulators::{kinesis_mock, moto, sdk_config, unique_name};

#[tokio::test]
async fn moto_serves_kinesis() {
    let conf = sdk_config(moto()).await;
    let client = aws_sdk_kinesis::Client::new(&conf);
    let name = unique_name("harness");
    client
        .create_stream()
        .stream_name(&name)
        .shard_count(1)
        .send()
        .await
        .unwrap();
    let listed = client.list_streams().send().await.unwrap();
    assert!(listed.stream_names().contains(&name));
    assert_eq!(moto().port, moto().port, "one emulator per test binary");
}

#[tokio::test]
async fn kinesis_mock_serves_kinesis() {
    let conf = sdk_config(kinesis_mock()).await;
    let client = aws_sdk_kinesis::Client::new(&conf);
    let name = unique_name("harness");
    client
        .create_stream()
        .stream_name(&name)
        .shard_count(2)
        .send()
        .await
        .unwrap();
    let shards = client
        .list_shards()
        .stream_name(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(shards.shards().len(), 2);
}
