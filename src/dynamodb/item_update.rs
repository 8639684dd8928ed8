//! [`ItemUpdate`]: one conditional `UpdateItem` built from named pieces —
//! attributes to set, add to and remove, and the conditions the item must
//! meet — with every attribute name and value passed as a placeholder
//! (`#a0`, `:v0`), so that no attribute name can collide with a DynamoDB
//! reserved word.
//!
//! It only builds the request's expressions; sending it, and reading the
//! answer, is the caller's.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure, Update};

/// The expressions of one `UpdateItem`; see the [module docs](self).
#[derive(Debug, Default, Clone)]
pub(crate) struct ItemUpdate {
    set: Vec<String>,
    add: Vec<String>,
    remove: Vec<String>,
    conditions: Vec<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl ItemUpdate {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The placeholder of attribute `name` (one per name).
    fn name(&mut self, name: &str) -> String {
        if let Some((placeholder, _)) = self.names.iter().find(|(_, n)| n.as_str() == name) {
            return placeholder.clone();
        }
        let placeholder = format!("#a{}", self.names.len());
        self.names.insert(placeholder.clone(), name.to_owned());
        placeholder
    }

    fn value(&mut self, value: AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    /// `SET name = value`.
    pub(crate) fn set(&mut self, name: &str, value: AttributeValue) -> &mut Self {
        let (n, v) = (self.name(name), self.value(value));
        self.set.push(format!("{n} = {v}"));
        self
    }

    /// `ADD name value`: a number added to the attribute (created from 0
    /// when absent), atomically.
    pub(crate) fn add(&mut self, name: &str, value: AttributeValue) -> &mut Self {
        let (n, v) = (self.name(name), self.value(value));
        self.add.push(format!("{n} {v}"));
        self
    }

    /// `REMOVE name` (nothing happens if it is absent).
    pub(crate) fn remove(&mut self, name: &str) -> &mut Self {
        let n = self.name(name);
        self.remove.push(n);
        self
    }

    /// The write happens only if `name` equals `value`.
    pub(crate) fn require_equal(&mut self, name: &str, value: AttributeValue) -> &mut Self {
        let (n, v) = (self.name(name), self.value(value));
        self.conditions.push(format!("{n} = {v}"));
        self
    }

    /// The write happens only if `name` exists.
    pub(crate) fn require_present(&mut self, name: &str) -> &mut Self {
        let n = self.name(name);
        self.conditions.push(format!("attribute_exists({n})"));
        self
    }

    /// The write happens only if `name` does not exist.
    pub(crate) fn require_absent(&mut self, name: &str) -> &mut Self {
        let n = self.name(name);
        self.conditions.push(format!("attribute_not_exists({n})"));
        self
    }

    /// The write happens only if the string attribute `name` is `value`,
    /// or absent for `None`.
    pub(crate) fn require_string(&mut self, name: &str, value: Option<&str>) -> &mut Self {
        match value {
            Some(value) => self.require_equal(name, AttributeValue::S(value.to_owned())),
            None => self.require_absent(name),
        }
    }

    fn update_expression(&self) -> String {
        let mut clauses = Vec::new();
        for (keyword, parts) in [
            ("SET", &self.set),
            ("ADD", &self.add),
            ("REMOVE", &self.remove),
        ] {
            if !parts.is_empty() {
                clauses.push(format!("{keyword} {}", parts.join(", ")));
            }
        }
        clauses.join(" ")
    }

    /// `request` with this update's expressions, names and values.
    pub(crate) fn apply_to(self, request: UpdateItemFluentBuilder) -> UpdateItemFluentBuilder {
        debug_assert!(
            !(self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()),
            "an update changes something"
        );
        let update = self.update_expression();
        let request = request
            .update_expression(update)
            .set_expression_attribute_names(Some(self.names));
        let request = if self.conditions.is_empty() {
            request
        } else {
            request.condition_expression(self.conditions.join(" AND "))
        };
        // DynamoDB refuses an empty map of values.
        if self.values.is_empty() {
            request
        } else {
            request.set_expression_attribute_values(Some(self.values))
        }
    }

    /// This update as one action of a `TransactWriteItems` on the item
    /// `key` of `table`; a failed condition returns the item as it was.
    pub(crate) fn into_transact_update(
        self,
        table: &str,
        key: HashMap<String, AttributeValue>,
    ) -> Result<Update, aws_sdk_dynamodb::error::BuildError> {
        debug_assert!(
            !(self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()),
            "an update changes something"
        );
        let update = Update::builder()
            .table_name(table)
            .set_key(Some(key))
            .update_expression(self.update_expression())
            .set_expression_attribute_names(Some(self.names))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let update = if self.conditions.is_empty() {
            update
        } else {
            update.condition_expression(self.conditions.join(" AND "))
        };
        let update = if self.values.is_empty() {
            update
        } else {
            update.set_expression_attribute_values(Some(self.values))
        };
        update.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_use_one_placeholder_per_name_and_join_clauses() {
        let mut update = ItemUpdate::new();
        update
            .require_present("leaseKey")
            .require_equal("leaseCounter", AttributeValue::N("3".into()))
            .set("leaseCounter", AttributeValue::N("4".into()))
            .add(
                "ownerSwitchesSinceCheckpoint",
                AttributeValue::N("1".into()),
            )
            .remove("checkpointOwner")
            .require_string("checkpointOwner", Some("a"));
        assert_eq!(
            update.update_expression(),
            "SET #a1 = :v1 ADD #a2 :v2 REMOVE #a3"
        );
        assert_eq!(
            update.conditions.join(" AND "),
            "attribute_exists(#a0) AND #a1 = :v0 AND #a3 = :v3"
        );
        assert_eq!(update.names.len(), 4);
        assert_eq!(update.names["#a3"], "checkpointOwner");
    }
}
