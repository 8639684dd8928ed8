//! What exactly-once effects cost against a DynamoDB lease table (figures
//! in BENCHMARKS.md, "Exactly-once effects: cost per 1,000 records").
//!
//! Every iteration is 1,000 records of one partition (`shard-0`), whose
//! lease a `LeaseWorker` (default `LeaseConfig`: 10 s leases, renewals
//! every 3.3 s, a table scan every 2 s) took before the clock starts. The
//! modes, all with a commit every `N` = 100 records (the interval, 60 s,
//! never fires):
//!
//! - `plain`: the tokens → `checkpoint_batched(100, 60 s, store)` with the
//!   worker's `LeaseCheckpointStore`: at-least-once, no effect.
//! - `plain+effect`: the same, each record first doing its effect, one
//!   `PutItem` of a 100-byte item into an output table (16 records in
//!   flight, `buffered(16)`): at-least-once effects, the baseline of the
//!   two modes below.
//! - `transactional`: `checkpoint_transactional(100, 60 s, store)`, each
//!   record's output the same item as a `TransactWriteItem` `Put`, written
//!   with the checkpoint. DynamoDB allows 100 actions per transaction, one
//!   of them the lease's, so 100 records of one output each take two
//!   transactions (99 + 1); `transactional/n=99` shows one per commit.
//! - `idempotent`: `Idempotency` over `DynamoDbIdempotencyStore` around
//!   the `PutItem` of `plain+effect` (key: `idempotency_key(token)`, 16 in
//!   flight), then `checkpoint_batched(100, …)` as in `plain`.
//!
//! Timed: from the first record into the pipeline to the stream's end
//! (the final commit included); setting up the tables, the lease and the
//! worker is not. Every DynamoDB request the SDK client sends is counted
//! by an interceptor (per attempt, so retries count) and classified by
//! operation and table; renewals and scans of the worker's background
//! tasks during the timed part are shown apart (they depend on time, not
//! on records). After each iteration the output table holds the 1,000
//! items and the lease the checkpoint after the last record (checked).
//!
//! Two backends: `moto/*`, the local moto server as the tests start it
//! (its DynamoDB serving one request at a time), and `stub/*`, the real
//! SDK client answered in process by a small stand-in of DynamoDB
//! (`aws-smithy-mocks` rules over one shared in-memory state: items, the
//! update expressions this crate sends, transactions) behind an HTTP
//! client that answers every request after a fixed 5 ms. The stand-in
//! evaluates no condition expression: every conditional write of these
//! workloads succeeds on DynamoDB too (one worker, fresh keys), which the
//! moto runs check with conditions evaluated.
//!
//! After each group, the request table (per 1,000 records, mean over the
//! iterations, warm-up included) and records per wall-second are printed.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::operation::delete_item::DeleteItemInput;
use aws_sdk_dynamodb::operation::describe_table::DescribeTableOutput;
use aws_sdk_dynamodb::operation::get_item::{GetItemInput, GetItemOutput};
use aws_sdk_dynamodb::operation::put_item::{PutItemInput, PutItemOutput};
use aws_sdk_dynamodb::operation::scan::{ScanInput, ScanOutput};
use aws_sdk_dynamodb::operation::transact_write_items::{
    TransactWriteItemsInput, TransactWriteItemsOutput,
};
use aws_sdk_dynamodb::operation::update_item::{UpdateItemInput, UpdateItemOutput};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, Put,
    ScalarAttributeType, TableDescription, TableStatus, TransactWriteItem,
};
use aws_sdk_dynamodb::Client;
use aws_smithy_mocks::{mock, MockResponseInterceptor, RuleMode};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::http::HttpConnectorFuture;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use futures::{stream, StreamExt, TryStreamExt};
use unistream::checkpoint::{
    CheckpointStreamExt, CheckpointToken, PartitionControl, Position, TransactionalStreamExt,
};
use unistream::dynamodb::{DynamoDbIdempotencyStore, DynamoDbLeaseTable};
use unistream::idempotency::{idempotency_key, Idempotency};
use unistream::lease::{
    AcquiredLease, Lease, LeaseCheckpoint, LeaseConfig, LeaseTable, LeaseWorker,
};
use unistream::Error;

#[path = "support/mod.rs"]
#[allow(dead_code)]
mod support;
use support::runtime;

#[path = "../tests/support/mod.rs"]
mod test_support;
use test_support::emulators;
use test_support::http_client::AnsweringHttpClient;

