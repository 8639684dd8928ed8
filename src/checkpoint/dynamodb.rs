//! `DynamoDbCheckpointStore`: checkpoints in a DynamoDB table laid out like
//! the KCL 2.x lease table, with fenced (conditional) writes.
//!
//! # Item layout
//!
//! One item per partition (shard), with the KCL 2.x attribute names, so the
//! table can be inspected with KCL tooling:
//!
//! | attribute | type | meaning |
//! |---|---|---|
//! | `leaseKey` | S (hash key) | the shard id |
//! | `leaseOwner` | S | the owner name of the last writer |
//! | `leaseCounter` | N | incremented by every write |
//! | `checkpoint` | S | a sequence number, or `TRIM_HORIZON`, `LATEST`, `AT_TIMESTAMP`, `SHARD_END` |
//! | `checkpointSubSequenceNumber` | N | the user record inside a KPL aggregate |
//! | `ownerSwitchesSinceCheckpoint` | N | reset to 0 by a checkpoint |
//! | `parentShardId`, `childShardIds` | SS | lineage, written by [`set_lineage`](DynamoDbCheckpointStore::set_lineage) |
//!
//! # Fencing
//!
//! The store remembers, per partition, the `leaseCounter` it first read
//! ([`load`](CheckpointStore::load) or [`lease`](DynamoDbCheckpointStore::lease)),
//! and every write is conditional on the item still holding that counter
//! (or, for a partition without an item, on there being none) and
//! increments it. A writer whose counter is stale — someone else wrote since
//! it read — gets [`CheckpointError::Fenced`], and stays fenced: later
//! loads do not refresh the remembered counter (that would let a worker
//! that lost a lease silently take it back). Call
//! [`claim`](DynamoDbCheckpointStore::claim) to take a partition over
//! deliberately.
//!
//! # What it does not do
//!
//! Lease expiry, renewal and balancing between workers (the KCL's lease
//! coordinator): ownership here is "whoever wrote last and has not been
//! overtaken".

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TableStatus,
};

use super::{CheckpointError, CheckpointStore, Position, SequenceNumber};

/// The KCL 2.x lease table attribute names.
pub(crate) mod attr {
    pub const KEY: &str = "leaseKey";
    pub const OWNER: &str = "leaseOwner";
    pub const COUNTER: &str = "leaseCounter";
    pub const CHECKPOINT: &str = "checkpoint";
    pub const SUB_SEQUENCE: &str = "checkpointSubSequenceNumber";
    pub const OWNER_SWITCHES: &str = "ownerSwitchesSinceCheckpoint";
    pub const PARENTS: &str = "parentShardId";
    pub const CHILDREN: &str = "childShardIds";
}

/// The KCL's checkpoint sentinels.
pub(crate) mod sentinel {
    pub const TRIM_HORIZON: &str = "TRIM_HORIZON";
    pub const LATEST: &str = "LATEST";
    pub const AT_TIMESTAMP: &str = "AT_TIMESTAMP";
    pub const SHARD_END: &str = "SHARD_END";
}

/// How long [`DynamoDbCheckpointStore::create_table_if_missing`] waits for
/// the table to become `ACTIVE`.
const TABLE_ACTIVE_TIMEOUT: Duration = Duration::from_secs(300);

/// Checkpoints in a KCL-compatible DynamoDB lease table; see the
/// [module docs](self).
///
/// ```no_run
/// # async fn run() -> Result<(), unistream::checkpoint::CheckpointError> {
/// use unistream::checkpoint::DynamoDbCheckpointStore;
/// use unistream::{CheckpointStore, Position};
///
/// let config = aws_config::load_from_env().await;
/// let store = DynamoDbCheckpointStore::new(&config, "orders-consumer").owner("worker-1");
/// store.create_table_if_missing().await?;
/// let resume_after = store.load("shardId-000000000000").await?;
/// store.save("shardId-000000000000", &Position::sequence("49590338271490256608559692538361571095921575989136588898")).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DynamoDbCheckpointStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: aws_sdk_dynamodb::Client,
    table: String,
    owner: String,
    /// The lease counter this store expects per partition.
    claims: Mutex<HashMap<String, Claim>>,
}

