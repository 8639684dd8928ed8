//! Idempotent processing: a handler run at most once per key, never twice
//! at once, again only after a failure or a claim's expiry; on the
//! in-memory store (paused time) and on DynamoDB (moto).

#[path = "../support/mod.rs"]
mod support;

/// The rules on any store, written once.
mod contract;
/// On DynamoDB (feature `dynamodb`).
#[cfg(feature = "dynamodb")]
mod dynamodb;
/// On the in-memory store, paused time.
mod memory;
