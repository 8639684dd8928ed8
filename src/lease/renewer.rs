//! The renewer: every renew interval, each held lease is renewed (a write
//! that only moves its counter), concurrently.
//!
//! - A renewal that meets a conflict is resolved as every held write is
//!   (see `held`): adopted while the lease is still ours — and a handoff
//!   request found that way starts the lease's drain — or the lease is lost
//!   and fenced at once.
//! - A renewal that fails (the table is unreachable) is retried at the next
//!   interval; once no write has succeeded for a whole lease duration (from
//!   the start of the last successful one, by this worker's clock), the
//!   lease is given up: another worker may have judged it expired. So a
//!   worker cut off from the table stops reading within one renew interval
//!   of the moment others may take its leases.
//! - It runs until the worker has stopped (leases being drained during a
//!   shutdown are renewed until released).

use std::sync::Arc;

use futures::StreamExt;
use tokio::time::Instant;

use super::drain;
use super::held::HeldLease;
use super::metrics::LeaseCounters;
use super::shared::WorkerShared;
use super::table::LeaseTable;
use super::write::LeaseWrite;
use crate::error::Error;

/// Renewals in flight at once.
const RENEW_CONCURRENCY: usize = 32;

pub(crate) async fn run<T: LeaseTable>(shared: Arc<WorkerShared<T>>) {
    let interval = shared.config.effective_renew_interval();
    let mut stopped = shared.stopped.subscribe();
    let mut next = Instant::now() + interval;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            _ = stopped.wait_for(|done| *done) => return,
        }
        next = Instant::now() + interval;
        let held = shared.held_leases();
        futures::stream::iter(held)
            .for_each_concurrent(RENEW_CONCURRENCY, |lease| renew(&shared, lease))
            .await;
    }
}

async fn renew<T: LeaseTable>(shared: &Arc<WorkerShared<T>>, held: Arc<HeldLease>) {
    let started = Instant::now();
    match drain::write_held(shared, &held, LeaseWrite::Renew).await {
        Ok(_) => shared.counters.renewed(started.elapsed()),
        // Lost (handled by write_held) or already given up.
        Err(Error::Checkpoint(_)) => LeaseCounters::add(&shared.counters.renew_failures),
        Err(err) => {
            LeaseCounters::add(&shared.counters.renew_failures);
            let renewed_at = held.state.lock().await.renewed_at;
            if renewed_at.elapsed() >= shared.config.lease_duration {
                shared
                    .lose(&held, "not renewed within the lease duration")
                    .await;
            } else {
                tracing::debug!(worker = %shared.id, lease = %held.key, error = %crate::ErrorChain(&err), "lease renewal failed; retrying");
            }
        }
    }
}
