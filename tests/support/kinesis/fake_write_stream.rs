//! An in-process Kinesis stream taking `PutRecords` behind a real
//! `aws_sdk_kinesis::Client`, for fault injection into producers.
//!
//! The client is the SDK's own, with `aws-smithy-mocks` intercepting
//! `PutRecords` and `ListShards` (no network): every request is serialized
//! by the SDK as usual, then answered by [`FakeWriteStream`], which routes
//! each record to a shard by its hash key exactly as Kinesis does, stores
//! it, logs what each shard received and when (`tokio::time`, so
//! paused-time tests see exact schedules), and applies the test's fault
//! plan. Nothing in the library knows it is being tested. It does not
//! serve reads: see [`super::fake_read_stream`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use aws_sdk_kinesis::operation::list_shards::ListShardsOutput;
use aws_sdk_kinesis::operation::put_records::{PutRecordsError, PutRecordsInput, PutRecordsOutput};
use aws_sdk_kinesis::types::error::ProvisionedThroughputExceededException;
use aws_sdk_kinesis::types::{HashKeyRange, PutRecordsResultEntry, SequenceNumberRange, Shard};
use aws_sdk_kinesis::Client;
use aws_smithy_mocks::{mock, MockResponse};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use tokio::time::Instant;
use unistream::kinesis::{HashKey, KinesisRecord};

use super::{mocked_client, shard_id};

/// What the fake does with one `PutRecords` call.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Store every record.
    None,
    /// Answer HTTP 500 with a body the SDK cannot parse; store nothing.
    Http500,
    /// Fail the whole call with `ProvisionedThroughputExceededException`.
    ThrottleCall,
    /// Per record (by position in the call): `Some(code)` fails it with
    /// that error code, `None` stores it.
    Records(Vec<Option<&'static str>>),
}

/// Decides the fault of call number `n` (from 0) given its records.
pub type FaultPlan = Box<dyn FnMut(usize, &[KinesisRecord]) -> Fault + Send>;

/// What one call sent to one shard.
#[derive(Debug, Clone, Copy, Default)]
pub struct ShardLoad {
    pub records: u64,
    pub bytes: u64,
}

/// One `PutRecords` call as the fake saw it.
#[derive(Debug, Clone)]
pub struct Call {
    pub at: Instant,
    pub records: Vec<KinesisRecord>,
    /// Per actual shard: what the call carried to it (failed records
    /// included: they were sent).
    pub per_shard: HashMap<String, ShardLoad>,
    pub fault: Fault,
}

struct FakeShard {
    id: String,
    start: u128,
    end: u128,
    open: bool,
    stored: Vec<KinesisRecord>,
}

struct State {
    shards: Vec<FakeShard>,
    calls: Vec<Call>,
    list_shards_calls: usize,
    plan: FaultPlan,
}

/// A fake stream (see the module documentation).
#[derive(Clone)]
pub struct FakeWriteStream {
    state: Arc<Mutex<State>>,
}

fn even_ranges(count: u32) -> Vec<(u128, u128)> {
    let width = u128::MAX / u128::from(count);
    (0..count)
        .map(|i| {
            let start = width * u128::from(i);
            let end = if i + 1 == count {
                u128::MAX
            } else {
                start + width - 1
            };
            (start, end)
        })
        .collect()
}

impl FakeWriteStream {
    /// A stream of `shards` shards splitting the key space evenly, storing
    /// everything.
    pub fn new(shards: u32) -> Self {
        let shards = even_ranges(shards)
            .into_iter()
            .enumerate()
            .map(|(i, (start, end))| FakeShard {
                id: shard_id(i),
                start,
                end,
                open: true,
                stored: Vec::new(),
            })
            .collect();
        Self {
            state: Arc::new(Mutex::new(State {
                shards,
                calls: Vec::new(),
                list_shards_calls: 0,
                plan: Box::new(|_, _| Fault::None),
            })),
        }
    }