/// Records per iteration.
const RECORDS: u64 = 1_000;
/// Records per commit (`checkpoint_batched` and `checkpoint_transactional`).
const N: usize = 100;
/// Effects in flight in the modes that do one per record.
const IN_FLIGHT: usize = 16;
/// The stub's latency per request.
const STUB_LATENCY: Duration = Duration::from_millis(5);
/// Never reached: commits come every `N` records and at the end.
const INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plain,
    PlainEffect,
    Transactional { n: usize },
    Idempotent,
}

impl Mode {
    fn name(self) -> String {
        match self {
            Mode::Plain => "plain".into(),
            Mode::PlainEffect => "plain+effect".into(),
            Mode::Transactional { n } if n == N => "transactional".into(),
            Mode::Transactional { n } => format!("transactional/n={n}"),
            Mode::Idempotent => "idempotent".into(),
        }
    }

    fn effects(self) -> bool {
        !matches!(self, Mode::Plain)
    }
}

const MODES: [Mode; 5] = [
    Mode::Plain,
    Mode::PlainEffect,
    Mode::Transactional { n: N },
    Mode::Transactional { n: 99 },
    Mode::Idempotent,
];

// ---------------------------------------------------------------------------
// Counting requests.

/// What one request is, as counted: `operation table-role[: detail]`.
#[derive(Debug, Clone)]
struct Label(String);

impl Storable for Label {
    type Storer = StoreReplace<Self>;
}

