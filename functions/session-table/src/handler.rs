//! Create, Update and Delete requests for the `Custom::SessionTable` resource.
//!
//! Whatever happens, CloudFormation gets an answer: the table work runs in its own task, so
//! a panic there becomes a FAILED answer, and if it is still running shortly before the
//! invocation's deadline it is abandoned and FAILED is answered instead. A stack waiting on a
//! resource that never answers hangs for an hour.

use std::collections::HashMap;
use std::time::Duration;

use aws_lambda_events::event::cloudformation::CloudFormationCustomResourceRequest;
use aws_sdk_dynamodb::Client;
use dynamodb_session_store::deadline::Deadline;
use dynamodb_session_store::table::{Creation, Deletion, SessionTable};
use lambda_runtime::LambdaEvent;
use serde_json::Value;
use tracing::Instrument as _;

use crate::properties::{Properties, is_valid_table_name, parse_properties, table_key_of};
use crate::response::{Delivery, Echo, Outcome, deliver, describe, response_body};

/// The request type this function handles.
pub type Request = CloudFormationCustomResourceRequest;

/// Prefix of the physical id answered for a failed Create. It is not a valid table name, so
/// the Delete that CloudFormation sends while rolling back the failed Create deletes nothing:
/// the name may belong to a table this resource never owned.
pub const CREATE_FAILED_PREFIX: &str = "create-failed:";

/// The tags on every table this resource creates (the library's, also read by `sessionctl`).
pub use dynamodb_session_store::table::{LOGICAL_ID_TAG, STACK_ID_TAG};

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
    /// The time left comes from the context's deadline through
    /// [`Deadline::from_lambda_millis`], the rule every function of this workspace uses: Unix
    /// milliseconds on Lambda, a time budget from a local emulator, or no deadline at all
    /// (then the table work is not time-bounded).
    ///
    /// Tables it creates are tagged with the stack's id ([`STACK_ID_TAG`]) and the
    /// resource's logical id ([`LOGICAL_ID_TAG`]); only such tables are ever deleted. An
    /// existing table without these tags fails the Create unless the property
    /// `AdoptExisting` is `true`. Idempotent, so Lambda's and CloudFormation's retries are
    /// harmless: a repeated Create finds its own tagged table, a repeated Delete a missing
    /// one.
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
            let deadline = Deadline::from_lambda_millis(context.deadline);
            match deadline {
                Some(deadline) => tracing::debug!(remaining = ?deadline.remaining(), "time left"),
                None => tracing::info!(
                    "the invocation's context has no deadline; the table work is not time-bounded"
                ),
            }
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
        deadline: Option<Deadline>,
    ) -> Outcome {
        let budget = deadline.map(|d| d.less(self.options.deadline_margin).remaining());
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
        let owner = common.echo.clone();
        let failure_id = common.failure_id.clone();
        let mut work = tokio::spawn(
            async move { perform(&dynamodb, &owner, &failure_id, request).await }.in_current_span(),
        );
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
                             (a Create finds the table it tagged, a Delete a missing table)",
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
/// request times (each attempt is further bounded by [`Delivery::attempt_timeout`]), and no
/// redirects followed: the answer goes to the pre-signed URL CloudFormation gave and nowhere
/// else, so a redirect is a failed delivery.
///
/// # Errors
///
/// When the TLS backend cannot be initialised (no usable root certificates).
pub fn http_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
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

/// Does the work of `request`; `failure_id` is [`Common::failure_id`], the physical id a
/// failed Create answers with.
async fn perform(dynamodb: &Client, owner: &Echo, failure_id: &str, request: Request) -> Outcome {
    match request {
        Request::Create(r) => create(dynamodb, owner, failure_id, &r.resource_properties).await,
        Request::Update(r) => {
            update(
                dynamodb,
                owner,
                &r.physical_resource_id,
                &r.resource_properties,
                &r.old_resource_properties,
            )
            .await
        }
        Request::Delete(r) => delete(dynamodb, owner, &r.physical_resource_id).await,
        _ => unreachable!("Common::of refused other request types"),
    }
}

/// `table` with the tags that mark it as this resource's: the stack's and the resource's
/// ids, both echoed by every request, so every attempt of every request computes the same.
fn owned_by(table: SessionTable, owner: &Echo) -> SessionTable {
    table
        .tag(STACK_ID_TAG, &owner.stack_id)
        .tag(LOGICAL_ID_TAG, &owner.logical_resource_id)
}

/// How the resource came to manage a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    /// It created the table now.
    Created,
    /// The table carries its tags: an earlier attempt of this request, or an earlier
    /// request of this resource, created it.
    Own,
    /// Someone else's table, taken over because the resource says `AdoptExisting: true`.
    Adopted,
}

impl Claim {
    fn state(self) -> &'static str {
        match self {
            Claim::Created => "was created by this resource and is active",
            Claim::Own => "(created earlier by this resource) is active",
            Claim::Adopted => {
                "was adopted (AdoptExisting) and is active; this resource will never delete it"
            }
        }
    }
}

