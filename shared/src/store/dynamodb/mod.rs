//! The DynamoDB backend: each [`SessionBackend`] operation is one request, built here and
//! nowhere else.
//!
//! Every conditional write asks DynamoDB for the item as it stood when the condition failed
//! (`ReturnValuesOnConditionCheckFailure`). Not every DynamoDB-compatible server returns it;
//! when it is missing, one consistent read finds out whether the session is gone, locked or
//! changed. Guessing "gone" there would hand a locked session's user a fresh, empty one.

mod changes;
mod gc;
mod item;
mod users;

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, Put, ReturnValue, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem,
};

use self::changes::update_expression;
use self::item::{Item, from_item, number, to_item, unsigned};
use self::users::projection;
use super::backend::{Changes, Guard, Locked, Replaced, SessionBackend, StoredItem, Written};
use crate::attributes::{LOCK_OWNER, LOCKED_AT, VERSION};
use crate::error::{Error, Result};
use crate::expression::Expression;
use crate::retry::Backoff;

/// Sessions in a DynamoDB table (hash key only, type S).
#[derive(Clone)]
pub(crate) struct DynamoDbBackend {
    client: Client,
    table: String,
    key_attribute: String,
}

impl std::fmt::Debug for DynamoDbBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The client's configuration says nothing about the table and fills a log line.
        f.debug_struct("DynamoDbBackend")
            .field("table", &self.table)
            .field("key_attribute", &self.key_attribute)
            .finish_non_exhaustive()
    }
}

impl DynamoDbBackend {
    pub(crate) fn new(client: Client, table: String, key_attribute: String) -> Self {
        DynamoDbBackend {
            client: crate::metrics::DynamoDbCalls::on(client),
            table,
            key_attribute,
        }
    }

    fn key(&self, key: &str) -> AttributeValue {
        AttributeValue::S(key.to_owned())
    }

    fn sdk_error<E, R>(&self, err: SdkError<E, R>) -> Error
    where
        aws_sdk_dynamodb::Error: From<SdkError<E, R>>,
    {
        Error::from_sdk(&self.table, err)
    }

    /// The one UpdateItem builder: `e`'s clauses on `key`.
    fn update_request(&self, key: &str, e: &Expression) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(&self.key_attribute, self.key(key))
            .set_update_expression(e.update_expression())
            .set_condition_expression(e.condition_expression())
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
    }

    /// The guard as conditions on `e`; updates also require the item to exist.
    fn guard(&self, e: &mut Expression, guard: &Guard, require_existence: bool) {
        if require_existence {
            e.name("#key", &self.key_attribute)
                .condition("attribute_exists(#key)");
        }
        match guard {
            Guard::None => {}
            Guard::Version(Some(version)) => {
                e.name("#version", VERSION)
                    .value(":read_version", unsigned(*version))
                    .condition("#version = :read_version");
            }
            Guard::Version(None) => {
                e.name("#version", VERSION)
                    .condition("attribute_not_exists(#version)");
            }
            Guard::Lock(owner) => {
                e.name("#owner", LOCK_OWNER)
                    .value(":token", AttributeValue::S(owner.clone()))
                    .condition("#owner = :token");
            }
        }
    }

    /// How a conditional write ended: applied, refused (a conditional-check failure, which
    /// `old_item` recognises, giving the old item DynamoDB returned, if it did), or failed.
    async fn conditional<O, E, R>(
        &self,
        key: &str,
        sent: std::result::Result<O, SdkError<E, R>>,
        old_item: impl FnOnce(&E) -> Option<Option<Item>>,
    ) -> Result<Written>
    where
        aws_sdk_dynamodb::Error: From<SdkError<E, R>>,
    {
        let err = match sent {
            Ok(_) => return Ok(Written::Applied),
            Err(err) => err,
        };
        match err.as_service_error().and_then(old_item) {
            Some(returned) => self.refused(key, returned).await,
            None => Err(self.sdk_error(err)),
        }
    }

    /// The item behind a refused condition: the one DynamoDB returned, or a consistent read.
    async fn refused(&self, key: &str, returned: Option<Item>) -> Result<Written> {
        let current = match returned {
            Some(item) => Some(from_item(&item)?),
            None => self.get(key, true).await?,
        };
        Ok(Written::Refused(current))
    }
}

#[async_trait::async_trait]
impl SessionBackend for DynamoDbBackend {
    async fn get(&self, key: &str, consistent: bool) -> Result<Option<StoredItem>> {
        let (expression, names) = projection();
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(&self.key_attribute, self.key(key))
            .consistent_read(consistent)
            .projection_expression(expression)
            .set_expression_attribute_names(Some(names))
            .send()
            .await
            .map_err(|e| self.sdk_error(e))?;
        output.item.as_ref().map(from_item).transpose()
    }

