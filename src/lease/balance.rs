//! Deciding which leases a worker takes or asks for, from one read of the
//! table: a pure function, so every rule is tested without a table or a
//! clock.
//!
//! - **What counts.** Only leases with work left: not finished, and every
//!   parent that still has a lease is finished (a child waits for its
//!   parents without being held). Each counts for its *claimant*: its owner
//!   (during a handoff, the worker taking it over), unless the lease is
//!   expired or unowned, which makes it *available*.
//! - **Target.** `ceil(leases / live workers)`, where the live workers are
//!   the claimants of unexpired leases and this worker; capped by
//!   [`max_leases_per_worker`](super::LeaseConfig::max_leases_per_worker).
//! - **Take first.** Below target, a worker takes available leases,
//!   unowned before expired, in random order (so that workers starting
//!   together do not all race for the same ones).
//! - **Then ask.** Only when nothing is available, it asks the most loaded
//!   worker for a handoff, as the KCL's taker steals: when that worker has
//!   more than the target, as many as it has over (at least one when this
//!   worker needs two or more), at most
//!   [`max_steals_at_once`](super::LeaseConfig::max_steals_at_once)
//!   outstanding. Leases already being handed over are never asked for.
//!
//! What it does not decide: expiry (the caller says which leases are
//! expired, see `expiry`), or anything about leases this worker holds.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::record::Lease;

/// One worker's view for a balance decision.
pub(crate) struct BalanceInput<'a> {
    /// This worker.
    pub(crate) me: &'a str,
    /// The table as last read.
    pub(crate) leases: &'a [Lease],
    /// Keys of the leases that are expired by this worker's clock.
    pub(crate) expired: &'a HashSet<&'a str>,
    /// Handoffs this worker asked for and has not received.
    pub(crate) outstanding_requests: usize,
    pub(crate) max_steals_at_once: usize,
    pub(crate) max_leases_per_worker: usize,
}

/// What to do after one read of the table.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct BalancePlan {
    /// The balance target per worker.
    pub(crate) target: usize,
    /// Live workers counted, this one included.
    pub(crate) workers: usize,
    /// Available leases to take.
    pub(crate) take: Vec<String>,
    /// Leases to ask their owner for.
    pub(crate) request: Vec<HandoffChoice>,
}

/// A lease to ask its owner to hand over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HandoffChoice {
    pub(crate) key: String,
    pub(crate) from: String,
}

/// Whether a lease has work left: not finished, and every parent still in
/// the table finished.
pub(crate) fn has_work(lease: &Lease, finished: &HashMap<&str, bool>) -> bool {
    !lease.is_finished()
        && lease
            .parents
            .iter()
            .all(|parent| finished.get(parent.as_str()).copied().unwrap_or(true))
}

