//! Lease coordination between real worker processes (features `kinesis`
//! and `dynamodb`): every worker is this test binary run again as a child
//! process (see [`worker`]), reading a kinesis-mock stream through
//! `KinesisSource::leased` with its leases in a moto DynamoDB table. The
//! parent produces records while the workers run, stops, kills, freezes
//! and adds workers, and checks from what every worker logged and from
//! the lease table that:
//!
//! - the shards are balanced between the workers and every record is
//!   processed at least once ([`balance`]);
//! - a SIGKILLed worker's shards are read again by the others, re-delivering
//!   only what came after the moved leases' last checkpoints, and a
//!   graceful stop or a new worker moves leases without re-delivering
//!   anything ([`failover`]);
//! - a worker frozen past its lease duration is fenced when it resumes
//!   ([`frozen`]);
//! - parents are finished before their children across workers, with the
//!   lineage and `SHARD_END` in the table ([`resharding`]);
//! - at least 100 random SIGKILLs and restarts lose nothing ([`kill_loop`]).
//!
//! Timings are shortened (lease 3 s, renew 1 s, scan 500 ms) so the tests
//! take seconds; the figures with the default timings are measured by
//! `scripts/lease-failover.sh` and recorded in BENCHMARKS.md.
#![cfg(all(feature = "kinesis", feature = "dynamodb"))]

#[path = "../support/mod.rs"]
mod support;

mod balance;
mod cluster;
mod failover;
/// The failover figures with default timings (ignored; a script runs it).
mod figures;
mod frozen;
mod kill_loop;
mod resharding;
mod worker;
