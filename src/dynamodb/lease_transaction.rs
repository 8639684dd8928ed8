//! [`DynamoDbLeaseTable`] as a [`TransactionalLeaseTable`]: outputs (any
//! `TransactWriteItem`: `Put`, `Update`, `Delete`, `ConditionCheck`, on any
//! table of the account and region) written in one `TransactWriteItems`
//! with the lease's conditional update.
//!
//! - **Atomic and fenced.** The lease update is the transaction's last
//!   action, conditional on `leaseCounter` as every lease write is: if
//!   another worker wrote the lease, nothing of the transaction is applied
//!   and the answer is [`LeaseError::Conflict`] with the lease as it is.
//! - **Idempotent retries.** The request carries the commit's token as
//!   `ClientRequestToken`: the same request sent again within DynamoDB's
//!   ten minutes is not applied twice (the lease worker sends the same
//!   request again only; see `lease/transactional.rs`).
//! - **Limits.** At most 99 outputs (the lease update is the 100th action)
//!   and 4 MB of items per transaction ([`TransactionLimits::DYNAMODB`]);
//!   no two actions on one item. To know which item a `Put` writes, the
//!   key schema of its table is read once (`DescribeTable`).
//! - **Errors.** An output's own condition failing, or a transaction
//!   DynamoDB refuses as invalid, is
//!   [`LeaseError::TransactionRejected`] naming the action; throttling,
//!   `TransactionConflict` (another transaction on one of the items) and
//!   `TransactionInProgress` are [`LeaseError::Backend`], retried by the
//!   lease worker with the same request.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};

use super::lease_item::attr;
use super::lease_table::DynamoDbLeaseTable;
use super::lease_update::{lease_update, needs_basis};
use crate::lease::{
    Lease, LeaseError, LeaseWrite, OutputFootprint, TransactionLimits, TransactionalLeaseTable,
};

/// DynamoDB's size of an attribute value, as far as it counts towards the
/// 4 MB of a transaction (names count where they are stored).
fn value_bytes(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => n.len(),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(v) => v.iter().map(String::len).sum(),
        AttributeValue::Ns(v) => v.iter().map(String::len).sum(),
        AttributeValue::Bs(v) => v.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::L(v) => 3 + v.iter().map(|e| 1 + value_bytes(e)).sum::<usize>(),
        AttributeValue::M(m) => 3 + map_bytes(m),
        _ => 1,
    }
}

fn map_bytes(map: &HashMap<String, AttributeValue>) -> usize {
    map.iter()
        .map(|(name, value)| name.len() + value_bytes(value))
        .sum()
}

/// An item's identity: its table and key, attributes in name order.
fn item_id(table: &str, key: &HashMap<String, AttributeValue>) -> String {
    let mut names: Vec<&String> = key.keys().collect();
    names.sort();
    let mut id = table.to_owned();
    for name in names {
        id.push_str(&format!("|{name}={:?}", key[name]));
    }
    id
}

/// Bytes of an expression and its values.
fn expression_bytes(
    expressions: &[Option<&str>],
    values: Option<&HashMap<String, AttributeValue>>,
) -> usize {
    expressions.iter().flatten().map(|e| e.len()).sum::<usize>() + values.map_or(0, map_bytes)
}

impl DynamoDbLeaseTable {
    fn key_schema(&self, table: &str) -> Option<Vec<String>> {
        self.key_schemas
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(table)
            .cloned()
    }

    /// The lease after `write` at `expected`, from the lease this table saw
    /// at that counter or a consistent read.
    async fn written(
        &self,
        key: &str,
        expected: u64,
        write: &LeaseWrite,
    ) -> Result<Lease, LeaseError> {
        let lease = match self.seen_at(key, expected) {
            Some(basis) => write.apply(&basis),
            None => match crate::lease::LeaseTable::get(self, key).await? {
                Some(lease) => lease,
                None => return Err(self.conflict(key, expected, None)),
            },
        };
        self.remember(&lease);
        Ok(lease)
    }

    fn rejected(&self, key: &str, reason: String) -> LeaseError {
        LeaseError::TransactionRejected {
            table: self.table.to_string(),
            key: key.to_owned(),
            reason,
        }
    }
}

impl TransactionalLeaseTable for DynamoDbLeaseTable {
    type Output = TransactWriteItem;

    fn limits(&self) -> TransactionLimits {
        TransactionLimits::DYNAMODB
    }

    fn footprint(&self, output: &TransactWriteItem) -> OutputFootprint {
        if let Some(put) = output.put() {
            let item = put.item();
            let id = self.key_schema(put.table_name()).and_then(|names| {
                let key: Option<HashMap<String, AttributeValue>> = names
                    .iter()
                    .map(|n| item.get(n).map(|v| (n.clone(), v.clone())))
                    .collect();
                key.map(|key| item_id(put.table_name(), &key))
            });
            return OutputFootprint {
                bytes: map_bytes(item)
                    + expression_bytes(
                        &[put.condition_expression()],
                        put.expression_attribute_values.as_ref(),
                    ),
                item: id,
            };
        }
        if let Some(update) = output.update() {
            return OutputFootprint {
                bytes: map_bytes(update.key())
                    + expression_bytes(
                        &[
                            Some(update.update_expression()),
                            update.condition_expression(),
                        ],
                        update.expression_attribute_values.as_ref(),
                    ),
                item: Some(item_id(update.table_name(), update.key())),
            };
        }
        if let Some(delete) = output.delete() {
            return OutputFootprint {
                bytes: map_bytes(delete.key())
                    + expression_bytes(
                        &[delete.condition_expression()],
                        delete.expression_attribute_values.as_ref(),
                    ),
                item: Some(item_id(delete.table_name(), delete.key())),
            };
        }
        if let Some(check) = output.condition_check() {
            return OutputFootprint {
                bytes: map_bytes(check.key())
                    + expression_bytes(
                        &[Some(check.condition_expression())],
                        check.expression_attribute_values.as_ref(),
                    ),
                item: Some(item_id(check.table_name(), check.key())),
            };
        }
        OutputFootprint {
            bytes: 0,
            item: None,
        }
    }

