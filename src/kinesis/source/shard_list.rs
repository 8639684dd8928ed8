//! Listing a stream's shards: `ListShards`, every page, with throttling
//! waited out and transient failures retried per the source's policy.
//!
//! A listed shard carries what both coordinators need: its parents (a
//! split has one, a merge two), whether it is closed (it has an ending
//! sequence number), and its hash key range (for the lease table's
//! `startingHashKey` / `endingHashKey`).

use std::sync::Arc;

use super::failure::{classify, Failure};
use super::SourceShared;
use crate::aws::request_timeout::within;
use crate::kinesis::StreamTarget;
use crate::lease::HashRange;
use crate::Error;

/// One shard as `ListShards` describes it.
#[derive(Debug, Clone)]
pub(crate) struct ListedShard {
    pub(crate) id: Arc<str>,
    pub(crate) parents: Vec<Arc<str>>,
    pub(crate) closed: bool,
    pub(crate) hash_range: Option<HashRange>,
}

impl ListedShard {
    /// A child shard as a `GetRecords` answer at the end of its parent
    /// names it (it is open: just created).
    pub(crate) fn from_child(child: &aws_sdk_kinesis::types::ChildShard) -> Self {
        let range = child.hash_key_range();
        Self {
            id: Arc::from(child.shard_id()),
            parents: child
                .parent_shards()
                .iter()
                .map(|p| Arc::from(p.as_str()))
                .collect(),
            closed: false,
            hash_range: range.and_then(|r| {
                Some(HashRange {
                    start: r.starting_hash_key().parse().ok()?,
                    end: r.ending_hash_key().parse().ok()?,
                })
            }),
        }
    }
}

/// Every shard of the source's stream, in the order `ListShards` returns
/// them (creation order: parents before children).
pub(crate) async fn list_shards<S>(shared: &SourceShared<S>) -> Result<Vec<ListedShard>, Error> {
    let client = &shared.client;
    let config = &shared.config;
    let mut shards = Vec::new();
    let mut next_token: Option<String> = None;
    let mut transient = 0u32;
    let mut throttled = 0u32;
    loop {
        let mut request = client.list_shards();
        request = match &next_token {
            // With a token, the stream must not be named again.
            Some(token) => request.next_token(token),
            None => match &shared.stream {
                StreamTarget::Arn(arn) => request.stream_arn(arn),
                StreamTarget::Name(name) => request.stream_name(name),
            },
        };
        let sent = within(config.request_timeout, "ListShards", request.send());
        let page = match sent.await {
            Ok(page) => page,
            Err(err) => {
                let delay = match classify(&err) {
                    Failure::Throttled => {
                        throttled += 1;
                        config.throttle_backoff.backoff(throttled - 1)
                    }
                    Failure::Transient if config.retry.allows_another(transient + 1) => {
                        transient += 1;
                        config.retry.backoff(transient - 1)
                    }
                    _ => return Err(Error::target(shared.stream.to_string(), err)),
                };
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        for shard in page.shards() {
            let range = shard.hash_key_range();
            let hash_range = range.and_then(|r| {
                Some(HashRange {
                    start: r.starting_hash_key().parse().ok()?,
                    end: r.ending_hash_key().parse().ok()?,
                })
            });
            shards.push(ListedShard {
                id: Arc::from(shard.shard_id()),
                parents: [shard.parent_shard_id(), shard.adjacent_parent_shard_id()]
                    .into_iter()
                    .flatten()
                    .map(Arc::from)
                    .collect(),
                closed: shard
                    .sequence_number_range()
                    .and_then(|r| r.ending_sequence_number())
                    .is_some(),
                hash_range,
            });
        }
        match page.next_token() {
            Some(token) => next_token = Some(token.to_owned()),
            None => return Ok(shards),
        }
    }
}
