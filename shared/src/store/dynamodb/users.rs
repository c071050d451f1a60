//! The user index: a user's sessions by `user_hash-index`, and reading many sessions at once.

use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};

use super::item::{Item, PROJECTION, from_item};
use super::{DynamoDbBackend, build_error};
use crate::attributes::{USER_HASH, USER_INDEX};
use crate::error::{Error, Result};
use crate::retry::Backoff;
use crate::store::backend::StoredItem;

impl DynamoDbBackend {
    pub(super) async fn query_user_index(
        &self,
        user_hash: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<String>, Option<String>)> {
        let start = after.map(|key| {
            std::collections::HashMap::from([
                (
                    USER_HASH.to_owned(),
                    AttributeValue::S(user_hash.to_owned()),
                ),
                (self.key_attribute.clone(), self.key(key)),
            ])
        });
        let queried = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(USER_INDEX)
            .key_condition_expression("#user = :user")
            .expression_attribute_names("#user", USER_HASH)
            .expression_attribute_values(":user", AttributeValue::S(user_hash.to_owned()))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await;
        let output = match queried {
            Ok(output) => output,
            Err(err)
                if err
                    .as_service_error()
                    .and_then(|e| e.meta().message())
                    .is_some_and(|m| m.contains("index")) =>
            {
                return Err(Error::UserIndexMissing {
                    table: self.table.clone(),
                });
            }
            Err(err) => return Err(self.sdk_error(err)),
        };
        let key_of = |item: &Item| match item.get(&self.key_attribute) {
            Some(AttributeValue::S(key)) => Some(key.clone()),
            _ => None,
        };
        let keys = output.items().iter().filter_map(key_of).collect();
        let next = output.last_evaluated_key().and_then(|k| key_of(&k.clone()));
        Ok((keys, next))
    }

    pub(super) async fn batch_get(&self, keys: &[String]) -> Result<Vec<(String, StoredItem)>> {
        let (expression, mut names) = projection();
        names.insert("#key".to_owned(), self.key_attribute.clone());
        let mut found = Vec::with_capacity(keys.len());
        // BatchGetItem reads at most 100 keys per call.
        for chunk in keys.chunks(100) {
            let mut pending = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(
                        chunk
                            .iter()
                            .map(|key| {
                                std::collections::HashMap::from([(
                                    self.key_attribute.clone(),
                                    self.key(key),
                                )])
                            })
                            .collect(),
                    ))
                    .consistent_read(true)
                    .projection_expression(format!("#key, {expression}"))
                    .set_expression_attribute_names(Some(names.clone()))
                    .build()
                    .map_err(build_error)?,
            );
            let mut backoff =
                Backoff::exponential(Duration::from_millis(20), Duration::from_secs(1), 8).delays();
            while let Some(request) = pending.take() {
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| self.sdk_error(e))?;
                for item in output
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default()
                {
                    if let Some(AttributeValue::S(key)) = item.get(&self.key_attribute) {
                        found.push((key.clone(), from_item(&item)?));
                    }
                }
                // Keys DynamoDB left unprocessed (throttling) are asked for again, later.
                pending = output
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .filter(|k| !k.keys().is_empty());
                if pending.is_some() {
                    let Some(delay) = backoff.next() else {
                        return Err(Error::Backend(
                            "BatchGetItem left keys unprocessed after retries".into(),
                        ));
                    };
                    tokio::time::sleep(delay).await;
                }
            }
        }
        Ok(found)
    }
}

/// The projection of a session read, as an expression and its names.
pub(super) fn projection() -> (String, std::collections::HashMap<String, String>) {
    let expression = PROJECTION
        .iter()
        .map(|(placeholder, _)| *placeholder)
        .collect::<Vec<_>>()
        .join(", ");
    let names = PROJECTION
        .iter()
        .map(|(placeholder, name)| ((*placeholder).to_owned(), (*name).to_owned()))
        .collect();
    (expression, names)
}