    /// Uses `plan` for the faults of the following calls.
    pub fn with_faults(
        self,
        plan: impl FnMut(usize, &[KinesisRecord]) -> Fault + Send + 'static,
    ) -> Self {
        self.lock().plan = Box::new(plan);
        self
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// A real SDK client answered by this fake. The SDK's own retries are
    /// off, so every failure reaches the sink.
    pub fn client(&self) -> Client {
        let put = {
            let fake = self.clone();
            mock!(Client::put_records).then_compute_response(move |input| fake.put_records(input))
        };
        let list = {
            let fake = self.clone();
            mock!(Client::list_shards).then_compute_output(move |_| fake.list_shards())
        };
        mocked_client(&[&put, &list])
    }

    /// Splits every open shard in two (closing the parents), as a reshard.
    pub fn split_all(&self) {
        let mut state = self.lock();
        let mut children = Vec::new();
        let mut next = state.shards.len();
        for shard in state.shards.iter_mut().filter(|s| s.open) {
            shard.open = false;
            let mid = shard.start + (shard.end - shard.start) / 2;
            for (start, end) in [(shard.start, mid), (mid + 1, shard.end)] {
                children.push(FakeShard {
                    id: shard_id(next),
                    start,
                    end,
                    open: true,
                    stored: Vec::new(),
                });
                next += 1;
            }
        }
        state.shards.extend(children);
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The hash-key range of shard `id`.
    pub fn shard_range(&self, id: &str) -> (u128, u128) {
        let state = self.lock();
        let shard = state
            .shards
            .iter()
            .find(|s| s.id == id)
            .expect("known shard");
        (shard.start, shard.end)
    }

    /// `ListShards` calls so far.
    pub fn list_shards_calls(&self) -> usize {
        self.lock().list_shards_calls
    }

    /// The records stored in each shard, in shard order.
    pub fn stored_by_shard(&self) -> Vec<(String, Vec<KinesisRecord>)> {
        self.lock()
            .shards
            .iter()
            .map(|s| (s.id.clone(), s.stored.clone()))
            .collect()
    }

    /// All stored records, shard after shard.
    pub fn stored(&self) -> Vec<KinesisRecord> {
        self.stored_by_shard()
            .into_iter()
            .flat_map(|(_, r)| r)
            .collect()
    }

    fn list_shards(&self) -> ListShardsOutput {
        let mut state = self.lock();
        state.list_shards_calls += 1;
        let shards = state
            .shards
            .iter()
            .map(|s| {
                let mut seq = SequenceNumberRange::builder().starting_sequence_number("0");
                if !s.open {
                    seq = seq.ending_sequence_number("1");
                }
                Shard::builder()
                    .shard_id(&s.id)
                    .hash_key_range(
                        HashKeyRange::builder()
                            .starting_hash_key(s.start.to_string())
                            .ending_hash_key(s.end.to_string())
                            .build()
                            .unwrap(),
                    )
                    .sequence_number_range(seq.build().unwrap())
                    .build()
                    .unwrap()
            })
            .collect();
        ListShardsOutput::builder().set_shards(Some(shards)).build()
    }

    fn put_records(
        &self,
        input: &PutRecordsInput,
    ) -> MockResponse<PutRecordsOutput, PutRecordsError> {
        let records: Vec<KinesisRecord> = input
            .records()
            .iter()
            .map(|e| KinesisRecord {
                data: e.data().as_ref().to_vec().into(),
                partition_key: e.partition_key().unwrap_or_default().to_owned(),
                explicit_hash_key: e.explicit_hash_key().map(str::to_owned),
            })
            .collect();
        let mut state = self.lock();
        let call_no = state.calls.len();
        let fault = (state.plan)(call_no, &records);
        let mut per_shard: HashMap<String, ShardLoad> = HashMap::new();
        let mut routes = Vec::with_capacity(records.len());
        for record in &records {
            let key = HashKey::of(record)
                .expect("the sink sends valid hash keys")
                .value();
            let shard = state
                .shards
                .iter()
                .position(|s| s.open && s.start <= key && key <= s.end)
                .expect("open shards cover the key space");
            let load = per_shard.entry(state.shards[shard].id.clone()).or_default();
            load.records += 1;
            load.bytes += record.billed_bytes() as u64;
            routes.push(shard);
        }
        state.calls.push(Call {
            at: Instant::now(),
            records: records.clone(),
            per_shard,
            fault: fault.clone(),
        });
        let codes = match fault {
            Fault::Http500 => {
                return MockResponse::Http(HttpResponse::new(
                    StatusCode::try_from(500).unwrap(),
                    SdkBody::from("<html>Internal Server Error</html>"),
                ))
            }
            Fault::ThrottleCall => {
                return MockResponse::Error(
                    PutRecordsError::ProvisionedThroughputExceededException(
                        ProvisionedThroughputExceededException::builder()
                            .message("Rate exceeded for stream")
                            .build(),
                    ),
                )
            }
            Fault::None => vec![None; records.len()],
            Fault::Records(codes) => codes,
        };
        let mut results = Vec::with_capacity(records.len());
        let mut failed = 0;
        for (i, (record, shard)) in records.into_iter().zip(routes).enumerate() {
            match codes.get(i).copied().flatten() {
                Some(code) => {
                    failed += 1;
                    results.push(
                        PutRecordsResultEntry::builder()
                            .error_code(code)
                            .error_message(format!("injected {code}"))
                            .build(),
                    );
                }
                None => {
                    let shard = &mut state.shards[shard];
                    shard.stored.push(record);
                    results.push(
                        PutRecordsResultEntry::builder()
                            .shard_id(&shard.id)
                            .sequence_number(shard.stored.len().to_string())
                            .build(),
                    );
                }
            }
        }
        MockResponse::Output(
            PutRecordsOutput::builder()
                .failed_record_count(failed)
                .set_records(Some(results))
                .build()
                .unwrap(),
        )
    }
}

/// Per partition key, the data of its records in the order given.
pub fn by_key(records: &[KinesisRecord]) -> HashMap<String, Vec<Vec<u8>>> {
    let mut map: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
    for r in records {
        map.entry(r.partition_key.clone())
            .or_default()
            .push(r.data.to_vec());
    }
    map
}