/// Makes sure `table` exists and may be managed by this resource: creates it (tagged) when
/// missing; an existing table must carry this resource's tags, or be adopted explicitly.
/// A refusal changes nothing and says why (without the table's name, which the caller
/// puts first).
async fn claim(dynamodb: &Client, table: &SessionTable, adopt: bool) -> Result<Claim, String> {
    let existing = match table.inspect(dynamodb).await.map_err(|e| describe(&e))? {
        Some(existing) => existing,
        None => match table
            .create_if_missing(dynamodb)
            .await
            .map_err(|e| describe(&e))?
        {
            Creation::Created => return Ok(Claim::Created),
            // Made by someone else between the two calls: judged like any existing table.
            Creation::AlreadyExists => table
                .inspect(dynamodb)
                .await
                .map_err(|e| describe(&e))?
                .ok_or("it appeared and vanished again while being created; retry")?,
        },
    };
    if existing.deleting {
        return Err("a table of that name is being deleted; retry once it is gone".into());
    }
    if table.owns(&existing) {
        return Ok(Claim::Own);
    }
    if adopt {
        tracing::warn!(table = %table.name, arn = %existing.arn, "adopting an existing table (AdoptExisting)");
        return Ok(Claim::Adopted);
    }
    Err(format!(
        "a table of that name already exists and this resource did not create it (it lacks \
         the tags {STACK_ID_TAG} and {LOGICAL_ID_TAG} of this stack and resource); nothing was \
         changed. To manage it anyway, set the property AdoptExisting to true (an adopted \
         table is never deleted by this resource), or choose another TableName"
    ))
}

/// Claims `table`, waits until it is active and turns TTL on.
async fn claim_and_prepare(
    dynamodb: &Client,
    table: &SessionTable,
    adopt: bool,
) -> Result<(Claim, String), String> {
    let claim = claim(dynamodb, table, adopt).await?;
    let arn = table.prepare(dynamodb).await.map_err(|e| describe(&e))?;
    Ok((claim, arn))
}

async fn create(dynamodb: &Client, owner: &Echo, failure_id: &str, properties: &Value) -> Outcome {
    let Properties {
        table,
        adopt_existing,
    } = match parse_properties(properties) {
        Ok(properties) => properties,
        Err(invalid) => return Outcome::failed(failure_id, invalid.to_string()),
    };
    let table = owned_by(table, owner);
    match claim_and_prepare(dynamodb, &table, adopt_existing).await {
        Ok((claim, arn)) => success(&table, &arn, claim.state()),
        Err(reason) => Outcome::failed(
            failure_id,
            format!("could not create table {}: {reason}", table.name),
        ),
    }
}

async fn update(
    dynamodb: &Client,
    owner: &Echo,
    current: &str,
    properties: &Value,
    old: &Value,
) -> Outcome {
    let Properties {
        table,
        adopt_existing,
    } = match parse_properties(properties) {
        Ok(properties) => properties,
        Err(invalid) => return Outcome::failed(current, invalid.to_string()),
    };
    let table = owned_by(table, owner);
    if table.name != current {
        // A new table, under the same rules as a Create; answering with its name makes
        // CloudFormation send a Delete for the old one, which deletes it only if this
        // resource created it (and the template's UpdateReplacePolicy may retain it anyway).
        return match claim_and_prepare(dynamodb, &table, adopt_existing).await {
            Ok((claim, arn)) => success(&table, &arn, claim.state()),
            Err(reason) => Outcome::failed(
                current,
                format!(
                    "could not create replacement table {}: {reason}",
                    table.name
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
    // Same name: the resource already manages this table (it created or adopted it).
    match table.update(dynamodb).await {
        Ok(arn) => success(&table, &arn, "is up to date"),
        Err(e) => Outcome::failed(
            current,
            format!("could not update table {}: {}", table.name, describe(&e)),
        ),
    }
}

async fn delete(dynamodb: &Client, owner: &Echo, current: &str) -> Outcome {
    let done = |reason: String| Outcome::success(current, reason, HashMap::new());
    if !is_valid_table_name(current) {
        // The placeholder of a failed Create (or anything else that cannot be a table).
        return done(format!("{current} is not a table name; nothing to delete"));
    }
    let table = owned_by(SessionTable::new(current), owner);
    match table.delete_if_owned(dynamodb).await {
        Ok(Deletion::Deleted) => done(format!(
            "table {current}, created by this resource, is deleted"
        )),
        Ok(Deletion::Missing) => done(format!("table {current} does not exist; nothing to delete")),
        Ok(Deletion::AlreadyDeleting) => done(format!(
            "table {current} is already being deleted; nothing more to do"
        )),
        // The library has already warned; the reason tells CloudFormation.
        Ok(Deletion::NotOwned(_)) => done(format!(
            "table {current} was NOT deleted: this resource did not create it (it was \
             adopted, or belongs to someone else), so it is left in place"
        )),
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
