//! One `PutRecords` call — its request built from the planned entries,
//! sent by a future that borrows only what the sink's clones share (so
//! several calls can be in flight while the run plans the next one) — and
//! what its answer does to the queue: entries that succeeded leave it;
//! failed ones stay for a later call after their back-off, are rejected, or
//! make the batch fail.
//!
//! Guarantees: only the entries that failed are sent again — never one a
//! call stored; each failed entry counts an attempt, and once the
//! [`RetryPolicy`](crate::RetryPolicy) has no attempt left, a *permanent*
//! failure rejects its records (by their index in the batch, with the
//! service's reason) while a *transient* one (throttling, internal errors,
//! a failed call) fails the batch. A call that failed as a whole — an error,
//! or an answer whose length does not match the request — fails each of its
//! entries the same way. Records that land on another shard than predicted
//! mark the shard map stale.
//!
//! Does not: wait (the back-off of a failed entry is set here, the waiting
//! and the pacing are the delivery loop's), nor choose
//! the entries (`plan.rs`); it trusts the plan to respect the call limits,
//! which it checks in debug builds.

use std::sync::Arc;

use aws_sdk_kinesis::error::SdkError;
use aws_sdk_kinesis::operation::put_records::{PutRecordsError, PutRecordsOutput};
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::Blob;
use hashbrown::HashMap;
use tokio::time::Instant;

use crate::kinesis::limits::{MAX_PUT_RECORDS_BYTES, MAX_PUT_RECORDS_COUNT};
use crate::kinesis::sink::failure::{
    classify_code, classify_put_records_error, ClassifiedFailure, FailureKind,
};
use crate::kinesis::sink::shard_map::ShardMap;
use crate::{Error, RejectedRecord};

use super::shared::SinkShared;
use super::{PutRun, Slot};

/// What one call did to the queue.
#[derive(Default)]
pub(super) struct CallOutcome {
    pub(super) any_failed: bool,
    /// Per predicted shard: the entries it throttled.
    pub(super) throttled_shards: HashMap<Arc<str>, u64>,
    /// A transient failure that exhausted the policy: the batch fails.
    pub(super) exhausted: Option<String>,
    /// The end of the back-off per attempt count, one per answer: entries
    /// that failed together go out together again.
    retry_at: HashMap<u32, Instant>,
}

/// A call ready to go: its entries, the request, and what the limiter
/// counted for it.
pub(super) struct PreparedCall {
    /// Positions in the queue, in queue order.
    pub(super) entries: Vec<usize>,
    /// The shard each entry is predicted to land on.
    predicted: Vec<Option<Arc<str>>>,
    request: Vec<PutRecordsRequestEntry>,
    pub(super) bytes: u64,
    /// When the rate limiter counted it as sent.
    pub(super) sent_at: Instant,
}

/// A call and the service's answer to it.
pub(super) struct AnsweredCall {
    pub(super) call: PreparedCall,
    result: Result<PutRecordsOutput, SdkError<PutRecordsError, HttpResponse>>,
}

/// Sends `call` (a future that borrows only what the sink's clones share,
/// so that several can be in flight beside the run that plans them).
pub(super) async fn send(shared: &SinkShared, mut call: PreparedCall) -> AnsweredCall {
    let request = std::mem::take(&mut call.request);
    let started = Instant::now();
    let put = shared
        .client
        .put_records()
        .set_stream_name(shared.target.name().map(str::to_owned))
        .set_stream_arn(shared.target.arn().map(str::to_owned))
        .set_records(Some(request))
        .send();
    let result =
        crate::aws::request_timeout::within(shared.options.request_timeout, "PutRecords", put)
            .await;
    let latency = started.elapsed();
    shared.facade.call_seconds.record_duration(latency);
    shared.record_metrics(|m| {
        m.put_records_calls += 1;
        m.latency_us.saturating_record(latency.as_micros() as u64);
        m.call_records.saturating_record(call.entries.len() as u64);
        m.call_bytes.saturating_record(call.bytes);
    });
    AnsweredCall { call, result }
}

