//! Against a DynamoDB-compatible server that does not return the old item when a condition
//! fails, the store fails safe: it reads to find out whether the session is gone, locked or
//! changed, and never takes a held lock for a missing session.

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use dynamodb_session_store::{Concurrency, ConfigBuilder, Error, SessionLayer, SessionStore};
use integration_tests::omit::OmitOldItems;
use integration_tests::{CallCounter, TestTable, api, client_config, data};
use lambda_http::http::{StatusCode, header};
use serde_json::json;

/// A store on `table` whose client sees no old items, and counts its calls.
async fn forgetful(
    table: &TestTable,
    configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
) -> (SessionStore, OmitOldItems, CallCounter) {
    let omit = OmitOldItems::default();
    let calls = CallCounter::default();
    let client = Client::from_conf(
        client_config()
            .await
            .interceptor(omit.clone())
            .interceptor(calls.clone())
            .build(),
    );
    let store = table.store(|c| configure(c).dynamo_db_client(client));
    (store, omit, calls)
}

fn locking(c: ConfigBuilder) -> ConfigBuilder {
    c.concurrency(Concurrency::Pessimistic)
        .lock_expiry_time(Duration::from_secs(10))
        .lock_retry_delay(Duration::from_millis(50))
        .lock_max_wait_time(Duration::from_millis(200))
}

#[tokio::test]
async fn a_held_lock_is_busy_never_absent() {
    let table = TestTable::new("omit_lock").await;
    let holder = table.store(locking);
    let (store, omit, calls) = forgetful(&table, locking).await;
    let (id, _) = holder.create(&data(json!({"n": 7}))).await.unwrap();
    let held = holder.load(&id).await.unwrap().unwrap();

    calls.take();
    let err = store.load(&id).await.unwrap_err();
    assert!(matches!(err, Error::LockWaitTimeout { .. }), "{err:?}");
    assert!(omit.stripped() >= 1, "the server's old item was withheld");
    let made = calls.take();
    assert_eq!(
        made[..2],
        ["UpdateItem", "GetItem"],
        "a failed lock is checked by a read"
    );

    // Through session-api: 503, no new cookie, no new session.
    let layer = SessionLayer::new(store.clone());
    let cookie = format!("__Host-session={}", store.cookie_value(&id));
    let reply = api::get(&layer, "/counter", Some(&cookie)).await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.body
    );
    assert!(reply.headers.contains_key(header::RETRY_AFTER));
    assert_eq!(reply.set_cookie(), None, "never a fresh session's cookie");
    assert_eq!(table.items().await.len(), 1);

    holder.release(&id, &held).await.unwrap();
    assert_eq!(store.load(&id).await.unwrap().unwrap().data["n"], 7);

    // A session that really is gone still reads as absent, after the one read.
    let (store, _, _) = forgetful(&table, locking).await;
    holder.delete(&id).await.unwrap();
    assert_eq!(store.load(&id).await.unwrap(), None);
}

#[tokio::test]
async fn refused_writes_say_why_without_the_old_item() {
    let table = TestTable::new("omit_refusals").await;

    // Optimistic: a stale save, destroy and renewal are version conflicts, not "gone".
    let optimistic = |c: ConfigBuilder| c.concurrency(Concurrency::Optimistic);
    let (store, omit, _) = forgetful(&table, optimistic).await;
    let (id, _) = store.create(&data(json!({"n": 0}))).await.unwrap();
    let stale = store.load(&id).await.unwrap().unwrap();
    let mut current = store.load(&id).await.unwrap().unwrap();
    current.data = data(json!({"n": 1}));
    store.save(&id, &current).await.unwrap();
    for (what, err) in [
        ("save", store.save(&id, &stale).await.unwrap_err()),
        ("destroy", store.destroy(&id, &stale).await.unwrap_err()),
        (
            "renew",
            store.renew(&id, &stale).await.map(drop).unwrap_err(),
        ),
    ] {
        assert!(matches!(err, Error::VersionConflict), "{what}: {err:?}");
    }
    assert_eq!(omit.stripped(), 3, "each refusal's old item was withheld");

    // A session deleted since the read: gone, and not brought back.
    store.delete(&id).await.unwrap();
    let err = store.save(&id, &stale).await.unwrap_err();
    assert!(matches!(err, Error::ConditionalCheckFailed), "{err:?}");
    assert!(table.items().await.is_empty());

    // Pessimistic: a broken lock is a lost lock.
    let short = |c: ConfigBuilder| locking(c).lock_expiry_time(Duration::from_millis(100));
    let (store, _, _) = forgetful(&table, short).await;
    let (id, _) = store.create(&data(json!({"n": 0}))).await.unwrap();
    let mut broken = store.load(&id).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let taker = store.load(&id).await.unwrap().unwrap();
    broken.data = data(json!({"n": "late"}));
    let err = store.save(&id, &broken).await.unwrap_err();
    assert!(matches!(err, Error::LockLost), "{err:?}");
    store.release(&id, &taker).await.unwrap();
    assert_eq!(store.load(&id).await.unwrap().unwrap().data["n"], 0);
}
