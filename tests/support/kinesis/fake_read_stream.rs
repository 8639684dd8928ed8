//! An in-process, always-open Kinesis stream serving `ListShards`,
//! `GetShardIterator` and `GetRecords` behind a real `aws_sdk_kinesis::Client`,
//! for consumers: faults injected by call number (expired iterators,
//! throttling, HTTP 500, a vanished stream), and a log of every
//! `GetRecords` call and when it came (`tokio::time`, so paused-time tests
//! see exact schedules).
//!
//! Its shards never end and are never split; resharding is the emulators'
//! part. It serves records of one of two kinds:
//! - numbered ([`FakeReadStream::new`]): record `i` of a shard has data
//!   `"<shard id>:<i>"`, sequence number [`seq_of`]`(i)`, and iterators
//!   resume exactly where a sequence number says, so restarts can be
//!   checked;
//! - canned ([`FakeReadStream::canned`]): every call answers the same
//!   records, built once, for benchmarks that measure the consumer and not
//!   the building of responses.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_sdk_kinesis::error::ErrorMetadata;
use aws_sdk_kinesis::operation::get_records::{GetRecordsError, GetRecordsInput, GetRecordsOutput};
use aws_sdk_kinesis::operation::get_shard_iterator::GetShardIteratorOutput;
use aws_sdk_kinesis::operation::list_shards::ListShardsOutput;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::error::{
    ExpiredIteratorException, ProvisionedThroughputExceededException, ResourceNotFoundException,
};
use aws_sdk_kinesis::types::{Record, SequenceNumberRange, Shard, ShardIteratorType};
use aws_sdk_kinesis::Client;
use aws_smithy_mocks::{mock, MockResponse};
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use tokio::time::Instant;

use super::{mocked_client, shard_id};

/// What goes wrong on the n-th `GetRecords` call (from 0), if anything.
pub type Faults = Arc<dyn Fn(usize) -> Option<Fault> + Send + Sync>;

/// A fault of one `GetRecords` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// `ExpiredIteratorException`.
    Expired,
    /// `ProvisionedThroughputExceededException`.
    Throttled,
    /// HTTP 500 with a body the SDK cannot parse.
    ServerError,
    /// `ResourceNotFoundException`: fatal.
    NotFound,
}

/// Numbered records delivered per `GetRecords` call at most (fewer if the
/// request's limit is lower), so that a shard takes several calls.
const NUMBERED_PER_CALL: u64 = 7;

/// What the shards hold.
enum Records {
    /// `per_shard` numbered records each (`None`: endless).
    Numbered { per_shard: Option<u64> },
    /// The same records on every call, endlessly.
    Canned(Vec<Record>),
}

/// A fake stream (see the module documentation).
pub struct FakeReadStream {
    shards: AtomicUsize,
    records: Records,
    faults: Faults,
    calls: Mutex<Vec<(String, Instant)>>,
    injected: Mutex<HashMap<Fault, usize>>,
}

/// The sequence number of record `i` of a numbered shard (56 digits, as
/// Kinesis's).
pub fn seq_of(i: u64) -> String {
    format!("4959033827149025660855969253836157109592157598913{i:07}")
}

fn index_of(seq: &str) -> u64 {
    seq[seq.len() - 7..].parse().unwrap()
}

impl FakeReadStream {
    /// `shards` shards of `per_shard` numbered records each (`None`:
    /// endless), with `faults`.
    pub fn new(shards: usize, per_shard: Option<u64>, faults: Faults) -> Arc<Self> {
        Self::with_records(shards, Records::Numbered { per_shard }, faults)
    }

    /// `shards` endless shards answering `records` on every call, without
    /// faults.
    pub fn canned(shards: usize, records: Vec<Record>) -> Arc<Self> {
        Self::with_records(shards, Records::Canned(records), Arc::new(|_| None))
    }

    fn with_records(shards: usize, records: Records, faults: Faults) -> Arc<Self> {
        Arc::new(Self {
            shards: shards.into(),
            records,
            faults,
            calls: Mutex::new(Vec::new()),
            injected: Mutex::new(HashMap::new()),
        })
    }

    /// Lists `shards` shards from now on (as after `UpdateShardCount`).
    pub fn set_shards(&self, shards: usize) {
        self.shards.store(shards, Ordering::SeqCst);
    }