impl PutRun<'_> {
    /// Builds the `PutRecords` request for the `chosen` entries.
    pub(super) fn prepare(
        &self,
        chosen: Vec<usize>,
        sent_at: Instant,
        map: &ShardMap,
    ) -> Result<PreparedCall, Error> {
        let shared = self.shared;
        let mut request = Vec::with_capacity(chosen.len());
        let mut predicted = Vec::with_capacity(chosen.len());
        let mut bytes = 0u64;
        for &i in &chosen {
            let Some(entry) = self.queue.entry(i) else {
                continue;
            };
            // The run seals an open aggregate before it plans it in.
            let Some(record) = self.record_of(entry) else {
                debug_assert!(false, "an open aggregate in a call");
                return Err(Error::target(
                    shared.label.clone(),
                    "an aggregate was sent before it was sealed",
                ));
            };
            bytes += record.billed_bytes() as u64;
            predicted.push(map.shard_for(entry.hash_key).map(|shard| shard.id.clone()));
            let built = PutRecordsRequestEntry::builder()
                // Shares the record's buffer instead of copying it.
                .data(Blob::from_maybe_shared(record.data.clone()))
                .partition_key(record.partition_key.clone())
                .set_explicit_hash_key(record.explicit_hash_key.clone())
                .build()
                // Only a missing data or partition key fails, and both are set.
                .map_err(|e| Error::target(shared.label.clone(), e))?;
            request.push(built);
        }
        // What Kinesis accepts in one call; the plan keeps within it.
        debug_assert!(
            request.len() <= MAX_PUT_RECORDS_COUNT && bytes <= MAX_PUT_RECORDS_BYTES as u64
        );
        // Every chosen entry is pending, so each has its request entry.
        debug_assert_eq!(request.len(), chosen.len());
        Ok(PreparedCall {
            entries: chosen,
            predicted,
            request,
            bytes,
            sent_at,
        })
    }

    /// Applies the answer to a call to the queue.
    pub(super) fn apply(&mut self, answered: &AnsweredCall) -> CallOutcome {
        let shared = self.shared;
        let chosen = &answered.call.entries;
        let predicted = &answered.call.predicted;
        for &i in chosen {
            self.queue.set_slot(i, Slot::Ready);
        }
        let mut outcome = CallOutcome::default();
        match &answered.result {
            Ok(output) if output.records().len() == chosen.len() => {
                let mut sent = 0u64;
                let mut kinesis_sent = 0u64;
                let mut mispredicted = 0u64;
                for (k, (&i, result)) in chosen.iter().zip(output.records()).enumerate() {
                    match result.error_code() {
                        None => {
                            if let Some(entry) = self.finish_entry(i) {
                                sent += entry.record_count();
                                kinesis_sent += 1;
                            }
                            if let (Some(actual), Some(expected)) =
                                (result.shard_id(), &predicted[k])
                            {
                                if actual != &**expected {
                                    mispredicted += 1;
                                }
                            }
                        }
                        Some(code) => {
                            let kind = classify_code(code);
                            let reason = match result.error_message() {
                                Some(message) => format!("{code}: {message}"),
                                None => code.to_owned(),
                            };
                            self.fail(i, predicted[k].as_ref(), kind, &reason, &mut outcome);
                        }
                    }
                }
                if mispredicted > 0 {
                    tracing::info!(
                        target: "unistream::kinesis",
                        stream = %shared.label, mispredicted,
                        "records landed on other shards than predicted; reloading the shard map"
                    );
                    shared.shard_map_state().stale = true;
                }
                shared.record_metrics(|m| {
                    m.records_sent += sent;
                    m.kinesis_records_sent += kinesis_sent;
                    m.shard_mispredictions += mispredicted;
                });
            }
            Ok(output) => {
                let reason = format!(
                    "PutRecords answered {} results for {} records",
                    output.records().len(),
                    chosen.len()
                );
                self.fail_call(
                    chosen,
                    predicted,
                    FailureKind::Transient,
                    &reason,
                    &mut outcome,
                );
            }
            Err(err) => {
                let ClassifiedFailure { kind, reason } = classify_put_records_error(err);
                let reason = format!("PutRecords failed: {reason}");
                self.fail_call(chosen, predicted, kind, &reason, &mut outcome);
            }
        }
        if outcome.any_failed {
            tracing::debug!(
                target: "unistream::kinesis",
                stream = %shared.label, records = chosen.len(),
                throttled_shards = outcome.throttled_shards.len(),
                "PutRecords had failures"
            );
        }
        outcome
    }

    /// Every entry of a call that failed as a whole.
    fn fail_call(
        &mut self,
        chosen: &[usize],
        predicted: &[Option<Arc<str>>],
        kind: FailureKind,
        reason: &str,
        outcome: &mut CallOutcome,
    ) {
        let shared = self.shared;
        tracing::warn!(
            target: "unistream::kinesis",
            stream = %shared.label, records = chosen.len(), ?kind, %reason,
            "PutRecords call failed"
        );
        shared.record_metrics(|m| {
            m.put_records_call_failures += 1;
            if kind == FailureKind::Throttled {
                m.throttles += 1;
            }
        });
        for (k, &i) in chosen.iter().enumerate() {
            // A throttled call counts once above, not once per record.
            let kind = if kind == FailureKind::Throttled {
                if let Some(shard) = &predicted[k] {
                    *outcome.throttled_shards.entry(shard.clone()).or_default() += 1;
                }
                FailureKind::Transient
            } else {
                kind
            };
            self.fail(i, None, kind, reason, outcome);
        }
    }

    /// One entry failed: retry it later, reject it, or give up on the batch.
    fn fail(
        &mut self,
        i: usize,
        predicted: Option<&Arc<str>>,
        kind: FailureKind,
        reason: &str,
        outcome: &mut CallOutcome,
    ) {
        let shared = self.shared;
        outcome.any_failed = true;
        let Some(entry) = self.queue.entry_mut(i) else {
            return;
        };
        entry.attempts += 1;
        let attempts = entry.attempts;
        let users = entry.record_count();
        if kind == FailureKind::Throttled {
            if let Some(shard) = predicted {
                *outcome.throttled_shards.entry(shard.clone()).or_default() += 1;
            }
        }
        let retry = shared.options.retry.allows_another(attempts);
        shared.record_metrics(|m| {
            m.records_failed += users;
            if kind == FailureKind::Throttled {
                m.throttles += 1;
            }
            if retry {
                m.records_retried += users;
            }
        });
        if retry {
            let retry = &shared.options.retry;
            let at = *outcome
                .retry_at
                .entry(attempts)
                .or_insert_with(|| Instant::now() + retry.backoff(attempts - 1));
            self.queue.set_slot(i, Slot::BackingOff(at));
            return;
        }
        if kind.is_permanent() {
            tracing::warn!(
                target: "unistream::kinesis",
                stream = %shared.label, records = users, attempts, %reason,
                "records failed permanently; reporting them as rejected"
            );
            if let Some(entry) = self.finish_entry(i) {
                let reason = format!("{reason} (after {attempts} attempt(s))");
                for (number, indices) in entry.records() {
                    let batch = self.batch_mut(number);
                    for &index in indices {
                        batch
                            .rejected
                            .push(RejectedRecord::new(index, reason.clone()));
                    }
                }
            }
        } else if outcome.exhausted.is_none() {
            outcome.exhausted = Some(reason.to_owned());
        }
    }
}
