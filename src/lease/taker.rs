//! The taker: every scan interval (with ±10 % jitter, so workers started
//! together do not read in step), one read of the whole table, then:
//!
//! The next scan comes earlier when a lease of another worker will expire
//! before it (its counter standing still since this worker read it): the
//! taker reads the table just after that deadline, so a crashed worker's
//! leases move a lease duration after this worker last saw them renewed,
//! not up to a scan interval later.
//!
//! 1. **Losses and handoff requests** of held leases: a lease whose counter
//!    moved past what this worker wrote is held by someone else now (lost:
//!    fenced at once), or, still ours, has a handoff requested (drained).
//! 2. **Requested handoffs**: a lease released to this worker is acquired
//!    (a conditional write on the counter read); one not released within
//!    the handoff timeout, or whose holder stopped renewing, is taken. A
//!    handoff pending to this worker's name that it never asked for (an
//!    earlier process of the same name did, then died) is followed the
//!    same way.
//! 3. **Our own name**: a lease owned by this worker's name that it does
//!    not hold (a restart under the same name) is reclaimed; one it is
//!    asked to hand over is released.
//! 4. **Balance** (see `balance`): take unowned and expired leases, or ask
//!    the most loaded worker for one.
//!
//! Every take is a write conditional on the counter read: of several
//! workers deciding on one stale read, one wins and the others see a
//! conflict and move on. A lease is acquired only when it has work left —
//! not finished, and every parent finished — so a child partition is never
//! handed to a consumer before its parents end.
//!
//! On [`shutdown`](super::LeaseWorker::shutdown) the taker stops taking,
//! withdraws its handoff requests, drains every held lease and, once none
//! is held (or the drain timeout plus a lease duration passed), marks the
//! worker stopped.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::time::Instant;

use super::acquired::AcquiredLease;
use super::balance::{self, BalanceInput};
use super::drain::{self, DrainReason};
use super::expiry::CounterObservations;
use super::held::StopReport;
use super::metrics::LeaseCounters;
use super::record::Lease;
use super::shared::{lock, Acquisition, WorkerShared};
use super::table::{LeaseError, LeaseTable};
use super::write::LeaseWrite;

/// Writes of one handoff request, the first and those after conflicts
/// with the owner's renewals.
const REQUEST_ATTEMPTS: usize = 3;

/// Takes in flight at once.
const TAKE_CONCURRENCY: usize = 16;

/// How long after a lease's expiry deadline the taker reads the table (so
/// the read finds it expired by this worker's clock).
const EXPIRY_MARGIN: Duration = Duration::from_millis(10);

/// How often the stop sequence looks whether every lease is released.
const STOP_POLL: Duration = Duration::from_millis(20);

pub(crate) async fn run<T: LeaseTable>(shared: Arc<WorkerShared<T>>) {
    let mut observations = CounterObservations::default();
    let mut stopping = shared.stopping.subscribe();
    loop {
        if shared.is_stopping() {
            stop(&shared).await;
            return;
        }
        let next_expiry = scan(&shared, &mut observations).await;
        let mut pause = shared
            .config
            .scan_interval
            .mul_f64(0.9 + 0.2 * shared.random());
        if let Some(deadline) = next_expiry {
            pause = pause.min(deadline.saturating_duration_since(Instant::now()) + EXPIRY_MARGIN);
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = stopping.wait_for(|stopping| *stopping) => {}
        }
    }
}