/// Counts every request attempt of a client by [`Label`].
#[derive(Debug, Clone, Default)]
struct RequestCounter {
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl RequestCounter {
    fn snapshot(&self) -> BTreeMap<String, u64> {
        self.counts.lock().expect("counts").clone()
    }

    fn add(&self, label: &str, by: u64) {
        *self
            .counts
            .lock()
            .expect("counts")
            .entry(label.to_owned())
            .or_default() += by;
    }
}

/// The role of a table, from the prefix of its bench-made name.
fn role(table: &str) -> &str {
    table.split('-').next().unwrap_or(table)
}

/// Labels of the worker's background requests.
const BACKGROUND: [&str; 2] = ["Scan leases", "UpdateItem leases: renew/take"];
/// The label counting the actions inside `TransactWriteItems`.
const ACTIONS: &str = "(TransactWriteItems actions)";

fn classify(
    operation: &str,
    input: &aws_smithy_runtime_api::client::interceptors::context::Input,
) -> (String, u64) {
    if let Some(update) = input.downcast_ref::<UpdateItemInput>() {
        let table = update.table_name().unwrap_or_default();
        if role(table) == "leases" {
            let checkpoint = update
                .expression_attribute_names()
                .is_some_and(|names| names.values().any(|n| n == "checkpoint"));
            let what = if checkpoint {
                "checkpoint"
            } else {
                "renew/take"
            };
            return (format!("UpdateItem leases: {what}"), 0);
        }
        return (format!("UpdateItem {}", role(table)), 0);
    }
    if let Some(transact) = input.downcast_ref::<TransactWriteItemsInput>() {
        let mut tables: Vec<&str> = transact
            .transact_items()
            .iter()
            .filter_map(|item| {
                item.put()
                    .map(|p| p.table_name())
                    .or_else(|| item.update().map(|u| u.table_name()))
            })
            .map(role)
            .collect();
        tables.sort_unstable();
        tables.dedup();
        return (
            format!("TransactWriteItems {}", tables.join("+")),
            transact.transact_items().len() as u64,
        );
    }
    let table = if let Some(put) = input.downcast_ref::<PutItemInput>() {
        put.table_name()
    } else if let Some(get) = input.downcast_ref::<GetItemInput>() {
        get.table_name()
    } else if let Some(scan) = input.downcast_ref::<ScanInput>() {
        scan.table_name()
    } else if let Some(delete) = input.downcast_ref::<DeleteItemInput>() {
        delete.table_name()
    } else if let Some(describe) =
        input.downcast_ref::<aws_sdk_dynamodb::operation::describe_table::DescribeTableInput>()
    {
        describe.table_name()
    } else {
        None
    };
    match table {
        Some(table) => (format!("{operation} {}", role(table)), 0),
        None => (operation.to_owned(), 0),
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    // Not `read_before_execution`: a client's interceptors see that hook
    // before the operation's configuration (its `Metadata`) is in the bag.
    fn read_before_serialization(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg
            .load::<Metadata>()
            .ok_or("no operation Metadata in the config bag")?
            .name()
            .to_owned();
        let (label, actions) = classify(&operation, context.input());
        if actions > 0 {
            self.add(ACTIONS, actions);
        }
        cfg.interceptor_state().store_put(Label(label));
        Ok(())
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let label = cfg
            .load::<Label>()
            .map_or_else(|| "unlabelled".to_owned(), |l| l.0.clone());
        self.add(&label, 1);
        Ok(())
    }
}

/// `after - before`, zeros left out.
fn difference(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

// ---------------------------------------------------------------------------
// The in-process stand-in of DynamoDB.

type Item = HashMap<String, AttributeValue>;

/// Tables of the stand-in: hash-key attribute and items by key.
#[derive(Debug, Default)]
struct StubTables {
    tables: HashMap<String, (String, BTreeMap<String, Item>)>,
}

impl StubTables {
    fn create(&mut self, table: &str, hash_key: &str) {
        self.tables
            .insert(table.to_owned(), (hash_key.to_owned(), BTreeMap::new()));
    }

    fn table(&mut self, table: &str) -> &mut (String, BTreeMap<String, Item>) {
        self.tables
            .get_mut(table)
            .unwrap_or_else(|| panic!("stub: no table {table}"))
    }

    fn key_of(hash_key: &str, item: &Item) -> String {
        format!(
            "{:?}",
            item.get(hash_key).expect("stub: an item without its key")
        )
    }

    fn put(&mut self, table: &str, item: Item) {
        let (hash_key, items) = self.table(table);
        items.insert(Self::key_of(hash_key, &item), item);
    }

    fn get(&mut self, table: &str, key: &Item) -> Option<Item> {
        let (hash_key, items) = self.table(table);
        items.get(&Self::key_of(hash_key, key)).cloned()
    }

    /// Applies an update expression of the forms this crate sends
    /// (`SET a = :v, …`, `ADD a :n, …`, `REMOVE a, …`); the item after it.
    fn update(
        &mut self,
        table: &str,
        key: &Item,
        expression: &str,
        names: Option<&HashMap<String, String>>,
        values: Option<&HashMap<String, AttributeValue>>,
    ) -> Item {
        let (hash_key, items) = self.table(table);
        let item = items
            .entry(Self::key_of(hash_key, key))
            .or_insert_with(|| key.clone());
        let name = |token: &str| match names.and_then(|n| n.get(token)) {
            Some(name) => name.clone(),
            None => token.to_owned(),
        };
        let value = |token: &str| {
            values
                .and_then(|v| v.get(token))
                .cloned()
                .unwrap_or_else(|| panic!("stub: no value {token} in {expression}"))
        };
        let spaced = expression.replace(',', " , ").replace('=', " = ");
        let mut tokens = spaced.split_whitespace().peekable();
        let mut clause = "";
        while let Some(token) = tokens.next() {
            match token {
                "SET" | "ADD" | "REMOVE" => clause = token,
                "," => {}
                attribute => match clause {
                    "SET" => {
                        assert_eq!(tokens.next(), Some("="), "stub: {expression}");
                        let v = value(tokens.next().expect("stub: SET without a value"));
                        item.insert(name(attribute), v);
                    }
                    "ADD" => {
                        let v = value(tokens.next().expect("stub: ADD without a value"));
                        let add: i128 = v.as_n().expect("stub: ADD of a number").parse().unwrap();
                        let attribute = name(attribute);
                        let old: i128 = item
                            .get(&attribute)
                            .map_or(0, |o| o.as_n().expect("a number").parse().unwrap());
                        item.insert(attribute, AttributeValue::N((old + add).to_string()));
                    }
                    "REMOVE" => {
                        item.remove(&name(attribute));
                    }
                    _ => panic!("stub: cannot read update expression {expression}"),
                },
            }
        }
        item.clone()
    }
}

/// A DynamoDB client answered by a [`StubTables`] after `latency` per
/// request, counted by `counter`.
fn stub_client(tables: Arc<Mutex<StubTables>>, counter: RequestCounter) -> Client {
    let t = tables.clone();
    let put = mock!(Client::put_item).then_compute_output(move |input| {
        let mut tables = t.lock().expect("stub");
        tables.put(
            input.table_name().expect("table"),
            input.item().expect("item").clone(),
        );
        PutItemOutput::builder().build()
    });
    let t = tables.clone();
    let get = mock!(Client::get_item).then_compute_output(move |input| {
        let mut tables = t.lock().expect("stub");
        let item = tables.get(
            input.table_name().expect("table"),
            input.key().expect("key"),
        );
        GetItemOutput::builder().set_item(item).build()
    });
    let t = tables.clone();
    let update = mock!(Client::update_item).then_compute_output(move |input| {
        let mut tables = t.lock().expect("stub");
        let after = tables.update(
            input.table_name().expect("table"),
            input.key().expect("key"),
            input.update_expression().expect("an update expression"),
            input.expression_attribute_names(),
            input.expression_attribute_values(),
        );
        UpdateItemOutput::builder()
            .set_attributes(Some(after))
            .build()
    });
    let t = tables.clone();
    let scan = mock!(Client::scan).then_compute_output(move |input| {
        let mut tables = t.lock().expect("stub");
        let items: Vec<Item> = tables
            .table(input.table_name().expect("table"))
            .1
            .values()
            .cloned()
            .collect();
        ScanOutput::builder()
            .count(items.len() as i32)
            .set_items(Some(items))
            .build()
    });
    let t = tables.clone();
    let transact = mock!(Client::transact_write_items).then_compute_output(move |input| {
        let mut tables = t.lock().expect("stub");
        for action in input.transact_items() {
            if let Some(put) = action.put() {
                tables.put(put.table_name(), put.item().clone());
            } else if let Some(update) = action.update() {
                tables.update(
                    update.table_name(),
                    update.key(),
                    update.update_expression(),
                    update.expression_attribute_names(),
                    update.expression_attribute_values(),
                );
            } else {
                panic!("stub: an action it does not know: {action:?}");
            }
        }
        TransactWriteItemsOutput::builder().build()
    });
    let t = tables;
    let describe = mock!(Client::describe_table).then_compute_output(move |input| {
        let mut tables = t.lock().expect("stub");
        let name = input.table_name().expect("table");
        let hash_key = tables.table(name).0.clone();
        DescribeTableOutput::builder()
            .table(
                TableDescription::builder()
                    .table_name(name)
                    .table_status(TableStatus::Active)
                    .key_schema(
                        KeySchemaElement::builder()
                            .attribute_name(hash_key)
                            .key_type(KeyType::Hash)
                            .build()
                            .expect("key schema"),
                    )
                    .build(),
            )
            .build()
    });
    let mocks = MockResponseInterceptor::new()
        .rule_mode(RuleMode::MatchAny)
        .with_rule(&put)
        .with_rule(&get)
        .with_rule(&update)
        .with_rule(&scan)
        .with_rule(&transact)
        .with_rule(&describe);
    let latency = AnsweringHttpClient::new(|_request| {
        HttpConnectorFuture::new(async {
            tokio::time::sleep(STUB_LATENCY).await;
            Ok(HttpResponse::new(
                StatusCode::try_from(200).expect("status"),
                SdkBody::from("{}"),
            ))
        })
    });
    Client::from_conf(
        aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("bench", "bench", None, None, "static"))
            .http_client(latency)
            .interceptor(mocks)
            .interceptor(counter)
            .build(),
    )
}

// ---------------------------------------------------------------------------
// One iteration.

#[derive(Clone)]
enum Backend {
    Moto(Box<aws_config::SdkConfig>),
    Stub,
}

/// The tables of one iteration, a worker holding `shard-0`, and the client.
struct Setup {
    client: Client,
    counter: RequestCounter,
    leases: String,
    outputs: String,
    idempotency: DynamoDbIdempotencyStore,
    worker: LeaseWorker<DynamoDbLeaseTable>,
    lease: AcquiredLease,
    control: PartitionControl,
}

async fn create_output_table(client: &Client, name: &str) {
    client
        .create_table()
        .table_name(name)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attribute"),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .expect("key schema"),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create the output table");
}

async fn setup(backend: &Backend) -> Setup {
    let counter = RequestCounter::default();
    let leases = emulators::unique_name("leases");
    let outputs = emulators::unique_name("outputs");
    let idempotency_table = emulators::unique_name("idempotency");
    let client = match backend {
        Backend::Moto(conf) => Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&**conf)
                .interceptor(counter.clone())
                .build(),
        ),
        Backend::Stub => {
            let mut tables = StubTables::default();
            tables.create(&leases, "leaseKey");
            tables.create(&outputs, "pk");
            tables.create(&idempotency_table, "id");
            stub_client(Arc::new(Mutex::new(tables)), counter.clone())
        }
    };
    let table = DynamoDbLeaseTable::from_client(client.clone(), leases.as_str());
    let idempotency = DynamoDbIdempotencyStore::from_client(client.clone(), idempotency_table);
    if let Backend::Moto(_) = backend {
        table.create_table_if_missing().await.expect("lease table");
        create_output_table(&client, &outputs).await;
        idempotency
            .create_table_if_missing()
            .await
            .expect("idempotency table");
    }
    table
        .create(Lease::new("shard-0", LeaseCheckpoint::TrimHorizon))
        .await
        .expect("the lease");
    let worker = LeaseWorker::start(table, "bench", LeaseConfig::new().seed(1));
    let lease = worker
        .acquired()
        .expect("acquired leases")
        .next()
        .await
        .expect("the worker takes the lease");
    let control = lease.control().clone();
    Setup {
        client,
        counter,
        leases,
        outputs,
        idempotency,
        worker,
        lease,
        control,
    }
}

