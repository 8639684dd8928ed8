//! Idempotent processing: run a handler at most once per key, in the
//! spirit of AWS Lambda Powertools' idempotency utility, backed by a store
//! shared by every worker.
//!
//! ```
//! use std::time::Duration;
//! use unistream::idempotency::{Idempotency, MemoryIdempotencyStore, Once};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), unistream::Error> {
//! let once = Idempotency::new(MemoryIdempotencyStore::new());
//! let first = once.run("order-17", || async { Ok(42u32) }).await?;
//! let again = once.run("order-17", || async { Ok(0u32) }).await?;
//! assert_eq!(first, Once::Ran(42));
//! assert_eq!(again, Once::AlreadyDone(42)); // the handler did not run; its result is kept
//! # Ok(()) }
//! ```
//!
//! # What is guaranteed
//!
//! - **At most once per key while the record is kept**: a key whose run
//!   completed is never run again for [`keep_for`](Idempotency::keep_for)
//!   (1 day by default); later calls get the stored result
//!   ([`Once::AlreadyDone`]).
//! - **Never twice at once**: a run claims its key first (a conditional
//!   write); a second caller for a key in progress waits, then gets the
//!   result, or takes over once the claim expired. The claim lasts
//!   [`in_progress_expiry`](Idempotency::in_progress_expiry) and is renewed
//!   every third of it while the handler runs; a run whose renewal fails
//!   (its claim was taken over: a process paused past the expiry) is
//!   stopped (its future dropped) and fails with
//!   [`IdempotencyError::ClaimLost`].
//! - **A failed run leaves nothing**: its claim is removed, so the next call
//!   runs the handler again (retries work as without idempotency).
//!
//! # What it does not do
//!
//! - **A crash between the effect and the completion** (the process dies
//!   after the handler's effect, before the store records it) runs the
//!   handler again once the claim expires: the effect itself must tolerate
//!   that window (an upsert, a conditional write carrying the record's
//!   [`FencingToken`](crate::checkpoint::FencingToken)), or be written in
//!   the same transaction as its completion.
//! - Expiry across machines is judged by the store: the DynamoDB store uses
//!   each writer's wall clock, so clocks must agree to well within the
//!   in-progress expiry (NTP does).
//!
//! | item | file | what it is |
//! |---|---|---|
//! | [`Idempotency`], [`Once`], [`idempotency_key`] | `run.rs` | running a handler once per key |
//! | [`IdempotencyStore`], [`Begin`], [`Claim`], [`IdempotencyError`] | `store.rs` | the store contract |
//! | [`MemoryIdempotencyStore`] | `memory.rs` | in memory (one process, tests), on tokio's clock |
//! | `DynamoDbIdempotencyStore` | `crate::dynamodb` | a DynamoDB table with conditional writes and a TTL attribute (feature `dynamodb`) |

mod memory;
mod run;
mod store;

pub use memory::MemoryIdempotencyStore;
pub use run::{idempotency_key, Idempotency, Once};
pub use store::{Begin, Claim, IdempotencyError, IdempotencyStore};
