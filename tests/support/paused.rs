//! Running a test's future on paused time, outside `#[tokio::test]` (in a
//! property test's case, for one): a current-thread runtime whose clock
//! advances only when every task waits, so schedules are exact and a
//! minute of timers takes a moment.

use std::future::Future;

/// Runs `future` to completion on a new current-thread runtime with time
/// paused (and every driver enabled).
pub fn block_on_paused<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime")
        .block_on(future)
}