/// One scan; returns when the next lease of another worker expires if
/// nobody renews it (see the module docs).
async fn scan<T: LeaseTable>(
    shared: &Arc<WorkerShared<T>>,
    observations: &mut CounterObservations,
) -> Option<Instant> {
    shared.count_request();
    let leases = match shared.table.list().await {
        Ok(leases) => leases,
        Err(err) => {
            tracing::debug!(worker = %shared.id, error = %crate::ErrorChain(&err), "lease table scan failed");
            return None;
        }
    };
    LeaseCounters::add(&shared.counters.scans);
    let now = Instant::now();
    observations.observe(&leases, now);
    let by_key: HashMap<&str, &Lease> = leases.iter().map(|l| (l.key.as_str(), l)).collect();
    let finished: HashMap<&str, bool> = leases
        .iter()
        .map(|l| (l.key.as_str(), l.is_finished()))
        .collect();
    reconcile_held(shared, &by_key).await;
    follow_requests(shared, &by_key, observations, now).await;
    reclaim_own(shared, &leases, &finished).await;
    if !shared.is_stopping() {
        rebalance(shared, &leases, &by_key, observations, now).await;
    }
    let next_expiry = observations.next_expiry(
        &leases,
        &shared.id,
        Instant::now(),
        shared.config.lease_duration,
    );
    shared.set_last_scan(leases);
    next_expiry
}

/// Step 1: held leases someone else wrote.
async fn reconcile_held<T: LeaseTable>(
    shared: &Arc<WorkerShared<T>>,
    by_key: &HashMap<&str, &Lease>,
) {
    let me = &*shared.id;
    for held in shared.held_leases() {
        let known = held
            .known_counter
            .load(std::sync::atomic::Ordering::Acquire);
        match by_key.get(&*held.key) {
            None => {
                shared
                    .lose(&held, "the lease is no longer in the table")
                    .await
            }
            Some(lease) if lease.counter > known && lease.holder() != Some(me) => {
                shared.lose(&held, "another worker took it").await
            }
            Some(lease) if lease.holder() == Some(me) && lease.owner.as_deref() != Some(me) => {
                drain::begin(shared, &held, DrainReason::Handoff)
            }
            Some(_) => {}
        }
    }
}

/// Step 2: handoffs this worker asked for.
async fn follow_requests<T: LeaseTable>(
    shared: &Arc<WorkerShared<T>>,
    by_key: &HashMap<&str, &Lease>,
    observations: &CounterObservations,
    now: Instant,
) {
    let me = &*shared.id;
    adopt_requests_of_our_name(shared, by_key, now);
    let requests: Vec<(String, Instant)> = lock(&shared.requests)
        .iter()
        .map(|(k, t)| (k.clone(), *t))
        .collect();
    for (key, since) in requests {
        let Some(lease) = by_key.get(key.as_str()) else {
            lock(&shared.requests).remove(&key);
            continue;
        };
        if lease.owner.as_deref() != Some(me) {
            // Withdrawn, or taken by someone else meanwhile.
            lock(&shared.requests).remove(&key);
            continue;
        }
        let (write, how) = if !lease.handoff_pending() {
            (LeaseWrite::Renew, Acquisition::Handoff)
        } else if now.saturating_duration_since(since) >= shared.config.handoff_timeout
            || observations.is_expired(lease, now, shared.config.lease_duration)
        {
            tracing::warn!(
                worker = %shared.id,
                lease = %key,
                holder = lease.holder().unwrap_or("-"),
                "handoff not completed in time; taking the lease"
            );
            (
                LeaseWrite::Take {
                    owner: me.to_owned(),
                },
                Acquisition::ForcedHandoff,
            )
        } else {
            continue;
        };
        if let Ok(lease) = shared.write_unheld(&key, lease.counter, write).await {
            lock(&shared.requests).remove(&key);
            acquire(shared, lease, how);
        }
    }
}

