//! Garbage collection against a real DynamoDB-compatible server, one table per test: the
//! library's collector and the `session-gc` Lambda handler.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use dynamodb_session_store::{
    CHECKPOINT_KEY, Config, Error, GarbageCollector, GcReport, PassStatus, SessionData,
    SessionStore, collect_garbage,
};
use integration_tests::TestTable;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::json;
use session_gc::Handler;

const SCHEDULED_EVENT: &str = include_str!("../data/scheduled-event.json");
const MINUTE: i64 = 60;
const HOUR: i64 = 3600;

type Item = HashMap<String, AttributeValue>;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn key_of(item: &Item) -> String {
    item["session_id"].as_s().expect("S key").clone()
}

/// Creates one session per label through the store, and returns label → table key. The
/// labels are read back from the table, so the tests' stores keep data unsealed.
async fn create_sessions(
    table: &TestTable,
    store: &SessionStore,
    labels: &[&str],
) -> HashMap<String, String> {
    for label in labels {
        let data: SessionData = json!({ "label": label }).as_object().unwrap().clone();
        store.create(&data).await.unwrap();
    }
    label_keys(table).await
}

/// Label → table key of every session in the table.
async fn label_keys(table: &TestTable) -> HashMap<String, String> {
    table
        .items()
        .await
        .iter()
        .filter_map(|item| {
            let data: serde_json::Value =
                serde_json::from_str(item.get("data")?.as_s().ok()?).ok()?;
            Some((data["label"].as_str()?.to_owned(), key_of(item)))
        })
        .collect()
}

/// Rewrites a session's timestamps with a raw UpdateItem.
async fn set_times(table: &TestTable, key: &str, created: i64, updated: i64, expire: i64) {
    table
        .client
        .update_item()
        .table_name(&table.name)
        .key("session_id", AttributeValue::S(key.to_owned()))
        .update_expression("SET created_at = :c, updated_at = :u, expire_at = :e")
        .expression_attribute_values(":c", n(created))
        .expression_attribute_values(":u", n(updated))
        .expression_attribute_values(":e", n(expire))
        .send()
        .await
        .unwrap();
}

async fn labels_left(table: &TestTable) -> Vec<String> {
    let mut labels: Vec<String> = label_keys(table).await.into_keys().collect();
    labels.sort();
    labels
}

