//! The Kinesis operations the stub answers, in the SDK's protocol
//! (awsJson1.1: a JSON body, the operation in `X-Amz-Target`):
//! `ListShards`, `DescribeStreamSummary`, `PutRecords`, `PutRecord`.
//! Anything else is an `UnknownOperationException` (HTTP 400).

use serde_json::{json, Value};
use tokio::time::Instant;
use unistream::kinesis::{HashKey, KinesisRecord};

use super::http::{Request, Response};
use super::windows::Limits;
use super::StubState;

/// What an unlimited stub applies (windows still count arrivals).
const UNLIMITED: Limits = Limits {
    records: u64::MAX,
    bytes: u64::MAX,
};

/// The answer to `request`, arriving at `at`.
pub fn answer(state: &mut StubState, request: &Request, at: Instant) -> Response {
    let target = request.header("x-amz-target").unwrap_or_default();
    let operation = target.rsplit('.').next().unwrap_or_default();
    let body: Value = match serde_json::from_slice(&request.body) {
        Ok(body) => body,
        Err(e) => return error(400, "SerializationException", &e.to_string()),
    };
    if let Some(name) = body.get("StreamName").and_then(Value::as_str) {
        if name != state.config.stream {
            return error(
                400,
                "ResourceNotFoundException",
                &format!("Stream {name} not found"),
            );
        }
    }
    match operation {
        "ListShards" => list_shards(state),
        "DescribeStreamSummary" => describe_stream_summary(state),
        "PutRecords" => put_records(state, &body, at),
        "PutRecord" => put_record(state, &body, at),
        other => error(
            400,
            "UnknownOperationException",
            &format!("the stub does not serve {other:?}"),
        ),
    }
}

fn ok(body: Value) -> Response {
    Response {
        status: 200,
        body: body.to_string().into_bytes(),
    }
}

fn error(status: u16, kind: &str, message: &str) -> Response {
    Response {
        status,
        body: json!({"__type": kind, "message": message})
            .to_string()
            .into_bytes(),
    }
}

fn arn(state: &StubState) -> String {
    format!(
        "arn:aws:kinesis:us-east-1:000000000000:stream/{}",
        state.config.stream
    )
}

fn list_shards(state: &mut StubState) -> Response {
    state.list_shards_calls += 1;
    let shards: Vec<Value> = state
        .shards
        .iter()
        .map(|s| {
            json!({
                "ShardId": s.id,
                "HashKeyRange": {
                    "StartingHashKey": s.start.to_string(),
                    "EndingHashKey": s.end.to_string(),
                },
                "SequenceNumberRange": {"StartingSequenceNumber": sequence_number(0)},
            })
        })
        .collect();
    ok(json!({ "Shards": shards }))
}

fn describe_stream_summary(state: &StubState) -> Response {
    ok(json!({
        "StreamDescriptionSummary": {
            "StreamName": state.config.stream,
            "StreamARN": arn(state),
            "StreamStatus": "ACTIVE",
            "StreamModeDetails": {"StreamMode": "PROVISIONED"},
            "RetentionPeriodHours": 24,
            "StreamCreationTimestamp": 1_700_000_000.0,
            "EnhancedMonitoring": [{"ShardLevelMetrics": []}],
            "EncryptionType": "NONE",
            "OpenShardCount": state.shards.len(),
            "ConsumerCount": 0,
        }
    }))
}

/// A 56-digit sequence number, as Kinesis writes them.
fn sequence_number(n: u64) -> String {
    format!("4963{n:052}")
}

/// One entry of a request, decoded; `Err` is the validation message.
fn decode_entry(entry: &Value) -> Result<KinesisRecord, String> {
    let data = entry
        .get("Data")
        .and_then(Value::as_str)
        .ok_or("a record has no Data")?;
    let data = aws_smithy_types::base64::decode(data).map_err(|e| format!("bad Data: {e}"))?;
    let partition_key = entry
        .get("PartitionKey")
        .and_then(Value::as_str)
        .ok_or("a record has no PartitionKey")?;
    let explicit_hash_key = entry
        .get("ExplicitHashKey")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(KinesisRecord {
        data: data.into(),
        partition_key: partition_key.to_owned(),
        explicit_hash_key,
    })
}

