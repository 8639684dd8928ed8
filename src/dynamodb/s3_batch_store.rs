//! `DynamoDbS3CheckpointStore`: a lease-table checkpoint plus the in-flight
//! batch of a batch consumer, kept in S3.
//!
//! The write order (and why it never skips a record), recovery and what
//! it does not do are documented on [`DynamoDbS3CheckpointStore`], where
//! users read them.

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::primitives::ByteStream;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::checkpoint_store::DynamoDbCheckpointStore;
use super::in_flight_batch::Batch;
use crate::checkpoint::{CheckpointError, CheckpointStore, Position, SequenceNumber};

/// Item attributes added to the KCL layout.
mod attr {
    pub const BATCH: &str = "inFlightBatch";
    pub const BATCH_END: &str = "inFlightBatchEnd";
    pub const BATCH_END_SUB: &str = "inFlightBatchEndSubSequenceNumber";
}

/// A lease-table checkpoint store that also keeps a batch consumer's
/// in-flight batch in S3.
///
/// A consumer that processes records in batches and must survive a crash
/// mid-batch needs, beyond "how far the partition is done", the batch it is
/// working on: its records and, per record, whether it succeeded, failed
/// (and how often) or gave up. That can exceed DynamoDB's 400 KB item
/// limit, so the batch lives in S3 and the partition's lease item (the
/// [`DynamoDbCheckpointStore`] layout) points at it.
///
/// # The write order, and why nothing is skipped
///
/// Every S3 object is written under a **new key** (a random 64-bit suffix,
/// with `If-None-Match: *` so even a collision cannot overwrite) and is
/// complete before anything points at it. Every DynamoDB write is
/// conditional on the item's `leaseCounter` (a fenced writer changes
/// nothing).
///
/// 1. [`begin_batch`](DynamoDbS3CheckpointStore::begin_batch): put the batch
///    (all records `Pending`) under key *k1*; then set the item's
///    `inFlightBatch = k1` and `inFlightBatchEnd` (the batch's last
///    position). A crash before the pointer: the object is garbage, the item
///    is unchanged, the same records are read from the stream again.
/// 2. [`persist`](DynamoDbS3CheckpointStore::persist) (after marking records
///    `Succeeded`, `Failed`, `Exhausted`, `DeadLettered`): put the batch
///    under a new key *k2*; then move the pointer *k1 → k2*; then delete
///    *k1*. A crash before the pointer moves leaves *k1* — the older marks:
///    records marked since are processed again (at least once), never
///    skipped. Once `persist` returns, its marks are durable.
/// 3. [`finish_batch`](DynamoDbS3CheckpointStore::finish_batch), only when
///    every record is `Succeeded` or `DeadLettered`: set `checkpoint` to the
///    batch's last position and remove the pointer, in one conditional
///    update; then delete the object.
///
/// The `checkpoint` attribute moves only in step 3, and step 3 refuses a
/// batch with a record still `Pending`, `Failed` or `Exhausted` — so no
/// write order moves the checkpoint past a record that is not processed or
/// dead-lettered. The pointer only ever names a complete object.
///
/// # Recovery
///
/// [`load`](CheckpointStore::load) returns the in-flight batch's last
/// position when there is one: its records are held in S3 now, so a source
/// resumes after them, and the consumer takes them from
/// [`in_flight`](DynamoDbS3CheckpointStore::in_flight) — records `Succeeded`
/// or `DeadLettered` are done, `Pending` and `Failed` ones are (re)tried,
/// `Exhausted` ones go to the dead-letter destination — and then finishes
/// the batch. A plain [`save`](CheckpointStore::save) while a batch is in
/// flight is refused: it could skip the batch.
///
/// # What it does not do
///
/// Dead-lettering itself, and the processing: the store records what the
/// consumer reports. A record processed and then lost to a crash before its
/// mark is persisted is processed again: make processing idempotent or
/// checkable. Objects orphaned by a crash between an S3 put and the pointer
/// update stay in the bucket (give the prefix a lifecycle rule).
///
/// # Example
///
/// ```no_run
/// # async fn run() -> Result<(), unistream::Error> {
/// use unistream::checkpoint::{DynamoDbS3CheckpointStore, RecordStatus};
/// use unistream::Position;
///
/// let config = aws_config::load_from_env().await;
/// let store = DynamoDbS3CheckpointStore::new(&config, "orders-consumer", "my-bucket");
/// store.create_table_if_missing().await?;
/// let shard = "shardId-000000000000";
///
/// // After a restart, finish what was in flight; else start a new batch.
/// let mut batch = match store.in_flight::<String>(shard).await? {
///     Some(batch) => batch,
///     None => {
///         let records = vec![("order 1".to_string(), Position::sequence("101"))];
///         store.begin_batch(shard, records).await?
///     }
/// };
/// for index in batch.to_process() {
///     // process(&batch.entries()[index].record) ...
///     batch.mark(index, RecordStatus::Succeeded);
///     store.persist(&mut batch).await?; // now durable: never processed again
/// }
/// store.finish_batch(batch).await?; // the checkpoint moves past the batch
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DynamoDbS3CheckpointStore {
    leases: DynamoDbCheckpointStore,
    s3: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

impl DynamoDbS3CheckpointStore {
    /// A store on `table` and `bucket`, with clients built from
    /// `sdk_config`. For a local S3 endpoint, use
    /// [`from_clients`](Self::from_clients) with a path-style S3 client.
    pub fn new(
        sdk_config: &aws_config::SdkConfig,
        table: impl Into<String>,
        bucket: impl Into<String>,
    ) -> Self {
        Self::from_clients(
            DynamoDbCheckpointStore::new(sdk_config, table),
            aws_sdk_s3::Client::new(sdk_config),
            bucket,
        )
    }

    /// A store over an existing lease store and S3 client.
    pub fn from_clients(
        leases: DynamoDbCheckpointStore,
        s3: aws_sdk_s3::Client,
        bucket: impl Into<String>,
    ) -> Self {
        Self {
            leases,
            s3,
            bucket: bucket.into(),
            prefix: "unistream-batches/".to_owned(),
        }
    }

    /// The key prefix of batch objects. Default: `unistream-batches/`.
    #[must_use = "returns the store with the prefix; the original is moved"]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The lease store underneath (owner, lineage, inspection).
    pub fn leases(&self) -> &DynamoDbCheckpointStore {
        &self.leases
    }

    /// Creates the lease table if missing (see
    /// [`DynamoDbCheckpointStore::create_table_if_missing`]). The bucket must
    /// exist.
    pub async fn create_table_if_missing(&self) -> Result<(), CheckpointError> {
        self.leases.create_table_if_missing().await
    }

    fn store_name(&self) -> String {
        format!("{} + s3 bucket {}", self.leases.store_name(), self.bucket)
    }

    fn backend(&self, err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> CheckpointError {
        CheckpointError::backend(self.store_name(), err)
    }

    fn new_key(&self, partition: &str) -> String {
        let safe: String = partition
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("{}{safe}/{:016x}.json", self.prefix, fastrand::u64(..))
    }

    /// Puts `batch` under a fresh key (never overwriting) and returns it.
    async fn put_object<T: Serialize>(&self, batch: &Batch<T>) -> Result<String, CheckpointError> {
        let body = serde_json::to_vec(batch).map_err(|e| self.backend(e))?;
        loop {
            let key = self.new_key(&batch.partition);
            let put = self
                .s3
                .put_object()
                .bucket(&self.bucket)
                .key(&key)
                .if_none_match("*")
                .content_type("application/json")
                .body(ByteStream::from(body.clone()))
                .send()
                .await;
            match put {
                Ok(_) => return Ok(key),
                // 412: the key exists (a 1-in-2^64 collision): take another.
                Err(err) if err.raw_response().map(|r| r.status().as_u16()) == Some(412) => {
                    continue
                }
                Err(err) => {
                    return Err(self.backend(
                        aws_smithy_types::error::display::DisplayErrorContext(&err).to_string(),
                    ))
                }
            }
        }
    }

    /// Deletes an object no pointer names any more. Best effort: a leftover
    /// object is garbage, never read.
    async fn delete_object(&self, key: &str) {
        if let Err(err) = self
            .s3
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            tracing::warn!(bucket = %self.bucket, key, error = %aws_smithy_types::error::display::DisplayErrorContext(&err), "could not delete a replaced batch object");
        }
    }

    fn batch_key(item: &std::collections::HashMap<String, AttributeValue>) -> Option<&str> {
        match item.get(attr::BATCH) {
            Some(AttributeValue::S(key)) => Some(key),
            _ => None,
        }
    }

    /// The batch in flight for `partition`, read back from S3, if any.
    pub async fn in_flight<T: DeserializeOwned>(
        &self,
        partition: &str,
    ) -> Result<Option<Batch<T>>, CheckpointError> {
        let Some(item) = self.leases.load_item(partition).await? else {
            return Ok(None);
        };
        let Some(key) = Self::batch_key(&item) else {
            return Ok(None);
        };
        let object = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| {
                self.backend(aws_smithy_types::error::display::DisplayErrorContext(&e).to_string())
            })?;
        let bytes = object
            .body
            .collect()
            .await
            .map_err(|e| self.backend(e))?
            .into_bytes();
        let mut batch: Batch<T> =
            serde_json::from_slice(&bytes).map_err(|e| CheckpointError::Corrupt {
                store: self.store_name(),
                reason: format!("batch object {key} of partition {partition}: {e}"),
            })?;
        if batch.partition != partition {
            return Err(CheckpointError::Corrupt {
                store: self.store_name(),
                reason: format!(
                    "batch object {key} belongs to {}, not {partition}",
                    batch.partition
                ),
            });
        }
        batch.key = key.to_owned();
        Ok(Some(batch))
    }

    /// Starts a batch of `records` (each with its position, in order) for
    /// `partition`: written to S3, then pointed at. Refused while another
    /// batch of the partition is in flight.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Fenced`] when another writer holds the lease;
    /// [`CheckpointError::Backend`] for an empty batch or one already in
    /// flight.
    pub async fn begin_batch<T: Serialize>(
        &self,
        partition: &str,
        records: Vec<(T, Position)>,
    ) -> Result<Batch<T>, CheckpointError> {
        if records.is_empty() {
            return Err(self.backend(format!("partition {partition}: an empty batch")));
        }
        if let Some(item) = self.leases.load_item(partition).await? {
            if let Some(key) = Self::batch_key(&item) {
                return Err(self.backend(format!(
                    "partition {partition}: batch {key} is still in flight; finish it first"
                )));
            }
        }
        let mut batch = Batch::pending(partition, records);
        let end = batch.end().cloned().unwrap_or(Position::End);
        let (end_checkpoint, end_sub) = match &end {
            Position::Sequence { sequence, sub } => (sequence.as_str().to_owned(), *sub),
            other => {
                return Err(self.backend(format!(
                "partition {partition}: batch ends at {other}; only sequence positions are stored"
            )))
            }
        };
        let key = self.put_object(&batch).await?;
        self.leases
            .write(
                partition,
                vec![
                    (attr::BATCH, AttributeValue::S(key.clone())),
                    (attr::BATCH_END, AttributeValue::S(end_checkpoint)),
                    (attr::BATCH_END_SUB, AttributeValue::N(end_sub.to_string())),
                ],
                &[],
            )
            .await?;
        batch.key = key;
        Ok(batch)
    }

    /// Makes the batch's marks durable: a new S3 object, then the pointer
    /// moved to it, then the old object deleted.
    pub async fn persist<T: Serialize>(&self, batch: &mut Batch<T>) -> Result<(), CheckpointError> {
        let key = self.put_object(batch).await?;
        self.leases
            .write(
                &batch.partition,
                vec![(attr::BATCH, AttributeValue::S(key.clone()))],
                &[],
            )
            .await?;
        let old = std::mem::replace(&mut batch.key, key);
        self.delete_object(&old).await;
        Ok(())
    }

    /// Ends the batch: the checkpoint moves to its last position and the
    /// pointer goes, in one conditional write.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Backend`] (and nothing written) when a record is
    /// not yet `Succeeded` or `DeadLettered`.
    pub async fn finish_batch<T>(&self, batch: Batch<T>) -> Result<(), CheckpointError> {
        if let Some((index, entry)) = batch
            .entries
            .iter()
            .enumerate()
            .find(|(_, e)| !e.status.is_done())
        {
            return Err(self.backend(format!(
                "partition {}: record {index} of the batch is {:?}; finish only when every record \
                 succeeded or was dead-lettered",
                batch.partition, entry.status
            )));
        }
        let Some(end) = batch.end() else {
            return Err(self.backend("an empty batch"));
        };
        let attrs = self.leases.checkpoint_attrs(&batch.partition, end)?;
        self.leases
            .write(
                &batch.partition,
                attrs,
                &[attr::BATCH, attr::BATCH_END, attr::BATCH_END_SUB],
            )
            .await?;
        self.delete_object(&batch.key).await;
        Ok(())
    }
}

