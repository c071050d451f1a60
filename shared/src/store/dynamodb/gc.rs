//! The collector's requests on DynamoDB: the segmented Scan, the conditional DeleteItem and
//! the checkpoint item, each built here and nowhere else, each retried on the collector's
//! terms (counted, never past its deadline; the client's own retries are off).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, Select};

use super::DynamoDbBackend;
use super::item::{Item, number, unsigned};
use crate::attributes::{CREATED_AT, EXPIRE_AT, GC_PASS_STARTED_AT, MAX_STALE, UPDATED_AT};
use crate::error::{Error, Result};
use crate::expression::Expression;
use crate::gc::{CHECKPOINT_KEY, Checkpoint, SegmentProgress};
use crate::retry::Backoff;
use crate::store::backend::{
    CollectorBackend, GarbagePage, GarbageRule, GarbageScan, Retry, StoredCheckpoint,
};

const VERSION_ATTR: &str = "gc_version";
const SEGMENTS_ATTR: &str = "gc_segments";
const DONE_FIELD: &str = "done";
const RESUME_AFTER_FIELD: &str = "resume_after";

const FIRST_RETRY_DELAY: Duration = Duration::from_millis(50);
const LONGEST_RETRY_DELAY: Duration = Duration::from_secs(5);

impl DynamoDbBackend {
    /// Sends a request, retrying throttling and transient failures as `retry` allows.
    async fn send_retried<T, E, F, Fut>(
        &self,
        retry: Retry<'_>,
        request: F,
    ) -> Result<T, SdkError<E, HttpResponse>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata,
    {
        Backoff::exponential(FIRST_RETRY_DELAY, LONGEST_RETRY_DELAY, retry.max_retries)
            .until(retry.until)
            .retry(request, is_transient, |e, delay| {
                retry.retries.fetch_add(1, Ordering::Relaxed);
                crate::metrics::gc_retried(e.as_service_error().and_then(|e| e.code()));
                tracing::debug!(
                    code = e.as_service_error().and_then(|e| e.code()),
                    ?delay,
                    "retrying a DynamoDB request"
                );
            })
            .await
    }

    /// The key attribute's string value in `item`.
    fn key_in(&self, item: &Item) -> Result<String> {
        match item.get(&self.key_attribute) {
            Some(AttributeValue::S(key)) => Ok(key.clone()),
            _ => Err(Error::MalformedItem(format!(
                "a scanned item has no string {:?} key",
                self.key_attribute
            ))),
        }
    }

    fn key_map(&self, key: String) -> Item {
        HashMap::from([(self.key_attribute.clone(), AttributeValue::S(key))])
    }
}

#[async_trait::async_trait]
impl CollectorBackend for DynamoDbBackend {
    async fn scan_garbage(
        &self,
        scan: &GarbageScan,
        rule: &GarbageRule,
        retry: Retry<'_>,
    ) -> Result<GarbagePage> {
        // The rule plus the names of the projection.
        let mut e = garbage_rule(rule);
        e.name("#key", &self.key_attribute)
            .name("#created", CREATED_AT)
            .name("#updated", UPDATED_AT)
            .name("#expire", EXPIRE_AT);
        let start = scan.after.clone().map(|key| self.key_map(key));
        let page = self
            .send_retried(retry, || {
                self.client
                    .scan()
                    .table_name(&self.table)
                    .segment(scan.segment as i32)
                    .total_segments(scan.total_segments as i32)
                    .limit(i32::try_from(scan.limit).unwrap_or(i32::MAX))
                    .set_filter_expression(e.condition_expression())
                    // Stated, not implied by the projection: the template's IAM condition
                    // (`dynamodb:Select` = SPECIFIC_ATTRIBUTES with `dynamodb:Attributes`)
                    // requires it, so the collector's role can never Scan for `data`.
                    .select(Select::SpecificAttributes)
                    .projection_expression("#key, #created, #updated, #expire")
                    .set_expression_attribute_names(e.names())
                    .set_expression_attribute_values(e.values())
                    .set_exclusive_start_key(start.clone())
                    .send()
            })
            .await
            .map_err(|e| self.sdk_error(e))?;
        Ok(GarbagePage {
            scanned: u64::try_from(page.scanned_count).unwrap_or(0),
            garbage: page
                .items()
                .iter()
                .map(|item| self.key_in(item))
                .collect::<Result<_>>()?,
            next: page
                .last_evaluated_key
                .as_ref()
                .map(|key| self.key_in(key))
                .transpose()?,
        })
    }

