//! `buffered_wal`, the durable buffer in front of a sink: one test binary,
//! one module per topic.

#[path = "../support/mod.rs"]
mod support;

/// A stuck target and a small log cap.
mod backpressure;
/// Targets made with `batch_target`, and targets that break the protocol.
mod batch_target;
/// Batching by count, bytes and age; `close`.
mod batching;
/// A damaged log: intact records delivered, quarantined ranges reported.
mod damage;
/// An acknowledged record is in the log, synced per the policy.
mod durability;
/// Retries, dead letters, failing dead-letter destinations.
mod failures;
/// Appended records held in memory for the delivery, instead of decoded.
mod held_records;
/// Delivery across restarts.
mod recovery;
/// Batches made durable by one flush of the target before their commit.
mod target_flush;
