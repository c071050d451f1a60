//! A small builder for DynamoDB update and condition expressions that declares exactly the
//! attribute names and values its clauses use (DynamoDB refuses unused ones).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

/// Clauses of one UpdateItem (or the condition of a DeleteItem/PutItem).
#[derive(Debug, Default, Clone)]
pub(crate) struct Expression {
    set: Vec<String>,
    remove: Vec<String>,
    conditions: Vec<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Expression {
    /// Declares `#placeholder` as attribute `attribute`.
    pub(crate) fn name(&mut self, placeholder: &str, attribute: &str) -> &mut Self {
        self.names
            .insert(placeholder.to_owned(), attribute.to_owned());
        self
    }

    /// Declares `:placeholder` as `value`.
    pub(crate) fn value(&mut self, placeholder: &str, value: AttributeValue) -> &mut Self {
        self.values.insert(placeholder.to_owned(), value);
        self
    }

    /// Adds a `SET` clause such as `#data = :data`.
    pub(crate) fn set(&mut self, clause: impl Into<String>) -> &mut Self {
        self.set.push(clause.into());
        self
    }

    /// Adds a `REMOVE` clause such as `#expire`.
    pub(crate) fn remove(&mut self, clause: impl Into<String>) -> &mut Self {
        self.remove.push(clause.into());
        self
    }

    /// Adds a condition; conditions are joined with `AND`.
    pub(crate) fn condition(&mut self, condition: impl Into<String>) -> &mut Self {
        self.conditions.push(condition.into());
        self
    }

    /// The update expression, if any clause was added.
    pub(crate) fn update_expression(&self) -> Option<String> {
        let mut parts = Vec::new();
        if !self.set.is_empty() {
            parts.push(format!("SET {}", self.set.join(", ")));
        }
        if !self.remove.is_empty() {
            parts.push(format!("REMOVE {}", self.remove.join(", ")));
        }
        (!parts.is_empty()).then(|| parts.join(" "))
    }

    /// The condition expression, if any condition was added.
    pub(crate) fn condition_expression(&self) -> Option<String> {
        match self.conditions.len() {
            0 => None,
            1 => Some(self.conditions[0].clone()),
            _ => Some(
                self.conditions
                    .iter()
                    .map(|c| format!("({c})"))
                    .collect::<Vec<_>>()
                    .join(" AND "),
            ),
        }
    }

    /// The declared names, or `None` when there are none (DynamoDB refuses an empty map).
    pub(crate) fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    /// The declared values, or `None` when there are none.
    pub(crate) fn values(&self) -> Option<HashMap<String, AttributeValue>> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_set_remove_and_joined_conditions() {
        let mut e = Expression::default();
        e.name("#a", "a")
            .value(":a", AttributeValue::N("1".into()))
            .set("#a = :a")
            .set("#b = :a")
            .remove("#c")
            .condition("attribute_exists(#a)")
            .condition("#a < :a");
        assert_eq!(
            e.update_expression().as_deref(),
            Some("SET #a = :a, #b = :a REMOVE #c")
        );
        assert_eq!(
            e.condition_expression().as_deref(),
            Some("(attribute_exists(#a)) AND (#a < :a)")
        );
        assert!(Expression::default().update_expression().is_none());
        assert!(Expression::default().names().is_none());
    }
}
