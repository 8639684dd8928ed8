//! [`DynamoDbLeaseTable`]: the [`LeaseTable`] of lease coordination on a
//! DynamoDB table in the KCL's layout (see the [`dynamodb`](super) module
//! docs for the item layout).
//!
//! # Guarantees
//!
//! - **One update per write.** A [`write`](LeaseTable::write) is one
//!   conditional `UpdateItem` (see `lease_update.rs` for each write's
//!   expression). The writes whose effect depends on the lease's owners
//!   (take, release, cancel a handoff) are planned from the lease as this
//!   table last saw it at the expected counter (from a scan, a get, or an
//!   earlier write): when it has not seen that counter it reads the item
//!   first (a consistent `GetItem`), and when the owners moved without the
//!   counter (the KCL 3 does that for a handoff) the update's condition
//!   fails and it is planned again from the item DynamoDB returned, at
//!   most [`MAX_WRITE_ATTEMPTS`] times.
//! - **Other attributes survive.** Updates set and remove only attributes
//!   the write changes; anything else on the item (`entityType`,
//!   `throughputKBps`, `pendingCheckpoint`, a user's own) is kept.
//! - **Reads.** [`get`](LeaseTable::get) is a consistent `GetItem`.
//!   [`list`](LeaseTable::list) is a paginated `Scan`, eventually
//!   consistent unless [`consistent_list`](DynamoDbLeaseTable::consistent_list)
//!   (twice the read capacity): a lease worker's decisions on a stale list
//!   are safe because the writes they lead to are conditional. Items of
//!   other KCL entity types (`entityType` other than `LEASE`) are not
//!   leases and are left out.
//! - **Errors are typed.** A failed condition is
//!   [`LeaseError::Conflict`] with the item as it is
//!   (`ReturnValuesOnConditionCheckFailure::AllOld`, or a consistent read
//!   when the service did not return it); an item that cannot be read is
//!   [`LeaseError::Corrupt`] naming table and key (a write that meets it
//!   in DynamoDB's answer may have been applied; one that meets it reading
//!   first was not); a checkpoint the KCL could not read (a byte offset)
//!   is refused before anything is sent, as [`LeaseError::Backend`] with
//!   an [`UnstorableCheckpoint`](super::UnstorableCheckpoint) source; everything else is
//!   [`LeaseError::Backend`] with the AWS error code in its message.
//!
//! # What it does not do
//!
//! Retry. Throttling (`ProvisionedThroughputExceededException`,
//! `ThrottlingException`, `RequestLimitExceeded`) and transient failures
//! are retried by the SDK's own retry layer as configured, then surface as
//! [`LeaseError::Backend`]: the lease worker retries a renewal at the next
//! renew interval, a checkpoint write with back-off and a scan at the next
//! scan interval, which keeps every retry within the timing rules it
//! reasons about. A second retry loop here would only hold a renewal past
//! the moment the worker needs to know it failed.
//!
//! Forget: the last lease seen per key stays in memory (one per lease in
//! the table) as the basis of the next write.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use super::lease_item::{self, attr, Item, ItemError};
use super::lease_update::{lease_update, needs_basis};
use super::table::create_lease_table_if_missing;
use crate::aws::sdk_error::SdkErrorBox;
use crate::lease::{Created, Lease, LeaseError, LeaseTable, LeaseWrite};

/// How many times one [`write`](LeaseTable::write) sends its update when
/// the item's owners moved under an unchanged counter.
pub const MAX_WRITE_ATTEMPTS: usize = 3;

/// A [`LeaseTable`] on DynamoDB, readable and writable by the KCL; see the
/// [`dynamodb`](super) module docs for the item layout, the consistency
/// and the SDK configuration it expects.
///
/// Clones share the client and what the table has seen.
///
/// ```no_run
/// use unistream::dynamodb::DynamoDbLeaseTable;
/// use unistream::lease::{Lease, LeaseCheckpoint, LeaseConfig, LeaseTable, LeaseWorker};
///
/// # async fn run() -> Result<(), unistream::lease::LeaseError> {
/// let sdk_config = aws_config::load_from_env().await;
/// let table = DynamoDbLeaseTable::new(&sdk_config, "orders-consumer");
/// table.create_table_if_missing().await?;
/// table.create(Lease::new("shardId-000000000000", LeaseCheckpoint::TrimHorizon)).await?;
/// let worker = LeaseWorker::start(table, LeaseWorker::<DynamoDbLeaseTable>::unique_id(), LeaseConfig::new());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DynamoDbLeaseTable {
    pub(super) client: aws_sdk_dynamodb::Client,
    pub(super) table: Arc<str>,
    consistent_list: bool,
    /// The latest lease seen per key: the basis of writes that depend on
    /// the lease's owners. Only an optimization: every write's condition
    /// checks the state it was planned from.
    seen: Arc<Mutex<HashMap<String, Lease>>>,
    /// The key attribute names of the tables outputs are written to (see
    /// `lease_transaction.rs`), read once per table.
    pub(super) key_schemas: Arc<Mutex<HashMap<String, Vec<String>>>>,
}

