//! Checkpointing (`unistream::checkpoint`): the `checkpoint_batched`
//! combinator and the JSON file store; one test binary, one module per
//! topic.

#[path = "../support/mod.rs"]
mod support;

/// `checkpoint_batched`: triggers, final saves, fencing, back-pressure.
mod batched;
/// `JsonFileCheckpointStore` killed during saves (child processes).
mod json_store_crash;
/// Property test: `and_then_per_partition` keeps each partition in order.
mod per_partition;
/// Property test: a saved position never passes an unprocessed record.
mod property;
/// Skipping records with their tokens; tokens held back at the end.
mod skipping;