/// Handoffs requested under this worker's name that it does not know of:
/// asked for by an earlier process of the same name (killed before the
/// handoff completed). They are followed like its own requests from now
/// on: without that, a lease whose old holder died mid-handoff would stay
/// pending for good, as every worker counts it for its owner (this name)
/// in the balance and nobody else takes it.
fn adopt_requests_of_our_name<T: LeaseTable>(
    shared: &Arc<WorkerShared<T>>,
    by_key: &HashMap<&str, &Lease>,
    now: Instant,
) {
    let me = &*shared.id;
    let pending: Vec<(&str, &Lease)> = by_key
        .iter()
        .filter(|(key, lease)| {
            lease.owner.as_deref() == Some(me)
                && lease.handoff_pending()
                && lease.holder() != Some(me)
                && shared.held(key).is_none()
        })
        .map(|(key, lease)| (*key, *lease))
        .collect();
    let mut requests = lock(&shared.requests);
    for (key, lease) in pending {
        if !requests.contains_key(key) {
            tracing::info!(
                worker = %shared.id,
                lease = %key,
                holder = lease.holder().unwrap_or("-"),
                "following a handoff requested under this worker's name before a restart"
            );
            requests.insert(key.to_owned(), now);
        }
    }
}

/// Step 3: leases under this worker's name that it does not hold.
async fn reclaim_own<T: LeaseTable>(
    shared: &Arc<WorkerShared<T>>,
    leases: &[Lease],
    finished: &HashMap<&str, bool>,
) {
    let me = &*shared.id;
    for lease in leases {
        if lease.holder() != Some(me) || shared.held(&lease.key).is_some() {
            continue;
        }
        let keep = lease.owner.as_deref() == Some(me)
            && !lease.handoff_pending()
            && !shared.is_stopping()
            && balance::has_work(lease, finished);
        let write = if keep {
            LeaseWrite::Renew
        } else {
            LeaseWrite::Release
        };
        if let Ok(written) = shared.write_unheld(&lease.key, lease.counter, write).await {
            if keep {
                acquire(shared, written, Acquisition::Reclaimed);
            } else {
                LeaseCounters::add(&shared.counters.released);
                tracing::info!(worker = %shared.id, lease = %lease.key, "released a lease this worker's name owned but did not hold");
            }
        }
    }
}

/// Step 4: take or ask for leases to reach the balance target.
async fn rebalance<T: LeaseTable>(
    shared: &Arc<WorkerShared<T>>,
    leases: &[Lease],
    by_key: &HashMap<&str, &Lease>,
    observations: &mut CounterObservations,
    now: Instant,
) {
    let me = &*shared.id;
    let duration = shared.config.lease_duration;
    let expired: HashSet<&str> = leases
        .iter()
        .filter(|l| {
            l.holder().is_some_and(|h| h != me) && observations.is_expired(l, now, duration)
        })
        .map(|l| l.key.as_str())
        .collect();
    let outstanding = lock(&shared.requests).len();
    let plan = {
        let mut rng = lock(&shared.rng);
        balance::plan(
            &BalanceInput {
                me,
                leases,
                expired: &expired,
                outstanding_requests: outstanding,
                max_steals_at_once: shared.config.max_steals_at_once,
                max_leases_per_worker: shared.config.max_leases_per_worker,
            },
            &mut rng,
        )
    };
    let takes = plan
        .take
        .iter()
        .filter_map(|key| by_key.get(key.as_str()).copied());
    futures::stream::iter(takes)
        .for_each_concurrent(TAKE_CONCURRENCY, |lease| async move {
            let how = if lease.holder().is_none() {
                Acquisition::Unowned
            } else {
                Acquisition::Expired
            };
            let write = LeaseWrite::Take { owner: me.to_owned() };
            match shared.write_unheld(&lease.key, lease.counter, write).await {
                Ok(taken) => acquire(shared, taken, how),
                Err(err) => {
                    tracing::debug!(worker = %shared.id, lease = %lease.key, error = %crate::ErrorChain(&err), "take lost the race")
                }
            }
        })
        .await;
    for choice in plan.request {
        let Some(lease) = by_key.get(choice.key.as_str()) else {
            continue;
        };
        if let Some(requested) =
            request_handoff(shared, &choice.key, &choice.from, lease.counter).await
        {
            // Our own write says nothing about whether the holder is alive:
            // its lease keeps expiring from when it last moved.
            observations.own_write(&requested);
            lock(&shared.requests).insert(choice.key.clone(), now);
            LeaseCounters::add(&shared.counters.handoffs_requested);
            tracing::info!(
                worker = %shared.id,
                lease = %choice.key,
                from = %choice.from,
                target = plan.target,
                "handoff requested"
            );
        }
    }
}

