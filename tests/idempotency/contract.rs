//! The idempotency rules, checked against any store: concurrent duplicates
//! run once, a failure frees the key, a crashed run's key runs again only
//! after its claim expires, a long run keeps its claim.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use unistream::idempotency::{Idempotency, IdempotencyStore, Once};
use unistream::Error;

/// `callers` concurrent calls for one key, each handler counting its run
/// and taking `work`: exactly one runs, every caller gets its result.
pub async fn concurrent_duplicates_run_once<S: IdempotencyStore>(
    once: Idempotency<S>,
    key: &str,
    callers: u32,
    work: Duration,
) {
    let runs = Arc::new(AtomicU32::new(0));
    let tasks: Vec<_> = (0..callers)
        .map(|caller| {
            let (once, runs, key) = (once.clone(), runs.clone(), key.to_owned());
            tokio::spawn(async move {
                once.run(&key, || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(work).await;
                    Ok::<_, Error>(caller)
                })
                .await
                .unwrap()
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1, "{outcomes:?}");
    let ran: Vec<u32> = outcomes
        .iter()
        .filter(|o| o.ran())
        .map(|o| o.clone().into_inner())
        .collect();
    assert_eq!(ran.len(), 1, "{outcomes:?}");
    assert!(
        outcomes.iter().all(|o| o.clone().into_inner() == ran[0]),
        "every caller gets the one run's result: {outcomes:?}"
    );
}

/// A failed handler frees the key at once; the next call runs.
pub async fn a_failure_frees_the_key<S: IdempotencyStore>(once: Idempotency<S>, key: &str) {
    let failed = once
        .run(key, || async { Err::<u32, _>(Error::handler("boom")) })
        .await;
    assert!(matches!(failed, Err(Error::Handler(_))), "{failed:?}");
    let again = once
        .run(key, || async { Ok::<_, Error>(7u32) })
        .await
        .unwrap();
    assert_eq!(again, Once::Ran(7));
    let third = once
        .run(key, || async { Ok::<_, Error>(8u32) })
        .await
        .unwrap();
    assert_eq!(third, Once::AlreadyDone(7));
}

/// A run that crashes (its task gone: no completion, no abandon) after
/// its effect: the next caller waits for the claim to expire, then runs
/// the key again (the documented window). Returns how long it waited.
pub async fn a_crashed_run_is_run_again_after_its_claim_expires<S: IdempotencyStore>(
    once: Idempotency<S>,
    key: &str,
    expiry: Duration,
) -> Duration {
    let effects = Arc::new(AtomicU32::new(0));
    let crashed = tokio::spawn({
        let (once, effects, key) = (once.clone(), effects.clone(), key.to_owned());
        async move {
            once.run(&key, || async move {
                effects.fetch_add(1, Ordering::SeqCst);
                std::future::pending::<Result<u32, Error>>().await
            })
            .await
        }
    });
    while effects.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    crashed.abort();
    let _ = crashed.await;
    let start = Instant::now();
    let again = once
        .run(key, || {
            let effects = effects.clone();
            async move {
                effects.fetch_add(1, Ordering::SeqCst);
                Ok::<_, Error>(2u32)
            }
        })
        .await
        .unwrap();
    let waited = start.elapsed();
    assert_eq!(again, Once::Ran(2));
    assert_eq!(effects.load(Ordering::SeqCst), 2);
    // The claim was renewed at most a third of the expiry before the
    // crash, so it stood for at least two thirds of it after.
    assert!(
        waited >= expiry * 2 / 3 - Duration::from_millis(50),
        "ran again {waited:?} after the crash: before the claim ({expiry:?}) expired"
    );
    waited
}

/// A run taking `runs_for` (several expiries) keeps its claim: a second
/// caller never runs the key, it gets the first run's result.
pub async fn a_long_run_keeps_its_claim<S: IdempotencyStore>(
    once: Idempotency<S>,
    key: &str,
    runs_for: Duration,
) {
    let runs = Arc::new(AtomicU32::new(0));
    let first = tokio::spawn({
        let (once, runs, key) = (once.clone(), runs.clone(), key.to_owned());
        async move {
            once.run(&key, || async move {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(runs_for).await;
                Ok::<_, Error>(1u32)
            })
            .await
            .unwrap()
        }
    });
    tokio::time::sleep(runs_for / 4).await;
    let second = once
        .run(key, || {
            let runs = runs.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok::<_, Error>(2u32)
            }
        })
        .await
        .unwrap();
    assert_eq!(first.await.unwrap(), Once::Ran(1));
    assert_eq!(second, Once::AlreadyDone(1));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}