    async fn delete_if_garbage(
        &self,
        key: &str,
        rule: &GarbageRule,
        retry: Retry<'_>,
    ) -> Result<bool> {
        let rule = garbage_rule(rule);
        let deleted = self
            .send_retried(retry, || {
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .key(&self.key_attribute, self.key(key))
                    .set_condition_expression(rule.condition_expression())
                    .set_expression_attribute_names(rule.names())
                    .set_expression_attribute_values(rule.values())
                    .send()
            })
            .await;
        match deleted {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(self.sdk_error(e)),
        }
    }

    async fn load_checkpoint(&self, retry: Retry<'_>) -> Result<Option<StoredCheckpoint>> {
        let stored = self
            .send_retried(retry, || {
                self.client
                    .get_item()
                    .table_name(&self.table)
                    .key(&self.key_attribute, checkpoint_key())
                    .consistent_read(true)
                    .send()
            })
            .await
            .map_err(|e| self.sdk_error(e))?
            .item;
        let Some(item) = stored else {
            return Ok(None);
        };
        let version = read_u64(&item, VERSION_ATTR).ok_or_else(|| {
            Error::MalformedItem(format!(
                "garbage collection checkpoint {CHECKPOINT_KEY:?} has no readable \
                 {VERSION_ATTR}; delete the item to restart collection"
            ))
        })?;
        Ok(Some(StoredCheckpoint {
            version,
            pass: from_item(&self.key_attribute, &item),
        }))
    }

    async fn save_checkpoint(
        &self,
        pass: &Checkpoint,
        expected: u64,
        retry: Retry<'_>,
    ) -> Result<bool> {
        let item = to_item(pass, &self.key_attribute, expected + 1);
        let written = self
            .send_retried(retry, || {
                let request = self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(item.clone()));
                if expected == 0 {
                    request
                        .condition_expression("attribute_not_exists(#key)")
                        .expression_attribute_names("#key", &self.key_attribute)
                        .send()
                } else {
                    request
                        .condition_expression("#version = :expected")
                        .expression_attribute_names("#version", VERSION_ATTR)
                        .expression_attribute_values(":expected", unsigned(expected))
                        .send()
                }
            })
            .await;
        match written {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(self.sdk_error(e)),
        }
    }

    async fn clear_checkpoint(&self, version: u64, retry: Retry<'_>) -> Result<bool> {
        let cleared = self
            .send_retried(retry, || {
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .key(&self.key_attribute, checkpoint_key())
                    .condition_expression("#version = :expected")
                    .expression_attribute_names("#version", VERSION_ATTR)
                    .expression_attribute_values(":expected", unsigned(version))
                    .send()
            })
            .await;
        match cleared {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(self.sdk_error(e)),
        }
    }
}

/// Whether a conditional write was refused by its condition.
fn is_condition_failure<E: ConditionFailure, R>(e: &SdkError<E, R>) -> bool {
    e.as_service_error()
        .is_some_and(ConditionFailure::is_condition_failure)
}

/// The operations' own conditional-check variants, which need no error code to be set.
trait ConditionFailure {
    fn is_condition_failure(&self) -> bool;
}

impl ConditionFailure for aws_sdk_dynamodb::operation::delete_item::DeleteItemError {
    fn is_condition_failure(&self) -> bool {
        self.is_conditional_check_failed_exception()
    }
}

impl ConditionFailure for aws_sdk_dynamodb::operation::put_item::PutItemError {
    fn is_condition_failure(&self) -> bool {
        self.is_conditional_check_failed_exception()
    }
}

/// Whether a failed request is worth sending again: throttling, a server-side or transient
/// error, a timeout or a broken connection.
fn is_transient<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> bool {
    match error {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
        SdkError::DispatchFailure(failure) => failure.is_timeout() || failure.is_io(),
        SdkError::ServiceError(service) => {
            service.err().code().is_some_and(|code| {
                THROTTLING_ERRORS.contains(&code) || TRANSIENT_ERRORS.contains(&code)
            }) || service.raw().status().is_server_error()
        }
        _ => false,
    }
}