/// What this store believes a partition's item holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    /// No item: the first write creates it.
    Absent,
    /// The item's `leaseCounter`.
    Counter(u64),
}

/// A lease item as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Lease {
    /// The partition (shard id).
    pub key: String,
    /// The last writer's owner name.
    pub owner: Option<String>,
    /// The lease counter.
    pub counter: u64,
    /// The checkpoint: `None` for no checkpoint or a sentinel other than
    /// `SHARD_END` (`TRIM_HORIZON`, `LATEST`, `AT_TIMESTAMP`).
    pub position: Option<Position>,
    /// The raw `checkpoint` attribute (a sequence number or a sentinel).
    pub checkpoint: Option<String>,
    /// `ownerSwitchesSinceCheckpoint`.
    pub owner_switches_since_checkpoint: u64,
    /// `parentShardId`.
    pub parent_shard_ids: Vec<String>,
    /// `childShardIds`.
    pub child_shard_ids: Vec<String>,
}

impl DynamoDbCheckpointStore {
    /// A store on `table` with a client built from `sdk_config`. The owner
    /// name defaults to `unistream-<pid>-<random>`.
    pub fn new(sdk_config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self::from_client(aws_sdk_dynamodb::Client::new(sdk_config), table)
    }

    /// A store using an existing client.
    pub fn from_client(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                table: table.into(),
                owner: format!("unistream-{}-{:08x}", std::process::id(), fastrand::u32(..)),
                claims: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// This store under another `leaseOwner` (a worker name), written with
    /// every checkpoint. The result remembers no counters yet; clones of it
    /// share its owner and counters.
    pub fn owner(self, owner: impl Into<String>) -> Self {
        Self {
            inner: Arc::new(Inner {
                client: self.inner.client.clone(),
                table: self.inner.table.clone(),
                owner: owner.into(),
                claims: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.inner.table
    }

    /// The owner name written with checkpoints.
    pub fn owner_name(&self) -> &str {
        &self.inner.owner
    }

    pub(crate) fn store_name(&self) -> String {
        format!("dynamodb table {}", self.inner.table)
    }

    fn backend<E, R>(&self, err: SdkError<E, R>) -> CheckpointError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        CheckpointError::backend(self.store_name(), SdkErrorBox::new(err))
    }

    /// Creates the table (hash key `leaseKey`, on-demand billing) unless it
    /// exists, and waits until it is `ACTIVE`.
    pub async fn create_table_if_missing(&self) -> Result<(), CheckpointError> {
        let client = &self.inner.client;
        let exists = match client
            .describe_table()
            .table_name(&self.inner.table)
            .send()
            .await
        {
            Ok(_) => true,
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                false
            }
            Err(err) => return Err(self.backend(err)),
        };
        if !exists {
            let created = client
                .create_table()
                .table_name(&self.inner.table)
                .attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name(attr::KEY)
                        .attribute_type(ScalarAttributeType::S)
                        .build()
                        .map_err(|e| CheckpointError::backend(self.store_name(), e))?,
                )
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name(attr::KEY)
                        .key_type(KeyType::Hash)
                        .build()
                        .map_err(|e| CheckpointError::backend(self.store_name(), e))?,
                )
                .billing_mode(BillingMode::PayPerRequest)
                .send()
                .await;
            match created {
                Ok(_) => {}
                // Someone else created it meanwhile.
                Err(err)
                    if err
                        .as_service_error()
                        .is_some_and(|e| e.is_resource_in_use_exception()) => {}
                Err(err) => return Err(self.backend(err)),
            }
        }
        let deadline = tokio::time::Instant::now() + TABLE_ACTIVE_TIMEOUT;
        loop {
            let described = client
                .describe_table()
                .table_name(&self.inner.table)
                .send()
                .await
                .map_err(|e| self.backend(e))?;
            let status = described.table().and_then(|t| t.table_status());
            if status == Some(&TableStatus::Active) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(CheckpointError::backend(
                    self.store_name(),
                    format!("table not ACTIVE after {TABLE_ACTIVE_TIMEOUT:?} (status {status:?})"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Reads `partition`'s lease item (strongly consistent). Remembers its
    /// counter for fencing if this store has not read it before.
    pub async fn lease(&self, partition: &str) -> Result<Option<Lease>, CheckpointError> {
        let item = self.get_item(partition).await?;
        let lease = item.map(|item| self.parse(partition, &item)).transpose()?;
        let claim = match &lease {
            Some(lease) => Claim::Counter(lease.counter),
            None => Claim::Absent,
        };
        self.claims().entry(partition.to_owned()).or_insert(claim);
        Ok(lease)
    }

    /// Takes `partition` over: re-reads its counter and remembers it even if
    /// an older one was remembered (this store was fenced). The next write
    /// succeeds unless someone else writes first.
    pub async fn claim(&self, partition: &str) -> Result<Option<Lease>, CheckpointError> {
        self.claims().remove(partition);
        self.lease(partition).await
    }

    /// Records a shard's lineage (`parentShardId`, `childShardIds`),
    /// conditionally like a checkpoint.
    pub async fn set_lineage(
        &self,
        partition: &str,
        parents: &[String],
        children: &[String],
    ) -> Result<(), CheckpointError> {
        let mut set = Vec::new();
        let mut remove = Vec::new();
        for (name, ids) in [(attr::PARENTS, parents), (attr::CHILDREN, children)] {
            if ids.is_empty() {
                remove.push(name);
            } else {
                set.push((name, AttributeValue::Ss(ids.to_vec())));
            }
        }
        self.write(partition, set, &remove).await
    }

    fn claims(&self) -> std::sync::MutexGuard<'_, HashMap<String, Claim>> {
        // A poisoned lock only means another thread panicked mid-insert of
        // a plain value; the map is still consistent.
        self.inner
            .claims
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) async fn get_item(
        &self,
        partition: &str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, CheckpointError> {
        let out = self
            .inner
            .client
            .get_item()
            .table_name(&self.inner.table)
            .key(attr::KEY, AttributeValue::S(partition.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.backend(e))?;
        Ok(out.item)
    }

    /// Reads the item and remembers its counter (first read only); the raw
    /// item for stores layered on this one.
    pub(crate) async fn load_item(
        &self,
        partition: &str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, CheckpointError> {
        let item = self.get_item(partition).await?;
        let claim = match &item {
            Some(item) => Claim::Counter(self.counter_of(partition, item)?),
            None => Claim::Absent,
        };
        self.claims().entry(partition.to_owned()).or_insert(claim);
        Ok(item)
    }

    fn corrupt(&self, partition: &str, reason: impl std::fmt::Display) -> CheckpointError {
        CheckpointError::Corrupt {
            store: self.store_name(),
            reason: format!("item {partition}: {reason}"),
        }
    }

    fn counter_of(
        &self,
        partition: &str,
        item: &HashMap<String, AttributeValue>,
    ) -> Result<u64, CheckpointError> {
        match item.get(attr::COUNTER) {
            None => Ok(0),
            Some(AttributeValue::N(n)) => n.parse().map_err(|_| {
                self.corrupt(partition, format!("leaseCounter {n:?} is not a counter"))
            }),
            Some(other) => Err(self.corrupt(partition, format!("leaseCounter is {other:?}"))),
        }
    }

    pub(crate) fn position_of(
        &self,
        partition: &str,
        item: &HashMap<String, AttributeValue>,
    ) -> Result<Option<Position>, CheckpointError> {
        let checkpoint = match item.get(attr::CHECKPOINT) {
            None | Some(AttributeValue::Null(_)) => return Ok(None),
            Some(AttributeValue::S(s)) => s.as_str(),
            Some(other) => return Err(self.corrupt(partition, format!("checkpoint is {other:?}"))),
        };
        let sub = match item.get(attr::SUB_SEQUENCE) {
            None => 0,
            Some(AttributeValue::N(n)) => n.parse().map_err(|_| {
                self.corrupt(partition, format!("checkpointSubSequenceNumber {n:?}"))
            })?,
            Some(other) => {
                return Err(self.corrupt(
                    partition,
                    format!("checkpointSubSequenceNumber is {other:?}"),
                ))
            }
        };
        match checkpoint {
            sentinel::SHARD_END => Ok(Some(Position::End)),
            sentinel::TRIM_HORIZON | sentinel::LATEST | sentinel::AT_TIMESTAMP => Ok(None),
            digits if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(Some(Position::Sequence {
                    sequence: SequenceNumber::new(digits),
                    sub,
                }))
            }
            other => Err(self.corrupt(partition, format!("checkpoint {other:?}"))),
        }
    }

    fn parse(
        &self,
        partition: &str,
        item: &HashMap<String, AttributeValue>,
    ) -> Result<Lease, CheckpointError> {
        let string = |name| match item.get(name) {
            Some(AttributeValue::S(s)) => Some(s.clone()),
            _ => None,
        };
        let set = |name| match item.get(name) {
            Some(AttributeValue::Ss(s)) => s.clone(),
            _ => Vec::new(),
        };
        let switches = match item.get(attr::OWNER_SWITCHES) {
            Some(AttributeValue::N(n)) => n.parse().unwrap_or(0),
            _ => 0,
        };
        Ok(Lease {
            key: partition.to_owned(),
            owner: string(attr::OWNER),
            counter: self.counter_of(partition, item)?,
            position: self.position_of(partition, item)?,
            checkpoint: string(attr::CHECKPOINT),
            owner_switches_since_checkpoint: switches,
            parent_shard_ids: set(attr::PARENTS),
            child_shard_ids: set(attr::CHILDREN),
        })
    }

    /// The attributes a checkpoint at `position` sets.
    pub(crate) fn checkpoint_attrs(
        &self,
        partition: &str,
        position: &Position,
    ) -> Result<Vec<(&'static str, AttributeValue)>, CheckpointError> {
        let (checkpoint, sub) = match position {
            Position::Sequence { sequence, sub } => (sequence.as_str().to_owned(), *sub),
            Position::End => (sentinel::SHARD_END.to_owned(), 0),
            Position::Offset(_) => {
                return Err(CheckpointError::backend(
                    self.store_name(),
                    format!(
                        "partition {partition}: {position} cannot be stored in a Kinesis lease \
                         table (sequence numbers and SHARD_END only)"
                    ),
                ))
            }
        };
        Ok(vec![
            (attr::CHECKPOINT, AttributeValue::S(checkpoint)),
            (attr::SUB_SEQUENCE, AttributeValue::N(sub.to_string())),
            (attr::OWNER_SWITCHES, AttributeValue::N("0".to_owned())),
        ])
    }

    /// Writes `set` and removes `remove` on `partition`'s item, conditional
    /// on the remembered counter, incrementing it and stamping the owner.
    pub(crate) async fn write(
        &self,
        partition: &str,
        set: Vec<(&str, AttributeValue)>,
        remove: &[&str],
    ) -> Result<(), CheckpointError> {
        let claim = self.claims().get(partition).copied();
        let claim = match claim {
            Some(claim) => claim,
            None => {
                // Never read: read now, so the write is conditional on
                // what this store saw.
                self.load_item(partition).await?;
                self.claims()
                    .get(partition)
                    .copied()
                    .unwrap_or(Claim::Absent)
            }
        };
        let client = &self.inner.client;
        let next = match claim {
            Claim::Absent => 1,
            Claim::Counter(c) => c + 1,
        };
        let result = match claim {
            Claim::Absent => {
                let mut request = client
                    .put_item()
                    .table_name(&self.inner.table)
                    .item(attr::KEY, AttributeValue::S(partition.to_owned()))
                    .item(attr::OWNER, AttributeValue::S(self.inner.owner.clone()))
                    .item(attr::COUNTER, AttributeValue::N(next.to_string()))
                    .condition_expression("attribute_not_exists(#key)")
                    .expression_attribute_names("#key", attr::KEY)
                    .return_values_on_condition_check_failure(
                        ReturnValuesOnConditionCheckFailure::AllOld,
                    );
                for (name, value) in set {
                    request = request.item(name, value);
                }
                request.send().await.map(|_| ()).map_err(|err| {
                    let item = err
                        .as_service_error()
                        .filter(|e| e.is_conditional_check_failed_exception())
                        .map(|e| match e {
                            aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c) => c.item().cloned(),
                            _ => None,
                        });
                    (item, SdkErrorBox::new(err))
                })
            }
            Claim::Counter(expected) => {
                let mut update = String::from("SET #counter = :next, #owner = :owner");
                let mut request = client
                    .update_item()
                    .table_name(&self.inner.table)
                    .key(attr::KEY, AttributeValue::S(partition.to_owned()))
                    .condition_expression("#counter = :expected")
                    .expression_attribute_names("#counter", attr::COUNTER)
                    .expression_attribute_names("#owner", attr::OWNER)
                    .expression_attribute_values(":next", AttributeValue::N(next.to_string()))
                    .expression_attribute_values(
                        ":expected",
                        AttributeValue::N(expected.to_string()),
                    )
                    .expression_attribute_values(
                        ":owner",
                        AttributeValue::S(self.inner.owner.clone()),
                    )
                    .return_values_on_condition_check_failure(
                        ReturnValuesOnConditionCheckFailure::AllOld,
                    );
                for (i, (name, value)) in set.into_iter().enumerate() {
                    update.push_str(&format!(", #s{i} = :s{i}"));
                    request = request
                        .expression_attribute_names(format!("#s{i}"), name)
                        .expression_attribute_values(format!(":s{i}"), value);
                }
                if !remove.is_empty() {
                    update.push_str(" REMOVE ");
                    for (i, name) in remove.iter().enumerate() {
                        if i > 0 {
                            update.push_str(", ");
                        }
                        update.push_str(&format!("#r{i}"));
                        request = request.expression_attribute_names(format!("#r{i}"), *name);
                    }
                }
                request
                    .update_expression(update)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|err| {
                        let item = err
                            .as_service_error()
                            .filter(|e| e.is_conditional_check_failed_exception())
                            .map(|e| match e {
                                aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c) => c.item().cloned(),
                                _ => None,
                            });
                        (item, SdkErrorBox::new(err))
                    })
            }
        };
        match result {
            Ok(()) => {
                self.claims()
                    .insert(partition.to_owned(), Claim::Counter(next));
                Ok(())
            }
            Err((Some(current), _)) => {
                let (owner, counter) = match current {
                    Some(item) => (
                        match item.get(attr::OWNER) {
                            Some(AttributeValue::S(s)) => s.clone(),
                            _ => "-".to_owned(),
                        },
                        self.counter_of(partition, &item)
                            .map(|c| c.to_string())
                            .unwrap_or_else(|_| "?".to_owned()),
                    ),
                    None => ("-".to_owned(), "?".to_owned()),
                };
                Err(CheckpointError::Fenced {
                    partition: partition.to_owned(),
                    reason: format!(
                        "{} expected leaseCounter {}, the item has {counter} (owner {owner})",
                        self.inner.owner,
                        match claim {
                            Claim::Absent => "none (no item)".to_owned(),
                            Claim::Counter(c) => c.to_string(),
                        }
                    ),
                })
            }
            Err((None, err)) => Err(CheckpointError::backend(self.store_name(), err)),
        }
    }
}

/// An SDK error boxed with its code in the message, for
/// [`CheckpointError::Backend`].
#[derive(Debug)]
struct SdkErrorBox(String, Box<dyn std::error::Error + Send + Sync + 'static>);

impl SdkErrorBox {
    fn new<E, R>(err: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        let code = err.code().unwrap_or("-").to_owned();
        let message = format!(
            "{} ({code})",
            aws_smithy_types::error::display::DisplayErrorContext(&err)
        );
        Self(message, Box::new(err))
    }
}

impl std::fmt::Display for SdkErrorBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SdkErrorBox {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.1)
    }
}

impl CheckpointStore for DynamoDbCheckpointStore {
    async fn load(&self, partition: &str) -> Result<Option<Position>, CheckpointError> {
        match self.load_item(partition).await? {
            Some(item) => self.position_of(partition, &item),
            None => Ok(None),
        }
    }

    async fn save(&self, partition: &str, position: &Position) -> Result<(), CheckpointError> {
        let attrs = self.checkpoint_attrs(partition, position)?;
        self.write(partition, attrs, &[]).await
    }
}
