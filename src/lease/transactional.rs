//! Outputs written in one transaction with a leased partition's
//! checkpoint: [`TransactionalLeaseTable`], and the commit through a held
//! lease that makes each output land exactly once.
//!
//! A commit is one atomic write of a group of outputs and the
//! [`Checkpoint`](super::LeaseWrite::Checkpoint) write of the lease,
//! conditional on the lease's counter like every write of the worker. So
//! the outputs of a record and the checkpoint past it land together or not
//! at all, and a worker that lost the lease writes neither: after a crash,
//! a restart or a lease move, the next holder resumes after exactly the
//! records whose outputs landed.
//!
//! The one hazard is an answer lost on the way back (a timeout, a cut
//! connection): the transaction may have been applied. The commit then
//! never builds a *new* transaction until it knows: under the lease's lock
//! (so no renewal moves the counter meanwhile) it sends the same request
//! again — same counter, same idempotency token — until an answer is
//! definite. A conflict answer is resolved by reading the lease: if it
//! holds this commit's checkpoint, the earlier attempt was applied (the
//! combinator never commits one position twice); otherwise the counter
//! was moved by someone else's write (a handoff request) and the commit
//! adopts it and writes again. If the lease runs out meanwhile it is
//! given up (fenced), as when renewals fail.
//!
//! A group larger than one transaction allows (the table's
//! [`TransactionLimits`], or two outputs on one item) is split at record
//! boundaries, each part carrying the checkpoint of its last record.

use std::collections::HashSet;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::time::Instant;

use super::drain::{self, DrainReason};
use super::held::HeldLease;
use super::metrics::LeaseCounters;
use super::record::LeaseCheckpoint;
use super::shared::WorkerShared;
use super::table::{LeaseError, LeaseTable};
use super::write::LeaseWrite;
use crate::checkpoint::{CheckpointError, Position, ProcessedRecord};

/// How much one transaction of a [`TransactionalLeaseTable`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransactionLimits {
    /// Outputs per transaction, besides the lease's own write.
    pub max_outputs: usize,
    /// Bytes of outputs per transaction (as [`OutputFootprint::bytes`]
    /// counts them).
    pub max_bytes: usize,
}

impl TransactionLimits {
    /// DynamoDB's `TransactWriteItems`: 100 actions, one of them the
    /// lease's; 4 MB of items in all, counted here as
    /// [`OutputFootprint::bytes`] with 4 % left for the lease item and the
    /// request's expressions.
    pub const DYNAMODB: TransactionLimits = TransactionLimits {
        max_outputs: 99,
        max_bytes: 4_000_000,
    };
}

/// What one output occupies in a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFootprint {
    /// Its size, counted towards [`TransactionLimits::max_bytes`].
    pub bytes: usize,
    /// The item it writes, when known: two outputs on one item never share
    /// a transaction.
    pub item: Option<String>,
}

/// A lease table that writes a lease together with other writes (the
/// *outputs*), atomically; see the module docs (`src/lease/transactional.rs`).
pub trait TransactionalLeaseTable: LeaseTable {
    /// One write besides the lease's.
    type Output: Clone + Send + Sync + 'static;

    /// What one transaction may hold.
    fn limits(&self) -> TransactionLimits;

    /// What `output` occupies in a transaction.
    fn footprint(&self, output: &Self::Output) -> OutputFootprint;

    /// Learns what [`footprint`](Self::footprint) needs about `outputs`
    /// (the DynamoDB table reads the key schema of tables it has not seen).
    fn prepare(
        &self,
        outputs: &[Self::Output],
    ) -> impl Future<Output = Result<(), LeaseError>> + Send {
        let _ = outputs;
        async { Ok(()) }
    }

