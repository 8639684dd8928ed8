//! Fencing tokens on paused time: the tokens of a leased partition carry
//! the lease epoch it was read under; renewals keep it, every later holder
//! has a higher one, and an external store that keeps the newest token per
//! partition refuses the writes of a holder that was cut off and replaced.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use unistream::checkpoint::{CheckpointToken, FencingToken, Position};
use unistream::lease::{
    FaultyLeaseTable, Lease, LeaseCheckpoint, LeaseConfig, LeaseWorker, MemoryLeaseTable,
};

/// An external store of effects that keeps, per partition, the newest
/// fencing token written, and refuses older ones (the documented pattern).
#[derive(Default)]
struct FencedStore {
    newest: HashMap<String, FencingToken>,
    effects: Vec<(String, u64)>,
}

impl FencedStore {
    fn write(&mut self, token: &CheckpointToken, effect: u64) -> Result<(), String> {
        let fencing = token.fencing().ok_or("an unleased token")?;
        if let Some(stored) = self.newest.get(fencing.partition()) {
            if !fencing.may_replace(stored) {
                return Err(format!("{fencing} is older than {stored}"));
            }
        }
        self.newest
            .insert(fencing.partition().to_owned(), fencing.clone());
        self.effects.push((fencing.holder().to_owned(), effect));
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_replaced_holders_tokens_are_refused_by_a_fenced_store() {
    let memory = MemoryLeaseTable::new("leases");
    memory.put(Lease::new("shard-0", LeaseCheckpoint::TrimHorizon));
    let table_a = FaultyLeaseTable::new(memory.clone(), 3);
    let a = LeaseWorker::start(table_a.clone(), "a", LeaseConfig::new().seed(1));
    let mut acquired_a = a.acquired().unwrap();
    let lease_a = acquired_a.next().await.expect("a takes the lease");
    let token_a = CheckpointToken::new("shard-0", Position::Offset(1), 0)
        .with_control(lease_a.control().clone());
    let fencing_a = token_a.fencing().expect("a leased token").clone();
    assert_eq!(fencing_a.partition(), "shard-0");
    assert_eq!(fencing_a.holder(), "a");
    assert_eq!(fencing_a.epoch(), lease_a.epoch());

    // Renewals move the counter on, not the epoch.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let renewed = memory.snapshot()[0].counter;
    assert!(renewed > fencing_a.epoch() + 3, "renewed to {renewed}");
    assert_eq!(token_a.fencing().unwrap().epoch(), fencing_a.epoch());

    let mut store = FencedStore::default();
    store.write(&token_a, 1).unwrap();

    // a is cut off from the table; b takes the lease once it expires.
    table_a.set_cut_off(true);
    let b = LeaseWorker::start(memory.clone(), "b", LeaseConfig::new().seed(2));
    let mut acquired_b = b.acquired().unwrap();
    let lease_b = tokio::time::timeout(Duration::from_secs(60), acquired_b.next())
        .await
        .expect("b takes the lease within a minute")
        .unwrap();
    let token_b = CheckpointToken::new("shard-0", Position::Offset(2), 0)
        .with_control(lease_b.control().clone());
    let fencing_b = token_b.fencing().unwrap();
    assert!(
        fencing_b.epoch() > renewed,
        "b's epoch {} is above every counter a wrote ({renewed})",
        fencing_b.epoch()
    );
    assert!(fencing_b.may_replace(&fencing_a));
    assert!(!fencing_a.may_replace(fencing_b));

    store.write(&token_b, 2).unwrap();
    // a, not yet aware, writes an effect of a record it still had.
    let refused = store.write(&token_a, 3);
    assert!(refused.is_err(), "a stale holder's write went through");
    assert_eq!(
        store.effects,
        vec![("a".to_owned(), 1), ("b".to_owned(), 2)]
    );

    // Tokens of unleased partitions carry none.
    assert!(CheckpointToken::new("p", Position::Offset(0), 0)
        .fencing()
        .is_none());
}
