//! One [`LeaseWrite`] as one conditional `UpdateItem` (an [`ItemUpdate`],
//! built by [`lease_update`]): the DynamoDB form of [`LeaseWrite::apply`].
//!
//! Every update is conditional on the item existing and on `leaseCounter`
//! being the expected one, sets it to the expected + 1, and touches only
//! the attributes the write changes:
//!
//! | write | update | further condition |
//! |---|---|---|
//! | `Renew` | – | – |
//! | `Take` | `SET leaseOwner`, `REMOVE checkpointOwner`, `ADD ownerSwitchesSinceCheckpoint 1` when the holder changes | `leaseOwner`, `checkpointOwner` as read |
//! | `RequestHandoff` | `SET leaseOwner`, `checkpointOwner` | – |
//! | `CancelHandoff` during a handoff | `SET leaseOwner` = the checkpoint owner, `REMOVE checkpointOwner` | `checkpointOwner` as read |
//! | `CancelHandoff` otherwise | – | no `checkpointOwner` |
//! | `Release` during a handoff | `REMOVE checkpointOwner`, `ADD ownerSwitchesSinceCheckpoint 1` | a `checkpointOwner` |
//! | `Release` otherwise | `REMOVE leaseOwner` | no `checkpointOwner` |
//! | `Checkpoint` | `SET checkpoint`, `checkpointSubSequenceNumber`, `ownerSwitchesSinceCheckpoint = 0` | – |
//! | `SetChildren` | `SET childShardIds` (`REMOVE` when empty) | – |
//!
//! Three writes depend on the lease as it is (`Take`, `CancelHandoff`,
//! `Release`): their update is planned from the lease the writer read (the
//! *basis*), and the further conditions make the update apply only if the
//! item still has the owners the plan assumed. The counter alone would
//! not be enough: the KCL 3 starts a handoff and records children without
//! incrementing it.

use aws_sdk_dynamodb::types::AttributeValue;

use super::item_update::ItemUpdate;
use super::lease_item::{attr, checkpoint_values, set_value, UnstorableCheckpoint};
use crate::lease::{Lease, LeaseWrite};

/// Whether the update of `write` depends on the lease as it is.
pub(crate) fn needs_basis(write: &LeaseWrite) -> bool {
    matches!(
        write,
        LeaseWrite::Take { .. } | LeaseWrite::CancelHandoff | LeaseWrite::Release
    )
}

/// The conditional update applying `write` to lease `key` at counter
/// `expected`; `basis` is the lease at that counter, required when
/// [`needs_basis`].
pub(crate) fn lease_update(
    key: &str,
    expected: u64,
    write: &LeaseWrite,
    basis: Option<&Lease>,
) -> Result<ItemUpdate, UnstorableCheckpoint> {
    debug_assert!(
        !needs_basis(write) || basis.is_some_and(|b| b.counter == expected),
        "{} is planned from the lease at the expected counter",
        write.name()
    );
    let mut update = ItemUpdate::new();
    update
        .require_present(attr::KEY)
        .require_equal(attr::COUNTER, number(expected))
        .set(attr::COUNTER, number(expected + 1));
    let checkpoint_owner = basis.and_then(|b| b.checkpoint_owner.as_deref());
    match write {
        LeaseWrite::Renew => {}
        LeaseWrite::Take { owner } => {
            let basis_owner = basis.and_then(|b| b.owner.as_deref());
            update
                .require_string(attr::OWNER, basis_owner)
                .require_string(attr::CHECKPOINT_OWNER, checkpoint_owner)
                .set(attr::OWNER, AttributeValue::S(owner.clone()));
            if checkpoint_owner.is_some() {
                update.remove(attr::CHECKPOINT_OWNER);
            }
            let holder = checkpoint_owner.or(basis_owner);
            if holder.is_some_and(|holder| holder != owner) {
                update.add(attr::OWNER_SWITCHES, number(1));
            }
        }
        LeaseWrite::RequestHandoff { from, to } => {
            update
                .set(attr::OWNER, AttributeValue::S(to.clone()))
                .set(attr::CHECKPOINT_OWNER, AttributeValue::S(from.clone()));
        }
        LeaseWrite::CancelHandoff => {
            update.require_string(attr::CHECKPOINT_OWNER, checkpoint_owner);
            if let Some(from) = checkpoint_owner {
                update
                    .set(attr::OWNER, AttributeValue::S(from.to_owned()))
                    .remove(attr::CHECKPOINT_OWNER);
            }
        }
        LeaseWrite::Release => {
            if checkpoint_owner.is_some() {
                update
                    .require_present(attr::CHECKPOINT_OWNER)
                    .remove(attr::CHECKPOINT_OWNER)
                    .add(attr::OWNER_SWITCHES, number(1));
            } else {
                update
                    .require_absent(attr::CHECKPOINT_OWNER)
                    .remove(attr::OWNER);
            }
        }
        LeaseWrite::Checkpoint(checkpoint) => {
            let (checkpoint, sub) = checkpoint_values(key, checkpoint)?;
            update
                .set(attr::CHECKPOINT, checkpoint)
                .set(attr::SUB_SEQUENCE, sub)
                .set(attr::OWNER_SWITCHES, number(0));
        }
        LeaseWrite::SetChildren(children) => match set_value(children) {
            Some(children) => {
                update.set(attr::CHILDREN, children);
            }
            None => {
                update.remove(attr::CHILDREN);
            }
        },
    }
    Ok(update)
}

fn number(n: u64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}
