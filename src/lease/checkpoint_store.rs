//! [`LeaseCheckpointStore`]: checkpoints written into the leases a worker
//! holds — the lease table is the checkpoint store, as in the KCL.
//!
//! - A save is a [`Checkpoint`](super::LeaseWrite::Checkpoint) write on the
//!   partition's lease, conditional on its counter like every write of the
//!   worker: a worker that lost the lease gets
//!   [`CheckpointError::Fenced`] (and `checkpoint_batched` ends that
//!   partition only), never a silent overwrite of the new holder's position.
//! - A save of a partition this worker does not hold is `Fenced` too.
//! - A transient table failure is retried (the worker's
//!   [`write_retry`](super::LeaseConfig::write_retry) back-off) for as long
//!   as the lease is valid; a write applied whose answer was lost is found
//!   by the next attempt's conflict and adopted, not repeated.
//! - Saving [`Position::End`] finishes the partition: the lease is released
//!   right after, and its children (if any) become available.
//! - Loads of a held lease answer from memory (the worker wrote it last);
//!   of any other lease, from the table.

use std::sync::Arc;

use super::drain::{self, DrainReason};
use super::metrics::LeaseCounters;
use super::record::LeaseCheckpoint;
use super::shared::WorkerShared;
use super::table::LeaseTable;
use super::transactional::{self, TransactionalLeaseTable};
use super::write::LeaseWrite;
use crate::checkpoint::{
    CheckpointError, CheckpointStore, Position, ProcessedRecord, TransactionalCheckpointStore,
};
use crate::error::Error;

/// The checkpoint store of a [`LeaseWorker`](super::LeaseWorker); see the
/// [`lease`](super) module docs.
///
/// It does not keep the worker running: dropping every `LeaseWorker`
/// handle stops the worker (as a crash does), and saves through this store
/// are fenced once its leases are lost.
pub struct LeaseCheckpointStore<T: LeaseTable> {
    shared: Arc<WorkerShared<T>>,
}

impl<T: LeaseTable> Clone for LeaseCheckpointStore<T> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<T: LeaseTable> std::fmt::Debug for LeaseCheckpointStore<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseCheckpointStore")
            .field("worker", &self.shared.id)
            .field("table", &self.shared.table.name())
            .finish()
    }
}

impl<T: LeaseTable> LeaseCheckpointStore<T> {
    pub(crate) fn new(shared: Arc<WorkerShared<T>>) -> Self {
        Self { shared }
    }

    /// The name of the worker whose leases are written.
    pub fn worker_id(&self) -> &str {
        &self.shared.id
    }

    fn store_name(&self) -> String {
        format!("lease table {}", self.shared.table.name())
    }
}

impl<T: LeaseTable> CheckpointStore for LeaseCheckpointStore<T> {
    async fn load(&self, partition: &str) -> Result<Option<Position>, CheckpointError> {
        let shared = &self.shared;
        if let Some(held) = shared.held(partition) {
            return Ok(held.state.lock().await.lease.checkpoint.position().cloned());
        }
        shared.count_request();
        match shared.table.get(partition).await {
            Ok(lease) => Ok(lease.and_then(|l| l.checkpoint.position().cloned())),
            Err(err) => Err(CheckpointError::backend(self.store_name(), err)),
        }
    }

    async fn save(&self, partition: &str, position: &Position) -> Result<(), CheckpointError> {
        let shared = &self.shared;
        let fenced = |reason: String| CheckpointError::Fenced {
            partition: partition.to_owned(),
            reason,
        };
        let Some(held) = shared.held(partition) else {
            return Err(fenced(format!(
                "worker {} does not hold the lease",
                shared.id
            )));
        };
        let mut attempt = 0u32;
        loop {
            let write = LeaseWrite::Checkpoint(LeaseCheckpoint::At(position.clone()));
            match drain::write_held(shared, &held, write).await {
                Ok(_) => {
                    LeaseCounters::add(&shared.counters.checkpoints);
                    if *position == Position::End {
                        drain::release(shared, &held, DrainReason::Shutdown).await;
                    }
                    return Ok(());
                }
                Err(Error::Checkpoint(CheckpointError::Fenced { reason, .. })) => {
                    return Err(fenced(reason))
                }
                Err(err) => {
                    let renewed_at = held.state.lock().await.renewed_at;
                    if renewed_at.elapsed() >= shared.config.lease_duration {
                        shared
                            .lose(&held, "checkpoint writes failed until the lease ran out")
                            .await;
                        return Err(fenced(format!(
                            "the lease ran out while checkpoint writes failed: {err}"
                        )));
                    }
                    if !shared.config.write_retry.allows_another(attempt + 1) {
                        return Err(CheckpointError::backend(self.store_name(), err));
                    }
                    let ceiling = shared.config.write_retry.ceiling(attempt);
                    attempt = attempt.saturating_add(1);
                    tokio::time::sleep(ceiling.mul_f64(shared.random())).await;
                }
            }
        }
    }

    async fn save_many(&self, entries: &[(String, Position)]) -> Result<(), CheckpointError> {
        let saves = entries
            .iter()
            .map(|(partition, position)| self.save(partition, position));
        let results = futures::future::join_all(saves).await;
        // A fenced partition is reported first: `checkpoint_batched` ends
        // that partition and saves the others again.
        let mut first_error = None;
        for result in results {
            match result {
                Ok(()) => {}
                Err(err) if err.is_fenced() => return Err(err),
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Outputs written with the checkpoint, in one transaction conditional on
/// the lease (see [`TransactionalLeaseTable`] and
/// [`checkpoint_transactional`](crate::checkpoint::TransactionalStreamExt::checkpoint_transactional)).
/// A commit of a partition this worker does not hold, or whose lease moves
/// before the transaction lands, is [`CheckpointError::Fenced`] and writes
/// nothing of that transaction.
impl<T: TransactionalLeaseTable> TransactionalCheckpointStore for LeaseCheckpointStore<T> {
    type Output = T::Output;

    async fn commit(
        &self,
        partition: &str,
        records: Vec<ProcessedRecord<T::Output>>,
    ) -> Result<usize, CheckpointError> {
        let shared = &self.shared;
        let Some(held) = shared.held(partition) else {
            return Err(CheckpointError::Fenced {
                partition: partition.to_owned(),
                reason: format!("worker {} does not hold the lease", shared.id),
            });
        };
        let all: Vec<T::Output> = records
            .iter()
            .flat_map(|r| r.outputs.iter().cloned())
            .collect();
        let mut attempt = 0u32;
        while let Err(err) = shared.table.prepare(&all).await {
            if !shared.config.write_retry.allows_another(attempt + 1) {
                return Err(CheckpointError::backend(self.store_name(), err));
            }
            let ceiling = shared.config.write_retry.ceiling(attempt);
            attempt = attempt.saturating_add(1);
            tokio::time::sleep(ceiling.mul_f64(shared.random())).await;
        }
        let runs = transactional::plan(&shared.table, &records).map_err(|reason| {
            CheckpointError::Transaction {
                partition: partition.to_owned(),
                reason,
            }
        })?;
        for run in &runs {
            let outputs: Vec<T::Output> = records[run.clone()]
                .iter()
                .flat_map(|r| r.outputs.iter().cloned())
                .collect();
            let position = &records[run.end - 1].position;
            transactional::commit_held(shared, &held, position, &outputs).await?;
        }
        Ok(runs.len())
    }
}