fn position(seq: u64) -> Position {
    Position::sequence(format!("{seq:056}"))
}

fn token(control: &PartitionControl, seq: u64) -> CheckpointToken {
    CheckpointToken::new("shard-0", position(seq + 1), seq).with_control(control.clone())
}

/// The output item of record `seq`: its key and 100 bytes.
fn output_item(seq: u64) -> Item {
    let mut data = format!("record {seq} ");
    data.extend(std::iter::repeat_n('x', 100 - data.len()));
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(format!("r{seq}"))),
        ("data".to_owned(), AttributeValue::S(data)),
    ])
}

async fn effect(client: &Client, table: &str, seq: u64) -> Result<(), Error> {
    client
        .put_item()
        .table_name(table)
        .set_item(Some(output_item(seq)))
        .send()
        .await
        .map_err(|e| Error::Config(format!("the effect failed: {e:?}")))?;
    Ok(())
}

/// Wall time and the requests of the timed part.
struct Outcome {
    wall: Duration,
    requests: BTreeMap<String, u64>,
}

async fn run_once(backend: &Backend, mode: Mode) -> Outcome {
    let s = setup(backend).await;
    let control = s.control.clone();
    let store = s.worker.checkpoint_store();
    let before = s.counter.snapshot();
    let started = Instant::now();
    match mode {
        Mode::Plain => {
            stream::iter((0..RECORDS).map(|seq| Ok::<_, Error>(token(&control, seq))))
                .checkpoint_batched(N, INTERVAL, store)
                .try_collect::<()>()
                .await
                .expect("checkpointed");
        }
        Mode::PlainEffect => {
            let (client, outputs) = (&s.client, s.outputs.as_str());
            stream::iter(0..RECORDS)
                .map(|seq| {
                    let token = token(&control, seq);
                    async move {
                        effect(client, outputs, seq).await?;
                        Ok::<_, Error>(token)
                    }
                })
                .buffered(IN_FLIGHT)
                .checkpoint_batched(N, INTERVAL, store)
                .try_collect::<()>()
                .await
                .expect("checkpointed");
        }
        Mode::Transactional { n } => {
            let items: Vec<Result<(Vec<TransactWriteItem>, CheckpointToken), Error>> = (0..RECORDS)
                .map(|seq| {
                    let put = Put::builder()
                        .table_name(&s.outputs)
                        .set_item(Some(output_item(seq)))
                        .build()
                        .expect("put");
                    let output = TransactWriteItem::builder().put(put).build();
                    Ok((vec![output], token(&control, seq)))
                })
                .collect();
            let commits: Vec<_> = stream::iter(items)
                .checkpoint_transactional(n, INTERVAL, store)
                .try_collect()
                .await
                .expect("committed");
            let records: usize = commits.iter().map(|c| c.records).sum();
            assert_eq!(records as u64, RECORDS);
        }
        Mode::Idempotent => {
            let once = Idempotency::new(s.idempotency.clone());
            let (client, outputs, once) = (&s.client, s.outputs.as_str(), &once);
            stream::iter(0..RECORDS)
                .map(|seq| {
                    let token = token(&control, seq);
                    async move {
                        let key = idempotency_key(&token);
                        let ran = once
                            .run(&key, || async move { effect(client, outputs, seq).await })
                            .await?;
                        assert!(ran.ran(), "a fresh key runs");
                        Ok::<_, Error>(token)
                    }
                })
                .buffered(IN_FLIGHT)
                .checkpoint_batched(N, INTERVAL, store)
                .try_collect::<()>()
                .await
                .expect("checkpointed");
        }
    }
    let wall = started.elapsed();
    let requests = difference(&before, &s.counter.snapshot());
    // What landed: the checkpoint after the last record, and every output.
    let lease = s
        .worker
        .table()
        .get("shard-0")
        .await
        .expect("read the lease")
        .expect("the lease");
    assert_eq!(lease.checkpoint, LeaseCheckpoint::At(position(RECORDS)));
    assert_eq!(lease.owner.as_deref(), Some("bench"), "{}", s.leases);
    if mode.effects() {
        assert_eq!(count_items(&s.client, &s.outputs).await, RECORDS);
    }
    s.lease.stopped(RECORDS);
    s.worker.shutdown();
    s.worker.stopped().await;
    Outcome { wall, requests }
}