impl CheckpointStore for DynamoDbS3CheckpointStore {
    /// The checkpoint, or the in-flight batch's last position when a batch
    /// is in flight (its records are held in S3).
    async fn load(&self, partition: &str) -> Result<Option<Position>, CheckpointError> {
        let Some(item) = self.leases.load_item(partition).await? else {
            return Ok(None);
        };
        if Self::batch_key(&item).is_some() {
            let sequence = match item.get(attr::BATCH_END) {
                Some(AttributeValue::S(s)) => s.clone(),
                _ => {
                    return Err(CheckpointError::Corrupt {
                        store: self.store_name(),
                        reason: format!("item {partition}: a batch without {}", attr::BATCH_END),
                    })
                }
            };
            let sub = match item.get(attr::BATCH_END_SUB) {
                Some(AttributeValue::N(n)) => n.parse().unwrap_or(0),
                _ => 0,
            };
            return Ok(Some(Position::Sequence {
                sequence: SequenceNumber::new(sequence),
                sub,
            }));
        }
        self.leases.position_of(partition, &item)
    }

    /// Saves a checkpoint; refused while a batch is in flight.
    async fn save(&self, partition: &str, position: &Position) -> Result<(), CheckpointError> {
        if let Some(item) = self.leases.get_item(partition).await? {
            if let Some(key) = Self::batch_key(&item) {
                return Err(self.backend(format!(
                    "partition {partition}: batch {key} is in flight; finish it before saving"
                )));
            }
        }
        self.leases.save(partition, position).await
    }
}
