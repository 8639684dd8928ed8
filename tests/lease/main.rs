//! Lease coordination on the in-memory table, on paused time: every timing
//! rule of the worker (renewal, expiry, failover, handoff, shutdown,
//! fencing), with simulated consumers, and a seeded simulation of tens of
//! workers under faults with every invariant checked as it runs.

mod checkpointer;
mod consumer;
mod fencing;
mod simulation;
mod timing;
mod transactional;
