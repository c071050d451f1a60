//! Create, Update and Delete requests for the `Custom::SessionTable` resource.
//!
//! Whatever happens, CloudFormation gets an answer: the table work runs in its own task, so
//! a panic there becomes a FAILED answer, and if it is still running shortly before the
//! invocation's deadline it is abandoned and FAILED is answered instead. A stack waiting on a
//! resource that never answers hangs for an hour.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::cloudformation::CloudFormationCustomResourceRequest;
use aws_sdk_dynamodb::Client;
use dynamodb_session_store::SessionTable;
use lambda_runtime::LambdaEvent;
use serde_json::Value;
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::properties::{is_valid_table_name, table_from_properties, table_key_of};
use crate::response::{Delivery, Echo, Outcome, deliver, describe, response_body};

/// The request type this function handles.
pub type Request = CloudFormationCustomResourceRequest;

/// Prefix of the physical id answered for a failed Create. It is not a valid table name, so
/// the Delete that CloudFormation sends while rolling back the failed Create deletes nothing:
/// the name may belong to a table this resource never owned.
pub const CREATE_FAILED_PREFIX: &str = "create-failed:";

/// How the handler spends its time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// If the table work is still running this long before the invocation's deadline, it is
    /// abandoned and FAILED is answered. It must leave room to deliver the answer.
    pub deadline_margin: Duration,
    /// Retries and timeouts for delivering the answer.
    pub delivery: Delivery,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            deadline_margin: Duration::from_secs(10),
            delivery: Delivery::default(),
        }
    }
}

/// The custom resource's Lambda handler.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> Result<(), lambda_runtime::Error> {
/// let config = aws_config::load_from_env().await;
/// let handler = session_table::Handler::new(
///     aws_sdk_dynamodb::Client::new(&config),
///     session_table::http_client()?,
/// );
/// lambda_runtime::run(lambda_runtime::service_fn(|event| handler.handle(event))).await
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Handler {
    dynamodb: Client,
    http: reqwest::Client,
    options: Options,
}

impl Handler {
    /// A handler managing tables through `dynamodb` and answering through `http`.
    pub fn new(dynamodb: Client, http: reqwest::Client) -> Self {
        Handler {
            dynamodb,
            http,
            options: Options::default(),
        }
    }

    /// Replaces the default [`Options`].
    pub fn with_options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    /// Does what `event` asks and PUTs the answer to its `ResponseURL`.
    ///
    /// Idempotent, so Lambda's and CloudFormation's retries are harmless: creating an
    /// existing table or deleting a missing one succeeds.
    ///
    /// # Errors
    ///
    /// Only when the answer could not be delivered. The invocation then fails, and Lambda's
    /// retries of the asynchronous invocation get another chance to answer.
    pub async fn handle(&self, event: LambdaEvent<Request>) -> Result<(), lambda_runtime::Error> {
        let (request, context) = event.into_parts();
        let Some(common) = Common::of(&request) else {
            return Err("unsupported CloudFormation request type".into());
        };
        let span = tracing::info_span!(
            "custom_resource",
            request_type = common.request_type,
            logical_resource_id = %common.echo.logical_resource_id,
            request_id = %common.echo.request_id,
        );
        async move {
            let deadline = deadline_instant(context.deadline);
            let mut outcome = self.outcome(request, &common, deadline).await;
            if outcome.is_failed() {
                tracing::error!(reason = %outcome.reason, "answering FAILED");
                if !context.env_config.log_stream.is_empty() {
                    outcome.reason.push_str(&format!(
                        " (details in CloudWatch log stream {})",
                        context.env_config.log_stream
                    ));
                }
            } else {
                tracing::info!(physical_resource_id = %outcome.physical_resource_id, "answering SUCCESS");
            }
            let body = response_body(&common.echo, &outcome);
            deliver(
                &self.http,
                &common.response_url,
                &body,
                &self.options.delivery,
                deadline,
            )
            .await?;
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Runs the work in its own task, bounded by the deadline, and turns a panic or a
    /// timeout into a FAILED outcome.
    async fn outcome(
        &self,
        request: Request,
        common: &Common,
        deadline: Option<Instant>,
    ) -> Outcome {
        let budget = deadline.map(|d| {
            d.saturating_duration_since(Instant::now())
                .saturating_sub(self.options.deadline_margin)
        });
        if budget.is_some_and(|b| b.is_zero()) {
            return Outcome::failed(
                &common.failure_id,
                format!(
                    "the invocation started with less than {:?} left before its deadline; \
                     nothing was done (raise the function's Timeout)",
                    self.options.deadline_margin
                ),
            );
        }
        let dynamodb = self.dynamodb.clone();
        let mut work =
            tokio::spawn(async move { perform(&dynamodb, request).await }.in_current_span());
        let joined = match budget {
            Some(budget) => match tokio::time::timeout(budget, &mut work).await {
                Ok(joined) => joined,
                Err(_) => {
                    work.abort();
                    return Outcome::failed(
                        &common.failure_id,
                        format!(
                            "the table operation did not finish within {}s, {}s before the \
                             function's timeout; retrying the stack operation resumes it \
                             (creating an existing table or deleting a missing one succeeds)",
                            budget.as_secs(),
                            self.options.deadline_margin.as_secs(),
                        ),
                    );
                }
            },
            None => work.await,
        };
        match joined {
            Ok(outcome) => outcome,
            Err(e) if e.is_panic() => {
                let payload = e.into_panic();
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "no message".into());
                Outcome::failed(
                    &common.failure_id,
                    format!("the table operation panicked: {message}"),
                )
            }
            Err(e) => Outcome::failed(
                &common.failure_id,
                format!("the table operation was cancelled: {e}"),
            ),
        }
    }
}

/// A reqwest client for answering CloudFormation: rustls, HTTP/1, bounded connect and
/// request times (each attempt is further bounded by [`Delivery::attempt_timeout`]).
///
/// # Errors
///
/// When the TLS backend cannot be initialised (no usable root certificates).
pub fn http_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(10))
        .build()
}