/// Asks `from` to hand `key` over, conditional on `counter`. The owner
/// renews every lease every renew interval, so a request written a table
/// round trip after the scan that read the counter races that renewal; on
/// a conflict the request is written again on the counter the conflict
/// returned, as long as `from` still owns the lease with no handoff under
/// way, at most [`REQUEST_ATTEMPTS`] times in all.
async fn request_handoff<T: LeaseTable>(
    shared: &Arc<WorkerShared<T>>,
    key: &str,
    from: &str,
    mut counter: u64,
) -> Option<Lease> {
    for _ in 0..REQUEST_ATTEMPTS {
        let write = LeaseWrite::RequestHandoff {
            from: from.to_owned(),
            to: shared.id.to_string(),
        };
        match shared.write_unheld(key, counter, write).await {
            Ok(lease) => return Some(lease),
            Err(LeaseError::Conflict {
                current: Some(current),
                ..
            }) if current.owner.as_deref() == Some(from) && !current.handoff_pending() => {
                counter = current.counter;
            }
            Err(err) => {
                tracing::debug!(worker = %shared.id, lease = %key, error = %crate::ErrorChain(&err), "handoff request not written");
                return None;
            }
        }
    }
    None
}

/// Adds a lease just written by this worker to the held set and hands it
/// to the consumer (or, when nobody reads leases any more, gives it back).
fn acquire<T: LeaseTable>(shared: &Arc<WorkerShared<T>>, lease: Lease, how: Acquisition) {
    let Some(held) = shared.hold(&lease) else {
        return;
    };
    let counters = &shared.counters;
    let counter = match how {
        Acquisition::Unowned | Acquisition::Reclaimed => &counters.taken_unowned,
        Acquisition::Expired => &counters.taken_expired,
        Acquisition::Handoff => &counters.handoffs_received,
        Acquisition::ForcedHandoff => &counters.handoffs_forced,
    };
    LeaseCounters::add(counter);
    tracing::info!(
        worker = %shared.id,
        lease = %lease.key,
        how = how.as_str(),
        counter = lease.counter,
        checkpoint = %lease.checkpoint,
        "lease acquired"
    );
    if !shared.hand_over(AcquiredLease::new(held.clone(), lease)) {
        held.report_stop(StopReport::Unknown);
        drain::begin(shared, &held, DrainReason::Shutdown);
    }
}

/// The graceful stop; see the [module docs](self).
async fn stop<T: LeaseTable>(shared: &Arc<WorkerShared<T>>) {
    let me = &*shared.id;
    shared.close_acquired();
    let requests: Vec<String> = std::mem::take(&mut *lock(&shared.requests))
        .into_keys()
        .collect();
    for key in requests {
        shared.count_request();
        let Ok(Some(lease)) = shared.table.get(&key).await else {
            continue;
        };
        if lease.owner.as_deref() != Some(me) {
            continue;
        }
        if lease.handoff_pending() {
            let _ = shared
                .write_unheld(&key, lease.counter, LeaseWrite::CancelHandoff)
                .await;
        } else if shared
            .write_unheld(&key, lease.counter, LeaseWrite::Release)
            .await
            .is_ok()
        {
            // Handed over just now, not taken up yet: released as the
            // leases held are.
            LeaseCounters::add(&shared.counters.released);
        }
    }
    for held in shared.held_leases() {
        drain::begin(shared, &held, DrainReason::Shutdown);
    }
    let deadline = Instant::now() + shared.config.drain_timeout + shared.config.lease_duration;
    while shared.held_count() > 0 && Instant::now() < deadline {
        tokio::time::sleep(STOP_POLL).await;
    }
    tracing::info!(worker = %shared.id, still_held = shared.held_count(), "lease worker stopped");
    shared.stopped.send_replace(true);
}