impl DynamoDbLeaseTable {
    /// The table `table` with a client built from `sdk_config`.
    pub fn new(sdk_config: &aws_config::SdkConfig, table: impl Into<Arc<str>>) -> Self {
        Self::from_client(aws_sdk_dynamodb::Client::new(sdk_config), table)
    }

    /// The table `table` through an existing client.
    pub fn from_client(client: aws_sdk_dynamodb::Client, table: impl Into<Arc<str>>) -> Self {
        Self {
            client,
            table: table.into(),
            consistent_list: false,
            seen: Arc::default(),
            key_schemas: Arc::default(),
        }
    }

    /// Whether [`list`](LeaseTable::list) reads consistently (a consistent
    /// `Scan`, twice the read capacity). Default `false`, as the KCL.
    #[must_use = "returns the table with the setting; the original is moved"]
    pub fn consistent_list(mut self, consistent: bool) -> Self {
        self.consistent_list = consistent;
        self
    }

    /// The client.
    pub fn client(&self) -> &aws_sdk_dynamodb::Client {
        &self.client
    }

    /// Creates the table (hash key `leaseKey`, on-demand billing, as the
    /// KCL creates it) unless it exists, and waits until it is `ACTIVE`.
    pub async fn create_table_if_missing(&self) -> Result<(), LeaseError> {
        create_lease_table_if_missing(&self.client, &self.table)
            .await
            .map_err(|e| LeaseError::backend(self.table.as_ref(), e))
    }

    fn seen(&self) -> MutexGuard<'_, HashMap<String, Lease>> {
        // Every critical section replaces whole values.
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn remember(&self, lease: &Lease) {
        self.seen().insert(lease.key.clone(), lease.clone());
    }

    /// The lease at counter `expected`, if this table saw it there last.
    pub(super) fn seen_at(&self, key: &str, expected: u64) -> Option<Lease> {
        self.seen()
            .get(key)
            .filter(|lease| lease.counter == expected)
            .cloned()
    }

    pub(super) fn backend<E, R>(&self, err: SdkError<E, R>) -> LeaseError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        LeaseError::backend(self.table.as_ref(), SdkErrorBox::new(err))
    }

    fn corrupt(&self, key: &str, err: ItemError) -> LeaseError {
        LeaseError::Corrupt {
            table: self.table.to_string(),
            key: key.to_owned(),
            reason: err.to_string(),
        }
    }

    /// Reads an item under `key`: a lease, or `Corrupt` (another entity
    /// type included: a key that names one is not a lease's).
    pub(super) fn read(&self, key: &str, item: &Item) -> Result<Lease, LeaseError> {
        match lease_item::is_lease(item) {
            Ok(true) => {}
            Ok(false) => {
                return Err(self.corrupt(
                    key,
                    ItemError(format!(
                        "the item is not a lease ({} {:?})",
                        attr::ENTITY_TYPE,
                        lease_item::string(item, attr::ENTITY_TYPE).ok().flatten()
                    )),
                ))
            }
            Err(err) => return Err(self.corrupt(key, err)),
        }
        lease_item::decode(item).map_err(|e| self.corrupt(key, e))
    }

    pub(super) fn conflict(&self, key: &str, expected: u64, current: Option<Lease>) -> LeaseError {
        if let Some(lease) = &current {
            self.remember(lease);
        }
        LeaseError::Conflict {
            table: self.table.to_string(),
            key: key.to_owned(),
            expected,
            current: current.map(Box::new),
        }
    }

    /// One conditional update; `Err(Ok(old))` when its condition failed,
    /// with the item as DynamoDB returned it.
    async fn update(
        &self,
        key: &str,
        update: super::item_update::ItemUpdate,
    ) -> Result<Item, Result<Option<Item>, LeaseError>> {
        let request = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .key(attr::KEY, AttributeValue::S(key.to_owned()))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        match update.apply_to(request).send().await {
            Ok(out) => Ok(out.attributes.unwrap_or_default()),
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    Err(Ok(failed.item().cloned()))
                }
                _ => Err(Err(self.backend(err))),
            },
        }
    }
}

