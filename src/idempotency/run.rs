//! [`Idempotency::run`]: a handler run at most once per key, its result
//! kept and handed to later callers; see the [module docs](super).

use std::future::Future;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::store::{Begin, Claim, IdempotencyError, IdempotencyStore};
use crate::checkpoint::CheckpointToken;
use crate::codec::CodecError;
use crate::error::Error;

/// What [`Idempotency::run`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Once<O> {
    /// The handler ran now; its result.
    Ran(O),
    /// A run had completed before: its stored result; the handler did not
    /// run.
    AlreadyDone(O),
}

impl<O> Once<O> {
    /// The result, however it came.
    pub fn into_inner(self) -> O {
        match self {
            Once::Ran(o) | Once::AlreadyDone(o) => o,
        }
    }

    /// Whether the handler ran in this call.
    pub fn ran(&self) -> bool {
        matches!(self, Once::Ran(_))
    }
}

/// The default key of a record: its partition and position, which name
/// one record of a stream for good (`shardId-…:sequence …`).
pub fn idempotency_key(token: &CheckpointToken) -> String {
    format!("{}:{}", token.partition(), token.position())
}

/// Runs handlers at most once per key over an [`IdempotencyStore`]; cheap
/// to clone. See the [module docs](super).
#[derive(Debug, Clone)]
#[must_use]
pub struct Idempotency<S> {
    store: S,
    in_progress_expiry: Duration,
    keep_for: Duration,
}

impl<S: IdempotencyStore> Idempotency<S> {
    /// Over `store`, with an in-progress expiry of 60 s and results kept
    /// for a day.
    pub fn new(store: S) -> Self {
        Self {
            store,
            in_progress_expiry: Duration::from_secs(60),
            keep_for: Duration::from_secs(24 * 3600),
        }
    }

    /// How long a run's claim lasts without renewal: how long after a
    /// crash the key may run again. Renewed every third of it while the
    /// handler runs. Default 60 s.
    pub fn in_progress_expiry(mut self, expiry: Duration) -> Self {
        self.in_progress_expiry = expiry.max(Duration::from_millis(30));
        self
    }

    /// How long a completed run's result is kept (and the key not run
    /// again). Default 1 day; keep it above the stream's retention when
    /// re-reads must stay deduplicated.
    pub fn keep_for(mut self, keep_for: Duration) -> Self {
        self.keep_for = keep_for;
        self
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Runs `handler` for `key` unless a run of `key` completed (then its
    /// stored result comes back as [`Once::AlreadyDone`]) or is in progress
    /// elsewhere (then this call waits for it). A failed handler leaves the
    /// key free for the next call and fails this one with its error.
    pub async fn run<O, F, Fut>(&self, key: &str, handler: F) -> Result<Once<O>, Error>
    where
        O: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<O, Error>>,
    {
        let claim = loop {
            match self.store.begin(key, self.in_progress_expiry).await? {
                Begin::Run(claim) => break claim,
                Begin::Completed(stored) => {
                    return decode(key, &stored).map(Once::AlreadyDone);
                }
                Begin::InProgress { retry_after } => {
                    let pause = retry_after
                        .min(self.in_progress_expiry / 10)
                        .max(Duration::from_millis(10));
                    tokio::time::sleep(pause).await;
                }
            }
        };
        let outcome = self.run_claimed(key, &claim, handler()).await;
        match outcome {
            Ok(output) => {
                let stored = serde_json::to_vec(&output)
                    .map_err(|e| Error::Codec(CodecError::encode("JSON", e)))?;
                self.store
                    .complete(key, &claim, stored, self.keep_for)
                    .await?;
                Ok(Once::Ran(output))
            }
            Err(err) => {
                if !matches!(err, Error::Idempotency(IdempotencyError::ClaimLost { .. })) {
                    // Best effort: an abandon that fails leaves the claim
                    // to expire, which frees the key as well.
                    let _ = self.store.abandon(key, &claim).await;
                }
                Err(err)
            }
        }
    }

    /// Drives `handler` while renewing `claim` every third of the expiry;
    /// a lost claim drops the handler.
    async fn run_claimed<O, Fut>(&self, key: &str, claim: &Claim, handler: Fut) -> Result<O, Error>
    where
        Fut: Future<Output = Result<O, Error>>,
    {
        let renew_every = self.in_progress_expiry / 3;
        let mut renewals =
            tokio::time::interval_at(tokio::time::Instant::now() + renew_every, renew_every);
        renewals.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(handler);
        loop {
            tokio::select! {
                output = &mut handler => return output,
                _ = renewals.tick() => {
                    self.store
                        .extend(key, claim, self.in_progress_expiry)
                        .await?;
                }
            }
        }
    }
}

fn decode<O: DeserializeOwned>(key: &str, stored: &[u8]) -> Result<O, Error> {
    serde_json::from_slice(stored).map_err(|e| {
        Error::Idempotency(IdempotencyError::Corrupt {
            key: key.to_owned(),
            detail: format!("stored result does not decode: {e}"),
        })
    })
}
