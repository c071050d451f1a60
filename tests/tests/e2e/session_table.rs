//! The `Custom::SessionTable` handler, driven with fixture CloudFormation events against the
//! local DynamoDB, answering to a local HTTP server that stands in for the pre-signed S3
//! `ResponseURL`. Every test reads the answer CloudFormation would have received.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::types::{BillingMode, KeyType, TimeToLiveStatus};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header::LOCATION};
use axum::response::IntoResponse as _;
use integration_tests::tables::{bare_table, describe, exists, tags, ttl};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use session_table::{
    Delivery, Handler, LOGICAL_ID_TAG, Options, Request, STACK_ID_TAG, http_client,
};

const CREATE: &str = include_str!("../../data/cfn-create.json");
const UPDATE: &str = include_str!("../../data/cfn-update.json");
const DELETE: &str = include_str!("../../data/cfn-delete.json");

/// The origin of the fixtures' pre-signed URLs; tests swap it for the local server's.
const S3_ORIGIN: &str = "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com";

/// One PUT the local server received.
#[derive(Debug, Clone)]
struct Received {
    method: Method,
    /// Path and query, as sent.
    target: String,
    content_type: Option<String>,
    body: Value,
    /// When it arrived, in milliseconds since the epoch (comparable to a Lambda deadline).
    at_ms: u64,
}

/// The stand-in for CloudFormation's response bucket.
struct ResponseServer {
    origin: String,
    received: Arc<Mutex<Vec<Received>>>,
    /// Statuses to answer before answering 200, in order (a 3xx with a Location header).
    refusals: Arc<Mutex<Vec<StatusCode>>>,
    task: tokio::task::JoinHandle<()>,
}

