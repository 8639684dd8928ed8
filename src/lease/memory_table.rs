//! [`MemoryLeaseTable`]: a lease table in memory with the same conditional
//! semantics as the DynamoDB one, for tests and simulations.
//!
//! Every operation is atomic under one lock: a write checks the counter and
//! applies [`LeaseWrite::apply`] in one step, a create checks for the key and
//! inserts in one step. Clones share the table. It keeps no history and
//! nothing survives the process.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::record::Lease;
use super::table::{Created, LeaseError, LeaseTable};
use super::transactional::{OutputFootprint, TransactionLimits, TransactionalLeaseTable};
use super::write::LeaseWrite;

/// A lease table in memory; see the [`lease`](super) module docs.
///
/// ```
/// use unistream::lease::{Created, Lease, LeaseCheckpoint, LeaseTable, LeaseWrite, MemoryLeaseTable};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), unistream::lease::LeaseError> {
/// let table = MemoryLeaseTable::new("leases");
/// assert_eq!(table.create(Lease::new("shard-0", LeaseCheckpoint::TrimHorizon)).await?, Created::Created);
/// let taken = table.write("shard-0", 0, LeaseWrite::Take { owner: "w1".into() }).await?;
/// assert_eq!((taken.owner.as_deref(), taken.counter), (Some("w1"), 1));
/// // A second writer that read counter 0 is refused.
/// let late = table.write("shard-0", 0, LeaseWrite::Take { owner: "w2".into() }).await;
/// assert!(late.unwrap_err().is_conflict());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct MemoryLeaseTable {
    name: Arc<str>,
    leases: Arc<Mutex<BTreeMap<String, Lease>>>,
    outputs: Arc<Mutex<BTreeMap<String, StoredOutput>>>,
}

/// An output of a transaction on a [`MemoryLeaseTable`]
/// ([`TransactionalLeaseTable`]): `value` put under `key` in the table's
/// output map, together with the lease write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryOutput {
    /// Where it is put (one item: two outputs on one key never share a
    /// transaction).
    pub key: String,
    /// What is put.
    pub value: String,
}

/// An output as a [`MemoryLeaseTable`] holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOutput {
    /// The last value put.
    pub value: String,
    /// How many transactions put it: more than one is an effect repeated.
    pub writes: u64,
}

/// The limits of one transaction on a [`MemoryLeaseTable`]: DynamoDB's, so
/// that tests split groups where DynamoDB would.
const MEMORY_TRANSACTION_LIMITS: TransactionLimits = TransactionLimits::DYNAMODB;

impl MemoryLeaseTable {
    /// An empty table called `name`.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self {
            name: name.into(),
            leases: Arc::default(),
            outputs: Arc::default(),
        }
    }

    fn leases(&self) -> MutexGuard<'_, BTreeMap<String, Lease>> {
        // A panic while holding the lock cannot leave a half-applied write:
        // every write replaces a whole lease.
        self.leases.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every lease, in key order (synchronous, for assertions).
    pub fn snapshot(&self) -> Vec<Lease> {
        self.leases().values().cloned().collect()
    }

    /// Every output written by transactions, by key (synchronous, for
    /// assertions).
    pub fn outputs(&self) -> BTreeMap<String, StoredOutput> {
        self.outputs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces or inserts a lease as it is, counter included (to set up a
    /// test state, for example a table another consumer wrote).
    pub fn put(&self, lease: Lease) {
        self.leases().insert(lease.key.clone(), lease);
    }
}

impl LeaseTable for MemoryLeaseTable {
    fn name(&self) -> &str {
        &self.name
    }

    async fn list(&self) -> Result<Vec<Lease>, LeaseError> {
        Ok(self.snapshot())
    }

    async fn get(&self, key: &str) -> Result<Option<Lease>, LeaseError> {
        Ok(self.leases().get(key).cloned())
    }

    async fn create(&self, lease: Lease) -> Result<Created, LeaseError> {
        let mut leases = self.leases();
        if leases.contains_key(&lease.key) {
            return Ok(Created::Exists);
        }
        leases.insert(lease.key.clone(), lease);
        Ok(Created::Created)
    }

    async fn write(
        &self,
        key: &str,
        expected: u64,
        write: LeaseWrite,
    ) -> Result<Lease, LeaseError> {
        let mut leases = self.leases();
        match leases.get_mut(key) {
            Some(lease) if lease.counter == expected => {
                let next = write.apply(lease);
                debug_assert_eq!(
                    next.counter,
                    expected + 1,
                    "every write increments the counter"
                );
                *lease = next.clone();
                Ok(next)
            }
            current => Err(LeaseError::Conflict {
                table: self.name.to_string(),
                key: key.to_owned(),
                expected,
                current: current.map(|lease| Box::new(lease.clone())),
            }),
        }
    }
}

impl TransactionalLeaseTable for MemoryLeaseTable {
    type Output = MemoryOutput;

    fn limits(&self) -> TransactionLimits {
        MEMORY_TRANSACTION_LIMITS
    }

    fn footprint(&self, output: &MemoryOutput) -> OutputFootprint {
        OutputFootprint {
            bytes: output.key.len() + output.value.len(),
            item: Some(output.key.clone()),
        }
    }

    async fn write_with(
        &self,
        key: &str,
        expected: u64,
        write: LeaseWrite,
        outputs: &[MemoryOutput],
        _request: &str,
    ) -> Result<Lease, LeaseError> {
        // Lock order: leases, then outputs.
        let mut leases = self.leases();
        let mut stored = self.outputs.lock().unwrap_or_else(|p| p.into_inner());
        match leases.get_mut(key) {
            Some(lease) if lease.counter == expected => {
                let next = write.apply(lease);
                *lease = next.clone();
                for output in outputs {
                    let cell = stored.entry(output.key.clone()).or_insert(StoredOutput {
                        value: String::new(),
                        writes: 0,
                    });
                    cell.value = output.value.clone();
                    cell.writes += 1;
                }
                Ok(next)
            }
            current => Err(LeaseError::Conflict {
                table: self.name.to_string(),
                key: key.to_owned(),
                expected,
                current: current.map(|lease| Box::new(lease.clone())),
            }),
        }
    }
}
