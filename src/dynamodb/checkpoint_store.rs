//! `DynamoDbCheckpointStore`: checkpoints in a DynamoDB table laid out like
//! the KCL 2.x lease table, with fenced (conditional) writes.
//!
//! Item layout, fencing and what it does not do are documented on
//! [`DynamoDbCheckpointStore`], where users read them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use super::item_update::ItemUpdate;
use super::lease_item::{self, attr, Item, ItemError};
use super::table::create_lease_table_if_missing;
use crate::aws::sdk_error::SdkErrorBox;
use crate::checkpoint::{CheckpointError, CheckpointStore, Position};
use crate::lease::LeaseCheckpoint;

/// A lease item as [`DynamoDbCheckpointStore`] reads it (read with the
/// crate's one lease item codec; the lease coordinator's view of the same
/// item is [`crate::lease::Lease`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Lease {
    /// The partition (shard id).
    pub key: String,
    /// The last writer's owner name.
    pub owner: Option<String>,
    /// The lease counter (0 when the item has none).
    pub counter: u64,
    /// The checkpoint: `None` for no checkpoint or a sentinel other than
    /// `SHARD_END` (`TRIM_HORIZON`, `LATEST`, `AT_TIMESTAMP`).
    pub position: Option<Position>,
    /// The raw `checkpoint` attribute (a sequence number or a sentinel).
    pub checkpoint: Option<String>,
    /// `ownerSwitchesSinceCheckpoint`.
    pub owner_switches_since_checkpoint: u64,
    /// `parentShardId`, sorted.
    pub parent_shard_ids: Vec<String>,
    /// `childShardIds`, sorted.
    pub child_shard_ids: Vec<String>,
}

/// Checkpoints in a KCL-compatible DynamoDB lease table, with fenced
/// (conditional) writes.
///
/// # Item layout
///
/// One item per partition (shard) in the KCL's layout (tabled in the
/// [`dynamodb`](super) module docs), read with the same codec as the lease
/// coordinator's [`DynamoDbLeaseTable`](super::DynamoDbLeaseTable). A save
/// writes `leaseOwner` (this store's owner name), `leaseCounter`,
/// `checkpoint`, `checkpointSubSequenceNumber` and
/// `ownerSwitchesSinceCheckpoint` (0);
/// [`set_lineage`](DynamoDbCheckpointStore::set_lineage) writes
/// `parentShardId` and `childShardIds`. Other attributes are kept.
///
/// # Fencing
///
/// The store remembers, per partition, the `leaseCounter` it first read
/// ([`load`](CheckpointStore::load) or [`lease`](DynamoDbCheckpointStore::lease)),
/// and every write is conditional on the item still holding that counter
/// (or, for a partition without an item, on there being none) and
/// increments it. A writer whose counter is stale — someone else wrote since
/// it read — gets [`CheckpointError::Fenced`], and stays fenced: later
/// loads do not refresh the remembered counter (that would let a worker
/// that lost a lease silently take it back). Call
/// [`claim`](DynamoDbCheckpointStore::claim) to take a partition over
/// deliberately.
///
/// # What it does not do
///
/// Lease expiry, renewal and balancing between workers (the KCL's lease
/// coordinator): ownership here is "whoever wrote last and has not been
/// overtaken". For those, run a [`LeaseWorker`](crate::lease::LeaseWorker)
/// on a [`DynamoDbLeaseTable`](super::DynamoDbLeaseTable).
///
/// # Example
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
    #[must_use = "returns the store with the owner; the original is moved"]
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
        create_lease_table_if_missing(&self.inner.client, &self.inner.table)
            .await
            .map_err(|e| CheckpointError::backend(self.store_name(), e))
    }

    /// Reads `partition`'s lease item (strongly consistent). Remembers its
    /// counter for fencing if this store has not read it before.
    pub async fn lease(&self, partition: &str) -> Result<Option<Lease>, CheckpointError> {
        let item = self.get_item(partition).await?;
        let lease = item
            .map(|item| self.parse_lease(partition, &item))
            .transpose()?;
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
            match lease_item::set_value(ids) {
                Some(value) => set.push((name, value)),
                None => remove.push(name),
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

    pub(crate) async fn get_item(&self, partition: &str) -> Result<Option<Item>, CheckpointError> {
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
    pub(crate) async fn load_item(&self, partition: &str) -> Result<Option<Item>, CheckpointError> {
        let item = self.get_item(partition).await?;
        let claim = match &item {
            Some(item) => Claim::Counter(self.counter_of(partition, item)?),
            None => Claim::Absent,
        };
        self.claims().entry(partition.to_owned()).or_insert(claim);
        Ok(item)
    }

    fn corrupt(&self, partition: &str, err: ItemError) -> CheckpointError {
        CheckpointError::Corrupt {
            store: self.store_name(),
            reason: format!("item {partition}: {err}"),
        }
    }

    /// The item's counter; 0 when it has none (an item this store has not
    /// written yet).
    fn counter_of(&self, partition: &str, item: &Item) -> Result<u64, CheckpointError> {
        lease_item::counter(item)
            .map(|counter| counter.unwrap_or(0))
            .map_err(|e| self.corrupt(partition, e))
    }

    /// The item's checkpointed position: `None` without a checkpoint or at
    /// a start sentinel.
    pub(crate) fn position_of(
        &self,
        partition: &str,
        item: &Item,
    ) -> Result<Option<Position>, CheckpointError> {
        lease_item::checkpoint(item)
            .map(|checkpoint| checkpoint.and_then(|c| c.position().cloned()))
            .map_err(|e| self.corrupt(partition, e))
    }

    fn parse_lease(&self, partition: &str, item: &Item) -> Result<Lease, CheckpointError> {
        let corrupt = |e| self.corrupt(partition, e);
        let checkpoint = lease_item::string(item, attr::CHECKPOINT).map_err(corrupt)?;
        let lease = lease_item::fields(item).map_err(corrupt)?;
        Ok(Lease {
            key: partition.to_owned(),
            owner: lease.owner,
            counter: lease.counter.unwrap_or(0),
            position: lease.checkpoint.and_then(|c| c.position().cloned()),
            checkpoint,
            owner_switches_since_checkpoint: lease.owner_switches_since_checkpoint,
            parent_shard_ids: lease.parents,
            child_shard_ids: lease.children,
        })
    }

    /// The attributes a checkpoint at `position` sets.
    pub(crate) fn checkpoint_attrs(
        &self,
        partition: &str,
        position: &Position,
    ) -> Result<Vec<(&'static str, AttributeValue)>, CheckpointError> {
        let (checkpoint, sub) =
            lease_item::checkpoint_values(partition, &LeaseCheckpoint::At(position.clone()))
                .map_err(|e| CheckpointError::backend(self.store_name(), e))?;
        Ok(vec![
            (attr::CHECKPOINT, checkpoint),
            (attr::SUB_SEQUENCE, sub),
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
                let mut update = ItemUpdate::new();
                update
                    .require_equal(attr::COUNTER, AttributeValue::N(expected.to_string()))
                    .set(attr::COUNTER, AttributeValue::N(next.to_string()))
                    .set(attr::OWNER, AttributeValue::S(self.inner.owner.clone()));
                for (name, value) in set {
                    update.set(name, value);
                }
                for name in remove {
                    update.remove(name);
                }
                let request = client
                    .update_item()
                    .table_name(&self.inner.table)
                    .key(attr::KEY, AttributeValue::S(partition.to_owned()))
                    .return_values_on_condition_check_failure(
                        ReturnValuesOnConditionCheckFailure::AllOld,
                    );
                update
                    .apply_to(request)
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
