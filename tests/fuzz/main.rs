//! The fuzz targets' bodies (`unistream::__fuzz`, feature `fuzzing`) on
//! stable: the crate's own seeds, the committed corpus (`fuzz/corpus/`) and
//! every crash input found so far (`fuzz/regressions/`) replayed through
//! the same functions the fuzzer runs, so that a crash once fixed stays
//! fixed without nightly.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

/// Every committed input of every target.
mod replay;
/// The seeds the crate makes are inputs the bodies accept.
mod seeds;

/// Panics anywhere in this process, counted by a hook: the library runs
/// parts of its work on tokio's blocking threads, where a panic becomes an
/// error value instead of failing the test. Under libFuzzer any panic
/// aborts; here any panic fails [`run`].
static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Runs the body of `target` on `data` (`false` when this build lacks the
/// target) and fails if anything panicked, on any thread.
fn run(target: &str, data: &[u8]) -> bool {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            default(info);
        }));
    });
    let ran = unistream::__fuzz::run_target(target, data);
    assert_eq!(
        PANICS.load(Ordering::SeqCst),
        0,
        "a panic while running {target} (see the output above)"
    );
    ran
}
