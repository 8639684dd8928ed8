//! [`MemoryIdempotencyStore`]: idempotency records in memory, for one
//! process and for tests; expiry on tokio's clock (so paused-time tests
//! control it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::store::{Begin, Claim, IdempotencyError, IdempotencyStore};

/// Idempotency records in memory, shared by its clones; see the
/// module docs (`src/idempotency/memory.rs`).
#[derive(Debug, Clone, Default)]
pub struct MemoryIdempotencyStore {
    records: Arc<Mutex<HashMap<String, Record>>>,
}

#[derive(Debug, Clone)]
enum Record {
    InProgress { claim: Claim, until: Instant },
    Completed { result: Vec<u8>, until: Instant },
}

impl MemoryIdempotencyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many keys have a completed run kept.
    pub fn completed(&self) -> usize {
        let now = Instant::now();
        self.lock()
            .values()
            .filter(|r| matches!(r, Record::Completed { until, .. } if *until > now))
            .count()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Record>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn held<'a>(
        records: &'a mut HashMap<String, Record>,
        key: &str,
        claim: &Claim,
    ) -> Result<&'a mut Record, IdempotencyError> {
        let held =
            matches!(records.get(key), Some(Record::InProgress { claim: c, .. }) if c == claim);
        match records.get_mut(key) {
            Some(record) if held => Ok(record),
            _ => Err(IdempotencyError::ClaimLost {
                key: key.to_owned(),
            }),
        }
    }
}

impl IdempotencyStore for MemoryIdempotencyStore {
    async fn begin(&self, key: &str, in_progress_for: Duration) -> Result<Begin, IdempotencyError> {
        let now = Instant::now();
        let mut records = self.lock();
        match records.get(key) {
            Some(Record::Completed { result, until }) if *until > now => {
                return Ok(Begin::Completed(result.clone()))
            }
            Some(Record::InProgress { until, .. }) if *until > now => {
                return Ok(Begin::InProgress {
                    retry_after: *until - now,
                })
            }
            _ => {}
        }
        let claim = Claim::new();
        records.insert(
            key.to_owned(),
            Record::InProgress {
                claim: claim.clone(),
                until: now + in_progress_for,
            },
        );
        Ok(Begin::Run(claim))
    }

    async fn extend(
        &self,
        key: &str,
        claim: &Claim,
        in_progress_for: Duration,
    ) -> Result<(), IdempotencyError> {
        let mut records = self.lock();
        let record = Self::held(&mut records, key, claim)?;
        *record = Record::InProgress {
            claim: claim.clone(),
            until: Instant::now() + in_progress_for,
        };
        Ok(())
    }

    async fn complete(
        &self,
        key: &str,
        claim: &Claim,
        result: Vec<u8>,
        keep_for: Duration,
    ) -> Result<(), IdempotencyError> {
        let mut records = self.lock();
        let record = Self::held(&mut records, key, claim)?;
        *record = Record::Completed {
            result,
            until: Instant::now() + keep_for,
        };
        Ok(())
    }

    async fn abandon(&self, key: &str, claim: &Claim) -> Result<(), IdempotencyError> {
        let mut records = self.lock();
        if Self::held(&mut records, key, claim).is_ok() {
            records.remove(key);
        }
        Ok(())
    }
}
