//! [`DynamoDbIdempotencyStore`]: idempotency records in a DynamoDB table,
//! shared by every worker; every write conditional.
//!
//! One item per key (hash key `id`, a string):
//!
//! | attribute | type | meaning |
//! |---|---|---|
//! | `id` | S | the key |
//! | `status` | S | `INPROGRESS` or `COMPLETED` |
//! | `claim` | S | the claim of the run that wrote it |
//! | `inProgressExpiry` | N | while `INPROGRESS`: until when the claim holds (epoch milliseconds) |
//! | `expiration` | N | when the item may be dropped (epoch seconds; the table's TTL attribute) |
//! | `data` | B | when `COMPLETED`: the stored result |
//!
//! A claim is a `PutItem` conditional on no item, an expired claim or an
//! expired result; renewing, completing and giving up are conditional on
//! the claim. Expiry compares the writer's wall clock with what other
//! writers wrote: clocks must agree to well within the in-progress expiry.
//! The result is stored in the item, so it must fit DynamoDB's 400 KB item
//! limit (a larger one fails the completion with a backend error, and the
//! key runs again after the claim expires).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, TimeToLiveSpecification, TimeToLiveStatus};

use super::table::create_table_if_missing;
use crate::aws::sdk_error::SdkErrorBox;
use crate::idempotency::{Begin, Claim, IdempotencyError, IdempotencyStore};
use crate::BoxError;

const ID: &str = "id";
const STATUS: &str = "status";
const CLAIM: &str = "claim";
const IN_PROGRESS_EXPIRY: &str = "inProgressExpiry";
const EXPIRATION: &str = "expiration";
const DATA: &str = "data";
const IN_PROGRESS: &str = "INPROGRESS";
const COMPLETED: &str = "COMPLETED";

/// Idempotency records in a DynamoDB table; cheap to clone. See the
/// module docs (`src/dynamodb/idempotency_store.rs`).
#[derive(Debug, Clone)]
pub struct DynamoDbIdempotencyStore {
    client: aws_sdk_dynamodb::Client,
    table: Arc<str>,
}

impl DynamoDbIdempotencyStore {
    /// The store in `table`, with a client from `sdk_config`.
    pub fn new(sdk_config: &aws_config::SdkConfig, table: impl Into<Arc<str>>) -> Self {
        Self::from_client(aws_sdk_dynamodb::Client::new(sdk_config), table)
    }