async fn count_items(client: &Client, table: &str) -> u64 {
    let mut count = 0;
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .expect("scan the outputs");
        count += page.items().len() as u64;
        match page.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => break,
        }
    }
    count
}

// ---------------------------------------------------------------------------
// Bookkeeping and the table printed after each group.

#[derive(Default)]
struct Totals {
    iterations: u64,
    wall: Duration,
    requests: BTreeMap<String, u64>,
    /// Requests of the records' own path (background left out) per
    /// iteration: least and most.
    foreground: Option<(u64, u64)>,
}

static TOTALS: Mutex<Vec<(String, Totals)>> = Mutex::new(Vec::new());

fn note(label: &str, outcome: Outcome) {
    let mut totals = TOTALS.lock().expect("totals");
    let index = match totals.iter().position(|(l, _)| l == label) {
        Some(i) => i,
        None => {
            totals.push((label.to_owned(), Totals::default()));
            totals.len() - 1
        }
    };
    let t = &mut totals[index].1;
    t.iterations += 1;
    t.wall += outcome.wall;
    let foreground: u64 = outcome
        .requests
        .iter()
        .filter(|(k, _)| !BACKGROUND.contains(&k.as_str()) && k.as_str() != ACTIONS)
        .map(|(_, v)| v)
        .sum();
    t.foreground = Some(match t.foreground {
        None => (foreground, foreground),
        Some((lo, hi)) => (lo.min(foreground), hi.max(foreground)),
    });
    for (k, v) in outcome.requests {
        *t.requests.entry(k).or_default() += v;
    }
}

