//! Lease coordination: many workers, on many machines, share the
//! partitions of a stream through one lease table, each partition read by
//! one worker at a time (the KCL's model, KCL 2.x table layout).
//!
//! ```text
//!  worker A ─┐   renew its leases every renew interval (conditional writes)
//!  worker B ─┼─▶ lease table ◀─ read whole every scan interval: take, balance, hand over
//!  worker C ─┘   checkpoint through the lease it holds
//! ```
//!
//! # Guarantees
//!
//! - **One holder.** A worker reads a partition only while it holds the
//!   partition's lease. Every table write is conditional on the lease's
//!   counter as the writer read it and increments it; a write that fails
//!   its condition means someone else wrote: the worker re-reads, and if
//!   the lease is no longer its own it fences the partition at once (the
//!   source stops, the checkpointer stops) and never writes it again. A
//!   worker whose renewals fail for a lease duration gives the lease up by
//!   its own clock, at the latest when others may take it.
//! - **Expiry without clocks.** A lease is expired for a worker when its own
//!   monotonic clock says the lease's counter has not moved for the lease
//!   duration. No time written by another machine is compared.
//! - **Balance.** Target per worker: `ceil(leases / live workers)`. Unowned
//!   and expired leases are taken first; a worker still below target then
//!   asks the most loaded worker for a lease (at most
//!   [`max_steals_at_once`](LeaseConfig::max_steals_at_once) outstanding).
//! - **Handoff, not theft.** Asking is a *handoff* (the KCL 3
//!   `checkpointOwner`): the owner stops reading the partition, waits until
//!   every record it yielded is checkpointed, then releases it to the
//!   asker, which starts right after. A graceful
//!   [`shutdown`](LeaseWorker::shutdown) does the same for every lease and
//!   leaves them unowned for the next scan of any worker. Only an
//!   unresponsive owner's lease is taken without its consent (expiry, or a
//!   handoff not completed within the
//!   [timeout](LeaseConfig::handoff_timeout)): only a crash re-delivers
//!   records, and only those after the last checkpoint.
//! - **Lineage.** A lease is handed to a consumer only when every parent
//!   lease in the table is finished (`SHARD_END`).
//! - **Backend-agnostic.** The coordination runs against the small
//!   [`LeaseTable`] trait: DynamoDB in production (`crate::dynamodb`), the
//!   [`MemoryLeaseTable`] with the same conditional semantics in tests, and
//!   [`FaultyLeaseTable`] in front of either to inject latency, failures,
//!   lost answers and partitions.
//!
//! # What it does not do
//!
//! - Decide *what* a partition is: creating leases for new partitions
//!   (shard discovery, resharding) is the source's job
//!   ([`LeaseTable::create`] is conditional, so several workers may do it).
//! - Exclude a worker that is paused (a stopped process, a long GC) from
//!   acting on what it held for the moment it resumes: its first write after
//!   resuming fails its condition and fences the partition, so it may yield
//!   what it had already fetched in that moment, not more. Effects that
//!   must never run twice need the fencing epoch checked where they land:
//!   every record's token carries it
//!   ([`CheckpointToken::fencing`](crate::checkpoint::CheckpointToken::fencing),
//!   also [`AcquiredLease::epoch`]); see
//!   [`FencingToken`](crate::checkpoint::FencingToken) for the pattern.
//!
//! | item | file | what it is |
//! |---|---|---|
//! | [`Lease`], [`LeaseCheckpoint`], [`HashRange`] | `record.rs` | a partition's lease |
//! | [`LeaseWrite`] | `write.rs` | the writes, and what each does |
//! | [`LeaseTable`], [`LeaseError`], [`Created`] | `table.rs` | the storage contract |
//! | [`MemoryLeaseTable`] | `memory_table.rs` | in memory, same semantics |
//! | [`FaultyLeaseTable`], [`LeaseFaults`] | `faulty_table.rs` | injected faults, request counts |
//! | [`LeaseConfig`] | `config.rs` | every timing and limit, with defaults |
//! | [`LeaseWorker`], [`WorkerSnapshot`] | `worker.rs` | one worker: the handle and its shared state |
//! | [`AcquiredLease`], [`AcquiredLeases`] | `acquired.rs` | leases handed to the consumer |
//! | [`LeaseCheckpointStore`] | `checkpoint_store.rs` | checkpoints through held leases |
//! | [`LeaseMetrics`] | `metrics.rs` | what a worker did |
//! | | `shared.rs`, `held.rs`, `renewer.rs`, `taker.rs`, `drain.rs`, `balance.rs`, `expiry.rs` | how: shared state, held writes, renewals, scans, drains, balance, expiry |

mod acquired;
mod balance;
mod checkpoint_store;
mod config;
mod drain;
mod expiry;
mod faulty_table;
mod held;
mod memory_table;
mod metrics;
mod record;
mod renewer;
mod shared;
mod table;
mod taker;
mod transactional;
mod worker;
mod write;

pub use acquired::{AcquiredLease, AcquiredLeases};
pub use checkpoint_store::LeaseCheckpointStore;
pub use config::LeaseConfig;
pub use faulty_table::{FaultyLeaseTable, LeaseFaults, LeaseRequestCounts};
pub use memory_table::{MemoryLeaseTable, MemoryOutput, StoredOutput};
pub use metrics::LeaseMetrics;
pub use record::{HashRange, Lease, LeaseCheckpoint};
pub use table::{Created, LeaseError, LeaseTable};
pub use transactional::{OutputFootprint, TransactionLimits, TransactionalLeaseTable};
pub use worker::{LeaseWorker, WorkerSnapshot};
pub use write::LeaseWrite;
