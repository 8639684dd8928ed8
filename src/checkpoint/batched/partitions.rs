//! The partitions `checkpoint_batched` tracks: per partition, the tokens
//! seen, the safe position and what was handed to the store; and finding a
//! token's partition fast (by the address of its shared name, without
//! hashing or comparing the string, on the path every token takes).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use super::super::control::PartitionControl;
use super::super::held_back::HeldBackTokens;
use super::super::position::Position;
use super::super::token::CheckpointToken;
use super::super::tracker::PositionTracker;

/// Up to this many partitions, a token's partition is found by comparing
/// addresses one by one rather than through the hash map.
const LINEAR_SCAN_PARTITIONS: usize = 8;

#[derive(Default)]
pub(super) struct Partitions {
    pub(super) states: Vec<PartitionState>,
    /// By the address of the partition name's `Arc` as the source shares it
    /// (the state holds a clone, so the address cannot be reused while it is
    /// in this map): a lookup without hashing or comparing the name.
    by_address: HashMap<usize, usize, BuildHasherDefault<AddressHasher>>,
    /// By name, for sources that make a new `Arc` per token.
    by_name: HashMap<Arc<str>, usize>,
    /// The partition of the previous token.
    last: usize,
}

/// Hashes an address (a `usize`) with one multiplication.
#[derive(Default)]
struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_usize(&mut self, value: usize) {
        // Allocations are 8-aligned: the low bits carry no information.
        self.0 = ((value as u64) >> 3).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

pub(super) struct PartitionState {
    pub(super) name: Arc<str>,
    pub(super) tracker: PositionTracker,
    pub(super) control: Option<PartitionControl>,
    /// Tokens seen in this run.
    pub(super) seen: u64,
    /// `seen` when the last save of this partition started.
    pub(super) started: u64,
    /// `seen` covered by the last completed save.
    pub(super) durable_seen: u64,
    /// The position handed to the last save (in flight or done).
    pub(super) saved: Option<Position>,
    /// The position of the last completed save.
    pub(super) durable: Option<Position>,
    pub(super) fenced: bool,
    /// Which run of the partition this is: a new control (the partition
    /// read again under a new lease) starts the next one, and a save of an
    /// earlier run says nothing about this one.
    pub(super) run: u64,
}

impl PartitionState {
    pub(super) fn new(name: Arc<str>) -> Self {
        Self {
            run: 0,
            name,
            tracker: PositionTracker::new(),
            control: None,
            seen: 0,
            started: 0,
            durable_seen: 0,
            saved: None,
            durable: None,
            fenced: false,
        }
    }

    /// The safe position when it is ahead of what was handed to a save.
    pub(super) fn unsaved(&self) -> Option<&Position> {
        if self.fenced {
            return None;
        }
        match self.tracker.safe_position() {
            Some(safe) if Some(safe) != self.saved.as_ref() => Some(safe),
            _ => None,
        }
    }
}

fn address_of(name: &Arc<str>) -> usize {
    Arc::as_ptr(name).cast::<u8>() as usize
}

impl Partitions {
    #[inline]
    pub(super) fn index_of(&mut self, token: &CheckpointToken) -> usize {
        let name = token.partition_arc();
        if let Some(state) = self.states.get(self.last) {
            if Arc::ptr_eq(&state.name, name) {
                return self.last;
            }
        }
        // A few partitions: comparing addresses beats hashing one.
        let found = if self.states.len() <= LINEAR_SCAN_PARTITIONS {
            self.states.iter().position(|s| Arc::ptr_eq(&s.name, name))
        } else {
            self.by_address.get(&address_of(name)).copied()
        };
        let index = match found {
            Some(index) => index,
            None => self.index_by_name(name),
        };
        self.last = index;
        index
    }

    #[cold]
    fn index_by_name(&mut self, name: &Arc<str>) -> usize {
        match self.by_name.get(&**name) {
            Some(index) => *index,
            None => {
                let index = self.states.len();
                self.states.push(PartitionState::new(name.clone()));
                self.by_name.insert(name.clone(), index);
                self.by_address.insert(address_of(name), index);
                index
            }
        }
    }

    /// Starts the next run of the partition at `index`, read again under a
    /// new control: its tokens count from 0, nothing of them is saved, and
    /// it is found by `name` (the new run's shared name) without hashing.
    pub(super) fn restart(&mut self, index: usize, name: &Arc<str>, control: PartitionControl) {
        let state = &mut self.states[index];
        self.by_address.remove(&address_of(&state.name));
        let run = state.run + 1;
        *state = PartitionState::new(name.clone());
        state.run = run;
        state.control = Some(control);
        self.by_address.insert(address_of(name), index);
    }

    /// The partitions with tokens waiting behind a missing one.
    pub(super) fn held_back(&self) -> Vec<HeldBackTokens> {
        self.states
            .iter()
            .filter(|s| !s.fenced && s.tracker.waiting() > 0)
            .map(|s| HeldBackTokens {
                partition: s.name.to_string(),
                tokens: s.tracker.waiting(),
                missing_seq: s.tracker.next_seq(),
            })
            .collect()
    }

    pub(super) fn any_fenced(&self) -> bool {
        self.states.iter().any(|s| s.fenced)
    }
}