    async fn insert(&self, key: &str, item: &StoredItem) -> Result<bool> {
        let written = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&self.key_attribute, key, item)))
            .condition_expression("attribute_not_exists(#key)")
            .expression_attribute_names("#key", &self.key_attribute)
            .send()
            .await;
        match written {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(self.sdk_error(e)),
        }
    }

    async fn lock(
        &self,
        key: &str,
        owner: &str,
        now_ms: i64,
        stale_before_ms: i64,
    ) -> Result<Locked> {
        let mut e = Expression::default();
        e.name("#key", &self.key_attribute)
            .name("#locked", LOCKED_AT)
            .name("#owner", LOCK_OWNER)
            .value(":now_ms", number(now_ms))
            .value(":token", AttributeValue::S(owner.to_owned()))
            .value(":stale_before", number(stale_before_ms))
            .set("#locked = :now_ms")
            .set("#owner = :token")
            .condition("attribute_exists(#key)")
            // Breaking an expired lock is part of the same condition, so two waiters can
            // never both win it. Our own token also passes: when an attempt's answer is lost
            // after DynamoDB applied it, the SDK's retry must not find the session "locked by
            // someone else" and wait for itself.
            .condition(
                "attribute_not_exists(#locked) OR #locked < :stale_before OR #owner = :token",
            );
        // A second attempt only when the read below shows the lock went free meanwhile.
        for _ in 0..2 {
            let attempt = self
                .update_request(key, &e)
                .return_values(ReturnValue::AllNew)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            let returned = match attempt {
                Ok(output) => {
                    return from_item(&output.attributes.unwrap_or_default()).map(Locked::Acquired);
                }
                Err(err) => match err.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(failure)) => {
                        failure.item.clone()
                    }
                    _ => return Err(self.sdk_error(err)),
                },
            };
            // With the old item, the condition failed on an unexpired lock held by another.
            if returned.is_some() {
                return Ok(Locked::Busy);
            }
            match self.get(key, true).await? {
                None => return Ok(Locked::Absent),
                Some(item) => {
                    let held = item.lock.as_ref().is_some_and(|lock| {
                        lock.locked_at_ms >= stale_before_ms && lock.owner != owner
                    });
                    if held {
                        return Ok(Locked::Busy);
                    }
                }
            }
        }
        Ok(Locked::Busy)
    }

    async fn update(&self, key: &str, changes: &Changes, guard: &Guard) -> Result<Written> {
        let mut e = update_expression(changes, guard);
        self.guard(&mut e, guard, true);
        let sent = self
            .update_request(key, &e)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        self.conditional(key, sent, |e| match e {
            UpdateItemError::ConditionalCheckFailedException(failure) => Some(failure.item.clone()),
            _ => None,
        })
        .await
    }

    async fn delete(&self, key: &str, guard: &Guard) -> Result<Written> {
        let mut e = Expression::default();
        self.guard(&mut e, guard, *guard != Guard::None);
        let sent = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(&self.key_attribute, self.key(key))
            .set_condition_expression(e.condition_expression())
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        self.conditional(key, sent, |e| match e {
            DeleteItemError::ConditionalCheckFailedException(failure) => Some(failure.item.clone()),
            _ => None,
        })
        .await
    }

    async fn replace(
        &self,
        old_key: &str,
        guard: &Guard,
        new_key: &str,
        item: &StoredItem,
    ) -> Result<Replaced> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item(&self.key_attribute, new_key, item)))
            .condition_expression("attribute_not_exists(#key)")
            .expression_attribute_names("#key", &self.key_attribute)
            .build()
            .map_err(build_error)?;
        let mut e = Expression::default();
        self.guard(&mut e, guard, true);
        let delete = Delete::builder()
            .table_name(&self.table)
            .key(&self.key_attribute, self.key(old_key))
            .set_condition_expression(e.condition_expression())
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(build_error)?;
        let send = || async {
            self.client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().put(put.clone()).build())
                .transact_items(TransactWriteItem::builder().delete(delete.clone()).build())
                .send()
                .await
        };
        // DynamoDB cancels a transaction that meets another write in flight on the same item
        // (`TransactionConflict`): short, bounded retries. The SDK's idempotency token makes a
        // retried transaction safe to apply twice.
        let sent = Backoff::exponential(Duration::from_millis(20), Duration::from_millis(200), 3)
            .retry(
                send,
                |e| {
                    cancellation_codes(e)
                        .iter()
                        .any(|c| c == "TransactionConflict")
                },
                |_, _| {},
            )
            .await;
        let err = match sent {
            Ok(_) => return Ok(Replaced::Applied),
            Err(err) => err,
        };
        let reasons = match err.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                cancelled.cancellation_reasons().to_vec()
            }
            _ => return Err(self.sdk_error(err)),
        };
        let failed = |index: usize| {
            reasons
                .get(index)
                .and_then(|r| r.code.as_deref())
                .is_some_and(|code| code == "ConditionalCheckFailed")
        };
        if failed(1) {
            let returned = reasons.into_iter().nth(1).and_then(|r| r.item);
            return match self.refused(old_key, returned).await? {
                Written::Refused(current) => Ok(Replaced::Refused(current)),
                Written::Applied => unreachable!("refused() only refuses"),
            };
        }
        if failed(0) {
            return Ok(Replaced::Collision);
        }
        Err(Error::Backend(
            format!(
                "the renewal transaction was cancelled: {:?}",
                reasons
                    .iter()
                    .map(|r| r.code.as_deref())
                    .collect::<Vec<_>>()
            )
            .into(),
        ))
    }

    async fn sessions_of(
        &self,
        user_hash: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<String>, Option<String>)> {
        self.query_user_index(user_hash, after, limit).await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<(String, StoredItem)>> {
        self.batch_get(keys).await
    }
}

/// The cancellation reason codes of a cancelled transaction.
fn cancellation_codes<R>(error: &SdkError<TransactWriteItemsError, R>) -> Vec<String> {
    match error.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(e)) => e
            .cancellation_reasons()
            .iter()
            .filter_map(|r| r.code.clone())
            .collect(),
        _ => Vec::new(),
    }
}

fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> Error {
    Error::Backend(Box::new(e))
}