/// What every answer needs, taken from the request before the work consumes it.
struct Common {
    request_type: &'static str,
    echo: Echo,
    response_url: String,
    /// The physical id of a FAILED answer: the current one, or for a Create, a
    /// placeholder that no Delete mistakes for a table.
    failure_id: String,
}

impl Common {
    fn of(request: &Request) -> Option<Common> {
        let (request_type, stack_id, request_id, logical_id, url, failure_id) = match request {
            Request::Create(r) => (
                "Create",
                &r.stack_id,
                &r.request_id,
                &r.logical_resource_id,
                &r.response_url,
                format!("{CREATE_FAILED_PREFIX}{}", r.request_id),
            ),
            Request::Update(r) => (
                "Update",
                &r.stack_id,
                &r.request_id,
                &r.logical_resource_id,
                &r.response_url,
                r.physical_resource_id.clone(),
            ),
            Request::Delete(r) => (
                "Delete",
                &r.stack_id,
                &r.request_id,
                &r.logical_resource_id,
                &r.response_url,
                r.physical_resource_id.clone(),
            ),
            _ => return None,
        };
        Some(Common {
            request_type,
            echo: Echo {
                stack_id: stack_id.clone(),
                request_id: request_id.clone(),
                logical_resource_id: logical_id.clone(),
            },
            response_url: url.clone(),
            failure_id,
        })
    }
}