    /// A real SDK client answered by this fake. The SDK's own retries are
    /// off, so every failure reaches the source.
    pub fn client(self: &Arc<Self>) -> Client {
        let fake = self.clone();
        let list = mock!(Client::list_shards).then_compute_output(move |_| fake.list_shards());
        let iterators = mock!(Client::get_shard_iterator).then_compute_output(|req| {
            let index = match req.shard_iterator_type().unwrap() {
                ShardIteratorType::TrimHorizon => 0,
                ShardIteratorType::AtSequenceNumber => {
                    index_of(req.starting_sequence_number().unwrap())
                }
                ShardIteratorType::AfterSequenceNumber => {
                    index_of(req.starting_sequence_number().unwrap()) + 1
                }
                other => panic!("unexpected iterator type {other:?}"),
            };
            GetShardIteratorOutput::builder()
                .shard_iterator(format!("{}|{index}", req.shard_id().unwrap()))
                .build()
        });
        let fake = self.clone();
        let records = mock!(Client::get_records).then_compute_response(move |req| fake.get(req));
        mocked_client(&[&list, &iterators, &records])
    }

    /// How many times `fault` was injected so far.
    pub fn injected(&self, fault: Fault) -> usize {
        self.injected
            .lock()
            .unwrap()
            .get(&fault)
            .copied()
            .unwrap_or(0)
    }

    /// When each `GetRecords` call for `shard` came, in order.
    pub fn calls_for(&self, shard: &str) -> Vec<Instant> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(s, _)| s == shard)
            .map(|(_, t)| *t)
            .collect()
    }

    fn list_shards(&self) -> ListShardsOutput {
        let shards = (0..self.shards.load(Ordering::SeqCst))
            .map(|s| {
                Shard::builder()
                    .shard_id(shard_id(s))
                    .sequence_number_range(
                        SequenceNumberRange::builder()
                            .starting_sequence_number(seq_of(0))
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap()
            })
            .collect::<Vec<_>>();
        ListShardsOutput::builder().set_shards(Some(shards)).build()
    }

    fn get(&self, req: &GetRecordsInput) -> MockResponse<GetRecordsOutput, GetRecordsError> {
        let (shard, index) = req.shard_iterator().unwrap().split_once('|').unwrap();
        let index: u64 = index.parse().unwrap();
        let n = {
            let mut calls = self.calls.lock().unwrap();
            calls.push((shard.to_owned(), Instant::now()));
            calls.len() - 1
        };
        if let Some(fault) = (self.faults)(n) {
            *self.injected.lock().unwrap().entry(fault).or_default() += 1;
            return failure(fault);
        }
        let (records, end) = match &self.records {
            Records::Canned(records) => (records.clone(), index),
            Records::Numbered { per_shard } => {
                let limit = req.limit().unwrap_or(10_000) as u64;
                let end = index + limit.min(NUMBERED_PER_CALL);
                let end = per_shard.map_or(end, |total| end.min(total));
                let records = (index..end)
                    .map(|i| {
                        Record::builder()
                            .sequence_number(seq_of(i))
                            .partition_key("k")
                            .data(Blob::new(format!("{shard}:{i}")))
                            .build()
                            .unwrap()
                    })
                    .collect();
                (records, end)
            }
        };
        MockResponse::Output(
            GetRecordsOutput::builder()
                .set_records(Some(records))
                .next_shard_iterator(format!("{shard}|{end}"))
                .millis_behind_latest(0)
                .build()
                .unwrap(),
        )
    }
}

fn failure(fault: Fault) -> MockResponse<GetRecordsOutput, GetRecordsError> {
    let meta = |code: &str| {
        ErrorMetadata::builder()
            .code(code)
            .message("injected")
            .build()
    };
    match fault {
        Fault::Expired => MockResponse::Error(GetRecordsError::ExpiredIteratorException(
            ExpiredIteratorException::builder()
                .meta(meta("ExpiredIteratorException"))
                .build(),
        )),
        Fault::Throttled => {
            MockResponse::Error(GetRecordsError::ProvisionedThroughputExceededException(
                ProvisionedThroughputExceededException::builder()
                    .meta(meta("ProvisionedThroughputExceededException"))
                    .build(),
            ))
        }
        Fault::NotFound => MockResponse::Error(GetRecordsError::ResourceNotFoundException(
            ResourceNotFoundException::builder()
                .meta(meta("ResourceNotFoundException"))
                .build(),
        )),
        Fault::ServerError => MockResponse::Http(aws_smithy_runtime_api::http::Response::new(
            StatusCode::try_from(500).unwrap(),
            SdkBody::from("{}"),
        )),
    }
}