/// The garbage rule as a DynamoDB condition: the scan's filter and every delete's
/// condition, so both decide alike. A missing `expire_at` fails `#expire <= :now`, as the
/// store never ends a session by an `expire_at` it does not have; the caps are ORed on.
fn garbage_rule(rule: &GarbageRule) -> Expression {
    let mut e = Expression::default();
    let mut clauses = Vec::new();
    if let Some(before) = rule.created_before {
        clauses.push("#created < :created_before".to_owned());
        e.name("#created", CREATED_AT)
            .value(":created_before", number(before));
    }
    if let Some(before) = rule.updated_before {
        // A session with its own `max_stale` ("remember me") is judged by its expire_at.
        clauses.push(
            "(#updated < :updated_before AND attribute_not_exists(#session_max_stale))".to_owned(),
        );
        e.name("#updated", UPDATED_AT)
            .name("#session_max_stale", MAX_STALE)
            .value(":updated_before", number(before));
    }
    clauses.push("#expire <= :now".into());
    e.name("#expire", EXPIRE_AT)
        .value(":now", number(rule.now))
        .condition(clauses.join(" OR "));
    e
}

fn checkpoint_key() -> AttributeValue {
    AttributeValue::S(CHECKPOINT_KEY.to_owned())
}

fn read_u64(item: &Item, name: &str) -> Option<u64> {
    match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse().ok(),
        _ => None,
    }
}

/// The checkpoint item storing `pass` as `version`. Resume keys are kept as key maps, the
/// `LastEvaluatedKey` DynamoDB returned; it has no timestamps, so the rule never matches it.
fn to_item(pass: &Checkpoint, key_attribute: &str, version: u64) -> Item {
    let segments = pass
        .segments
        .iter()
        .map(|progress| {
            let mut fields = HashMap::new();
            fields.insert(
                DONE_FIELD.to_owned(),
                AttributeValue::Bool(*progress == SegmentProgress::Done),
            );
            if let SegmentProgress::Pending(Some(key)) = progress {
                fields.insert(
                    RESUME_AFTER_FIELD.to_owned(),
                    AttributeValue::M(HashMap::from([(
                        key_attribute.to_owned(),
                        AttributeValue::S(key.clone()),
                    )])),
                );
            }
            AttributeValue::M(fields)
        })
        .collect();
    HashMap::from([
        (key_attribute.to_owned(), checkpoint_key()),
        (VERSION_ATTR.to_owned(), unsigned(version)),
        (GC_PASS_STARTED_AT.to_owned(), number(pass.pass_started_at)),
        (SEGMENTS_ATTR.to_owned(), AttributeValue::L(segments)),
    ])
}