/// The plan for `input`, drawing random order from `rng`.
pub(crate) fn plan(input: &BalanceInput<'_>, rng: &mut fastrand::Rng) -> BalancePlan {
    let finished: HashMap<&str, bool> = input
        .leases
        .iter()
        .map(|l| (l.key.as_str(), l.is_finished()))
        .collect();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    counts.insert(input.me, 0);
    let mut unowned = Vec::new();
    let mut expired = Vec::new();
    let mut active = 0usize;
    for lease in input.leases.iter().filter(|l| has_work(l, &finished)) {
        active += 1;
        let claimant = lease.owner.as_deref().or(lease.checkpoint_owner.as_deref());
        match claimant {
            None => unowned.push(lease),
            Some(claimant)
                if claimant != input.me && input.expired.contains(lease.key.as_str()) =>
            {
                expired.push(lease)
            }
            Some(claimant) => *counts.entry(claimant).or_default() += 1,
        }
    }
    let workers = counts.len();
    let target = active.div_ceil(workers).min(input.max_leases_per_worker);
    let mine = counts[input.me];
    let needed = target.saturating_sub(mine);
    let mut plan = BalancePlan {
        target,
        workers,
        ..BalancePlan::default()
    };
    if needed == 0 {
        return plan;
    }
    rng.shuffle(&mut unowned);
    rng.shuffle(&mut expired);
    plan.take = unowned
        .into_iter()
        .chain(expired)
        .take(needed)
        .map(|l| l.key.clone())
        .collect();
    if !plan.take.is_empty() || input.outstanding_requests >= input.max_steals_at_once {
        return plan;
    }
    // The most loaded other worker (the first by name on a tie).
    let Some((&victim, &most)) = counts
        .iter()
        .filter(|(worker, _)| **worker != input.me)
        .fold(None::<(&&str, &usize)>, |best, entry| match best {
            Some(best) if best.1 >= entry.1 => Some(best),
            _ => Some(entry),
        })
    else {
        return plan;
    };
    if most < target {
        return plan;
    }
    let mut steal = needed.min(most - target);
    if needed > 1 && steal == 0 {
        steal = 1;
    }
    steal = steal.min(input.max_steals_at_once - input.outstanding_requests);
    let mut candidates: Vec<&Lease> = input
        .leases
        .iter()
        .filter(|l| {
            l.owner.as_deref() == Some(victim)
                && !l.handoff_pending()
                && !input.expired.contains(l.key.as_str())
                && has_work(l, &finished)
        })
        .collect();
    rng.shuffle(&mut candidates);
    plan.request = candidates
        .into_iter()
        .take(steal)
        .map(|l| HandoffChoice {
            key: l.key.clone(),
            from: victim.to_owned(),
        })
        .collect();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Position;
    use crate::lease::LeaseCheckpoint;

    fn lease(key: &str, owner: Option<&str>) -> Lease {
        let mut lease = Lease::new(key, LeaseCheckpoint::TrimHorizon);
        lease.owner = owner.map(str::to_owned);
        lease
    }

    fn owned(prefix: &str, owner: &str, n: usize) -> Vec<Lease> {
        (0..n)
            .map(|i| lease(&format!("{prefix}{i}"), Some(owner)))
            .collect()
    }

    fn run(me: &str, leases: &[Lease], expired: &[&str], outstanding: usize) -> BalancePlan {
        let expired: HashSet<&str> = expired.iter().copied().collect();
        plan(
            &BalanceInput {
                me,
                leases,
                expired: &expired,
                outstanding_requests: outstanding,
                max_steals_at_once: 1,
                max_leases_per_worker: usize::MAX,
            },
            &mut fastrand::Rng::with_seed(1),
        )
    }

    #[test]
    fn a_lone_worker_takes_every_unowned_lease() {
        let leases: Vec<Lease> = (0..12).map(|i| lease(&format!("s{i}"), None)).collect();
        let plan = run("me", &leases, &[], 0);
        assert_eq!((plan.target, plan.workers, plan.take.len()), (12, 1, 12));
        assert!(plan.request.is_empty());
    }

    #[test]
    fn unowned_leases_are_taken_before_expired_ones_up_to_the_target() {
        let mut leases = owned("a", "a", 4);
        leases.extend(owned("dead", "dead", 4));
        leases.push(lease("free", None));
        // a: 4, dead: expired (not a live worker), me: 0 → 9 leases, 2 workers.
        let dead: Vec<String> = (0..4).map(|i| format!("dead{i}")).collect();
        let dead: Vec<&str> = dead.iter().map(String::as_str).collect();
        let plan = run("me", &leases, &dead, 0);
        assert_eq!((plan.target, plan.workers), (5, 2));
        assert_eq!(plan.take.len(), 5);
        assert_eq!(plan.take[0], "free", "unowned first");
        assert!(plan.take[1..].iter().all(|k| k.starts_with("dead")));
        assert!(
            plan.request.is_empty(),
            "no handoff while leases are available"
        );
    }

    #[test]
    fn below_target_with_nothing_available_asks_the_most_loaded_worker() {
        let mut leases = owned("a", "a", 6);
        leases.extend(owned("b", "b", 6));
        // 12 leases, 3 workers: target 4; a and b have 6 (2 over).
        let plan = run("me", &leases, &[], 0);
        assert_eq!(plan.target, 4);
        assert!(plan.take.is_empty());
        assert_eq!(plan.request.len(), 1, "at most one outstanding by default");
        assert_eq!(plan.request[0].from, "a", "the first by name on a tie");
        // One outstanding already: nothing more.
        assert!(run("me", &leases, &[], 1).request.is_empty());
    }

    #[test]
    fn a_worker_at_target_is_not_asked_unless_two_or_more_are_needed() {
        // 10 leases, 4 workers: target 3. me has 2, needs 1: the others at
        // target 3 are left alone (no thrash).
        let mut leases = owned("a", "a", 3);
        leases.extend(owned("b", "b", 3));
        leases.extend(owned("me", "me", 2));
        leases.extend(owned("c", "c", 2));
        let plan = run("me", &leases, &[], 0);
        assert_eq!(plan.target, 3);
        assert!(plan.request.is_empty());
        // me has 1 and needs 2: one is asked for even from a worker at target.
        let mut leases = owned("a", "a", 3);
        leases.extend(owned("b", "b", 3));
        leases.extend(owned("c", "c", 3));
        leases.extend(owned("me", "me", 1));
        let plan = run("me", &leases, &[], 0);
        assert_eq!(plan.request.len(), 1);
    }

    #[test]
    fn leases_being_handed_over_count_for_the_taker_and_are_never_asked_for() {
        let mut leases = owned("a", "a", 5);
        for lease in leases.iter_mut().take(4) {
            lease.checkpoint_owner = Some("a".into());
            lease.owner = Some("x".into());
        }
        // a keeps 1, x is taking 4, me has 0 → 5 leases, 3 workers, target 2.
        // x is the most loaded, but every lease of x is still being handed
        // over to it, and a is under target: nothing to ask for.
        let plan = run("me", &leases, &[], 0);
        assert_eq!((plan.target, plan.workers), (2, 3));
        assert!(plan.take.is_empty());
        assert!(plan.request.is_empty(), "{plan:?}");
    }

    #[test]
    fn finished_leases_and_children_of_unfinished_parents_do_not_count() {
        let mut parent = lease("p", Some("a"));
        let child = lease("c", None).with_parents(vec!["p".into()]);
        let mut done = lease("d", None);
        done.checkpoint = LeaseCheckpoint::At(Position::End);
        let leases = vec![parent.clone(), child.clone(), done.clone()];
        let plan = run("me", &leases, &[], 0);
        assert!(plan.take.is_empty(), "{plan:?}");
        parent.checkpoint = LeaseCheckpoint::At(Position::End);
        let plan = run("me", &[parent, child, done], &[], 0);
        assert_eq!(plan.take, vec!["c".to_string()]);
    }

    #[test]
    fn an_orphaned_parent_no_longer_in_the_table_counts_as_finished() {
        let child = lease("c", None).with_parents(vec!["gone".into()]);
        assert_eq!(run("me", &[child], &[], 0).take, vec!["c".to_string()]);
    }

    #[test]
    fn the_cap_lowers_the_target() {
        let leases: Vec<Lease> = (0..12).map(|i| lease(&format!("s{i}"), None)).collect();
        let expired = HashSet::new();
        let plan = plan(
            &BalanceInput {
                me: "me",
                leases: &leases,
                expired: &expired,
                outstanding_requests: 0,
                max_steals_at_once: 1,
                max_leases_per_worker: 5,
            },
            &mut fastrand::Rng::with_seed(3),
        );
        assert_eq!(plan.take.len(), 5);
    }
}
