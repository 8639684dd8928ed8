//! Creating the lease table: hash key `leaseKey` (a string), on-demand
//! billing, as the KCL creates it. Creation by several workers at once is
//! fine (`ResourceInUseException` means someone else created it); the call
//! returns once the table is `ACTIVE`, or fails after
//! [`TABLE_ACTIVE_TIMEOUT`]. Each store wraps the failure in its own error
//! type.

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TableStatus,
};

use super::lease_item::attr;
use crate::aws::sdk_error::SdkErrorBox;
use crate::BoxError;

/// How long [`create_lease_table_if_missing`] waits for the table to become
/// `ACTIVE`.
const TABLE_ACTIVE_TIMEOUT: Duration = Duration::from_secs(300);

/// Creates the table (hash key `leaseKey`, on-demand billing) unless it
/// exists, and waits until it is `ACTIVE`.
pub(crate) async fn create_lease_table_if_missing(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<(), BoxError> {
    create_table_if_missing(client, table, attr::KEY).await
}

/// Creates the table (hash key `key`, a string; on-demand billing) unless
/// it exists, and waits until it is `ACTIVE`.
pub(crate) async fn create_table_if_missing(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    key: &str,
) -> Result<(), BoxError> {
    let exists = match client.describe_table().table_name(table).send().await {
        Ok(_) => true,
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            false
        }
        Err(err) => return Err(SdkErrorBox::new(err).into()),
    };
    if !exists {
        let created = client
            .create_table()
            .table_name(table)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(key)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(BoxError::from)?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(key)
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(BoxError::from)?,
            )
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await;
        match created {
            Ok(_) => {}
            // Someone else created it meanwhile.
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_in_use_exception()) => {}
            Err(err) => return Err(SdkErrorBox::new(err).into()),
        }
    }
    let deadline = tokio::time::Instant::now() + TABLE_ACTIVE_TIMEOUT;
    loop {
        let described = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(SdkErrorBox::new)?;
        let status = described.table().and_then(|t| t.table_status());
        if status == Some(&TableStatus::Active) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "table {table} not ACTIVE after {TABLE_ACTIVE_TIMEOUT:?} (status {status:?})"
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
