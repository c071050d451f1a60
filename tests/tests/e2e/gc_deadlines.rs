//! The `session-gc` handler with every kind of invocation deadline, against the local
//! DynamoDB (the integration tests' harness starts moto): a real Lambda deadline (Unix
//! milliseconds), `cargo lambda watch`'s time budget (`600000`), and none. All three go
//! through the library's one rule, `Deadline::from_lambda_millis`.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use dynamodb_session_store::gc::PassStatus;
use integration_tests::TestTable;
use lambda_runtime::{Context, LambdaEvent};
use session_gc::Handler;

const SCHEDULED_EVENT: &str = include_str!("../../data/scheduled-event.json");

fn now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
}

/// A table with one session idle for an hour, its `expire_at` (ten minutes after its last
/// write) passed, and one fresh session, and a handler for it.
async fn table_with_garbage(test: &str) -> (TestTable, Handler) {
    let table = TestTable::new(test).await;
    let t = now().as_secs() as i64;
    for (key, updated) in [("stale", t - 3600), ("fresh", t)] {
        let n = |v: i64| AttributeValue::N(v.to_string());
        table
            .client
            .put_item()
            .table_name(&table.name)
            .item("session_id", AttributeValue::S(key.into()))
            .item("data", AttributeValue::S("{}".into()))
            .item("created_at", n(updated))
            .item("updated_at", n(updated))
            .item("expire_at", n(updated + 600))
            .send()
            .await
            .unwrap();
    }
    let env = HashMap::from([
        ("AWS_DYNAMO_DB_SESSION_TABLE_NAME", table.name.clone()),
        ("AWS_DYNAMO_DB_SESSION_GC_SEGMENTS", "2".to_owned()),
    ]);
    let handler = Handler::from_env(env, table.client.clone()).unwrap();
    (table, handler)
}

fn event(deadline_ms: u64) -> LambdaEvent<session_gc::Event> {
    let mut context = Context::default();
    context.deadline = deadline_ms;
    LambdaEvent::new(serde_json::from_str(SCHEDULED_EVENT).unwrap(), context)
}

async fn keys_left(table: &TestTable) -> Vec<String> {
    let mut keys: Vec<String> = table
        .items()
        .await
        .iter()
        .map(|item| item["session_id"].as_s().unwrap().clone())
        .collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn every_kind_of_deadline_gives_the_collector_its_time() {
    let real = now().as_millis() as u64 + 60_000;
    for (kind, deadline_ms) in [("real", real), ("emulator", 600_000), ("none", 0)] {
        let (table, handler) = table_with_garbage(&format!("gc_deadline_{kind}")).await;
        let report = handler.handle(event(deadline_ms)).await.unwrap();
        assert_eq!(report.status, PassStatus::Complete, "{kind}: {report:?}");
        assert_eq!(report.deleted, 1, "{kind}: {report:?}");
        assert_eq!(keys_left(&table).await, ["fresh"], "{kind}");
    }
}

#[tokio::test]
async fn a_real_deadline_inside_the_margin_deletes_nothing() {
    let (table, handler) = table_with_garbage("gc_deadline_too_close").await;
    let handler = handler.with_deadline_margin(Duration::from_secs(30));
    let deadline_ms = now().as_millis() as u64 + 5_000;
    let report = handler.handle(event(deadline_ms)).await.unwrap();
    assert_eq!(report.deleted, 0, "{report:?}");
    assert_ne!(report.status, PassStatus::Complete, "{report:?}");
    let left = keys_left(&table).await;
    assert!(left.contains(&"stale".to_owned()), "{left:?}");
}
