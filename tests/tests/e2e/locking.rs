//! Pessimistic locking and optimistic versioning against a real DynamoDB-compatible server:
//! the gem's threaded locking spec, plus concurrent increments through session-api.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use dynamodb_session_store::{Concurrency, ConfigBuilder, Error, SessionLayer, SessionStore};
use integration_tests::{TestTable, api, data};
use lambda_http::http::{Method, StatusCode, header};
use lambda_http::tower::ServiceExt;
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};

fn pessimistic(c: ConfigBuilder, expiry_ms: u64, retry_ms: u64, max_wait_ms: u64) -> ConfigBuilder {
    c.enable_locking(true)
        .lock_expiry_time(Duration::from_millis(expiry_ms))
        .lock_retry_delay(Duration::from_millis(retry_ms))
        .lock_max_wait_time(Duration::from_millis(max_wait_ms))
}

/// The attributes of a session item that holds no lock.
const SESSION_ATTRIBUTES: [&str; 6] = [
    "created_at",
    "data",
    "expire_at",
    "session_id",
    "updated_at",
    "version",
];

/// Attribute names of the table's only item.
async fn attributes(table: &TestTable) -> Vec<String> {
    let items = table.items().await;
    assert_eq!(items.len(), 1);
    let mut names: Vec<String> = items[0].keys().cloned().collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_request_waits_for_the_lock() {
    let table = TestTable::new("lock_wait").await;
    let store = table.store(|c| pessimistic(c, 5_000, 25, 5_000));
    let (id, _) = store.create(&data(json!({"n": 0}))).await.unwrap();

    let mut first = store.load(&id).await.unwrap().unwrap();
    assert!(first.is_locked());
    let saved = Arc::new(AtomicBool::new(false));
    let waiter = tokio::spawn({
        let (store, id, saved) = (store.clone(), id.clone(), saved.clone());
        async move {
            let record = store.load(&id).await.unwrap().unwrap();
            (saved.load(Ordering::SeqCst), record)
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "the second request must wait");
    first.data = data(json!({"n": 1}));
    saved.store(true, Ordering::SeqCst);
    store.save(&id, &first).await.unwrap();

    let (saved_before, second) = waiter.await.unwrap();
    assert!(
        saved_before,
        "the waiter got the lock only after the first save released it"
    );
    assert_eq!(
        second.data["n"], 1,
        "and it reads what the first request wrote"
    );
    store.release(&id, &second).await.unwrap();
    assert!(
        !attributes(&table).await.contains(&"locked_at".to_owned()),
        "lock released"
    );
}

#[tokio::test]
async fn an_expired_lock_is_broken_and_its_holder_cannot_write() {
    let table = TestTable::new("lock_expired").await;
    let store = table.store(|c| pessimistic(c, 200, 25, 5_000));
    let (id, _) = store
        .create(&data(json!({"owner": "nobody"})))
        .await
        .unwrap();

    let mut stale = store.load(&id).await.unwrap().unwrap();
    // The holder stalls past lock_expiry_time; the next request breaks the lock.
    let mut fresh = store.load(&id).await.unwrap().unwrap();
    fresh.data = data(json!({"owner": "second"}));

    stale.data = data(json!({"owner": "first"}));
    let err = store.save(&id, &stale).await.unwrap_err();
    assert!(matches!(err, Error::LockLost), "{err:?}");
    store.save(&id, &fresh).await.unwrap();
    let read = table.store(|c| c).load(&id).await.unwrap().unwrap();
    assert_eq!(
        read.data["owner"], "second",
        "the broken holder's write never landed"
    );
}

#[tokio::test]
async fn waiting_too_long_is_a_lock_wait_timeout() {
    let table = TestTable::new("lock_timeout").await;
    let store = table.store(|c| pessimistic(c, 10_000, 50, 300));
    let (id, _) = store.create(&data(json!({"n": 0}))).await.unwrap();
    let held = store.load(&id).await.unwrap().unwrap();

    let err = store.load(&id).await.unwrap_err();
    let Error::LockWaitTimeout { waited } = err else {
        // `waited` is reported, not asserted: shared machines are noisy.
        panic!("{err:?}");
    };
    assert!(Error::LockWaitTimeout { waited }.is_hard());
    store.release(&id, &held).await.unwrap();
    store.load(&id).await.expect("free again once released");
}

#[tokio::test]
async fn two_waiters_never_both_break_an_expired_lock() {
    let table = TestTable::new("lock_break_race").await;
    let store = table.store(|c| pessimistic(c, 1_000, 10, 10_000));
    let (id, _) = store.create(&data(json!({"n": 0}))).await.unwrap();
    // A lock left behind by a crashed request, long expired.
    let items = table.items().await;
    table
        .client
        .update_item()
        .table_name(&table.name)
        .key("session_id", items[0]["session_id"].clone())
        .update_expression("SET locked_at = :old, lock_owner = :ghost")
        .expression_attribute_values(":old", AttributeValue::N("1000".into()))
        .expression_attribute_values(":ghost", AttributeValue::S("ghost".into()))
        .send()
        .await
        .unwrap();

    let increment = |store: SessionStore, id| async move {
        let mut record = store.load(&id).await.unwrap().unwrap();
        let n = record.data["n"].as_i64().unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        record.data.insert("n".into(), json!(n + 1));
        store.save(&id, &record).await.unwrap();
    };
    let (a, b) = tokio::join!(
        increment(store.clone(), id.clone()),
        increment(store.clone(), id.clone())
    );
    let ((), ()) = (a, b);
    assert_eq!(
        store.load(&id).await.unwrap().unwrap().data["n"],
        2,
        "no update lost"
    );
}

#[tokio::test]
async fn a_missing_session_locks_without_error_and_creates_nothing() {
    let table = TestTable::new("lock_missing").await;
    let store = table.store(|c| pessimistic(c, 500, 50, 1_000));
    let (id, _) = store.create(&data(json!({"n": 0}))).await.unwrap();
    store.delete(&id).await.unwrap();
    assert_eq!(store.load(&id).await.unwrap(), None);
    assert!(
        table.items().await.is_empty(),
        "locking did not create a stub item"
    );
}

#[tokio::test]
async fn an_uncontended_locked_request_is_two_calls() {
    let (table, calls, _) = TestTable::instrumented("lock_calls").await;
    let store = table.store(|c| pessimistic(c, 500, 50, 1_000));
    let (id, _) = store.create(&data(json!({"n": 0}))).await.unwrap();
    calls.take();
    let mut record = store.load(&id).await.unwrap().unwrap();
    record.data = data(json!({"n": 1}));
    store.save(&id, &record).await.unwrap();
    assert_eq!(
        calls.take(),
        ["UpdateItem", "UpdateItem"],
        "lock-and-read, save-and-release"
    );
    assert_eq!(attributes(&table).await, SESSION_ATTRIBUTES);
    calls.take();

    let record = store.load(&id).await.unwrap().unwrap();
    store.release(&id, &record).await.unwrap();
    assert_eq!(
        calls.take(),
        ["UpdateItem", "UpdateItem"],
        "lock-and-read, release only"
    );
    assert_eq!(attributes(&table).await, SESSION_ATTRIBUTES);
}

#[tokio::test]
async fn optimistic_saves_conflict_instead_of_losing_updates() {
    let table = TestTable::new("optimistic").await;
    let store = table.store(|c| c.concurrency(Concurrency::Optimistic));
    let (id, created) = store.create(&data(json!({"n": 0}))).await.unwrap();
    assert_eq!(created.version, Some(1));

    let mut a = store.load(&id).await.unwrap().unwrap();
    let mut b = store.load(&id).await.unwrap().unwrap();
    a.data = data(json!({"n": "a"}));
    b.data = data(json!({"n": "b"}));
    let saved = store.save(&id, &a).await.unwrap();
    assert_eq!(saved.version, Some(2));
    let err = store.save(&id, &b).await.unwrap_err();
    assert!(matches!(err, Error::VersionConflict), "{err:?}");
    assert_eq!(store.load(&id).await.unwrap().unwrap().data["n"], "a");

    // Retrying from a fresh read succeeds.
    let mut retry = store.load(&id).await.unwrap().unwrap();
    retry.data = data(json!({"n": "b"}));
    assert_eq!(store.save(&id, &retry).await.unwrap().version, Some(3));
}

#[test]
fn concurrency_settings_agree_with_enable_locking() {
    let config = dynamodb_session_store::Config::builder()
        .env([("AWS_DYNAMO_DB_SESSION_CONCURRENCY", "optimistic")])
        .build()
        .unwrap();
    assert_eq!(config.concurrency, Concurrency::Optimistic);
    let err = dynamodb_session_store::Config::builder()
        .env([
            ("AWS_DYNAMO_DB_SESSION_CONCURRENCY", "optimistic"),
            ("AWS_DYNAMO_DB_SESSION_ENABLE_LOCKING", "true"),
        ])
        .build()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("AWS_DYNAMO_DB_SESSION_CONCURRENCY"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------
// Through session-api.

/// session-api on `table`, configured from environment variables as in Lambda.
fn api_layer(table: &TestTable, env: &[(&str, &str)]) -> SessionLayer {
    let config = table.config().env(env.iter().copied()).build().unwrap();
    SessionLayer::new(SessionStore::new(config).unwrap())
}

async fn get(
    layer: &SessionLayer,
    path: &str,
    cookie: Option<&str>,
) -> (StatusCode, Option<String>, Value, Option<String>) {
    let reply = api::get(layer, path, cookie).await;
    let retry_after = reply
        .headers
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_owned());
    let cookie = reply.cookie_pair();
    (reply.status, cookie, reply.body, retry_after)
}

/// Runs `n` concurrent `GET /counter?hold_ms=50` on one session and returns the final count
/// and how many requests had to be retried after a 409.
async fn concurrent_increments(
    layer: &SessionLayer,
    n: usize,
    retry_on_conflict: bool,
) -> (i64, usize, Vec<StatusCode>) {
    let (status, cookie, _, _) = get(layer, "/session", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(cookie.is_none(), "reading an empty session creates nothing");
    let (_, cookie, body, _) = get(layer, "/counter", None).await;
    assert_eq!(body, json!({"count": 1}));
    let cookie = cookie.unwrap();

    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (layer, cookie) = (layer.clone(), cookie.clone());
            tokio::spawn(async move {
                let mut retries = 0;
                loop {
                    let (status, _, _, _) = get(&layer, "/counter?hold_ms=50", Some(&cookie)).await;
                    if status == StatusCode::CONFLICT && retry_on_conflict {
                        retries += 1;
                        continue;
                    }
                    return (status, retries);
                }
            })
        })
        .collect();
    let mut statuses = Vec::new();
    let mut retries = 0;
    for task in tasks {
        let (status, r) = task.await.unwrap();
        statuses.push(status);
        retries += r;
    }
    let (_, _, body, _) = get(layer, "/session", Some(&cookie)).await;
    (body["count"].as_i64().unwrap() - 1, retries, statuses)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_increments_all_count_with_pessimistic_locking() {
    let table = TestTable::new("api_pessimistic").await;
    let layer = api_layer(
        &table,
        &[
            ("AWS_DYNAMO_DB_SESSION_ENABLE_LOCKING", "true"),
            ("AWS_DYNAMO_DB_SESSION_LOCK_EXPIRY_TIME", "5000"),
            ("AWS_DYNAMO_DB_SESSION_LOCK_RETRY_DELAY", "20"),
            ("AWS_DYNAMO_DB_SESSION_LOCK_MAX_WAIT_TIME", "60"),
        ],
    );
    let (count, _, statuses) = concurrent_increments(&layer, 20, false).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(count, 20, "every increment counted");
    assert!(!attributes(&table).await.contains(&"locked_at".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_increments_all_count_with_optimistic_retries() {
    let table = TestTable::new("api_optimistic").await;
    let layer = api_layer(
        &table,
        &[("AWS_DYNAMO_DB_SESSION_CONCURRENCY", "optimistic")],
    );
    let (count, retries, statuses) = concurrent_increments(&layer, 20, true).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(count, 20, "every increment counted");
    eprintln!("optimistic: 20 increments needed {retries} retries after 409");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_locking_concurrent_increments_lose_updates() {
    let table = TestTable::new("api_unlocked").await;
    let layer = api_layer(&table, &[]);
    let (count, _, statuses) = concurrent_increments(&layer, 20, false).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::OK));
    // Reported, not asserted: how many increments were lost is up to the scheduler.
    eprintln!(
        "no locking: 20 concurrent increments counted {count}, lost {}",
        20 - count
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_cannot_get_the_lock_in_time_gets_503() {
    let table = TestTable::new("api_503").await;
    let layer = api_layer(
        &table,
        &[
            ("AWS_DYNAMO_DB_SESSION_ENABLE_LOCKING", "true"),
            ("AWS_DYNAMO_DB_SESSION_LOCK_EXPIRY_TIME", "10000"),
            ("AWS_DYNAMO_DB_SESSION_LOCK_RETRY_DELAY", "50"),
            ("AWS_DYNAMO_DB_SESSION_LOCK_MAX_WAIT_TIME", "300ms"),
        ],
    );
    let (_, cookie, _, _) = get(&layer, "/counter", None).await;
    let cookie = cookie.unwrap();
    let holder = tokio::spawn({
        let (layer, cookie) = (layer.clone(), cookie.clone());
        async move { get(&layer, "/counter?hold_ms=1500", Some(&cookie)).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, set_cookie, body, retry_after) = get(&layer, "/counter", Some(&cookie)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert!(body["error"].is_string() && set_cookie.is_none());
    let (status, _, body, _) = holder.await.unwrap();
    assert_eq!((status, body), (StatusCode::OK, json!({"count": 2})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_that_lost_the_race_is_409_through_session_api() {
    let table = TestTable::new("api_409").await;
    let layer = api_layer(
        &table,
        &[("AWS_DYNAMO_DB_SESSION_CONCURRENCY", "optimistic")],
    );
    let (_, cookie, _, _) = get(&layer, "/counter", None).await;
    let cookie = cookie.unwrap();
    // The slow request reads count 1, then holds; meanwhile another request saves.
    let slow = tokio::spawn({
        let (layer, cookie) = (layer.clone(), cookie.clone());
        async move { get(&layer, "/counter?hold_ms=2000", Some(&cookie)).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let patched = api::call(
        &layer,
        Method::PATCH,
        "/session",
        Some(&cookie),
        r#"{"x": 1}"#,
    )
    .await;
    assert_eq!(patched.status, StatusCode::OK);
    let (status, set_cookie, body, _) = slow.await.unwrap();
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"].is_string() && set_cookie.is_none());
    let (_, _, body, _) = get(&layer, "/session", Some(&cookie)).await;
    assert_eq!(body, json!({"count": 1, "x": 1}), "the winning save stands");
}

#[tokio::test]
async fn a_failed_handler_releases_its_lock_at_once() {
    use dynamodb_session_store::RequestSessionExt;
    use lambda_http::tower::{Layer, service_fn};

    let table = TestTable::new("api_release_on_failure").await;
    // Expiry 10 s, max wait 200 ms: a lock left behind would make the next request fail.
    let layer = api_layer(
        &table,
        &[
            ("AWS_DYNAMO_DB_SESSION_ENABLE_LOCKING", "true"),
            ("AWS_DYNAMO_DB_SESSION_LOCK_EXPIRY_TIME", "10000"),
            ("AWS_DYNAMO_DB_SESSION_LOCK_RETRY_DELAY", "50"),
            ("AWS_DYNAMO_DB_SESSION_LOCK_MAX_WAIT_TIME", "200ms"),
        ],
    );
    let (_, cookie, _, _) = get(&layer, "/counter", None).await;
    let cookie = cookie.unwrap();

    for failure in ["500", "error"] {
        let handler = layer.layer(service_fn(move |req: Request| async move {
            let session = req.session().unwrap();
            session.insert("count", 999).await.unwrap();
            if failure == "500" {
                let mut response = Response::new(Body::Empty);
                *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                Ok(response)
            } else {
                Err(std::io::Error::other("handler failed"))
            }
        }));
        let mut request = Request::default();
        request
            .headers_mut()
            .insert(header::COOKIE, cookie.parse().unwrap());
        let _ = handler.oneshot(request).await;

        let (status, _, body, _) = get(&layer, "/counter", Some(&cookie)).await;
        assert_eq!(status, StatusCode::OK, "after a {failure}: {body}");
    }
    let (_, _, body, _) = get(&layer, "/session", Some(&cookie)).await;
    assert_eq!(
        body,
        json!({"count": 3}),
        "the failed requests wrote nothing"
    );
    assert!(!attributes(&table).await.contains(&"locked_at".to_owned()));
}

#[tokio::test]
async fn renew_destroy_and_unchanged_requests_release_the_lock() {
    let table = TestTable::new("api_release_paths").await;
    let layer = api_layer(
        &table,
        &[
            ("AWS_DYNAMO_DB_SESSION_ENABLE_LOCKING", "true"),
            ("AWS_DYNAMO_DB_SESSION_LOCK_EXPIRY_TIME", "10000"),
            ("AWS_DYNAMO_DB_SESSION_LOCK_MAX_WAIT_TIME", "200ms"),
        ],
    );
    let (_, cookie, _, _) = get(&layer, "/counter", None).await;
    let cookie = cookie.unwrap();
    // Unchanged (read-only) twice in a row: the second would time out if the first kept it.
    for _ in 0..2 {
        let (status, _, _, _) = get(&layer, "/session", Some(&cookie)).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(attributes(&table).await, SESSION_ATTRIBUTES);

    // Renew: the new item carries no lock, the old one is gone.
    let reply = api::call(&layer, Method::POST, "/session/renew", Some(&cookie), "").await;
    assert_eq!(reply.status, StatusCode::OK);
    let renewed = reply.cookie();
    assert_eq!(attributes(&table).await, SESSION_ATTRIBUTES);
    let (status, _, body, _) = get(&layer, "/counter", Some(&renewed)).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"count": 2})));

    // Destroy: the item (and its lock) is gone.
    api::call(&layer, Method::DELETE, "/session", Some(&renewed), "").await;
    assert!(table.items().await.is_empty());
}