impl LeaseTable for DynamoDbLeaseTable {
    fn name(&self) -> &str {
        &self.table
    }

    async fn list(&self) -> Result<Vec<Lease>, LeaseError> {
        let mut leases = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(self.table.as_ref())
                .consistent_read(self.consistent_list)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.backend(e))?;
            for item in page.items.unwrap_or_default() {
                let key = lease_item::key(&item).map_err(|e| {
                    let raw = item.get(attr::KEY).map(|v| format!("{v:?}"));
                    self.corrupt(raw.as_deref().unwrap_or("(none)"), e)
                })?;
                if lease_item::is_lease(&item).map_err(|e| self.corrupt(&key, e))? {
                    leases.push(self.read(&key, &item)?);
                }
            }
            match page.last_evaluated_key {
                Some(last) if !last.is_empty() => start = Some(last),
                _ => break,
            }
        }
        leases.sort_by(|a, b| a.key.cmp(&b.key));
        let mut seen = self.seen();
        for lease in &leases {
            seen.insert(lease.key.clone(), lease.clone());
        }
        Ok(leases)
    }

    async fn get(&self, key: &str) -> Result<Option<Lease>, LeaseError> {
        let out = self
            .client
            .get_item()
            .table_name(self.table.as_ref())
            .key(attr::KEY, AttributeValue::S(key.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.backend(e))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let lease = self.read(key, &item)?;
        self.remember(&lease);
        Ok(Some(lease))
    }

    async fn create(&self, lease: Lease) -> Result<Created, LeaseError> {
        let item =
            lease_item::encode(&lease).map_err(|e| LeaseError::backend(self.table.as_ref(), e))?;
        let created = self
            .client
            .put_item()
            .table_name(self.table.as_ref())
            .set_item(Some(item.clone()))
            .condition_expression("attribute_not_exists(#key)")
            .expression_attribute_names("#key", attr::KEY)
            .send()
            .await;
        match created {
            Ok(_) => {
                // As it reads back (sets sorted, without duplicates).
                let stored = lease_item::decode(&item).map_err(|e| self.corrupt(&lease.key, e))?;
                self.remember(&stored);
                Ok(Created::Created)
            }
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(Created::Exists)
            }
            Err(err) => Err(self.backend(err)),
        }
    }

    async fn write(
        &self,
        key: &str,
        expected: u64,
        write: LeaseWrite,
    ) -> Result<Lease, LeaseError> {
        let mut basis = None;
        if needs_basis(&write) {
            basis = match self.seen_at(key, expected) {
                Some(lease) => Some(lease),
                None => match self.get(key).await? {
                    Some(lease) if lease.counter == expected => Some(lease),
                    current => return Err(self.conflict(key, expected, current)),
                },
            };
        }
        let mut attempt = 1;
        loop {
            let update = lease_update(key, expected, &write, basis.as_ref())
                .map_err(|e| LeaseError::backend(self.table.as_ref(), e))?;
            let old = match self.update(key, update).await {
                Ok(item) => {
                    let lease = self.read(key, &item)?;
                    if lease.counter != expected + 1 {
                        return Err(LeaseError::backend(
                            self.table.as_ref(),
                            format!(
                                "lease {key}: an update conditional on counter {expected} returned counter {}",
                                lease.counter
                            ),
                        ));
                    }
                    self.remember(&lease);
                    return Ok(lease);
                }
                Err(Ok(old)) => old,
                Err(Err(err)) => return Err(err),
            };
            let current = match old {
                Some(item) => Some(self.read(key, &item)?),
                // The service did not return the item: read it.
                None => self.get(key).await?,
            };
            match current {
                // The counter is as expected but the owners the update was
                // planned from are not: plan again from the item.
                Some(lease)
                    if lease.counter == expected
                        && needs_basis(&write)
                        && attempt < MAX_WRITE_ATTEMPTS =>
                {
                    basis = Some(lease);
                    attempt += 1;
                }
                current => return Err(self.conflict(key, expected, current)),
            }
        }
    }
}
