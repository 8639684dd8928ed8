//! Giving a lease up without re-delivering anything: drain, checkpoint,
//! release.
//!
//! 1. The lease's control is set to draining: the consumer stops reading
//!    and reports how many records it yielded.
//! 2. The worker asks the checkpointer to save the partition now and waits
//!    until the saved position covers every yielded record.
//! 3. It releases the lease: during a handoff the waiting worker holds it
//!    from that write on, with a checkpoint right after the last record
//!    processed here; at a shutdown it becomes unowned and the next scan of
//!    any worker takes it.
//!
//! Steps 1 and 2 wait at most the [drain timeout](super::LeaseConfig::drain_timeout)
//! together; past it the lease is released anyway, and the records after
//! its checkpoint are delivered again by the next holder (at least once,
//! never lost). A lease lost meanwhile just ends its drain.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::held::{HeldLease, StopReport};
use super::metrics::LeaseCounters;
use super::record::Lease;
use super::shared::WorkerShared;
use super::table::LeaseTable;
use super::write::LeaseWrite;
use crate::error::Error;

/// How often a drain looks at the checkpointer's progress.
const PROGRESS_POLL: Duration = Duration::from_millis(20);

/// Why a lease is given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DrainReason {
    /// Another worker asked for it.
    Handoff,
    /// This worker is stopping.
    Shutdown,
}

/// A write to a held lease that starts the drain for a handoff request
/// found on the way; see `WorkerShared::write_held`.
pub(crate) async fn write_held<T: LeaseTable>(
    shared: &Arc<WorkerShared<T>>,
    held: &Arc<HeldLease>,
    write: LeaseWrite,
) -> Result<Lease, Error> {
    let written = shared.write_held(held, write).await?;
    if written.handoff_requested {
        begin(shared, held, DrainReason::Handoff);
    }
    Ok(written.lease)
}

/// Starts draining `held` unless it is draining already.
pub(crate) fn begin<T: LeaseTable>(
    shared: &Arc<WorkerShared<T>>,
    held: &Arc<HeldLease>,
    reason: DrainReason,
) {
    if held.giving_up.swap(true, Ordering::SeqCst) {
        return;
    }
    tracing::info!(worker = %shared.id, lease = %held.key, ?reason, "draining lease");
    held.control.drain();
    let task = {
        let shared = shared.clone();
        let held = held.clone();
        tokio::spawn(async move { drain(&shared, &held, reason).await })
    };
    shared.track_drain(task.abort_handle());
}

async fn drain<T: LeaseTable>(
    shared: &Arc<WorkerShared<T>>,
    held: &Arc<HeldLease>,
    reason: DrainReason,
) {
    let deadline = Instant::now() + shared.config.drain_timeout;
    let report = loop {
        let notified = held.stop_reported.notified();
        if let Some(report) = held.stop_report() {
            break Some(report);
        }
        if held.control.is_fenced() {
            return;
        }
        tokio::select! {
            () = notified => {}
            () = tokio::time::sleep_until(deadline) => break None,
        }
    };
    match report {
        Some(StopReport::Yielded(tokens)) if tokens > 0 => loop {
            if held.control.durable_tokens().is_some_and(|d| d >= tokens) {
                break;
            }
            if held.control.is_fenced() {
                return;
            }
            if Instant::now() >= deadline {
                tracing::warn!(
                    worker = %shared.id,
                    lease = %held.key,
                    tokens,
                    saved = held.control.durable_tokens().unwrap_or(0),
                    "drain timed out before every yielded record was checkpointed; releasing anyway (the rest is delivered again)"
                );
                break;
            }
            held.control.request_checkpoint();
            tokio::time::sleep(PROGRESS_POLL.min(deadline - Instant::now())).await;
        },
        Some(_) => {}
        None => tracing::warn!(
            worker = %shared.id,
            lease = %held.key,
            "the consumer did not stop within the drain timeout; releasing anyway"
        ),
    }
    release(shared, held, reason).await;
}

/// Releases `held`, retrying transient failures while the lease is valid.
pub(crate) async fn release<T: LeaseTable>(
    shared: &Arc<WorkerShared<T>>,
    held: &Arc<HeldLease>,
    reason: DrainReason,
) {
    let mut attempt = 0u32;
    loop {
        match shared.write_held(held, LeaseWrite::Release).await {
            Ok(written) => {
                let lease = written.lease;
                held.give_up().await;
                shared.forget(held);
                let counter = match reason {
                    DrainReason::Handoff if lease.owner.is_some() => {
                        &shared.counters.handoffs_given
                    }
                    _ => &shared.counters.released,
                };
                LeaseCounters::add(counter);
                tracing::info!(
                    worker = %shared.id,
                    lease = %held.key,
                    to = lease.owner.as_deref().unwrap_or("-"),
                    checkpoint = %lease.checkpoint,
                    "lease released"
                );
                return;
            }
            // Lost or gone: not ours to release any more.
            Err(Error::Checkpoint(_)) => return,
            Err(err) => {
                let renewed_at = held.state.lock().await.renewed_at;
                if renewed_at.elapsed() >= shared.config.lease_duration {
                    shared
                        .lose(held, "release failed until the lease ran out")
                        .await;
                    return;
                }
                tracing::debug!(worker = %shared.id, lease = %held.key, error = %crate::ErrorChain(&err), "lease release failed; retrying");
                let ceiling = shared.config.write_retry.ceiling(attempt);
                attempt = attempt.saturating_add(1);
                tokio::time::sleep(ceiling.mul_f64(shared.random())).await;
            }
        }
    }
}