fn from_item(key_attribute: &str, item: &Item) -> Result<Checkpoint, String> {
    let pass_started_at = read_u64(item, GC_PASS_STARTED_AT)
        .and_then(|t| i64::try_from(t).ok())
        .ok_or_else(|| format!("no readable {GC_PASS_STARTED_AT}"))?;
    let Some(AttributeValue::L(stored)) = item.get(SEGMENTS_ATTR) else {
        return Err(format!("no {SEGMENTS_ATTR} list"));
    };
    let segments = stored
        .iter()
        .map(|entry| {
            let AttributeValue::M(fields) = entry else {
                return Err(format!("an entry of {SEGMENTS_ATTR} is not a map"));
            };
            match (fields.get(DONE_FIELD), fields.get(RESUME_AFTER_FIELD)) {
                (Some(AttributeValue::Bool(true)), _) => Ok(SegmentProgress::Done),
                (Some(AttributeValue::Bool(false)), Some(AttributeValue::M(key))) => {
                    match key.get(key_attribute) {
                        Some(AttributeValue::S(key)) => {
                            Ok(SegmentProgress::Pending(Some(key.clone())))
                        }
                        _ => Err(format!("a resume key of {SEGMENTS_ATTR} is malformed")),
                    }
                }
                (Some(AttributeValue::Bool(false)), None) => Ok(SegmentProgress::Pending(None)),
                _ => Err(format!("an entry of {SEGMENTS_ATTR} is malformed")),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    if segments.is_empty() {
        return Err(format!("{SEGMENTS_ATTR} is empty"));
    }
    Ok(Checkpoint {
        pass_started_at,
        segments,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    use aws_sdk_dynamodb::Client;
    use aws_sdk_dynamodb::operation::delete_item::{DeleteItemError, DeleteItemOutput};
    use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
    use aws_sdk_dynamodb::operation::scan::ScanOutput;
    use aws_sdk_dynamodb::types::error::ProvisionedThroughputExceededException;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;
    use crate::config::Config;
    use crate::gc::{GarbageCollector, GcLimits, GcProgress, PassStatus, rule_at};

    #[test]
    fn by_default_the_rule_is_the_stored_expiry_alone() {
        let rule = garbage_rule(&rule_at(None, None, 1000));
        assert_eq!(rule.condition_expression().unwrap(), "#expire <= :now");
        assert_eq!(
            rule.names().unwrap().len(),
            1,
            "DynamoDB refuses unused names"
        );
        assert_eq!(rule.values().unwrap()[":now"], number(1000));
    }

    #[test]
    fn the_rule_ors_every_cap_with_expiry() {
        let rule = garbage_rule(&rule_at(
            Some(Duration::from_secs(100)),
            Some(Duration::from_secs(10)),
            1000,
        ));
        assert_eq!(
            rule.condition_expression().unwrap(),
            "#created < :created_before OR (#updated < :updated_before AND \
             attribute_not_exists(#session_max_stale)) OR #expire <= :now"
        );
        let values = rule.values().unwrap();
        assert_eq!(values[":created_before"], number(900));
        assert_eq!(values[":updated_before"], number(990));
        assert_eq!(values[":now"], number(1000));
        assert_eq!(rule.names().unwrap()["#created"], CREATED_AT);

        let stale_only = garbage_rule(&rule_at(None, Some(Duration::from_secs(10)), 1000));
        assert_eq!(
            stale_only.condition_expression().unwrap(),
            "(#updated < :updated_before AND attribute_not_exists(#session_max_stale)) OR \
             #expire <= :now"
        );
        assert!(
            !stale_only.names().unwrap().contains_key("#created"),
            "DynamoDB refuses unused names"
        );
    }

    #[test]
    fn checkpoints_round_trip_through_their_item() {
        let checkpoint = Checkpoint {
            pass_started_at: 1_700_000_000,
            segments: vec![
                SegmentProgress::Done,
                SegmentProgress::Pending(Some("k".into())),
                SegmentProgress::Pending(None),
            ],
        };
        let item = to_item(&checkpoint, "session_id", 7);
        assert_eq!(item["session_id"], checkpoint_key());
        assert!(!item.contains_key(EXPIRE_AT) && !item.contains_key(UPDATED_AT));
        assert_eq!(read_u64(&item, VERSION_ATTR), Some(7));
        assert_eq!(from_item("session_id", &item), Ok(checkpoint.clone()));
        assert_eq!(checkpoint.segments_done(), 1);
        assert!(!checkpoint.is_complete());

        let mut broken = item;
        broken.insert(SEGMENTS_ATTR.into(), AttributeValue::S("?".into()));
        assert!(from_item("session_id", &broken).is_err());
    }

    fn config() -> Config {
        Config::builder().table_name("sessions").build().unwrap()
    }

    #[tokio::test]
    async fn a_throttled_delete_is_retried_and_counted() {
        let no_checkpoint =
            mock!(Client::get_item).then_output(|| GetItemOutput::builder().build());
        // The default rule and the projection a role limited to those attributes allows.
        let one_page = mock!(Client::scan)
            .match_requests(|r| {
                r.filter_expression() == Some("#expire <= :now")
                    && r.select() == Some(&aws_sdk_dynamodb::types::Select::SpecificAttributes)
                    && r.projection_expression() == Some("#key, #created, #updated, #expire")
            })
            .then_output(|| {
                ScanOutput::builder()
                    .items(HashMap::from([(
                        "session_id".to_owned(),
                        AttributeValue::S("dead".into()),
                    )]))
                    .scanned_count(1)
                    .count(1)
                    .build()
            });
        let throttled = mock!(Client::delete_item)
            .match_requests(|r| r.condition_expression().is_some())
            .sequence()
            .error(|| {
                DeleteItemError::ProvisionedThroughputExceededException(
                    ProvisionedThroughputExceededException::builder()
                        .message("slow down")
                        // As the SDK's deserializer records it: retries go by the code.
                        .meta(
                            aws_sdk_dynamodb::error::ErrorMetadata::builder()
                                .code("ProvisionedThroughputExceededException")
                                .build(),
                        )
                        .build(),
                )
            })
            .output(|| DeleteItemOutput::builder().build())
            .build();
        let client = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::MatchAny,
            [&no_checkpoint, &one_page, &throttled]
        );
        let collector = GarbageCollector::new(client, &config())
            .unwrap()
            .with_segments(1);

        let report = collector.collect_all().await.unwrap();
        assert_eq!(report.status, PassStatus::Complete);
        assert_eq!((report.deleted, report.retries, report.pages), (1, 1, 1));
        assert_eq!(throttled.num_calls(), 2);
    }

    fn saved_checkpoint(segments: Vec<SegmentProgress>) -> Item {
        to_item(
            &Checkpoint {
                pass_started_at: 1_700_000_000,
                segments,
            },
            "session_id",
            3,
        )
    }

    fn resume_key() -> Item {
        HashMap::from([("session_id".to_owned(), AttributeValue::S("k".into()))])
    }

    #[tokio::test]
    async fn a_saved_pass_resumes_and_a_moved_checkpoint_supersedes_it() {
        let saved = mock!(Client::get_item).then_output(|| {
            GetItemOutput::builder()
                .set_item(Some(saved_checkpoint(vec![
                    SegmentProgress::Done,
                    SegmentProgress::Pending(Some("k".into())),
                ])))
                .build()
        });
        // Only segment 1 is read, and from the saved key on.
        let resumed = mock!(Client::scan)
            .match_requests(|r| {
                r.segment() == Some(1)
                    && r.total_segments() == Some(2)
                    && r.exclusive_start_key() == Some(&resume_key())
            })
            .then_output(|| ScanOutput::builder().build());
        // Meanwhile another collector wrote version 4: clearing version 3 is refused.
        let moved = mock!(Client::delete_item)
            .match_requests(|r| {
                r.key().and_then(|k| k.get("session_id")) == Some(&checkpoint_key())
            })
            .then_error(|| {
                DeleteItemError::ConditionalCheckFailedException(
                    aws_sdk_dynamodb::types::error::ConditionalCheckFailedException::builder()
                        .build(),
                )
            });
        let client = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::MatchAny,
            [&saved, &resumed, &moved]
        );
        let collector = GarbageCollector::new(client, &config())
            .unwrap()
            .with_segments(2);

        let report = collector.collect_all().await.unwrap();
        assert_eq!(report.status, PassStatus::Superseded);
        assert_eq!(report.pass_started_at, 1_700_000_000);
        assert_eq!((report.pages, report.segments_done), (1, 2));
        assert_eq!((resumed.num_calls(), moved.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn a_changed_segment_count_restarts_the_pass() {
        let saved = mock!(Client::get_item).then_output(|| {
            GetItemOutput::builder()
                .set_item(Some(saved_checkpoint(vec![
                    SegmentProgress::Pending(Some("k".into())),
                    SegmentProgress::Done,
                ])))
                .build()
        });
        let from_the_start = mock!(Client::scan)
            .match_requests(|r| r.total_segments() == Some(1) && r.exclusive_start_key().is_none())
            .then_output(|| ScanOutput::builder().build());
        let cleared = mock!(Client::delete_item)
            .match_requests(|r| {
                r.expression_attribute_values()
                    .and_then(|v| v.get(":expected"))
                    == Some(&unsigned(3))
            })
            .then_output(|| DeleteItemOutput::builder().build());
        let client = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::MatchAny,
            [&saved, &from_the_start, &cleared]
        );
        let collector = GarbageCollector::new(client, &config())
            .unwrap()
            .with_segments(1);

        let report = collector.collect_all().await.unwrap();
        assert_eq!(report.status, PassStatus::Complete);
        assert_eq!((from_the_start.num_calls(), cleared.num_calls()), (1, 1));
    }

    fn garbage_item(key: &str) -> Item {
        HashMap::from([("session_id".to_owned(), AttributeValue::S(key.into()))])
    }

    #[tokio::test]
    async fn a_dry_run_counts_the_garbage_and_writes_nothing() {
        // A pass in progress that the dry run must neither read nor disturb.
        let saved = mock!(Client::get_item).then_output(|| GetItemOutput::builder().build());
        let filtered = mock!(Client::scan)
            .match_requests(|r| {
                r.filter_expression()
                    .is_some_and(|f| f.contains("#expire <= :now"))
                    && r.exclusive_start_key().is_none()
            })
            .then_output(|| {
                ScanOutput::builder()
                    .items(garbage_item("dead-1"))
                    .items(garbage_item("dead-2"))
                    .scanned_count(5)
                    .count(2)
                    .build()
            });
        let deleted =
            mock!(Client::delete_item).then_output(|| DeleteItemOutput::builder().build());
        let saved_checkpoint = mock!(Client::put_item).then_output(|| {
            aws_sdk_dynamodb::operation::put_item::PutItemOutput::builder().build()
        });
        let client = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::MatchAny,
            [&saved, &filtered, &deleted, &saved_checkpoint]
        );
        let collector = GarbageCollector::new(client, &config())
            .unwrap()
            .with_segments(1)
            .with_dry_run(true);

        let report = collector.collect_all().await.unwrap();
        assert_eq!(report.status, PassStatus::Complete);
        assert!(report.dry_run);
        assert_eq!(
            (
                report.scanned,
                report.garbage_found,
                report.deleted,
                report.skipped_refreshed
            ),
            (5, 2, 0, 0)
        );
        assert_eq!(filtered.num_calls(), 1);
        assert_eq!(
            (
                saved.num_calls(),
                deleted.num_calls(),
                saved_checkpoint.num_calls()
            ),
            (0, 0, 0),
            "a dry run neither reads the checkpoint, nor deletes, nor saves"
        );
    }

    #[tokio::test]
    async fn the_progress_hook_sees_every_page_with_growing_counts() {
        let no_checkpoint =
            mock!(Client::get_item).then_output(|| GetItemOutput::builder().build());
        let first = mock!(Client::scan)
            .match_requests(|r| r.exclusive_start_key().is_none())
            .then_output(|| {
                ScanOutput::builder()
                    .items(garbage_item("dead-1"))
                    .scanned_count(3)
                    .set_last_evaluated_key(Some(resume_key()))
                    .build()
            });
        let second = mock!(Client::scan)
            .match_requests(|r| r.exclusive_start_key() == Some(&resume_key()))
            .then_output(|| {
                ScanOutput::builder()
                    .items(garbage_item("dead-2"))
                    .items(garbage_item("dead-3"))
                    .scanned_count(4)
                    .build()
            });
        let deleted =
            mock!(Client::delete_item).then_output(|| DeleteItemOutput::builder().build());
        let client = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::MatchAny,
            [&no_checkpoint, &first, &second, &deleted]
        );
        let seen = Arc::new(std::sync::Mutex::new(Vec::<GcProgress>::new()));
        let hook_seen = seen.clone();
        let collector = GarbageCollector::new(client, &config())
            .unwrap()
            .with_segments(1)
            .on_progress(move |p| hook_seen.lock().unwrap().push(p.clone()));

        let report = collector.collect_all().await.unwrap();
        let seen = seen.lock().unwrap().clone();
        let counts = |p: &GcProgress| {
            (
                p.pages,
                p.scanned,
                p.garbage_found,
                p.deleted,
                p.segments_done,
            )
        };
        assert_eq!(
            seen.iter().map(counts).collect::<Vec<_>>(),
            [(1, 3, 1, 1, 0), (2, 7, 3, 3, 1)]
        );
        assert!(seen.iter().all(|p| p.segments == 1 && !p.dry_run));
        assert!(seen[0].elapsed <= seen[1].elapsed);
        let last = &seen[1];
        assert_eq!(
            (
                report.pages,
                report.scanned,
                report.garbage_found,
                report.deleted
            ),
            (last.pages, last.scanned, last.garbage_found, last.deleted)
        );
    }

    #[tokio::test]
    async fn the_stop_flag_finishes_the_page_and_saves_the_checkpoint() {
        let no_checkpoint =
            mock!(Client::get_item).then_output(|| GetItemOutput::builder().build());
        let first = mock!(Client::scan)
            .match_requests(|r| r.exclusive_start_key().is_none())
            .then_output(|| {
                ScanOutput::builder()
                    .items(garbage_item("dead-1"))
                    .scanned_count(1)
                    .set_last_evaluated_key(Some(resume_key()))
                    .build()
            });
        let never = mock!(Client::scan)
            .match_requests(|r| r.exclusive_start_key().is_some())
            .then_output(|| ScanOutput::builder().build());
        let deleted =
            mock!(Client::delete_item).then_output(|| DeleteItemOutput::builder().build());
        // The checkpoint saved: segment 0 resumes after the first page's last key.
        let saved = mock!(Client::put_item)
            .match_requests(|r| {
                let item = r.item().cloned().unwrap_or_default();
                from_item("session_id", &item)
                    .is_ok_and(|c| c.segments == [SegmentProgress::Pending(Some("k".into()))])
            })
            .then_output(|| {
                aws_sdk_dynamodb::operation::put_item::PutItemOutput::builder().build()
            });
        let client = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::MatchAny,
            [&no_checkpoint, &first, &never, &deleted, &saved]
        );
        let stop = Arc::new(AtomicBool::new(false));
        let stop_after_first_page = stop.clone();
        let collector = GarbageCollector::new(client, &config())
            .unwrap()
            .with_segments(1)
            .with_stop_flag(stop)
            .on_progress(move |_| {
                stop_after_first_page.store(true, std::sync::atomic::Ordering::Relaxed)
            });

        let report = collector.collect_all().await.unwrap();
        assert_eq!(report.status, PassStatus::Continuing);
        assert_eq!(
            (report.pages, report.deleted, report.segments_done),
            (1, 1, 0)
        );
        assert_eq!(
            (first.num_calls(), never.num_calls(), saved.num_calls()),
            (1, 0, 1)
        );
    }

    #[tokio::test]
    async fn a_stop_flag_set_before_the_run_reads_no_page() {
        let no_checkpoint =
            mock!(Client::get_item).then_output(|| GetItemOutput::builder().build());
        let scan = mock!(Client::scan).then_output(|| ScanOutput::builder().build());
        let client = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::MatchAny,
            [&no_checkpoint, &scan]
        );
        let collector = GarbageCollector::new(client, &config())
            .unwrap()
            .with_stop_flag(Arc::new(AtomicBool::new(true)));

        let report = collector.collect_all().await.unwrap();
        assert_eq!(report.status, PassStatus::Continuing);
        assert_eq!((report.pages, scan.num_calls()), (0, 0));
    }

    #[tokio::test]
    async fn a_refused_delete_is_not_retried() {
        let no_checkpoint =
            mock!(Client::get_item).then_output(|| GetItemOutput::builder().build());
        let one_page = mock!(Client::scan).then_output(|| {
            ScanOutput::builder()
                .items(HashMap::from([(
                    "session_id".to_owned(),
                    AttributeValue::S("dead".into()),
                )]))
                .build()
        });
        let denied = mock!(Client::delete_item).then_error(|| {
            DeleteItemError::generic(
                aws_sdk_dynamodb::error::ErrorMetadata::builder()
                    .code("AccessDeniedException")
                    .build(),
            )
        });
        let client = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::MatchAny,
            [&no_checkpoint, &one_page, &denied]
        );
        let collector = GarbageCollector::new(client, &config())
            .unwrap()
            .with_limits(GcLimits {
                max_age: Some(Duration::from_secs(60)),
                max_stale: None,
            })
            .with_segments(1);

        let err = collector.collect_all().await.unwrap_err();
        assert!(matches!(err, Error::DynamoDb(_)), "{err:?}");
        assert_eq!(denied.num_calls(), 1);
    }
}
