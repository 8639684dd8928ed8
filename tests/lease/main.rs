//! Lease coordination on the in-memory table, on paused time: every timing
//! rule of the worker (renewal, expiry, failover, handoff, shutdown,
//! fencing), with simulated consumers.

mod checkpointer;
mod consumer;
mod timing;