    /// Applies `write` to lease `key` if its counter is `expected`, and
    /// every output, all or nothing. `request` is the same string for the
    /// same request sent again (an idempotency token where the backend has
    /// them). A lease whose counter moved is a
    /// [`Conflict`](LeaseError::Conflict) as for
    /// [`write`](LeaseTable::write); a transaction refused for an output's
    /// sake (its condition, a limit) is
    /// [`TransactionRejected`](LeaseError::TransactionRejected).
    fn write_with(
        &self,
        key: &str,
        expected: u64,
        write: LeaseWrite,
        outputs: &[Self::Output],
        request: &str,
    ) -> impl Future<Output = Result<crate::lease::Lease, LeaseError>> + Send;
}

/// Splits `records` (in order) into runs that each fit one transaction;
/// `Err` names the first record that fits none on its own.
pub(crate) fn plan<T: TransactionalLeaseTable>(
    table: &T,
    records: &[ProcessedRecord<T::Output>],
) -> Result<Vec<std::ops::Range<usize>>, String> {
    let limits = table.limits();
    let mut runs = Vec::new();
    let mut start = 0;
    let (mut outputs, mut bytes) = (0usize, 0usize);
    let mut items: HashSet<String> = HashSet::new();
    for (index, record) in records.iter().enumerate() {
        let footprints: Vec<_> = record.outputs.iter().map(|o| table.footprint(o)).collect();
        let record_bytes: usize = footprints.iter().map(|f| f.bytes).sum();
        let mut own = HashSet::new();
        for item in footprints.iter().filter_map(|f| f.item.as_ref()) {
            if !own.insert(item.clone()) {
                return Err(format!(
                    "the record at {} writes item {item} twice: one transaction cannot hold two actions on one item",
                    record.position
                ));
            }
        }
        if record.outputs.len() > limits.max_outputs || record_bytes > limits.max_bytes {
            return Err(format!(
                "the record at {} has {} outputs of {record_bytes} bytes; one transaction holds at most {} outputs and {} bytes besides the checkpoint",
                record.position,
                record.outputs.len(),
                limits.max_outputs,
                limits.max_bytes
            ));
        }
        let fits = outputs + record.outputs.len() <= limits.max_outputs
            && bytes + record_bytes <= limits.max_bytes
            && own.is_disjoint(&items);
        if !fits {
            runs.push(start..index);
            start = index;
            outputs = 0;
            bytes = 0;
            items.clear();
        }
        outputs += record.outputs.len();
        bytes += record_bytes;
        items.extend(own);
    }
    if start < records.len() {
        runs.push(start..records.len());
    }
    Ok(runs)
}

/// The idempotency token of one transaction: the same for the same lease,
/// counter and checkpoint (the same request sent again), 32 hex digits.
pub(crate) fn request_token(key: &str, expected: u64, position: &Position) -> String {
    let digest = |salt: u64| {
        // SipHash with fixed keys: stable for one build, which is all a
        // retry within one process needs.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        salt.hash(&mut hasher);
        key.hash(&mut hasher);
        expected.hash(&mut hasher);
        position.to_string().hash(&mut hasher);
        hasher.finish()
    };
    format!("{:016x}{:016x}", digest(0x756e_6973), digest(0x7472_6561))
}