async fn checkpoint(table: &TestTable) -> Option<Item> {
    table
        .client
        .get_item()
        .table_name(&table.name)
        .key("session_id", AttributeValue::S(CHECKPOINT_KEY.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

fn in_a_minute() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

#[tokio::test]
async fn each_limit_alone_deletes_what_it_covers_and_fresh_sessions_stay() {
    let table = TestTable::new("gc_mix").await;
    let store = table.store(|c| {
        c.seal_data(false)
            .max_stale(Duration::from_secs(10 * MINUTE as u64))
    });
    let keys = create_sessions(
        &table,
        &store,
        &[
            "too_old",
            "stale",
            "expired",
            "fresh",
            "nearly_too_old",
            "nearly_stale",
        ],
    )
    .await;
    let t = now();
    // Each garbage session matches exactly one rule.
    set_times(
        &table,
        &keys["too_old"],
        t - 2 * HOUR,
        t - MINUTE,
        t + 9 * MINUTE,
    )
    .await;
    set_times(
        &table,
        &keys["stale"],
        t - HOUR / 2,
        t - 11 * MINUTE,
        t + HOUR,
    )
    .await;
    set_times(
        &table,
        &keys["expired"],
        t - 2 * MINUTE,
        t - 2 * MINUTE,
        t - 1,
    )
    .await;
    set_times(
        &table,
        &keys["fresh"],
        t - 2 * MINUTE,
        t - 5,
        t + 10 * MINUTE,
    )
    .await;
    set_times(
        &table,
        &keys["nearly_too_old"],
        t - 50 * MINUTE,
        t - MINUTE,
        t + 9 * MINUTE,
    )
    .await;
    set_times(
        &table,
        &keys["nearly_stale"],
        t - 8 * MINUTE,
        t - 8 * MINUTE,
        t + 2 * MINUTE,
    )
    .await;
    // An item that is not a session (no timestamps) is never garbage.
    table
        .client
        .put_item()
        .table_name(&table.name)
        .item("session_id", AttributeValue::S("not-a-session".into()))
        .item("note", AttributeValue::S("kept".into()))
        .send()
        .await
        .unwrap();

    // max_age alone (1 h): the too-old session and the expired one, not the stale one.
    let age_only = Config::builder()
        .table_name(&table.name)
        .max_age(Duration::from_secs(HOUR as u64))
        .build()
        .unwrap();
    let report = GarbageCollector::new(table.client.clone(), &age_only)
        .unwrap()
        .with_segments(2)
        .collect(in_a_minute())
        .await
        .unwrap();
    assert_eq!(report.status, PassStatus::Complete);
    assert_eq!((report.deleted, report.skipped_refreshed), (2, 0));
    assert_eq!(report.segments, 2);
    assert_eq!(
        labels_left(&table).await,
        ["fresh", "nearly_stale", "nearly_too_old", "stale"]
    );

    // max_stale added (10 min): the stale one goes too; the gem ANDed the two rules and
    // would have deleted none of these.
    let both = Config::builder()
        .table_name(&table.name)
        .max_age(Duration::from_secs(HOUR as u64))
        .max_stale(Duration::from_secs(10 * MINUTE as u64))
        .build()
        .unwrap();
    let report = GarbageCollector::new(table.client.clone(), &both)
        .unwrap()
        .collect(in_a_minute())
        .await
        .unwrap();
    assert_eq!(report.status, PassStatus::Complete);
    assert_eq!(report.deleted, 1);
    assert_eq!(report.garbage_found, 1);
    assert_eq!(
        report.scanned, 5,
        "4 sessions and the foreign item were evaluated"
    );
    assert_eq!(
        labels_left(&table).await,
        ["fresh", "nearly_stale", "nearly_too_old"]
    );
    let items = table.items().await;
    assert!(items.iter().any(|i| key_of(i) == "not-a-session"));
    assert_eq!(items.len(), 4);
    assert!(
        checkpoint(&table).await.is_none(),
        "a pass finished in one go leaves no checkpoint"
    );
}

#[tokio::test]
async fn a_session_refreshed_between_scan_and_delete_survives() {
    let table = TestTable::new("gc_refresh").await;
    let store = table.store(|c| {
        c.seal_data(false)
            .max_stale(Duration::from_secs(10 * MINUTE as u64))
    });
    let mut ids = HashMap::new();
    for label in ["a", "b", "c"] {
        let data: SessionData = json!({ "label": label }).as_object().unwrap().clone();
        ids.insert(label, store.create(&data).await.unwrap());
    }
    let keys = label_keys(&table).await;
    let t = now();
    for key in keys.values() {
        set_times(&table, key, t - HOUR, t - HOUR, t - 50 * MINUTE).await;
    }

    let (b_id, b_record) = ids["b"].clone();
    let refreshed = Arc::new(AtomicBool::new(false));
    let seen_as_garbage = Arc::new(AtomicUsize::new(0));
    let collector = GarbageCollector::new(table.client.clone(), store.config())
        .unwrap()
        .with_segments(1)
        .on_page_scanned({
            let (store, refreshed, seen) =
                (store.clone(), refreshed.clone(), seen_as_garbage.clone());
            move |page| {
                let (store, b_id, b_record, refreshed, seen) = (
                    store.clone(),
                    b_id.clone(),
                    b_record.clone(),
                    refreshed.clone(),
                    seen.clone(),
                );
                Box::pin(async move {
                    seen.fetch_add(page.garbage.len(), Ordering::SeqCst);
                    // The application writes session b after the scan saw it as garbage.
                    if !refreshed.swap(true, Ordering::SeqCst) {
                        store.touch(&b_id, &b_record).await.unwrap();
                    }
                })
            }
        });

    let report = collector.collect(in_a_minute()).await.unwrap();
    assert!(refreshed.load(Ordering::SeqCst));
    assert_eq!(
        seen_as_garbage.load(Ordering::SeqCst),
        3,
        "the scan found b as garbage"
    );
    assert_eq!(report.status, PassStatus::Complete);
    assert_eq!((report.deleted, report.skipped_refreshed), (2, 1));
    assert_eq!(labels_left(&table).await, ["b"]);
    assert!(store.load(&ids["b"].0).await.unwrap().is_some());
}

/// Writes `count` items with BatchWriteItem, 25 per request, several requests at once.
async fn seed(table: &TestTable, items: Vec<Item>) {
    let batches: Vec<Vec<WriteRequest>> = items
        .into_iter()
        .map(|item| {
            WriteRequest::builder()
                .put_request(PutRequest::builder().set_item(Some(item)).build().unwrap())
                .build()
        })
        .collect::<Vec<_>>()
        .chunks(25)
        .map(<[_]>::to_vec)
        .collect();
    let batches = Arc::new(Mutex::new(batches));
    let mut writers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (client, name, batches) = (table.client.clone(), table.name.clone(), batches.clone());
        writers.spawn(async move {
            loop {
                let Some(mut batch) = batches.lock().unwrap().pop() else {
                    return;
                };
                while !batch.is_empty() {
                    let out = client
                        .batch_write_item()
                        .request_items(&name, batch)
                        .send()
                        .await
                        .unwrap();
                    batch = out
                        .unprocessed_items
                        .and_then(|mut u| u.remove(&name))
                        .unwrap_or_default();
                }
            }
        });
    }
    writers.join_all().await;
}

fn session_item(key: String, created: i64, updated: i64, expire: i64) -> Item {
    HashMap::from([
        ("session_id".to_owned(), AttributeValue::S(key)),
        ("data".to_owned(), AttributeValue::S("{}".into())),
        ("created_at".to_owned(), n(created)),
        ("updated_at".to_owned(), n(updated)),
        ("expire_at".to_owned(), n(expire)),
    ])
}

#[tokio::test]
async fn ten_thousand_sessions_are_swept_across_short_invocations() {
    // 10,000 garbage sessions among 12,000, spread over the whole key range: five in six are
    // garbage. Every garbage session costs one conditional DeleteItem, so on moto (a few
    // hundred requests a second) this test takes most of a minute.
    const SESSIONS: usize = 12_000;
    const GARBAGE: usize = 10_000;
    const SEGMENTS: u32 = 4;
    let table = TestTable::new("gc_continuations").await;
    let t = now();
    let items = (0..SESSIONS)
        .map(|i| {
            if i % 6 != 0 {
                session_item(format!("{i:05}-dead"), t - HOUR, t - HOUR, t - 50 * MINUTE)
            } else {
                session_item(format!("{i:05}-live"), t - MINUTE, t, t + 10 * MINUTE)
            }
        })
        .collect();
    seed(&table, items).await;

    // Every page read: (invocation, segment, the key it was read after).
    let invocation = Arc::new(AtomicUsize::new(0));
    let pages = Arc::new(Mutex::new(Vec::<(usize, u32, Option<String>)>::new()));
    let config = Config::builder()
        .table_name(&table.name)
        .max_stale(Duration::from_secs(10 * MINUTE as u64))
        .build()
        .unwrap();
    let collector = GarbageCollector::new(table.client.clone(), &config)
        .unwrap()
        .with_segments(SEGMENTS)
        .with_page_size(30)
        .on_page_scanned({
            let (invocation, pages) = (invocation.clone(), pages.clone());
            move |page| {
                pages.lock().unwrap().push((
                    invocation.load(Ordering::SeqCst),
                    page.segment,
                    page.exclusive_start_key.as_ref().map(key_of),
                ));
                Box::pin(async {})
            }
        });

    // A budget far too short for the whole table (10,000 deletes and 120 scans take many
    // seconds even against DynamoDB), so the pass must continue across invocations.
    let budget = Duration::from_millis(1500);
    let mut reports: Vec<GcReport> = Vec::new();
    let mut checkpoint_version = 0;
    loop {
        invocation.store(reports.len(), Ordering::SeqCst);
        let report = collector.collect(Instant::now() + budget).await.unwrap();
        // An invocation that finished a page saved its progress one version on; on a slow
        // machine one may finish none and save nothing, but the version never goes back.
        if let Some(saved) = checkpoint(&table).await {
            let version: u64 = saved["gc_version"].as_n().unwrap().parse().unwrap();
            assert!(
                version >= checkpoint_version,
                "{version} < {checkpoint_version}"
            );
            checkpoint_version = version;
            assert_eq!(
                saved["gc_segments"].as_l().unwrap().len(),
                SEGMENTS as usize
            );
            assert!(!saved.contains_key("expire_at") && !saved.contains_key("updated_at"));
        }
        let complete = report.is_complete();
        reports.push(report);
        if complete {
            break;
        }
        assert!(reports.len() < 200, "no end in sight: {:?}", reports.last());
    }

    assert!(
        reports.len() >= 4 && checkpoint_version >= 3,
        "at least 3 continuations from a checkpoint: {} invocations, {checkpoint_version} saves",
        reports.len()
    );
    let pass_started_at = reports[0].pass_started_at;
    assert!(reports.iter().all(|r| r.pass_started_at == pass_started_at));
    assert!(
        reports[..reports.len() - 1]
            .iter()
            .all(|r| r.status == PassStatus::Continuing)
    );
    let deleted: u64 = reports.iter().map(|r| r.deleted).sum();
    // Exactly GARBAGE unless a request outlived the hard stop (its delete is then uncounted);
    // the table check below proves every garbage session is gone.
    assert!(deleted <= GARBAGE as u64, "{deleted}");
    assert_eq!(reports.iter().map(|r| r.skipped_refreshed).sum::<u64>(), 0);

    // Each invocation resumed where the last one stopped: a page is read twice only when it
    // is a segment's first page in an invocation and the page that segment was interrupted
    // in before.
    let pages = pages.lock().unwrap().clone();
    assert_eq!(
        reports.iter().map(|r| r.pages).sum::<u64>(),
        pages.len() as u64
    );
    let mut seen = HashSet::new();
    let mut last_page: HashMap<u32, Option<String>> = HashMap::new();
    let mut first_in_invocation = HashSet::new();
    let mut read_again = 0;
    for (invocation, segment, start) in &pages {
        let first = first_in_invocation.insert((*invocation, *segment));
        if !seen.insert((*segment, start.clone())) {
            assert!(
                first && last_page.get(segment) == Some(start),
                "invocation {invocation} read segment {segment} after {start:?} again"
            );
            read_again += 1;
        } else if first {
            assert!(
                start.is_some() || !last_page.contains_key(segment),
                "invocation {invocation} restarted segment {segment} from the beginning"
            );
        }
        last_page.insert(*segment, start.clone());
    }
    assert!(
        read_again <= SEGMENTS as usize * (reports.len() - 1),
        "{read_again} pages read again"
    );

    let items = table.items().await;
    assert_eq!(
        items.len(),
        SESSIONS - GARBAGE,
        "only the live sessions are left"
    );
    assert!(items.iter().all(|i| key_of(i).ends_with("-live")));
    let scanned: u64 = reports.iter().map(|r| r.scanned).sum();
    assert!(scanned >= SESSIONS as u64, "{scanned}");
    assert!(
        checkpoint(&table).await.is_none(),
        "the finished pass cleared its checkpoint"
    );
}

#[tokio::test]
async fn no_limit_is_refused_and_nothing_is_deleted() {
    let table = TestTable::new("gc_no_limits").await;
    let store = table.store(|c| {
        c.seal_data(false)
            .max_stale(dynamodb_session_store::Lifetime::Unlimited)
    });
    let keys = create_sessions(&table, &store, &["old", "new"]).await;
    let t = now();
    set_times(
        &table,
        &keys["old"],
        t - 100 * HOUR,
        t - 100 * HOUR,
        t - 99 * HOUR,
    )
    .await;

    let err = GarbageCollector::new(table.client.clone(), store.config()).unwrap_err();
    assert!(matches!(err, Error::NoGarbageLimits), "{err:?}");
    let err = collect_garbage(store.config()).await.unwrap_err();
    assert!(matches!(err, Error::NoGarbageLimits), "{err:?}");
    let env = [
        ("AWS_DYNAMO_DB_SESSION_TABLE_NAME", table.name.as_str()),
        ("AWS_DYNAMO_DB_SESSION_MAX_STALE", "none"),
    ];
    let err = Handler::from_env(env, table.client.clone()).unwrap_err();
    assert!(matches!(err, Error::NoGarbageLimits), "{err:?}");

    assert_eq!(labels_left(&table).await, ["new", "old"]);
}

#[tokio::test]
async fn the_scheduled_event_runs_the_handler() {
    let table = TestTable::new("gc_handler").await;
    let store = table.store(|c| {
        c.seal_data(false)
            .max_stale(Duration::from_secs(10 * MINUTE as u64))
    });
    let keys = create_sessions(&table, &store, &["stale", "fresh"]).await;
    let t = now();
    set_times(&table, &keys["stale"], t - HOUR, t - HOUR, t - 50 * MINUTE).await;

    let env = HashMap::from([
        ("AWS_DYNAMO_DB_SESSION_TABLE_NAME", table.name.as_str()),
        ("AWS_DYNAMO_DB_SESSION_MAX_STALE", "600"),
        ("AWS_DYNAMO_DB_SESSION_GC_SEGMENTS", "2"),
        ("AWS_DYNAMO_DB_SESSION_GC_RATE_LIMIT", "50"),
    ]);
    let handler = Handler::from_env(env, table.client.clone()).unwrap();
    let mut context = Context::default();
    context.deadline = (SystemTime::now() + Duration::from_secs(60))
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let event = LambdaEvent::new(serde_json::from_str(SCHEDULED_EVENT).unwrap(), context);

    let report = handler.handle(event).await.unwrap();
    assert_eq!(report.status, PassStatus::Complete);
    assert_eq!((report.deleted, report.segments), (1, 2));
    assert_eq!(labels_left(&table).await, ["fresh"]);
    // The function's response: the report as JSON.
    let response = serde_json::to_value(&report).unwrap();
    assert_eq!(response["status"], "complete");
    assert_eq!(response["deleted"], 1);
    assert!(response["duration_ms"].is_u64());
}