    async fn prepare(&self, outputs: &[TransactWriteItem]) -> Result<(), LeaseError> {
        let mut tables: Vec<&str> = outputs
            .iter()
            .filter_map(|o| o.put().map(|p| p.table_name()))
            .filter(|t| self.key_schema(t).is_none())
            .collect();
        tables.sort_unstable();
        tables.dedup();
        for table in tables {
            let described = self
                .client
                .describe_table()
                .table_name(table)
                .send()
                .await
                .map_err(|e| self.backend(e))?;
            let names: Vec<String> = described
                .table()
                .map(|t| {
                    t.key_schema()
                        .iter()
                        .map(|k| k.attribute_name().to_owned())
                        .collect()
                })
                .unwrap_or_default();
            if names.is_empty() {
                return Err(LeaseError::backend(
                    self.table.as_ref(),
                    format!("DescribeTable of output table {table} returned no key schema"),
                ));
            }
            self.key_schemas
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(table.to_owned(), names);
        }
        Ok(())
    }

    async fn write_with(
        &self,
        key: &str,
        expected: u64,
        write: LeaseWrite,
        outputs: &[TransactWriteItem],
        request: &str,
    ) -> Result<Lease, LeaseError> {
        let basis = if needs_basis(&write) {
            match self.seen_at(key, expected) {
                Some(lease) => Some(lease),
                None => match crate::lease::LeaseTable::get(self, key).await? {
                    Some(lease) if lease.counter == expected => Some(lease),
                    current => return Err(self.conflict(key, expected, current)),
                },
            }
        } else {
            None
        };
        let update = lease_update(key, expected, &write, basis.as_ref())
            .map_err(|e| LeaseError::backend(self.table.as_ref(), e))?
            .into_transact_update(
                &self.table,
                HashMap::from([(attr::KEY.to_owned(), AttributeValue::S(key.to_owned()))]),
            )
            .map_err(|e| LeaseError::backend(self.table.as_ref(), e))?;
        let mut items = outputs.to_vec();
        items.push(TransactWriteItem::builder().update(update).build());
        let lease_index = items.len() - 1;
        let sent = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .client_request_token(request)
            .send()
            .await;
        let err = match sent {
            Ok(_) => return self.written(key, expected, &write).await,
            Err(err) => err,
        };
        match err.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(canceled)) => {
                let reasons = canceled.cancellation_reasons();
                let code = |i: usize| reasons.get(i).and_then(|r| r.code()).unwrap_or("None");
                if code(lease_index) == "ConditionalCheckFailed" {
                    let current = match reasons.get(lease_index).and_then(|r| r.item()) {
                        Some(item) if !item.is_empty() => Some(self.read(key, item)?),
                        _ => crate::lease::LeaseTable::get(self, key).await?,
                    };
                    return Err(self.conflict(key, expected, current));
                }
                let refused = (0..reasons.len()).find(|&i| {
                    matches!(
                        code(i),
                        "ConditionalCheckFailed"
                            | "ValidationError"
                            | "ItemCollectionSizeLimitExceeded"
                    )
                });
                match refused {
                    Some(i) => Err(self.rejected(
                        key,
                        format!(
                            "output {i}: {} ({})",
                            code(i),
                            reasons
                                .get(i)
                                .and_then(|r| r.message())
                                .unwrap_or("no message")
                        ),
                    )),
                    // Throttling, TransactionConflict, …: worth the same
                    // request again.
                    None => Err(self.backend(err)),
                }
            }
            Some(TransactWriteItemsError::IdempotentParameterMismatchException(_)) => Err(self
                .rejected(
                    key,
                    "DynamoDB saw this idempotency token with other parameters".to_owned(),
                )),
            Some(other) if other.meta().code() == Some("ValidationException") => {
                let reason = format!(
                    "ValidationException: {}",
                    other.meta().message().unwrap_or("no message")
                );
                Err(self.rejected(key, reason))
            }
            _ => Err(self.backend(err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_ids_ignore_attribute_order_and_sizes_count_names_and_values() {
        let a = HashMap::from([
            ("pk".to_owned(), AttributeValue::S("x".into())),
            ("sk".to_owned(), AttributeValue::N("1".into())),
        ]);
        let mut pairs: Vec<_> = a.clone().into_iter().collect();
        pairs.reverse();
        let b: HashMap<_, _> = pairs.into_iter().collect();
        assert_eq!(item_id("t", &a), item_id("t", &b));
        assert_ne!(item_id("t", &a), item_id("u", &a));
        assert_eq!(map_bytes(&a), 2 + 1 + 2 + 1);
        let nested = AttributeValue::L(vec![AttributeValue::S("abc".into())]);
        assert_eq!(value_bytes(&nested), 3 + 1 + 3);
    }
}