    /// The store in `table`, with `client`.
    pub fn from_client(client: aws_sdk_dynamodb::Client, table: impl Into<Arc<str>>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Creates the table (hash key `id`, on-demand billing) unless it
    /// exists, waits until it is active, and turns its TTL on (attribute
    /// `expiration`) unless it is on.
    pub async fn create_table_if_missing(&self) -> Result<(), IdempotencyError> {
        let backend = |source: BoxError| IdempotencyError::Backend {
            key: String::new(),
            source,
        };
        create_table_if_missing(&self.client, &self.table, ID)
            .await
            .map_err(backend)?;
        let ttl = self
            .client
            .describe_time_to_live()
            .table_name(&*self.table)
            .send()
            .await
            .map_err(|e| backend(SdkErrorBox::new(e).into()))?;
        let on = ttl
            .time_to_live_description()
            .and_then(|d| d.time_to_live_status())
            .is_some_and(|s| matches!(s, TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling));
        if !on {
            let spec = TimeToLiveSpecification::builder()
                .attribute_name(EXPIRATION)
                .enabled(true)
                .build()
                .map_err(|e| backend(e.into()))?;
            self.client
                .update_time_to_live()
                .table_name(&*self.table)
                .time_to_live_specification(spec)
                .send()
                .await
                .map_err(|e| backend(SdkErrorBox::new(e).into()))?;
        }
        Ok(())
    }

    async fn get(
        &self,
        key: &str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, IdempotencyError> {
        let out = self
            .client
            .get_item()
            .table_name(&*self.table)
            .key(ID, s(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend(key, SdkErrorBox::new(e)))?;
        Ok(out.item)
    }

    /// An update of `key` conditional on `claim` still in progress;
    /// `Ok(false)` when the condition failed.
    async fn update_claimed(
        &self,
        key: &str,
        claim: &Claim,
        update: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<bool, IdempotencyError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&*self.table)
            .key(ID, s(key))
            .update_expression(update)
            .condition_expression("#claim = :claim AND #status = :inprogress")
            .expression_attribute_names("#claim", CLAIM)
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_values(":claim", s(claim.as_str()))
            .expression_attribute_values(":inprogress", s(IN_PROGRESS));
        for (name, value) in values {
            request = request.expression_attribute_values(name, value);
        }
        for (placeholder, name) in [
            ("#exp", EXPIRATION),
            ("#ipe", IN_PROGRESS_EXPIRY),
            ("#data", DATA),
        ] {
            if update.contains(placeholder) {
                request = request.expression_attribute_names(placeholder, name);
            }
        }
        match request.send().await {
            Ok(_) => Ok(true),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(err) => Err(backend(key, SdkErrorBox::new(err))),
        }
    }
}

impl IdempotencyStore for DynamoDbIdempotencyStore {
    async fn begin(&self, key: &str, in_progress_for: Duration) -> Result<Begin, IdempotencyError> {
        let now = now_millis();
        let claim = Claim::new();
        let until = now + in_progress_for.as_millis() as u64;
        let put = self
            .client
            .put_item()
            .table_name(&*self.table)
            .item(ID, s(key))
            .item(STATUS, s(IN_PROGRESS))
            .item(CLAIM, s(claim.as_str()))
            .item(IN_PROGRESS_EXPIRY, n(until))
            .item(EXPIRATION, n(until / 1000 + 1))
            .condition_expression(
                "attribute_not_exists(#id) OR (#status = :inprogress AND #ipe < :now) \
                 OR #exp < :now_s",
            )
            .expression_attribute_names("#id", ID)
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_names("#ipe", IN_PROGRESS_EXPIRY)
            .expression_attribute_names("#exp", EXPIRATION)
            .expression_attribute_values(":inprogress", s(IN_PROGRESS))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":now_s", n(now / 1000))
            .send()
            .await;
        match put {
            Ok(_) => return Ok(Begin::Run(claim)),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) => {}
            Err(err) => return Err(backend(key, SdkErrorBox::new(err))),
        }
        // Someone else's record: read what it is.
        let Some(item) = self.get(key).await? else {
            // Given up or expired between the two requests: look again.
            return Ok(Begin::InProgress {
                retry_after: Duration::ZERO,
            });
        };
        match item
            .get(STATUS)
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
        {
            Some(COMPLETED) => match item.get(DATA) {
                Some(AttributeValue::B(data)) => Ok(Begin::Completed(data.clone().into_inner())),
                _ => Err(IdempotencyError::Corrupt {
                    key: key.to_owned(),
                    detail: "a COMPLETED record without binary data".into(),
                }),
            },
            Some(IN_PROGRESS) => {
                let until =
                    number(&item, IN_PROGRESS_EXPIRY).ok_or_else(|| IdempotencyError::Corrupt {
                        key: key.to_owned(),
                        detail: format!(
                            "an INPROGRESS record without a numeric {IN_PROGRESS_EXPIRY}"
                        ),
                    })?;
                Ok(Begin::InProgress {
                    retry_after: Duration::from_millis(until.saturating_sub(now_millis())),
                })
            }
            other => Err(IdempotencyError::Corrupt {
                key: key.to_owned(),
                detail: format!("status {other:?}"),
            }),
        }
    }

    async fn extend(
        &self,
        key: &str,
        claim: &Claim,
        in_progress_for: Duration,
    ) -> Result<(), IdempotencyError> {
        let until = now_millis() + in_progress_for.as_millis() as u64;
        let updated = self
            .update_claimed(
                key,
                claim,
                "SET #ipe = :until, #exp = :exp",
                vec![(":until", n(until)), (":exp", n(until / 1000 + 1))],
            )
            .await?;
        if updated {
            Ok(())
        } else {
            Err(IdempotencyError::ClaimLost {
                key: key.to_owned(),
            })
        }
    }

    async fn complete(
        &self,
        key: &str,
        claim: &Claim,
        result: Vec<u8>,
        keep_for: Duration,
    ) -> Result<(), IdempotencyError> {
        let expiration = (now_millis() + keep_for.as_millis() as u64) / 1000 + 1;
        let updated = self
            .update_claimed(
                key,
                claim,
                "SET #status = :completed, #data = :data, #exp = :exp REMOVE #ipe",
                vec![
                    (":completed", s(COMPLETED)),
                    (":data", AttributeValue::B(Blob::new(result))),
                    (":exp", n(expiration)),
                ],
            )
            .await?;
        if updated {
            Ok(())
        } else {
            Err(IdempotencyError::ClaimLost {
                key: key.to_owned(),
            })
        }
    }

    async fn abandon(&self, key: &str, claim: &Claim) -> Result<(), IdempotencyError> {
        let deleted = self
            .client
            .delete_item()
            .table_name(&*self.table)
            .key(ID, s(key))
            .condition_expression("#claim = :claim AND #status = :inprogress")
            .expression_attribute_names("#claim", CLAIM)
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_values(":claim", s(claim.as_str()))
            .expression_attribute_values(":inprogress", s(IN_PROGRESS))
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(()),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(err) => Err(backend(key, SdkErrorBox::new(err))),
        }
    }
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<u64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

fn backend(key: &str, err: SdkErrorBox) -> IdempotencyError {
    IdempotencyError::Backend {
        key: key.to_owned(),
        source: err.into(),
    }
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