/// Stores `record` if its shard's window has room at `at`: the result
/// entry (a sequence number, or the throttling error).
fn put_one(state: &mut StubState, record: KinesisRecord, at: Instant) -> Result<Value, String> {
    let key = HashKey::of(&record).map_err(|e| e.to_string())?.value();
    // The shards are sorted by their ranges, which cover the key space.
    let index = state.shards.partition_point(|s| s.end < key);
    let Some(index) =
        (index < state.shards.len() && state.shards[index].start <= key).then_some(index)
    else {
        return Err(format!("no shard holds hash key {key}"));
    };
    let billed = record.billed_bytes() as u64;
    let (epoch, limits) = (state.epoch, state.config.limits);
    let shard = &mut state.shards[index];
    let admitted = shard
        .window
        .admit(epoch, at, billed, limits.unwrap_or(UNLIMITED));
    if !admitted {
        shard.throttled_records += 1;
        return Ok(json!({
            "ErrorCode": "ProvisionedThroughputExceededException",
            "ErrorMessage": format!("Rate exceeded for shard {} in stream {} under account 000000000000.", shard.id, state.config.stream),
        }));
    }
    shard.accepted_records += 1;
    shard.accepted_bytes += billed;
    let sequence = sequence_number(shard.accepted_records);
    if state.config.keep_records {
        shard.stored.push(record);
    }
    Ok(json!({"SequenceNumber": sequence, "ShardId": shard.id}))
}

fn put_records(state: &mut StubState, body: &Value, at: Instant) -> Response {
    let Some(entries) = body.get("Records").and_then(Value::as_array) else {
        return error(400, "ValidationException", "Records is missing");
    };
    if entries.is_empty() || entries.len() > 500 {
        return error(
            400,
            "ValidationException",
            "Records must hold 1 to 500 entries",
        );
    }
    let mut records = Vec::with_capacity(entries.len());
    for entry in entries {
        match decode_entry(entry) {
            Ok(record) => records.push(record),
            Err(message) => return error(400, "ValidationException", &message),
        }
    }
    let bytes: usize = records.iter().map(KinesisRecord::billed_bytes).sum();
    if bytes > 5 * 1024 * 1024 || records.iter().any(|r| r.billed_bytes() > 1024 * 1024) {
        return error(400, "ValidationException", "request or record too large");
    }
    state.put_records_calls += 1;
    if state.put_records_calls <= state.config.failing_puts {
        return error(
            500,
            "InternalFailure",
            "the stub fails this call on purpose",
        );
    }
    let mut results = Vec::with_capacity(records.len());
    let mut failed = 0;
    for record in records {
        if state.config.failing_records > 0.0 && state.rng.f64() < state.config.failing_records {
            failed += 1;
            state.failed_records += 1;
            results.push(json!({
                "ErrorCode": "InternalFailure",
                "ErrorMessage": "the stub fails this record on purpose",
            }));
            continue;
        }
        match put_one(state, record, at) {
            Ok(result) => {
                if result.get("ErrorCode").is_some() {
                    failed += 1;
                }
                results.push(result);
            }
            Err(message) => return error(400, "InvalidArgumentException", &message),
        }
    }
    ok(json!({"FailedRecordCount": failed, "Records": results}))
}

fn put_record(state: &mut StubState, body: &Value, at: Instant) -> Response {
    let record = match decode_entry(body) {
        Ok(record) => record,
        Err(message) => return error(400, "ValidationException", &message),
    };
    match put_one(state, record, at) {
        Ok(result) if result.get("ErrorCode").is_some() => error(
            400,
            "ProvisionedThroughputExceededException",
            result["ErrorMessage"].as_str().unwrap_or_default(),
        ),
        Ok(result) => ok(result),
        Err(message) => error(400, "InvalidArgumentException", &message),
    }
}
