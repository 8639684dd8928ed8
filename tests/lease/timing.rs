//! The timing rules of one or two workers, each on paused time.

use std::time::Duration;

use tokio::time::Instant;
use unistream::checkpoint::{CheckpointError, CheckpointStore, Position};
use unistream::lease::{
    FaultyLeaseTable, Lease, LeaseCheckpoint, LeaseConfig, LeaseFaults, LeaseWorker,
    MemoryLeaseTable,
};

use crate::consumer::{spawn_consumer, ConsumerBehaviour, Ledger};

fn table_with(keys: usize) -> MemoryLeaseTable {
    let table = MemoryLeaseTable::new("leases");
    for i in 0..keys {
        table.put(Lease::new(
            format!("shard-{i:03}"),
            LeaseCheckpoint::TrimHorizon,
        ));
    }
    table
}

fn config(seed: u64) -> LeaseConfig {
    LeaseConfig::new().seed(seed)
}

/// Advances paused time in small steps until `done` or `limit` passes;
/// returns the time it took.
async fn until(limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "not reached within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

fn owners(table: &MemoryLeaseTable) -> Vec<Option<String>> {
    table
        .snapshot()
        .into_iter()
        .map(|l| l.holder().map(str::to_owned))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_lone_worker_takes_every_unowned_lease_at_once_and_renews_each_every_interval() {
    let table = table_with(6);
    let worker = LeaseWorker::start(table.clone(), "a", config(1));
    let ledger = Ledger::default();
    let _consumer = spawn_consumer(&worker, &ledger, ConsumerBehaviour::default());
    until(Duration::from_millis(100), || worker.held().len() == 6).await;
    assert!(owners(&table).iter().all(|o| o.as_deref() == Some("a")));
    let counters: Vec<u64> = table.snapshot().iter().map(|l| l.counter).collect();
    assert_eq!(counters, vec![1; 6], "one take each");
    // 3.33 s later each lease is renewed once (checkpoints aside: none yet,
    // as the consumer checkpoints every 5 records of 100 ms).
    tokio::time::sleep(Duration::from_millis(3_400)).await;
    let metrics = worker.metrics();
    assert_eq!(metrics.renewals, 6, "{metrics:?}");
    assert_eq!(metrics.taken_unowned, 6);
}

#[tokio::test(start_paused = true)]
async fn after_a_crash_the_leases_move_within_the_lease_duration_plus_one_scan() {
    let table = table_with(4);
    let a = LeaseWorker::start(table.clone(), "a", config(1));
    let ledger = Ledger::default();
    let consumer_a = spawn_consumer(&a, &ledger, ConsumerBehaviour::default());
    until(Duration::from_millis(100), || a.held().len() == 4).await;
    let b = LeaseWorker::start(table.clone(), "b", config(2));
    let _consumer_b = spawn_consumer(&b, &ledger, ConsumerBehaviour::default());
    // b gets a handoff of 2 of them (balance); let it settle.
    until(Duration::from_secs(60), || {
        a.held().len() == 2 && b.held().len() == 2
    })
    .await;
    // a crashes: its tasks stop at once, its leases stand still.
    let crashed_at = Instant::now();
    consumer_a.abort();
    drop(a);
    let took = until(Duration::from_secs(30), || b.held().len() == 4).await;
    let defaults = LeaseConfig::new();
    assert!(
        took >= defaults.effective_renew_interval(),
        "{took:?}: not before a's last renewal could expire"
    );
    assert!(
        took <= Duration::from_secs(10) + Duration::from_millis(2_200) + Duration::from_millis(50),
        "{took:?} after the crash at {crashed_at:?}"
    );
    let metrics = b.metrics();
    assert_eq!(metrics.taken_expired, 2, "{metrics:?}");
    assert!(ledger.gaps().is_empty(), "{:?}", ledger.gaps());
}

#[tokio::test(start_paused = true)]
async fn a_worker_joining_gets_its_share_by_handoff_without_redelivery() {
    let table = table_with(4);
    let a = LeaseWorker::start(table.clone(), "a", config(1));
    let ledger = Ledger::default();
    let _consumer_a = spawn_consumer(&a, &ledger, ConsumerBehaviour::default());
    until(Duration::from_millis(100), || a.held().len() == 4).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let b = LeaseWorker::start(table.clone(), "b", config(2));
    let _consumer_b = spawn_consumer(&b, &ledger, ConsumerBehaviour::default());
    let took = until(Duration::from_secs(30), || {
        a.held().len() == 2 && b.held().len() == 2
    })
    .await;
    // Two handoffs, one at a time, each within a scan or two.
    assert!(took < Duration::from_secs(8), "{took:?}");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        (a.metrics().handoffs_given, b.metrics().handoffs_received),
        (2, 2)
    );
    assert_eq!(b.metrics().handoffs_forced, 0);
    assert!(
        ledger.redelivered().is_empty(),
        "{:?}",
        ledger.redelivered()
    );
    assert!(ledger.gaps().is_empty(), "{:?}", ledger.gaps());
    assert!(
        ledger.longest_overlap().is_zero(),
        "{:?}",
        ledger.longest_overlap()
    );
}

#[tokio::test(start_paused = true)]
async fn a_graceful_stop_hands_every_lease_to_the_others_within_five_seconds() {
    let table = table_with(6);
    let ledger = Ledger::default();
    let a = LeaseWorker::start(table.clone(), "a", config(1));
    let _ca = spawn_consumer(&a, &ledger, ConsumerBehaviour::default());
    until(Duration::from_millis(100), || a.held().len() == 6).await;
    let b = LeaseWorker::start(table.clone(), "b", config(2));
    let _cb = spawn_consumer(&b, &ledger, ConsumerBehaviour::default());
    let c = LeaseWorker::start(table.clone(), "c", config(3));
    let _cc = spawn_consumer(&c, &ledger, ConsumerBehaviour::default());
    until(Duration::from_secs(60), || {
        a.held().len() == 2 && b.held().len() == 2 && c.held().len() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stop = Instant::now();
    a.shutdown();
    a.stopped().await;
    assert!(a.held().is_empty());
    let took = until(Duration::from_secs(30), || {
        b.held().len() + c.held().len() == 6
    })
    .await;
    let total = stop.elapsed();
    assert!(
        total < Duration::from_secs(5),
        "stop {:?} + pick-up {took:?}",
        total - took
    );
    assert_eq!(a.metrics().released, 2);
    assert!(
        ledger.redelivered().is_empty(),
        "{:?}",
        ledger.redelivered()
    );
    assert!(ledger.gaps().is_empty(), "{:?}", ledger.gaps());
}

#[tokio::test(start_paused = true)]
async fn a_lease_handed_over_just_before_a_graceful_stop_is_released_and_counted() {
    let table = table_with(4);
    let ledger = Ledger::default();
    let a = LeaseWorker::start(table.clone(), "a", config(1));
    let _ca = spawn_consumer(&a, &ledger, ConsumerBehaviour::default());
    until(Duration::from_millis(100), || a.held().len() == 4).await;
    // b scans rarely: it asks for a lease at its first scan and would take
    // it up only at its next one, 30 s later.
    let b = LeaseWorker::start(
        table.clone(),
        "b",
        config(2).scan_interval(Duration::from_secs(30)),
    );
    let _cb = spawn_consumer(&b, &ledger, ConsumerBehaviour::default());
    let handed_to_b = |table: &MemoryLeaseTable| {
        table
            .snapshot()
            .iter()
            .filter(|l| l.owner.as_deref() == Some("b") && !l.handoff_pending())
            .count()
    };
    until(Duration::from_secs(20), || handed_to_b(&table) == 1).await;
    assert!(b.held().is_empty(), "not taken up yet");
    b.shutdown();
    b.stopped().await;
    assert_eq!(handed_to_b(&table), 0, "given back");
    assert!(owners(&table).iter().all(|o| o.as_deref() != Some("b")));
    let metrics = b.metrics();
    assert_eq!(metrics.released, 1, "{metrics:?}");
}

#[tokio::test(start_paused = true)]
async fn a_worker_cut_off_from_the_table_fences_its_leases_before_anyone_takes_them() {
    let memory = table_with(2);
    let table_a = FaultyLeaseTable::new(memory.clone(), 9);
    let ledger = Ledger::default();
    let a = LeaseWorker::start(table_a.clone(), "a", config(1));
    let _ca = spawn_consumer(&a, &ledger, ConsumerBehaviour::default());
    until(Duration::from_millis(100), || a.held().len() == 2).await;
    let b = LeaseWorker::start(memory.clone(), "b", config(2));
    let _cb = spawn_consumer(&b, &ledger, ConsumerBehaviour::default());
    until(Duration::from_secs(30), || {
        a.held().len() == 1 && b.held().len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    table_a.set_cut_off(true);
    until(Duration::from_secs(30), || b.held().len() == 2).await;
    assert!(a.held().is_empty(), "a gave it up by its own clock");
    assert_eq!(a.metrics().lost, 1);
    // Never two readers at once beyond one renew interval.
    let overlap = ledger.longest_overlap();
    assert!(
        overlap <= LeaseConfig::new().effective_renew_interval(),
        "{overlap:?}"
    );
    assert!(ledger.gaps().is_empty(), "{:?}", ledger.gaps());
    // a's checkpoint of the moved lease is refused once b holds it.
    table_a.set_cut_off(false);
    let moved = b
        .held()
        .into_iter()
        .find(|k| !ledger.readings(k).iter().all(|r| r.worker == "b"))
        .unwrap();
    let refused = a
        .checkpoint_store()
        .save(&moved, &Position::Offset(1))
        .await;
    assert!(
        matches!(refused, Err(CheckpointError::Fenced { .. })),
        "{refused:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn lost_answers_and_failed_writes_are_adopted_without_losing_a_lease() {
    let memory = table_with(3);
    let table = FaultyLeaseTable::new(memory.clone(), 4);
    let ledger = Ledger::default();
    let a = LeaseWorker::start(table.clone(), "a", config(1));
    let _ca = spawn_consumer(&a, &ledger, ConsumerBehaviour::default());
    until(Duration::from_millis(500), || a.held().len() == 3).await;
    table.set_faults(LeaseFaults {
        lost_answer: 0.2,
        fail: 0.2,
        latency: Duration::from_millis(5),
        jitter: Duration::from_millis(20),
    });
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(a.held().len(), 3, "{:?}", a.metrics());
    assert_eq!(a.metrics().lost, 0);
    assert!(owners(&memory).iter().all(|o| o.as_deref() == Some("a")));
    // The checkpoints in the table are what the consumer saved last.
    for lease in memory.snapshot() {
        let delivered = ledger.deliveries(&lease.key);
        let Some(LeaseCheckpoint::At(Position::Offset(saved))) = Some(lease.checkpoint) else {
            panic!("no checkpoint")
        };
        assert!(saved <= delivered.last().unwrap().offset);
        assert!(saved + 5 + 5 > delivered.last().unwrap().offset, "{saved}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_table_left_by_another_consumer_is_resumed_after_its_owners_expire() {
    let table = MemoryLeaseTable::new("kcl");
    for (i, (checkpoint, sub)) in [("4959", 0u64), ("4960", 3)].into_iter().enumerate() {
        let mut lease = Lease::new(
            format!("shardId-00000000000{i}"),
            LeaseCheckpoint::At(Position::Sequence {
                sequence: checkpoint.into(),
                sub,
            }),
        );
        lease.owner = Some("kcl-worker-1".into());
        lease.counter = 40 + i as u64;
        table.put(lease);
    }
    let started = Instant::now();
    let worker = LeaseWorker::start(table.clone(), "ours", config(1));
    let mut acquired = worker.acquired().unwrap();
    let first = futures::StreamExt::next(&mut acquired).await.unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(10),
        "the foreign owner's lease was expired first: {waited:?}"
    );
    assert!(waited <= Duration::from_secs(13), "{waited:?}");
    let second = futures::StreamExt::next(&mut acquired).await.unwrap();
    let mut checkpoints = vec![
        first.lease().checkpoint.clone(),
        second.lease().checkpoint.clone(),
    ];
    checkpoints.sort_by_key(|c| c.to_string());
    assert_eq!(
        checkpoints,
        vec![
            LeaseCheckpoint::At(Position::Sequence {
                sequence: "4959".into(),
                sub: 0
            }),
            LeaseCheckpoint::At(Position::Sequence {
                sequence: "4960".into(),
                sub: 3
            }),
        ]
    );
    // One was taken as expired; the other was asked for at the first scan
    // (the foreign owner looked alive and over target), and taken when that
    // request stood still for a lease duration.
    let metrics = worker.metrics();
    assert_eq!(
        (metrics.taken_expired, metrics.handoffs_forced),
        (1, 1),
        "{metrics:?}"
    );
    assert!(table
        .snapshot()
        .iter()
        .all(|l| l.owner_switches_since_checkpoint == 1));
}

#[tokio::test(start_paused = true)]
async fn a_stuck_consumer_delays_a_handoff_only_until_the_timeout() {
    let table = table_with(2);
    let ledger = Ledger::default();
    let a = LeaseWorker::start(table.clone(), "a", config(1));
    let _ca = spawn_consumer(
        &a,
        &ledger,
        ConsumerBehaviour {
            reports_stop: false,
            ..ConsumerBehaviour::default()
        },
    );
    until(Duration::from_millis(100), || a.held().len() == 2).await;
    let b = LeaseWorker::start(table.clone(), "b", config(2));
    let _cb = spawn_consumer(&b, &ledger, ConsumerBehaviour::default());
    let took = until(Duration::from_secs(60), || b.held().len() == 1).await;
    assert!(took >= Duration::from_secs(30), "{took:?}");
    assert!(took <= Duration::from_secs(33), "{took:?}");
    assert!(ledger.gaps().is_empty(), "{:?}", ledger.gaps());
}

#[tokio::test(start_paused = true)]
async fn children_are_handed_out_only_after_every_parent_is_finished() {
    let table = MemoryLeaseTable::new("lineage");
    table.put(Lease::new("parent-a", LeaseCheckpoint::TrimHorizon));
    table.put(Lease::new("parent-b", LeaseCheckpoint::TrimHorizon));
    table.put(
        Lease::new("child", LeaseCheckpoint::TrimHorizon)
            .with_parents(vec!["parent-a".into(), "parent-b".into()]),
    );
    let worker = LeaseWorker::start(table.clone(), "a", config(1));
    let store = worker.checkpoint_store();
    let mut acquired = worker.acquired().unwrap();
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(futures::StreamExt::next(&mut acquired).await.unwrap());
    }
    let mut keys: Vec<&str> = got.iter().map(|l| l.key()).collect();
    keys.sort();
    assert_eq!(keys, ["parent-a", "parent-b"]);
    store.save("parent-a", &Position::End).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        !worker.held().contains(&"child".to_string()),
        "one parent still open"
    );
    assert_eq!(
        worker.held(),
        vec!["parent-b".to_string()],
        "a finished lease is released"
    );
    store.save("parent-b", &Position::End).await.unwrap();
    let child = futures::StreamExt::next(&mut acquired).await.unwrap();
    assert_eq!(child.key(), "child");
    let leases = table.snapshot();
    assert!(leases
        .iter()
        .filter(|l| l.key.starts_with("parent"))
        .all(|l| l.is_finished() && l.owner.is_none()));
}

#[tokio::test(start_paused = true)]
async fn a_restart_under_the_same_name_reclaims_its_leases_at_once() {
    let table = table_with(3);
    let a = LeaseWorker::start(table.clone(), "a", config(1));
    until(Duration::from_millis(100), || a.held().len() == 3).await;
    drop(a);
    let again = LeaseWorker::start(table.clone(), "a", config(5));
    let took = until(Duration::from_secs(20), || again.held().len() == 3).await;
    assert!(took < Duration::from_millis(100), "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn requests_to_the_table_per_minute_at_steady_state() {
    let memory = table_with(100);
    let tables: Vec<_> = (0..10)
        .map(|i| FaultyLeaseTable::new(memory.clone(), i))
        .collect();
    let ledger = Ledger::default();
    let mut workers = Vec::new();
    for (i, table) in tables.iter().enumerate() {
        let worker = LeaseWorker::start(table.clone(), format!("w{i}"), config(i as u64));
        let behaviour = ConsumerBehaviour {
            record_every: Duration::from_secs(1),
            checkpoint_every: 60,
            ..Default::default()
        };
        spawn_consumer(&worker, &ledger, behaviour);
        workers.push(worker);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    until(Duration::from_secs(600), || {
        workers.iter().all(|w| w.held().len() == 10)
    })
    .await;
    let before: Vec<u64> = tables.iter().map(|t| t.requests().total()).collect();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let per_minute: Vec<u64> = tables
        .iter()
        .zip(&before)
        .map(|(t, b)| t.requests().total() - b)
        .collect();
    // 10 leases each: 18 renewals per lease per minute, 30 scans, one
    // checkpoint per lease per minute.
    for (i, n) in per_minute.iter().enumerate() {
        assert!(
            (200..=250).contains(n),
            "worker {i}: {n} requests in a minute ({per_minute:?})"
        );
    }
    assert!(workers.iter().all(|w| w.held().len() == 10), "stable");
    let steals: u64 = workers.iter().map(|w| w.metrics().handoffs_requested).sum();
    eprintln!("requests per worker per minute: {per_minute:?}; handoffs requested during convergence: {steals}");
}

#[tokio::test(start_paused = true)]
async fn a_handoff_asked_for_before_a_restart_completes_when_the_old_holder_died() {
    // "b" asked "gone" for the lease, then both processes were killed; "b"
    // comes back under its name. Every balance counts the lease for its
    // owner, "b", so only "b" can resolve the pending handoff.
    let table = MemoryLeaseTable::new("leases");
    let mut pending = Lease::new("shard-000", LeaseCheckpoint::TrimHorizon);
    pending.owner = Some("b".into());
    pending.checkpoint_owner = Some("gone".into());
    pending.counter = 7;
    table.put(pending);
    table.put(Lease::new("shard-001", LeaseCheckpoint::TrimHorizon));
    let b = LeaseWorker::start(table.clone(), "b", config(3));
    let ledger = Ledger::default();
    let _consumer = spawn_consumer(&b, &ledger, ConsumerBehaviour::default());
    let took = until(Duration::from_secs(60), || b.held().len() == 2).await;
    // Taken once "gone" is seen not renewing: the default lease duration
    // (10 s) after the first scan, or at the handoff timeout, whichever
    // comes first; plus a scan.
    assert!(took <= Duration::from_secs(12), "{took:?}");
    assert_eq!(b.metrics().handoffs_forced, 1, "{:?}", b.metrics());
    assert!(owners(&table).iter().all(|o| o.as_deref() == Some("b")));
}