impl ResponseServer {
    async fn start() -> ResponseServer {
        let received = Arc::new(Mutex::new(Vec::new()));
        let refusals = Arc::new(Mutex::new(Vec::new()));
        let (log, plan) = (received.clone(), refusals.clone());
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: String| {
                let (log, plan) = (log.clone(), plan.clone());
                async move {
                    log.lock().unwrap().push(Received {
                        method,
                        target: uri.to_string(),
                        content_type: headers
                            .get("content-type")
                            .map(|v| v.to_str().unwrap().to_owned()),
                        body: serde_json::from_str(&body).unwrap_or(Value::String(body)),
                        at_ms: now_ms(),
                    });
                    let mut plan = plan.lock().unwrap();
                    let status = if plan.is_empty() {
                        StatusCode::OK
                    } else {
                        plan.remove(0)
                    };
                    if status.is_redirection() {
                        (status, [(LOCATION, "/redirected")]).into_response()
                    } else {
                        status.into_response()
                    }
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        ResponseServer {
            origin,
            received,
            refusals,
            task,
        }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The one answer received since the last call.
    fn take_answer(&self) -> Received {
        let mut received = self.received.lock().unwrap();
        assert_eq!(
            received.len(),
            1,
            "expected exactly one answer: {received:?}"
        );
        received.remove(0)
    }
}

impl Drop for ResponseServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A fixture with its ResponseURL pointed at `server` and its table named `table`.
fn event(fixture: &str, server: &ResponseServer, table: &str) -> Value {
    let mut event: Value = serde_json::from_str(fixture).unwrap();
    let url = event["ResponseURL"].as_str().unwrap().to_owned();
    event["ResponseURL"] = url.replacen(S3_ORIGIN, &server.origin, 1).into();
    for properties in ["ResourceProperties", "OldResourceProperties"] {
        if event.get(properties).is_some() {
            event[properties]["TableName"] = table.into();
        }
    }
    if event.get("PhysicalResourceId").is_some() {
        event["PhysicalResourceId"] = table.into();
    }
    event
}

/// Invokes the handler as Lambda would, with `time_left` before the invocation's deadline.
async fn invoke(
    handler: &Handler,
    event: &Value,
    time_left: Duration,
) -> Result<(), lambda_runtime::Error> {
    invoke_with_deadline(handler, event, now_ms() + time_left.as_millis() as u64).await
}

/// Invokes the handler with the context's `deadline` field set to `deadline_ms` as is.
async fn invoke_with_deadline(
    handler: &Handler,
    event: &Value,
    deadline_ms: u64,
) -> Result<(), lambda_runtime::Error> {
    let request: Request = serde_json::from_value(event.clone()).unwrap();
    let mut context = Context::default();
    context.request_id = "lambda-invocation-1".into();
    context.deadline = deadline_ms;
    handler.handle(LambdaEvent::new(request, context)).await
}

/// Invokes the handler with a minute to spare and returns the one answer it sent.
async fn answer(handler: &Handler, server: &ResponseServer, event: &Value) -> Value {
    invoke(handler, event, Duration::from_secs(60))
        .await
        .expect("the answer is delivered");
    let received = server.take_answer();
    assert_eq!(received.method, Method::PUT);
    assert_eq!(
        received.content_type.as_deref(),
        Some(""),
        "the pre-signed URL is signed with an empty Content-Type"
    );
    let sent_to = event["ResponseURL"].as_str().unwrap();
    assert_eq!(
        format!("{}{}", server.origin, received.target),
        sent_to,
        "the pre-signed URL is used exactly as given"
    );
    let body = received.body;
    for echoed in ["StackId", "RequestId", "LogicalResourceId"] {
        assert_eq!(body[echoed], event[echoed], "{echoed} is echoed");
    }
    assert!(
        body["Reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{body}"
    );
    body
}

async fn handler_on(client: Client) -> Handler {
    Handler::new(client, http_client().unwrap())
}

#[tokio::test]
async fn create_update_and_delete_manage_the_table_and_answer_each_time() {
    let client = integration_tests::client().await;
    let handler = handler_on(client.clone()).await;
    let server = ResponseServer::start().await;
    let name = integration_tests::table_name("cfn_lifecycle");

    // Create: an active on-demand table with TTL on.
    let created = answer(&handler, &server, &event(CREATE, &server, &name)).await;
    assert_eq!(created["Status"], "SUCCESS", "{created}");
    assert_eq!(created["PhysicalResourceId"], name.as_str());
    assert_eq!(created["Data"]["TableName"], name.as_str());
    let arn = created["Data"]["TableArn"].as_str().unwrap().to_owned();
    assert!(arn.ends_with(&format!(":table/{name}")), "{arn}");
    let table = describe(&client, &name).await;
    assert_eq!(table.table_status.unwrap().as_str(), "ACTIVE");
    let key = &table.key_schema.unwrap()[0];
    assert_eq!(
        (key.attribute_name.as_str(), &key.key_type),
        ("session_id", &KeyType::Hash)
    );
    assert_eq!(
        table.billing_mode_summary.and_then(|s| s.billing_mode),
        Some(BillingMode::PayPerRequest)
    );
    assert_eq!(
        ttl(&client, &name).await,
        (Some(TimeToLiveStatus::Enabled), Some("expire_at".into()))
    );
    // Marked as this resource's: the stack's id and the resource's logical id.
    let fixture: Value = serde_json::from_str(CREATE).unwrap();
    assert_eq!(
        tags(&client, &name).await,
        BTreeMap::from([
            (
                STACK_ID_TAG.to_owned(),
                fixture["StackId"].as_str().unwrap().to_owned()
            ),
            (LOGICAL_ID_TAG.to_owned(), "SessionTable".to_owned()),
        ])
    );

    // A repeated Create (Lambda retrying the invocation) finds its own table and succeeds.
    let again = answer(&handler, &server, &event(CREATE, &server, &name)).await;
    assert_eq!(again["Status"], "SUCCESS", "{again}");
    assert_eq!(again["Data"]["TableArn"], arn.as_str());

    // Update with the same name: billing switches to provisioned in place.
    let updated = answer(&handler, &server, &event(UPDATE, &server, &name)).await;
    assert_eq!(updated["Status"], "SUCCESS", "{updated}");
    assert_eq!(updated["PhysicalResourceId"], name.as_str());
    assert_eq!(updated["Data"], json!({"TableName": name, "TableArn": arn}));
    let table = describe(&client, &name).await;
    let throughput = table.provisioned_throughput.unwrap();
    assert_eq!(
        (
            throughput.read_capacity_units,
            throughput.write_capacity_units
        ),
        (Some(7), Some(3))
    );
    assert_eq!(
        table.billing_mode_summary.and_then(|s| s.billing_mode),
        Some(BillingMode::Provisioned)
    );

    // Delete: the table is gone; a repeated Delete still succeeds.
    let deleted = answer(&handler, &server, &event(DELETE, &server, &name)).await;
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
    assert_eq!(
        deleted["Reason"],
        format!("table {name}, created by this resource, is deleted")
    );
    assert_eq!(deleted["PhysicalResourceId"], name.as_str());
    assert_eq!(deleted["Data"], json!({}));
    assert!(!exists(&client, &name).await);
    let again = answer(&handler, &server, &event(DELETE, &server, &name)).await;
    assert_eq!(again["Status"], "SUCCESS", "{again}");
    assert_eq!(
        again["Reason"],
        format!("table {name} does not exist; nothing to delete")
    );
}

#[tokio::test]
async fn an_update_to_a_new_name_and_key_creates_a_new_table_and_keeps_the_old_one() {
    let client = integration_tests::client().await;
    let handler = handler_on(client.clone()).await;
    let server = ResponseServer::start().await;
    let old = integration_tests::table_name("cfn_replace_old");
    let new = integration_tests::table_name("cfn_replace_new");
    let created = answer(&handler, &server, &event(CREATE, &server, &old)).await;
    assert_eq!(created["Status"], "SUCCESS", "{created}");

    let mut update = event(UPDATE, &server, &old);
    update["ResourceProperties"]["TableName"] = new.as_str().into();
    update["ResourceProperties"]["TableKey"] = "sid".into();
    let replaced = answer(&handler, &server, &update).await;
    assert_eq!(replaced["Status"], "SUCCESS", "{replaced}");
    assert_eq!(replaced["PhysicalResourceId"], new.as_str());
    assert_eq!(replaced["Data"]["TableName"], new.as_str());
    assert!(
        replaced["Data"]["TableArn"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":table/{new}"))
    );
    let key = describe(&client, &new).await.key_schema.unwrap().remove(0);
    assert_eq!(key.attribute_name, "sid");
    assert_eq!(
        ttl(&client, &new).await,
        (Some(TimeToLiveStatus::Enabled), Some("expire_at".into()))
    );
    // The old table stays until CloudFormation sends its Delete.
    assert!(exists(&client, &old).await);
    let deleted = answer(&handler, &server, &event(DELETE, &server, &old)).await;
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
    assert!(!exists(&client, &old).await);
    assert!(exists(&client, &new).await);
}

#[tokio::test]
async fn a_missing_table_name_fails_and_the_rollback_delete_touches_nothing() {
    let client = integration_tests::client().await;
    let handler = handler_on(client.clone()).await;
    let server = ResponseServer::start().await;
    let bystander = integration_tests::TestTable::new("cfn_bystander").await;

    let mut create = event(CREATE, &server, "unused");
    create["ResourceProperties"]
        .as_object_mut()
        .unwrap()
        .remove("TableName");
    let failed = answer(&handler, &server, &create).await;
    assert_eq!(failed["Status"], "FAILED", "{failed}");
    assert_eq!(
        failed["Reason"], "invalid property TableName: is required",
        "{failed}"
    );
    let placeholder = failed["PhysicalResourceId"].as_str().unwrap().to_owned();
    assert_eq!(
        placeholder,
        format!(
            "{}{}",
            session_table::CREATE_FAILED_PREFIX,
            create["RequestId"].as_str().unwrap()
        )
    );
    assert_eq!(failed["Data"], json!({}));

    // CloudFormation rolls the failed Create back with a Delete of the placeholder.
    let mut delete = event(DELETE, &server, &placeholder);
    delete["ResourceProperties"] = create["ResourceProperties"].clone();
    let rolled_back = answer(&handler, &server, &delete).await;
    assert_eq!(rolled_back["Status"], "SUCCESS", "{rolled_back}");
    assert_eq!(rolled_back["PhysicalResourceId"], placeholder.as_str());
    assert!(exists(&client, &bystander.name).await);
}

#[tokio::test]
async fn a_bad_billing_mode_fails_create_and_update_with_a_reason() {
    let client = integration_tests::client().await;
    let handler = handler_on(client.clone()).await;
    let server = ResponseServer::start().await;
    let name = integration_tests::table_name("cfn_bad_billing");

    let mut create = event(CREATE, &server, &name);
    create["ResourceProperties"]["BillingMode"] = "CHEAP".into();
    let failed = answer(&handler, &server, &create).await;
    assert_eq!(failed["Status"], "FAILED", "{failed}");
    let reason = failed["Reason"].as_str().unwrap();
    assert!(
        reason.starts_with("invalid property BillingMode: \"CHEAP\""),
        "{reason}"
    );
    assert!(reason.contains("PAY_PER_REQUEST"), "{reason}");
    assert!(!exists(&client, &name).await, "nothing was created");

    // On an existing table, a bad Update fails with the current id and changes nothing.
    let table = integration_tests::TestTable::new("cfn_bad_billing_update").await;
    let mut update = event(UPDATE, &server, &table.name);
    update["ResourceProperties"]["BillingMode"] = "CHEAP".into();
    let failed = answer(&handler, &server, &update).await;
    assert_eq!(failed["Status"], "FAILED", "{failed}");
    assert_eq!(failed["PhysicalResourceId"], table.name.as_str());
    assert!(
        failed["Reason"]
            .as_str()
            .unwrap()
            .starts_with("invalid property BillingMode"),
        "{failed}"
    );
    let mode = describe(&client, &table.name)
        .await
        .billing_mode_summary
        .and_then(|s| s.billing_mode);
    assert_eq!(mode, Some(BillingMode::PayPerRequest));
}

#[tokio::test]
async fn dynamodb_failures_are_answered_failed_with_the_cause() {
    let working = integration_tests::client().await;
    // Nothing listens on a port that was just free; no SDK retries, to fail at once.
    let unreachable = Client::from_conf(
        working
            .config()
            .to_builder()
            .endpoint_url(format!(
                "http://127.0.0.1:{}",
                integration_tests::free_port()
            ))
            .retry_config(RetryConfig::disabled())
            .build(),
    );
    let handler = handler_on(unreachable).await;
    let server = ResponseServer::start().await;
    let name = integration_tests::table_name("cfn_unreachable");

    let failed = answer(&handler, &server, &event(CREATE, &server, &name)).await;
    assert_eq!(failed["Status"], "FAILED", "{failed}");
    let reason = failed["Reason"].as_str().unwrap();
    assert!(
        reason.starts_with(&format!(
            "could not create table {name}: DynamoDB request failed"
        )),
        "{reason}"
    );
    assert!(
        failed["PhysicalResourceId"]
            .as_str()
            .unwrap()
            .starts_with(session_table::CREATE_FAILED_PREFIX)
    );

    let failed = answer(&handler, &server, &event(DELETE, &server, &name)).await;
    assert_eq!(failed["Status"], "FAILED", "{failed}");
    assert_eq!(failed["PhysicalResourceId"], name.as_str());
    assert!(
        failed["Reason"]
            .as_str()
            .unwrap()
            .starts_with(&format!("could not delete table {name}")),
        "{failed}"
    );
}

#[tokio::test]
async fn a_table_refused_by_dynamodb_is_answered_failed() {
    let client = integration_tests::client().await;
    let handler = handler_on(client.clone()).await;
    let server = ResponseServer::start().await;
    // TTL already on another attribute: DynamoDB allows one, and the library will not
    // silently move it.
    let table = integration_tests::TestTable::new("cfn_ttl_conflict").await;
    let mut update = event(UPDATE, &server, &table.name);
    update["ResourceProperties"]["TimeToLiveAttribute"] = "gone_at".into();
    let failed = answer(&handler, &server, &update).await;
    assert_eq!(failed["Status"], "FAILED", "{failed}");
    assert_eq!(failed["PhysicalResourceId"], table.name.as_str());
    let reason = failed["Reason"].as_str().unwrap();
    assert!(
        reason.contains("already has TTL on \"expire_at\""),
        "{reason}"
    );
    assert_eq!(
        ttl(&client, &table.name).await.1.as_deref(),
        Some("expire_at")
    );
}

/// Makes every DynamoDB call panic inside the SDK.
#[derive(Debug)]
struct PanicOnEveryCall;

impl Intercept for PanicOnEveryCall {
    fn name(&self) -> &'static str {
        "PanicOnEveryCall"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _config: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        panic!("injected panic");
    }
}

#[tokio::test]
async fn a_panic_in_the_work_is_answered_failed() {
    let working = integration_tests::client().await;
    let panicking = Client::from_conf(
        working
            .config()
            .to_builder()
            .interceptor(PanicOnEveryCall)
            .build(),
    );
    let handler = handler_on(panicking).await;
    let server = ResponseServer::start().await;
    let name = integration_tests::table_name("cfn_panic");

    let failed = answer(&handler, &server, &event(CREATE, &server, &name)).await;
    assert_eq!(failed["Status"], "FAILED", "{failed}");
    assert_eq!(
        failed["Reason"],
        "the table operation panicked: injected panic"
    );
}

/// A TCP server that accepts connections and never answers: DynamoDB hanging.
async fn black_hole() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (addr, task)
}

#[tokio::test]
async fn work_still_running_near_the_deadline_is_answered_failed_before_it() {
    let working = integration_tests::client().await;
    let (addr, hole) = black_hole().await;
    let hanging = Client::from_conf(
        working
            .config()
            .to_builder()
            .endpoint_url(format!("http://{addr}"))
            .build(),
    );
    // 30 s left, 29 s of them reserved for answering: the work gets about one second.
    let handler = handler_on(hanging).await.with_options(Options {
        deadline_margin: Duration::from_secs(29),
        ..Options::default()
    });
    let server = ResponseServer::start().await;
    let name = integration_tests::table_name("cfn_deadline");

    let deadline_ms = now_ms() + 30_000;
    invoke(
        &handler,
        &event(CREATE, &server, &name),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let received = server.take_answer();
    assert!(received.at_ms < deadline_ms, "answered before the deadline");
    assert_eq!(received.body["Status"], "FAILED", "{}", received.body);
    let reason = received.body["Reason"].as_str().unwrap();
    assert!(
        reason.starts_with("the table operation did not finish within"),
        "{reason}"
    );

    // An invocation that starts inside the margin answers at once, doing nothing.
    invoke(
        &handler,
        &event(CREATE, &server, &name),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let received = server.take_answer();
    assert_eq!(received.body["Status"], "FAILED");
    assert!(
        received.body["Reason"]
            .as_str()
            .unwrap()
            .contains("nothing was done"),
        "{}",
        received.body
    );
    hole.abort();
}

#[tokio::test]
async fn the_answer_is_retried_after_server_errors_but_not_after_client_errors() {
    let client = integration_tests::client().await;
    let quick_retries = Options {
        delivery: Delivery {
            first_retry_delay: Duration::from_millis(10),
            ..Delivery::default()
        },
        ..Options::default()
    };
    let handler = handler_on(client.clone()).await.with_options(quick_retries);
    let server = ResponseServer::start().await;
    let name = integration_tests::table_name("cfn_retry");

    server.refusals.lock().unwrap().extend([
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::INTERNAL_SERVER_ERROR,
    ]);
    invoke(
        &handler,
        &event(CREATE, &server, &name),
        Duration::from_secs(60),
    )
    .await
    .expect("delivered on the third attempt");
    let attempts = server.received();
    assert_eq!(attempts.len(), 3);
    assert!(attempts.iter().all(|a| a.body == attempts[0].body));
    assert_eq!(attempts[2].body["Status"], "SUCCESS");
    assert!(exists(&client, &name).await);

    // An expired or forged URL (403) will not get better: one attempt, and the invocation
    // fails so that Lambda's own retry gets a fresh chance.
    server.received.lock().unwrap().clear();
    server.refusals.lock().unwrap().push(StatusCode::FORBIDDEN);
    let err = invoke(
        &handler,
        &event(DELETE, &server, &name),
        Duration::from_secs(60),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
    assert_eq!(server.received().len(), 1);
}

#[tokio::test]
async fn every_attempt_is_counted_until_the_limit() {
    let client = integration_tests::client().await;
    let handler = handler_on(client).await.with_options(Options {
        delivery: Delivery {
            attempts: 3,
            first_retry_delay: Duration::from_millis(10),
            ..Delivery::default()
        },
        ..Options::default()
    });
    let server = ResponseServer::start().await;
    let name = integration_tests::table_name("cfn_undeliverable");
    server
        .refusals
        .lock()
        .unwrap()
        .extend([StatusCode::BAD_GATEWAY; 5]);
    let err = invoke(
        &handler,
        &event(CREATE, &server, &name),
        Duration::from_secs(60),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("after 3 attempts"), "{err}");
    assert_eq!(server.received().len(), 3);
}

#[tokio::test]
async fn create_over_an_existing_table_fails_and_touches_nothing_unless_adopting() {
    let client = integration_tests::client().await;
    let handler = handler_on(client.clone()).await;
    let server = ResponseServer::start().await;
    let name = integration_tests::table_name("cfn_existing");
    bare_table(&client, &name, &[("team", "payments")]).await;
    let untouched = (ttl(&client, &name).await, tags(&client, &name).await);
    assert_ne!(untouched.0.0, Some(TimeToLiveStatus::Enabled));

    // Without AdoptExisting: FAILED, naming the table and the way out; nothing changed.
    let create = event(CREATE, &server, &name);
    let failed = answer(&handler, &server, &create).await;
    assert_eq!(failed["Status"], "FAILED", "{failed}");
    let reason = failed["Reason"].as_str().unwrap();
    assert!(
        reason.starts_with(&format!(
            "could not create table {name}: a table of that name already exists and this \
             resource did not create it"
        )),
        "{reason}"
    );
    assert!(reason.contains("AdoptExisting"), "{reason}");
    let placeholder = failed["PhysicalResourceId"].as_str().unwrap().to_owned();
    assert!(placeholder.starts_with(session_table::CREATE_FAILED_PREFIX));
    assert_eq!(
        (ttl(&client, &name).await, tags(&client, &name).await),
        untouched,
        "no TTL change, no tags"
    );

    // The rollback Delete of the failed Create deletes nothing.
    let mut rollback = event(DELETE, &server, &placeholder);
    rollback["ResourceProperties"] = create["ResourceProperties"].clone();
    let rolled_back = answer(&handler, &server, &rollback).await;
    assert_eq!(rolled_back["Status"], "SUCCESS", "{rolled_back}");
    assert!(exists(&client, &name).await);

    // With AdoptExisting: SUCCESS, TTL turned on, but the table is not marked as ours...
    let mut adopt = event(CREATE, &server, &name);
    adopt["ResourceProperties"]["AdoptExisting"] = "true".into();
    let adopted = answer(&handler, &server, &adopt).await;
    assert_eq!(adopted["Status"], "SUCCESS", "{adopted}");
    assert_eq!(adopted["PhysicalResourceId"], name.as_str());
    assert!(
        adopted["Reason"].as_str().unwrap().contains("adopted"),
        "{adopted}"
    );
    assert_eq!(
        ttl(&client, &name).await,
        (Some(TimeToLiveStatus::Enabled), Some("expire_at".into()))
    );
    assert_eq!(tags(&client, &name).await, untouched.1);

    // ...so its Delete answers SUCCESS, says so, and keeps it.
    let deleted = answer(&handler, &server, &event(DELETE, &server, &name)).await;
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
    assert_eq!(
        deleted["Reason"],
        format!(
            "table {name} was NOT deleted: this resource did not create it (it was adopted, \
             or belongs to someone else), so it is left in place"
        )
    );
    assert!(exists(&client, &name).await);
}

#[tokio::test]
async fn delete_keeps_tables_of_other_stacks_and_resources() {
    let client = integration_tests::client().await;
    let handler = handler_on(client.clone()).await;
    let server = ResponseServer::start().await;
    let fixture: Value = serde_json::from_str(DELETE).unwrap();
    let our_stack = fixture["StackId"].as_str().unwrap();
    let other_stack = our_stack.replace("stack/sessions/", "stack/other/");
    for (label, stack, logical) in [
        ("other_stack", other_stack.as_str(), "SessionTable"),
        ("other_resource", our_stack, "AnotherTable"),
        ("half_marked", our_stack, ""),
    ] {
        let name = integration_tests::table_name(&format!("cfn_keep_{label}"));
        let mut marks = vec![(STACK_ID_TAG, stack)];
        if !logical.is_empty() {
            marks.push((LOGICAL_ID_TAG, logical));
        }
        bare_table(&client, &name, &marks).await;
        let deleted = answer(&handler, &server, &event(DELETE, &server, &name)).await;
        assert_eq!(deleted["Status"], "SUCCESS", "{label}: {deleted}");
        assert!(
            deleted["Reason"]
                .as_str()
                .unwrap()
                .contains("was NOT deleted"),
            "{label}: {deleted}"
        );
        assert!(exists(&client, &name).await, "{label}");

        // A Create by this resource will not take it over either.
        let failed = answer(&handler, &server, &event(CREATE, &server, &name)).await;
        assert_eq!(failed["Status"], "FAILED", "{label}: {failed}");
    }
}

#[tokio::test]
async fn a_rename_onto_a_foreign_table_fails_and_keeps_both() {
    let client = integration_tests::client().await;
    let handler = handler_on(client.clone()).await;
    let server = ResponseServer::start().await;
    let ours = integration_tests::table_name("cfn_rename_ours");
    let theirs = integration_tests::table_name("cfn_rename_theirs");
    let created = answer(&handler, &server, &event(CREATE, &server, &ours)).await;
    assert_eq!(created["Status"], "SUCCESS", "{created}");
    bare_table(&client, &theirs, &[]).await;

    let mut rename = event(UPDATE, &server, &ours);
    rename["ResourceProperties"]["TableName"] = theirs.as_str().into();
    let failed = answer(&handler, &server, &rename).await;
    assert_eq!(failed["Status"], "FAILED", "{failed}");
    assert_eq!(failed["PhysicalResourceId"], ours.as_str());
    assert!(
        failed["Reason"].as_str().unwrap().starts_with(&format!(
            "could not create replacement table {theirs}: a table of that name already exists"
        )),
        "{failed}"
    );
    assert_ne!(
        ttl(&client, &theirs).await.0,
        Some(TimeToLiveStatus::Enabled)
    );
    assert!(exists(&client, &ours).await);

    // Adopting it on the rename works; then the old, own table's Delete removes it, and a
    // later Delete of the adopted one keeps it.
    rename["ResourceProperties"]["AdoptExisting"] = true.into();
    let renamed = answer(&handler, &server, &rename).await;
    assert_eq!(renamed["Status"], "SUCCESS", "{renamed}");
    assert_eq!(renamed["PhysicalResourceId"], theirs.as_str());
    let old_deleted = answer(&handler, &server, &event(DELETE, &server, &ours)).await;
    assert_eq!(old_deleted["Status"], "SUCCESS", "{old_deleted}");
    assert!(!exists(&client, &ours).await);
    let kept = answer(&handler, &server, &event(DELETE, &server, &theirs)).await;
    assert_eq!(kept["Status"], "SUCCESS", "{kept}");
    assert!(exists(&client, &theirs).await);
}

#[tokio::test]
async fn every_kind_of_deadline_leaves_the_work_its_time() {
    // Real Lambda (Unix milliseconds), `cargo lambda watch` (a 600000 ms budget, which the
    // old helper read as a long-past time and answered FAILED), and none at all.
    let client = integration_tests::client().await;
    let handler = handler_on(client.clone()).await;
    let server = ResponseServer::start().await;
    for (kind, deadline_ms) in [
        ("real", now_ms() + 60_000),
        ("emulator", 600_000),
        ("none", 0),
    ] {
        // A table per kind: with one name, the second and third passes would find the
        // first pass's table and the check below could not fail.
        let name = integration_tests::table_name(&format!("cfn_deadlines_{kind}"));
        invoke_with_deadline(&handler, &event(CREATE, &server, &name), deadline_ms)
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        let answer = server.take_answer().body;
        assert_eq!(answer["Status"], "SUCCESS", "{kind}: {answer}");
        assert!(exists(&client, &name).await, "{kind}");
    }
    // A real deadline is honoured: one inside the margin does nothing and says so.
    let other = integration_tests::table_name("cfn_deadline_short");
    invoke_with_deadline(&handler, &event(CREATE, &server, &other), now_ms() + 5_000)
        .await
        .unwrap();
    let answer = server.take_answer().body;
    assert_eq!(answer["Status"], "FAILED", "{answer}");
    assert!(!exists(&client, &other).await);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let client = integration_tests::client().await;
    let handler = handler_on(client).await;
    let server = ResponseServer::start().await;
    let name = integration_tests::table_name("cfn_redirect");
    server
        .refusals
        .lock()
        .unwrap()
        .push(StatusCode::TEMPORARY_REDIRECT);
    let err = invoke(
        &handler,
        &event(CREATE, &server, &name),
        Duration::from_secs(60),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("307"), "{err}");
    let received = server.received();
    assert_eq!(received.len(), 1, "{received:?}");
    assert!(!received[0].target.starts_with("/redirected"));
}

#[tokio::test]
async fn delivery_retries_stop_before_the_deadline() {
    let client = integration_tests::client().await;
    let handler = handler_on(client).await.with_options(Options {
        deadline_margin: Duration::from_secs(1),
        delivery: Delivery {
            attempts: 50,
            first_retry_delay: Duration::from_millis(200),
            attempt_timeout: Duration::from_secs(5),
        },
    });
    let server = ResponseServer::start().await;
    let name = integration_tests::table_name("cfn_retry_deadline");
    server
        .refusals
        .lock()
        .unwrap()
        .extend([StatusCode::SERVICE_UNAVAILABLE; 50]);
    let started = Instant::now();
    let deadline_ms = now_ms() + 4_000;
    let err = invoke_with_deadline(&handler, &event(CREATE, &server, &name), deadline_ms)
        .await
        .unwrap_err();
    // Every wait ends before the deadline; the attempt after the last wait may still be on
    // its way (a few ms) when it passes, hence the slack. Without the deadline rule the 49
    // retries would wait for minutes.
    let slack = Duration::from_millis(250);
    assert!(
        started.elapsed() < Duration::from_secs(4) + slack,
        "{:?}",
        started.elapsed()
    );
    assert!(err.to_string().contains("503"), "{err}");
    let received = server.received();
    assert!((2..50).contains(&received.len()), "{}", received.len());
    let last = received.last().unwrap().at_ms;
    assert!(
        last < deadline_ms + slack.as_millis() as u64,
        "{last} vs {deadline_ms}"
    );
}