/// Commits `outputs` with the checkpoint `position` through the held lease
/// `held`; see the module docs (`src/lease/transactional.rs`).
pub(crate) async fn commit_held<T: TransactionalLeaseTable>(
    shared: &Arc<WorkerShared<T>>,
    held: &Arc<HeldLease>,
    position: &Position,
    outputs: &[T::Output],
) -> Result<(), CheckpointError> {
    let partition = held.key.to_string();
    let fenced = |reason: String| CheckpointError::Fenced {
        partition: partition.clone(),
        reason,
    };
    let target = LeaseCheckpoint::At(position.clone());
    let write = LeaseWrite::Checkpoint(target.clone());
    let me: &str = &shared.id;
    let mut state = held.state.lock().await;
    if state.gone {
        return Err(fenced(format!("worker {me} gave the lease up")));
    }
    let mut handoff_requested = false;
    let mut adoptions = 0u32;
    let mut attempt = 0u32;
    let outcome = loop {
        let expected = state.lease.counter;
        let request = request_token(&held.key, expected, position);
        let started = Instant::now();
        shared.count_request();
        let answer = shared
            .table
            .write_with(&held.key, expected, write.clone(), outputs, &request)
            .await;
        let current = match answer {
            Ok(lease) => {
                if lease.counter != expected + 1 || lease.holder() != Some(me) {
                    tracing::error!(
                        lease = %held.key,
                        expected,
                        counter = lease.counter,
                        "the lease table applied a conditional transaction that did not keep the lease ours; the lease is fenced"
                    );
                    break Err(Some("the table answered with a lease not ours".to_owned()));
                }
                held.known_counter.store(lease.counter, Ordering::Release);
                state.lease = lease;
                state.renewed_at = started;
                break Ok(());
            }
            Err(LeaseError::Conflict { current, .. }) => match current {
                Some(current) => Ok(Some(*current)),
                None => shared.table.get(&held.key).await,
            },
            Err(err @ LeaseError::TransactionRejected { .. }) => {
                return Err(CheckpointError::Transaction {
                    partition: partition.clone(),
                    reason: err.to_string(),
                })
            }
            Err(err) => Err(err),
        };
        match current {
            Ok(Some(current)) if current.holder() == Some(me) => {
                handoff_requested |= current.owner.as_deref() != Some(me);
                let applied = current.checkpoint == target && current.counter > expected;
                held.known_counter.store(current.counter, Ordering::Release);
                state.lease = current;
                if applied {
                    // An earlier attempt of this very request was applied
                    // and its answer lost.
                    break Ok(());
                }
                adoptions += 1;
                if adoptions > 4 {
                    return Err(CheckpointError::backend(
                        format!("lease table {}", shared.table.name()),
                        format!("lease {} kept changing under a transaction", held.key),
                    ));
                }
            }
            Ok(other) => {
                break Err(Some(format!(
                    "held by {} now",
                    other
                        .as_ref()
                        .and_then(|l| l.holder())
                        .unwrap_or("nobody (the lease is gone)")
                )))
            }
            Err(err) => {
                // The outcome is unknown: only this same request may be
                // sent again, until the lease runs out.
                if state.renewed_at.elapsed() >= shared.config.lease_duration {
                    tracing::warn!(worker = %me, lease = %held.key, error = %crate::ErrorChain(&err), "a transaction's outcome stayed unknown until the lease ran out");
                    break Err(None);
                }
                let ceiling = shared.config.write_retry.ceiling(attempt);
                attempt = attempt.saturating_add(1);
                tokio::time::sleep(ceiling.mul_f64(shared.random())).await;
            }
        }
    };
    match outcome {
        Ok(()) => {
            drop(state);
            LeaseCounters::add(&shared.counters.checkpoints);
            if handoff_requested {
                drain::begin(shared, held, DrainReason::Handoff);
            }
            if *position == Position::End {
                drain::release(shared, held, DrainReason::Shutdown).await;
            }
            Ok(())
        }
        Err(holder) => {
            state.gone = true;
            held.control.fence();
            drop(state);
            shared.forget(held);
            LeaseCounters::add(&shared.counters.lost);
            let reason = match holder {
                Some(holder) => format!("lease lost while committing a transaction: {holder}"),
                None => "the lease ran out while a transaction's outcome was unknown".to_owned(),
            };
            tracing::warn!(worker = %me, lease = %held.key, %reason, "lease lost; its partition is fenced");
            Err(fenced(reason))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_token_is_stable_and_fits_dynamodb() {
        let a = request_token("shard-0", 7, &Position::Offset(3));
        assert_eq!(a, request_token("shard-0", 7, &Position::Offset(3)));
        assert_eq!(a.len(), 32);
        assert_ne!(a, request_token("shard-0", 8, &Position::Offset(3)));
        assert_ne!(a, request_token("shard-0", 7, &Position::Offset(4)));
        assert_ne!(a, request_token("shard-1", 7, &Position::Offset(3)));
    }
}