fn print_table(prefix: &str) {
    let totals = TOTALS.lock().expect("totals");
    println!();
    println!(
        "{prefix}: requests per {RECORDS} records (mean over iterations), commit every {N} records unless named"
    );
    for (label, t) in totals.iter().filter(|(l, _)| l.starts_with(prefix)) {
        let per = |v: u64| v as f64 / t.iterations as f64;
        let (lo, hi) = t.foreground.unwrap_or_default();
        let spread = if lo == hi {
            format!("{lo}")
        } else {
            format!("{lo}–{hi}")
        };
        println!(
            "{label}: {} iterations, {:.0} records per wall-second; {spread} requests on the records' path",
            t.iterations,
            (RECORDS * t.iterations) as f64 / t.wall.as_secs_f64(),
        );
        for (op, v) in &t.requests {
            let kind = if BACKGROUND.contains(&op.as_str()) {
                " (worker background)"
            } else {
                ""
            };
            println!("    {op}{kind}: {:.1}", per(*v));
        }
    }
}

fn group(c: &mut Criterion, prefix: &'static str, backend: &Backend) {
    let rt = runtime(2);
    let mut group = c.benchmark_group(prefix);
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(RECORDS));
    for mode in MODES {
        let label = format!("{prefix}/{}", mode.name());
        group.bench_function(mode.name(), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let label = label.clone();
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let outcome = run_once(backend, mode).await;
                        total += outcome.wall;
                        note(&label, outcome);
                    }
                    total
                }
            })
        });
    }
    group.finish();
    print_table(prefix);
}

/// Whether no filter on the command line, or one naming `group`, selects it.
fn selected(group: &str) -> bool {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    filters.is_empty() || filters.iter().any(|f| f.contains(group))
}

fn stub(c: &mut Criterion) {
    if !selected("stub") {
        return;
    }
    group(c, "stub", &Backend::Stub);
}

fn moto(c: &mut Criterion) {
    // Set up only when this group can be selected: it starts moto.
    if !selected("moto") {
        return;
    }
    let conf = runtime(1).block_on(emulators::sdk_config(emulators::moto()));
    group(c, "moto", &Backend::Moto(Box::new(conf)));
}

criterion_group!(benches, stub, moto);
criterion_main!(benches);