/// The invocation's deadline (milliseconds since the epoch; 0 when unknown) as an instant.
fn deadline_instant(deadline_ms: u64) -> Option<Instant> {
    if deadline_ms == 0 {
        return None;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let left = Duration::from_millis(deadline_ms).saturating_sub(now);
    Some(Instant::now() + left)
}

async fn perform(dynamodb: &Client, request: Request) -> Outcome {
    match request {
        Request::Create(r) => create(dynamodb, &r.request_id, &r.resource_properties).await,
        Request::Update(r) => {
            update(
                dynamodb,
                &r.physical_resource_id,
                &r.resource_properties,
                &r.old_resource_properties,
            )
            .await
        }
        Request::Delete(r) => delete(dynamodb, &r.physical_resource_id).await,
        _ => unreachable!("Common::of refused other request types"),
    }
}

async fn create(dynamodb: &Client, request_id: &str, properties: &Value) -> Outcome {
    let failure_id = format!("{CREATE_FAILED_PREFIX}{request_id}");
    let table = match table_from_properties(properties) {
        Ok(table) => table,
        Err(invalid) => return Outcome::failed(failure_id, invalid.to_string()),
    };
    match table.create(dynamodb).await {
        Ok(arn) => success(&table, &arn, "is active"),
        Err(e) => Outcome::failed(
            failure_id,
            format!("could not create table {}: {}", table.name, describe(&e)),
        ),
    }
}

async fn update(dynamodb: &Client, current: &str, properties: &Value, old: &Value) -> Outcome {
    let table = match table_from_properties(properties) {
        Ok(table) => table,
        Err(invalid) => return Outcome::failed(current, invalid.to_string()),
    };
    if table.name != current {
        // A new table; answering with its name makes CloudFormation send a Delete for the
        // old one (which the template's UpdateReplacePolicy may retain).
        return match table.create(dynamodb).await {
            Ok(arn) => success(&table, &arn, "replaces the previous table"),
            Err(e) => Outcome::failed(
                current,
                format!(
                    "could not create replacement table {}: {}",
                    table.name,
                    describe(&e)
                ),
            ),
        };
    }
    let old_key = table_key_of(old);
    if old_key != table.key {
        // DynamoDB cannot change a table's key. Refusing here would also refuse the Update
        // CloudFormation sends to roll that refusal back (old and new swapped), leaving the
        // stack stuck; so the table is updated in place as it is, and this is said loudly.
        tracing::warn!(
            table = %table.name,
            old_key,
            new_key = %table.key,
            "TableKey changed without a new TableName: DynamoDB cannot change a table's key; \
             give the table a new TableName to get a table with the new key"
        );
    }
    match table.update(dynamodb).await {
        Ok(arn) => success(&table, &arn, "is up to date"),
        Err(e) => Outcome::failed(
            current,
            format!("could not update table {}: {}", table.name, describe(&e)),
        ),
    }
}

async fn delete(dynamodb: &Client, current: &str) -> Outcome {
    if !is_valid_table_name(current) {
        // The placeholder of a failed Create (or anything else that cannot be a table).
        return Outcome::success(
            current,
            format!("{current} is not a table name; nothing to delete"),
            HashMap::new(),
        );
    }
    match SessionTable::new(current).delete(dynamodb).await {
        Ok(()) => Outcome::success(current, format!("table {current} is gone"), HashMap::new()),
        Err(e) => Outcome::failed(
            current,
            format!("could not delete table {current}: {}", describe(&e)),
        ),
    }
}

fn success(table: &SessionTable, arn: &str, state: &str) -> Outcome {
    Outcome::success(
        &table.name,
        format!(
            "table {} {state}, TTL on {}",
            table.name, table.ttl_attribute
        ),
        HashMap::from([
            ("TableName".to_owned(), table.name.clone()),
            ("TableArn".to_owned(), arn.to_owned()),
        ]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_deadline_sets_no_limit() {
        assert_eq!(deadline_instant(0), None);
    }

    #[test]
    fn a_past_deadline_is_now() {
        let deadline = deadline_instant(1).unwrap();
        assert!(deadline <= Instant::now());
    }

    #[test]
    fn the_create_failure_placeholder_is_never_a_table_name() {
        let placeholder = format!("{CREATE_FAILED_PREFIX}f8c1d7e4-5b7a-4d6e-9c1f-0a2b3c4d5e6f");
        assert!(!is_valid_table_name(&placeholder));
    }

    #[test]
    fn requests_yield_what_every_answer_echoes() {
        let request: Request = serde_json::from_value(serde_json::json!({
            "RequestType": "Delete",
            "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:f",
            "ResponseURL": "https://example.com/presigned",
            "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/s/guid",
            "RequestId": "r-1",
            "LogicalResourceId": "SessionTable",
            "PhysicalResourceId": "sessions",
            "ResourceType": "Custom::SessionTable",
            "ResourceProperties": {"TableName": "sessions"},
        }))
        .unwrap();
        let common = Common::of(&request).unwrap();
        assert_eq!(common.request_type, "Delete");
        assert_eq!(common.failure_id, "sessions");
        assert_eq!(common.echo.request_id, "r-1");
        assert_eq!(common.response_url, "https://example.com/presigned");
    }
}
