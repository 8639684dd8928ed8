//! [`LeaseWrite`]: the writes a lease worker makes, and what each does to
//! a lease ([`LeaseWrite::apply`]) — the one definition every
//! [`LeaseTable`](super::LeaseTable) implements.
//!
//! Every write is made conditional on the counter the writer read, and
//! increments it; a table applies it only if the lease still has that
//! counter. The writes follow the KCL's (take, renew, evict, update) and
//! the KCL 3 graceful handoff (`checkpointOwner`):
//!
//! | write | `leaseOwner` | `checkpointOwner` | other |
//! |---|---|---|---|
//! | [`Renew`](LeaseWrite::Renew) | – | – | – |
//! | [`Take`](LeaseWrite::Take) | the taker | removed | owner switches + 1 when the holder changes |
//! | [`RequestHandoff`](LeaseWrite::RequestHandoff) | the taker | the current owner | – |
//! | [`CancelHandoff`](LeaseWrite::CancelHandoff) | the checkpoint owner | removed | – |
//! | [`Release`](LeaseWrite::Release) during a handoff | – | removed | owner switches + 1 |
//! | [`Release`](LeaseWrite::Release) otherwise | removed | – | – |
//! | [`Checkpoint`](LeaseWrite::Checkpoint) | – | – | checkpoint set, owner switches 0 |
//! | [`SetChildren`](LeaseWrite::SetChildren) | – | – | children set |

use super::record::{Lease, LeaseCheckpoint};

/// One conditional write to a lease; see the [`lease`](super) module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseWrite {
    /// Keeps the lease: only the counter moves, which tells every other
    /// worker that the holder is alive.
    Renew,
    /// Takes the lease (unowned, expired, or a handoff forced after its
    /// timeout).
    Take {
        /// The new owner.
        owner: String,
    },
    /// Asks the current owner to hand the lease over: it finishes,
    /// checkpoints and [`Release`](LeaseWrite::Release)s, and `to` holds it.
    RequestHandoff {
        /// The owner asked (the lease's owner when the request was decided).
        from: String,
        /// The worker taking the lease over.
        to: String,
    },
    /// Withdraws a handoff request: the checkpoint owner owns the lease
    /// again.
    CancelHandoff,
    /// Gives the lease up: to the waiting owner when a handoff is pending,
    /// to nobody otherwise.
    Release,
    /// Records how far the partition is processed.
    Checkpoint(LeaseCheckpoint),
    /// Records the partitions created from this one.
    SetChildren(Vec<String>),
}

impl LeaseWrite {
    /// The lease after this write is applied to `lease` (counter included).
    pub fn apply(&self, lease: &Lease) -> Lease {
        let mut next = lease.clone();
        next.counter = lease.counter + 1;
        match self {
            LeaseWrite::Renew => {}
            LeaseWrite::Take { owner } => {
                if lease.holder().is_some_and(|holder| holder != owner) {
                    next.owner_switches_since_checkpoint += 1;
                }
                next.owner = Some(owner.clone());
                next.checkpoint_owner = None;
            }
            LeaseWrite::RequestHandoff { from, to } => {
                next.owner = Some(to.clone());
                next.checkpoint_owner = Some(from.clone());
            }
            LeaseWrite::CancelHandoff => {
                if let Some(from) = next.checkpoint_owner.take() {
                    next.owner = Some(from);
                }
            }
            LeaseWrite::Release => {
                if next.checkpoint_owner.take().is_some() {
                    next.owner_switches_since_checkpoint += 1;
                } else {
                    next.owner = None;
                }
            }
            LeaseWrite::Checkpoint(checkpoint) => {
                next.checkpoint = checkpoint.clone();
                next.owner_switches_since_checkpoint = 0;
            }
            LeaseWrite::SetChildren(children) => next.children = children.clone(),
        }
        next
    }

    /// The write's name, for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            LeaseWrite::Renew => "renew",
            LeaseWrite::Take { .. } => "take",
            LeaseWrite::RequestHandoff { .. } => "request_handoff",
            LeaseWrite::CancelHandoff => "cancel_handoff",
            LeaseWrite::Release => "release",
            LeaseWrite::Checkpoint(_) => "checkpoint",
            LeaseWrite::SetChildren(_) => "set_children",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Position;

    fn owned(owner: &str) -> Lease {
        let mut lease = Lease::new("shard-0", LeaseCheckpoint::TrimHorizon);
        lease.owner = Some(owner.into());
        lease.counter = 7;
        lease
    }

    #[test]
    fn every_write_increments_the_counter() {
        let lease = owned("a");
        for write in [
            LeaseWrite::Renew,
            LeaseWrite::Take { owner: "b".into() },
            LeaseWrite::Release,
            LeaseWrite::Checkpoint(LeaseCheckpoint::At(Position::sequence("5"))),
            LeaseWrite::SetChildren(vec!["c".into()]),
        ] {
            assert_eq!(write.apply(&lease).counter, 8, "{write:?}");
        }
    }

    #[test]
    fn a_handoff_keeps_the_old_owner_holding_until_it_releases() {
        let lease = owned("a");
        let requested = LeaseWrite::RequestHandoff {
            from: "a".into(),
            to: "b".into(),
        }
        .apply(&lease);
        assert_eq!(requested.holder(), Some("a"));
        assert_eq!(requested.owner.as_deref(), Some("b"));
        assert!(requested.handoff_pending());
        let released = LeaseWrite::Release.apply(&requested);
        assert_eq!(released.holder(), Some("b"));
        assert!(!released.handoff_pending());
        assert_eq!(released.owner_switches_since_checkpoint, 1);
        let cancelled = LeaseWrite::CancelHandoff.apply(&requested);
        assert_eq!(cancelled.holder(), Some("a"));
        assert_eq!(cancelled.owner.as_deref(), Some("a"));
        assert!(!cancelled.handoff_pending());
    }

    #[test]
    fn release_without_a_handoff_leaves_the_lease_unowned() {
        let released = LeaseWrite::Release.apply(&owned("a"));
        assert_eq!(released.owner, None);
        assert_eq!(released.holder(), None);
    }

    #[test]
    fn take_counts_an_owner_switch_only_when_the_holder_changes() {
        let lease = owned("a");
        let same = LeaseWrite::Take { owner: "a".into() }.apply(&lease);
        assert_eq!(same.owner_switches_since_checkpoint, 0);
        let other = LeaseWrite::Take { owner: "b".into() }.apply(&lease);
        assert_eq!(other.owner_switches_since_checkpoint, 1);
        let checkpointed = LeaseWrite::Checkpoint(LeaseCheckpoint::At(Position::End)).apply(&other);
        assert_eq!(checkpointed.owner_switches_since_checkpoint, 0);
        assert!(checkpointed.is_finished());
    }
}
