//! A fresh lease table on the shared moto server, and raw item access that
//! bypasses the crate's codec (to write items as the KCL does and to check
//! what the crate wrote).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use unistream::dynamodb::DynamoDbLeaseTable;

use crate::emulators::{moto, sdk_config, unique_name};

pub type Item = HashMap<String, AttributeValue>;

/// A new, empty lease table and a raw client for it.
pub struct Env {
    pub table: DynamoDbLeaseTable,
    pub client: aws_sdk_dynamodb::Client,
    pub name: String,
}

impl Env {
    pub async fn new() -> Self {
        let conf = sdk_config(moto()).await;
        let name = unique_name("leases");
        let table = DynamoDbLeaseTable::new(&conf, name.as_str());
        table.create_table_if_missing().await.unwrap();
        // Idempotent: a second call finds the table.
        table.create_table_if_missing().await.unwrap();
        Self {
            client: aws_sdk_dynamodb::Client::new(&conf),
            table,
            name,
        }
    }

    /// Another handle on the same table that has seen nothing yet (another
    /// process).
    pub fn fresh_handle(&self) -> DynamoDbLeaseTable {
        DynamoDbLeaseTable::from_client(self.client.clone(), self.name.as_str())
    }

    pub async fn raw_get(&self, key: &str) -> Option<Item> {
        self.client
            .get_item()
            .table_name(&self.name)
            .key("leaseKey", s(key))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
    }

    pub async fn raw_put(&self, item: Item) {
        self.client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item))
            .send()
            .await
            .unwrap();
    }
}

pub fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

pub fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub fn ss(v: &[&str]) -> AttributeValue {
    AttributeValue::Ss(v.iter().map(|s| (*s).to_owned()).collect())
}

/// An item from `(name, value)` pairs.
pub fn item(attrs: impl IntoIterator<Item = (&'static str, AttributeValue)>) -> Item {
    attrs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// Each attribute's DynamoDB type, for layout checks.
pub fn types(item: &Item) -> std::collections::BTreeMap<String, &'static str> {
    item.iter()
        .map(|(k, v)| {
            let t = match v {
                AttributeValue::S(_) => "S",
                AttributeValue::N(_) => "N",
                AttributeValue::Ss(_) => "SS",
                AttributeValue::M(_) => "M",
                AttributeValue::B(_) => "B",
                AttributeValue::Bool(_) => "BOOL",
                _ => "other",
            };
            (k.clone(), t)
        })
        .collect()
}
