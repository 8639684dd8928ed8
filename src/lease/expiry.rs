//! Expiry without clocks shared between machines: a lease is expired for a
//! worker when the worker's own monotonic clock says the lease's counter
//! has not changed for the lease duration.
//!
//! A worker notes, per lease, the counter it last read and the local
//! instant it first read that counter. A holder that renews moves the
//! counter at least every renew interval, so its leases never look expired
//! to anyone whose reads come often enough. No timestamp written by another
//! machine is ever compared with this machine's time: clock skew between
//! workers cannot expire a live lease.
//!
//! A worker that has just started has seen every counter for no time at
//! all: it waits a whole lease duration before it judges any owned lease
//! expired (the KCL does the same). Unowned leases need no judging.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::record::Lease;

/// When this worker first read each lease's current counter.
#[derive(Debug, Default)]
pub(crate) struct CounterObservations {
    seen: HashMap<String, Observation>,
}

#[derive(Debug, Clone, Copy)]
struct Observation {
    counter: u64,
    since: Instant,
}

impl CounterObservations {
    /// Notes the counters of a table read made at `now`; forgets leases no
    /// longer in the table.
    pub(crate) fn observe(&mut self, leases: &[Lease], now: Instant) {
        if self.seen.len() > leases.len() {
            let keys: std::collections::HashSet<&str> =
                leases.iter().map(|l| l.key.as_str()).collect();
            self.seen.retain(|key, _| keys.contains(key.as_str()));
        }
        for lease in leases {
            match self.seen.get_mut(&lease.key) {
                Some(seen) if seen.counter == lease.counter => {}
                // A counter that went down is a lease deleted and created
                // again: a change like any other.
                Some(seen) => {
                    *seen = Observation {
                        counter: lease.counter,
                        since: now,
                    }
                }
                None => {
                    self.seen.insert(
                        lease.key.clone(),
                        Observation {
                            counter: lease.counter,
                            since: now,
                        },
                    );
                }
            }
        }
    }

    /// Notes `lease` as written by this worker (a handoff request): its
    /// counter moved, but not by its holder, so the time it has stood
    /// still runs on from before the write.
    pub(crate) fn own_write(&mut self, lease: &Lease) {
        if let Some(seen) = self.seen.get_mut(&lease.key) {
            if lease.counter == seen.counter + 1 {
                seen.counter = lease.counter;
            }
        }
    }

    /// Whether `lease` (as last read) has kept its counter for `duration`
    /// by this worker's clock.
    pub(crate) fn is_expired(&self, lease: &Lease, now: Instant, duration: Duration) -> bool {
        match self.seen.get(&lease.key) {
            Some(seen) if seen.counter == lease.counter => {
                now.saturating_duration_since(seen.since) >= duration
            }
            _ => false,
        }
    }
}

impl CounterObservations {
    /// The first instant after `now` at which a lease of another owner in
    /// `leases` (as last read) expires if its counter stays where it is:
    /// when to read the table again to take it without waiting for the
    /// next scan. Leases already expired, unowned or held by `me` do not
    /// count. Holders that renew move their deadlines on at every read, so
    /// in a healthy table this is never reached before the next scan.
    pub(crate) fn next_expiry(
        &self,
        leases: &[Lease],
        me: &str,
        now: Instant,
        duration: Duration,
    ) -> Option<Instant> {
        leases
            .iter()
            .filter(|lease| lease.owner.is_some() && lease.holder() != Some(me))
            .filter_map(|lease| match self.seen.get(&lease.key) {
                Some(seen) if seen.counter == lease.counter => Some(seen.since + duration),
                _ => None,
            })
            .filter(|deadline| *deadline > now)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::LeaseCheckpoint;

    fn lease(counter: u64) -> Lease {
        let mut lease = Lease::new("k", LeaseCheckpoint::TrimHorizon);
        lease.owner = Some("other".into());
        lease.counter = counter;
        lease
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_expires_only_after_its_counter_stands_still_for_the_duration() {
        let duration = Duration::from_secs(10);
        let mut seen = CounterObservations::default();
        seen.observe(&[lease(1)], Instant::now());
        tokio::time::advance(Duration::from_secs(9)).await;
        seen.observe(&[lease(1)], Instant::now());
        assert!(!seen.is_expired(&lease(1), Instant::now(), duration));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(seen.is_expired(&lease(1), Instant::now(), duration));
        // The holder renews: the clock starts again from this read.
        seen.observe(&[lease(2)], Instant::now());
        assert!(!seen.is_expired(&lease(2), Instant::now(), duration));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(seen.is_expired(&lease(2), Instant::now(), duration));
    }

    #[tokio::test(start_paused = true)]
    async fn the_next_expiry_is_the_earliest_deadline_of_another_owners_standing_lease() {
        let duration = Duration::from_secs(10);
        let mut seen = CounterObservations::default();
        let mine = {
            let mut lease = lease(1);
            lease.key = "mine".into();
            lease.owner = Some("me".into());
            lease
        };
        let unowned = {
            let mut lease = lease(1);
            lease.key = "free".into();
            lease.owner = None;
            lease
        };
        let start = Instant::now();
        seen.observe(&[lease(1), mine.clone(), unowned.clone()], start);
        let all = [lease(1), mine, unowned];
        assert_eq!(
            seen.next_expiry(&all, "me", start, duration),
            Some(start + duration)
        );
        // Renewed: the deadline moves on from the read that saw it.
        tokio::time::advance(Duration::from_secs(3)).await;
        seen.observe(&[lease(2)], Instant::now());
        assert_eq!(
            seen.next_expiry(&[lease(2)], "me", Instant::now(), duration),
            Some(Instant::now() + duration)
        );
        // Past its deadline it is no longer a future wake-up.
        tokio::time::advance(duration).await;
        assert_eq!(
            seen.next_expiry(&[lease(2)], "me", Instant::now(), duration),
            None
        );
    }

    #[tokio::test(start_paused = true)]
    async fn this_workers_own_write_does_not_restart_the_holders_expiry() {
        let duration = Duration::from_secs(10);
        let mut seen = CounterObservations::default();
        seen.observe(&[lease(1)], Instant::now());
        tokio::time::advance(Duration::from_secs(6)).await;
        // Our handoff request moved the counter to 2.
        seen.own_write(&lease(2));
        seen.observe(&[lease(2)], Instant::now());
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(seen.is_expired(&lease(2), Instant::now(), duration));
        // A write that skipped a counter came after someone else's.
        seen.own_write(&lease(4));
        seen.observe(&[lease(4)], Instant::now());
        assert!(!seen.is_expired(&lease(4), Instant::now(), duration));
    }

    #[tokio::test(start_paused = true)]
    async fn a_counter_never_read_is_not_expired_and_gone_leases_are_forgotten() {
        let duration = Duration::from_secs(10);
        let mut seen = CounterObservations::default();
        assert!(!seen.is_expired(&lease(1), Instant::now(), duration));
        seen.observe(&[lease(1)], Instant::now());
        seen.observe(&[], Instant::now());
        tokio::time::advance(duration).await;
        assert!(!seen.is_expired(&lease(1), Instant::now(), duration));
    }
}
