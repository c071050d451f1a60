//! The metrics as CloudWatch reads them: the EMF recorder session-api installs, fed by the
//! layer, the store and the collector on the local DynamoDB, flushed and parsed back — names,
//! units, dimensions and the counts of what the test did.
//!
//! The test runs in a process of its own (rusty-fork): the recorder is process-wide, and
//! the other tests' sessions would add to its counts.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use dynamodb_session_store::gc::GarbageCollector;
use dynamodb_session_store::metrics::emf::{
    DIMENSIONS_VAR, EmfSettings, METRICS_VAR, NAMESPACE_VAR,
};
use dynamodb_session_store::metrics::{self, ALL};
use dynamodb_session_store::{Concurrency, Error, SessionLayer};
use integration_tests::api;
use integration_tests::{TestTable, data};
use lambda_http::http::Method;
use rusty_fork::rusty_fork_test;
use serde_json::{Value, json};

/// One metric as an EMF record gives it.
#[derive(Debug)]
struct Seen {
    unit: String,
    dimensions: Vec<(String, String)>,
    value: Value,
}

/// Every metric in the records, by name and then by its own dimension's value (`""` for
/// none), after checking what every record shares.
fn parse(records: &str) -> HashMap<String, HashMap<String, Seen>> {
    let mut seen: HashMap<String, HashMap<String, Seen>> = HashMap::new();
    for line in records.lines() {
        let record: Value = serde_json::from_str(line).expect("one JSON record per line");
        let aws = &record["_aws"];
        assert!(aws["Timestamp"].as_u64().is_some(), "{line}");
        let directive = &aws["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "SessionStoreTest", "{line}");
        let names: Vec<String> = directive["Dimensions"][0]
            .as_array()
            .expect("one dimension set")
            .iter()
            .map(|d| d.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            names[0], "Suite",
            "the configured dimension comes first: {line}"
        );
        let dimensions: Vec<(String, String)> = names
            .iter()
            .map(|name| (name.clone(), record[name].as_str().unwrap().to_owned()))
            .collect();
        let own = dimensions.get(1).map_or(String::new(), |(_, v)| v.clone());
        for metric in directive["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap().to_owned();
            let unit = metric["Unit"].as_str().expect("every metric has its unit");
            let previous = seen.entry(name.clone()).or_default().insert(
                own.clone(),
                Seen {
                    unit: unit.to_owned(),
                    dimensions: dimensions.clone(),
                    value: record[&name].clone(),
                },
            );
            assert!(previous.is_none(), "{name} twice for {own:?}");
        }
    }
    seen
}

fn count(seen: &HashMap<String, HashMap<String, Seen>>, name: &str, dimension: &str) -> i64 {
    seen.get(name)
        .and_then(|by| by.get(dimension))
        .unwrap_or_else(|| panic!("{name} ({dimension:?}) recorded: {seen:#?}"))
        .value
        .as_i64()
        .unwrap_or_else(|| panic!("{name} is a count"))
}

async fn scenario() {
    let emf = EmfSettings::from_env([
        (METRICS_VAR, "on"),
        (NAMESPACE_VAR, "SessionStoreTest"),
        (DIMENSIONS_VAR, "Suite=e2e"),
    ])
    .unwrap()
    .expect("on")
    .install()
    .unwrap();
    let table = TestTable::new("metrics").await;

    // The layer: a new session, a write, a refused oversized write, the end.
    let layer = SessionLayer::new(table.store(|c| c));
    let first = api::get(&layer, "/counter", None).await;
    assert_eq!(first.status, 200);
    let cookie = first.cookie();
    assert_eq!(
        api::get(&layer, "/counter", Some(&cookie)).await.status,
        200
    );
    let big = json!({ "blob": integration_tests::incompressible(410_000) }).to_string();
    let refused = api::call(&layer, Method::PATCH, "/session", Some(&cookie), &big).await;
    assert_eq!(refused.status, 413);
    let ended = api::call(&layer, Method::DELETE, "/session", Some(&cookie), "").await;
    assert_eq!(ended.status, 200);

    // The store: a write that loses to another (optimistic).
    let optimistic = table.store(|c| c.concurrency(Concurrency::Optimistic));
    let (id, _) = optimistic.create(&data(json!({ "n": 1 }))).await.unwrap();
    let mut a = optimistic.load(&id).await.unwrap().unwrap();
    let mut b = optimistic.load(&id).await.unwrap().unwrap();
    a.data.insert("n".into(), 2.into());
    b.data.insert("n".into(), 3.into());
    optimistic.save(&id, &a).await.unwrap();
    assert!(matches!(
        optimistic.save(&id, &b).await,
        Err(Error::VersionConflict)
    ));

    // A request that waits for another's lock, in vain (pessimistic).
    let pessimistic = table.store(|c| {
        c.concurrency(Concurrency::Pessimistic)
            .lock_max_wait_time(Duration::from_millis(300))
            .lock_retry_delay(Duration::from_millis(50))
    });
    let (locked, _) = pessimistic.create(&data(json!({}))).await.unwrap();
    let _held = pessimistic.load(&locked).await.unwrap().unwrap();
    assert!(matches!(
        pessimistic.load(&locked).await,
        Err(Error::LockWaitTimeout { .. })
    ));

    // The collector: one dead session among the live ones.
    let keys = |items: Vec<HashMap<String, AttributeValue>>| -> Vec<AttributeValue> {
        items
            .into_iter()
            .map(|item| item["session_id"].clone())
            .collect()
    };
    let live = keys(table.items().await);
    optimistic.create(&data(json!({}))).await.unwrap();
    let key = keys(table.items().await)
        .into_iter()
        .find(|key| !live.contains(key))
        .expect("the new session's item");
    table
        .client
        .update_item()
        .table_name(&table.name)
        .key("session_id", key)
        .update_expression("SET expire_at = :past")
        .expression_attribute_values(":past", AttributeValue::N("1".into()))
        .send()
        .await
        .unwrap();
    let report = GarbageCollector::new(table.client.clone(), optimistic.config())
        .unwrap()
        .collect_all()
        .await
        .unwrap();
    assert_eq!(report.deleted, 1);

    let mut records = Vec::new();
    emf.flush_to(&mut records).unwrap();
    let seen = parse(&String::from_utf8(records).unwrap());

    // Units as the module documents them, on every metric recorded.
    for (name, by) in &seen {
        let (_, unit, _) = ALL
            .iter()
            .find(|(known, ..)| known == name)
            .unwrap_or_else(|| panic!("{name} is one of metrics::ALL"));
        let unit = format!("{unit:?}");
        for seen in by.values() {
            assert_eq!(seen.unit, unit, "{name}");
        }
    }
    // What the test did, counted exactly: the layer's session, the optimistic one, the
    // locked one and the dead one were created; the layer loaded its session twice (counter,
    // patch: a delete without locking reads nothing), the optimistic store twice, the
    // pessimistic once (the second load timed out).
    assert_eq!(count(&seen, metrics::SESSIONS_CREATED, ""), 4);
    assert_eq!(count(&seen, metrics::SESSIONS_LOADED, ""), 5);
    assert_eq!(count(&seen, metrics::SESSION_WRITES, ""), 2);
    assert_eq!(count(&seen, metrics::SESSIONS_DESTROYED, ""), 1);
    assert_eq!(count(&seen, metrics::CONFLICTS, ""), 1);
    assert_eq!(count(&seen, metrics::LOCK_WAITS, ""), 1);
    let waited = &seen[metrics::LOCK_WAIT_TIME][""].value;
    let waited = waited.as_array().expect("a list of waits");
    assert_eq!(waited.len(), 1);
    assert!(waited[0].as_f64().unwrap() >= 200.0, "{waited:?}");
    assert!(count(&seen, metrics::SEALED_BYTES_WRITTEN, "") > 0);
    let answer = &seen[metrics::ERROR_ANSWERS]["413"];
    assert_eq!(answer.value, 1);
    assert_eq!(
        answer.dimensions[1],
        ("Status".to_owned(), "413".to_owned())
    );
    assert_eq!(answer.dimensions[0], ("Suite".to_owned(), "e2e".to_owned()));
    assert_eq!(seen[metrics::ERROR_ANSWERS].len(), 1, "only the 413");
    // The collector's figures.
    assert!(count(&seen, metrics::GC_SCANNED, "") >= 1);
    assert_eq!(count(&seen, metrics::GC_DELETED, ""), 1);
    assert_eq!(count(&seen, metrics::GC_PASSES_COMPLETE, ""), 1);
    // DynamoDB: calls and latencies by operation, one latency per call.
    for operation in ["PutItem", "GetItem", "UpdateItem", "DeleteItem", "Scan"] {
        let calls = count(&seen, metrics::DYNAMODB_CALLS, operation);
        assert!(calls >= 1, "{operation}");
        let latency = &seen[metrics::DYNAMODB_LATENCY][operation];
        assert_eq!(
            latency.value.as_array().map(Vec::len),
            Some(calls as usize),
            "{operation}"
        );
        assert_eq!(
            latency.dimensions[1],
            ("Operation".to_owned(), operation.to_owned())
        );
    }
    assert!(
        !seen[metrics::DYNAMODB_CALLS].contains_key("Other"),
        "{seen:#?}"
    );
    // A second flush has nothing new: counts start afresh per invocation.
    let mut again = Vec::new();
    emf.flush_to(&mut again).unwrap();
    assert!(again.is_empty(), "{}", String::from_utf8_lossy(&again));
}

rusty_fork_test! {
    #[test]
    fn emf_records_carry_every_metric_with_its_unit_and_dimensions() {
        tokio::runtime::Runtime::new().unwrap().block_on(scenario());
    }
}
