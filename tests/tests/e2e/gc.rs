//! Garbage collection against a real DynamoDB-compatible server, one table per test: the
//! library's collector and the `session-gc` Lambda handler.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use dynamodb_session_store::gc::{
    CHECKPOINT_KEY, GC_MAX_STALE_VAR, GarbageCollector, GcLimits, GcReport, PassStatus,
    collect_garbage,
};
use dynamodb_session_store::{
    Config, Lifetime, RequestSessionExt, SessionData, SessionId, SessionLayer, SessionStore,
};
use integration_tests::TestTable;
use lambda_http::http::{Request, Response, header};
use lambda_http::tower::{Layer, ServiceExt, service_fn};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::json;
use session_gc::Handler;

const SCHEDULED_EVENT: &str = include_str!("../../data/scheduled-event.json");
const MINUTE: i64 = 60;
const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;

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

    let table_only = Config::builder().table_name(&table.name).build().unwrap();
    let collect = |limits: GcLimits| {
        let collector = GarbageCollector::new(table.client.clone(), &table_only)
            .unwrap()
            .with_limits(limits)
            .with_segments(2);
        async move { collector.collect(in_a_minute()).await.unwrap() }
    };

    // No cap (the default): only the expired session, though the store that wrote them has
    // a 10-minute max_stale.
    let report = collect(GcLimits::default()).await;
    assert_eq!(report.status, PassStatus::Complete);
    assert_eq!((report.deleted, report.skipped_refreshed), (1, 0));
    assert_eq!(report.segments, 2);
    assert_eq!(
        labels_left(&table).await,
        [
            "fresh",
            "nearly_stale",
            "nearly_too_old",
            "stale",
            "too_old"
        ]
    );

    // A max_age cap (1 h): the too-old session, not the stale one.
    let report = collect(GcLimits {
        max_age: Some(Duration::from_secs(HOUR as u64)),
        max_stale: None,
    })
    .await;
    assert_eq!((report.deleted, report.skipped_refreshed), (1, 0));
    assert_eq!(
        labels_left(&table).await,
        ["fresh", "nearly_stale", "nearly_too_old", "stale"]
    );

    // A max_stale cap added (10 min): the stale one goes too; the gem ANDed the two rules and
    // would have deleted none of these.
    let report = collect(GcLimits {
        max_age: Some(Duration::from_secs(HOUR as u64)),
        max_stale: Some(Duration::from_secs(10 * MINUTE as u64)),
    })
    .await;
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
    let config = Config::builder().table_name(&table.name).build().unwrap();
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
                    page.exclusive_start_key.clone(),
                ));
                Box::pin(async {})
            }
        });

    // A budget far too short for the whole table (10,000 deletes and 120 scans take many
    // seconds even against DynamoDB), so the pass must continue across invocations.
    let budget = Duration::from_millis(1500);
    let mut reports: Vec<GcReport> = Vec::new();
    let mut checkpoint_version = 0;
    // The first invocation that left a checkpoint: the pass it saved is the one every later
    // invocation continues. One before it saved nothing, so the next starts a pass afresh.
    let mut first_saved = None;
    loop {
        invocation.store(reports.len(), Ordering::SeqCst);
        let report = collector.collect(Instant::now() + budget).await.unwrap();
        // An invocation that finished a page saved its progress one version on; on a slow
        // machine one may finish none and save nothing, but the version never goes back.
        if let Some(saved) = checkpoint(&table).await {
            first_saved.get_or_insert(reports.len());
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
    let first_saved = first_saved.expect("a checkpoint was saved");
    let pass_started_at = reports[first_saved].pass_started_at;
    assert!(
        reports[first_saved..]
            .iter()
            .all(|r| r.pass_started_at == pass_started_at),
        "one pass from the first checkpoint on: {reports:?}"
    );
    assert!(
        reports[..first_saved]
            .iter()
            .all(|r| r.pass_started_at <= pass_started_at),
        "{reports:?}"
    );
    assert!(
        reports[..reports.len() - 1]
            .iter()
            .all(|r| r.status == PassStatus::Continuing)
    );
    let deleted: u64 = reports.iter().map(|r| r.deleted).sum();
    // Exactly GARBAGE unless a request outlived the hard stop (its delete is then uncounted);
    // the table check below proves every garbage session is gone.
    assert!(deleted <= GARBAGE as u64, "{deleted}");
    // Nothing is refreshed here, so a skip is such an uncounted delete landing after the next
    // invocation's scan read the item: never more skips than deletes that went uncounted.
    let skipped: u64 = reports.iter().map(|r| r.skipped_refreshed).sum();
    assert!(
        skipped <= GARBAGE as u64 - deleted,
        "{skipped} skipped, {deleted} deleted"
    );

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

/// Removes a session's `expire_at`, as items the gem (or a store with no limit) wrote have
/// none, and backdates its timestamps.
async fn without_expiry(table: &TestTable, key: &str, at: i64) {
    table
        .client
        .update_item()
        .table_name(&table.name)
        .key("session_id", AttributeValue::S(key.to_owned()))
        .update_expression("SET created_at = :t, updated_at = :t REMOVE expire_at")
        .expression_attribute_values(":t", n(at))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn sessions_without_expire_at_stay_by_default_as_the_store_keeps_them() {
    let table = TestTable::new("gc_no_expiry").await;
    // No lifetime: every write leaves expire_at out, and the store opens such sessions for
    // ever.
    let store = table.store(|c| c.seal_data(false).max_stale(Lifetime::Unlimited));
    let mut ids = HashMap::new();
    for label in ["unbounded", "old_item"] {
        let data: SessionData = json!({ "label": label }).as_object().unwrap().clone();
        ids.insert(label, store.create(&data).await.unwrap().0);
    }
    let keys = label_keys(&table).await;
    assert!(
        table
            .items()
            .await
            .iter()
            .all(|i| !i.contains_key("expire_at"))
    );
    // An item as the gem writes it: old timestamps and no expire_at.
    without_expiry(&table, &keys["old_item"], now() - 100 * DAY).await;

    let report = GarbageCollector::new(table.client.clone(), store.config())
        .unwrap()
        .collect(in_a_minute())
        .await
        .unwrap();
    assert_eq!((report.status, report.deleted), (PassStatus::Complete, 0));
    let report = collect_garbage(store.config()).await.unwrap();
    assert_eq!(report.deleted, 0);
    // The store's own one-day default is no cap either.
    let env = [("AWS_DYNAMO_DB_SESSION_TABLE_NAME", table.name.as_str())];
    let report = Handler::from_env(env, table.client.clone())
        .unwrap()
        .collector()
        .collect_all()
        .await
        .unwrap();
    assert_eq!(report.deleted, 0);
    assert_eq!(labels_left(&table).await, ["old_item", "unbounded"]);
    for id in ids.values() {
        assert!(
            store.load(id).await.unwrap().is_some(),
            "the store opens it"
        );
    }

    // An explicit cap covers them: the operator's choice.
    let report = GarbageCollector::new(table.client.clone(), store.config())
        .unwrap()
        .with_limits(GcLimits {
            max_age: Some(Duration::from_secs(30 * DAY as u64)),
            max_stale: None,
        })
        .collect_all()
        .await
        .unwrap();
    assert_eq!(report.deleted, 1);
    assert_eq!(labels_left(&table).await, ["unbounded"]);
}

type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// One request with no cookie through `layer`: the handler stores `label` and, with `own`,
/// gives the session its own `max_stale`. Returns the new session's id.
async fn new_session(layer: &SessionLayer, label: &str, own: Option<Duration>) -> SessionId {
    let label = label.to_owned();
    let handler = move |request: Request<String>| {
        let label = label.clone();
        async move {
            let session = request.session().expect("behind the layer");
            session.insert("label", label).await?;
            if own.is_some() {
                session.set_max_stale(own).await?;
            }
            Ok::<_, HandlerError>(Response::new(String::new()))
        }
    };
    let response = layer
        .layer(service_fn(handler))
        .oneshot(Request::new(String::new()))
        .await
        .unwrap();
    let set_cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    let value = set_cookie
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .map(|(_, value)| value.to_owned())
        .unwrap();
    layer.store().verify_cookie(&value).expect("our own cookie")
}

/// Backdates a session's `created_at` and `updated_at`, leaving the `expire_at` its write set:
/// as if it had been idle since `at`.
async fn idle_since(table: &TestTable, key: &str, at: i64) {
    table
        .client
        .update_item()
        .table_name(&table.name)
        .key("session_id", AttributeValue::S(key.to_owned()))
        .update_expression("SET created_at = :t, updated_at = :t")
        .expression_attribute_values(":t", n(at))
        .send()
        .await
        .unwrap();
}

/// Moves a session's `expire_at` to `at`, leaving the rest.
async fn expire_at(table: &TestTable, key: &str, at: i64) {
    table
        .client
        .update_item()
        .table_name(&table.name)
        .key("session_id", AttributeValue::S(key.to_owned()))
        .update_expression("SET expire_at = :t")
        .expression_attribute_values(":t", n(at))
        .send()
        .await
        .unwrap();
}

/// Runs the collector with its defaults both ways it is deployed: the library's, and
/// `session-gc` configured as the store is (the store's `MAX_STALE` of one day among its
/// variables, as the template passed it before) and with its caps' variables empty.
async fn collect_with_defaults(table: &TestTable) -> u64 {
    let config = Config::builder().table_name(&table.name).build().unwrap();
    let library = GarbageCollector::new(table.client.clone(), &config)
        .unwrap()
        .collect(in_a_minute())
        .await
        .unwrap();
    let env = [
        ("AWS_DYNAMO_DB_SESSION_TABLE_NAME", table.name.as_str()),
        ("AWS_DYNAMO_DB_SESSION_MAX_STALE", "86400"),
        ("AWS_DYNAMO_DB_SESSION_GC_MAX_AGE", ""),
        (GC_MAX_STALE_VAR, ""),
    ];
    let mut context = Context::default();
    context.deadline = (SystemTime::now() + Duration::from_secs(60))
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let event = LambdaEvent::new(serde_json::from_str(SCHEDULED_EVENT).unwrap(), context);
    let function = Handler::from_env(env, table.client.clone())
        .unwrap()
        .handle(event)
        .await
        .unwrap();
    assert!(library.is_complete() && function.is_complete());
    library.deleted + function.deleted
}

/// The acceptance check of one lifetime rule: what the layer (30-day `max_stale`) or the
/// session (`set_max_stale`) gave a session, the collector's defaults honour — it stays while
/// the store opens it, though idle for longer than the store's one-day default, and goes once
/// its `expire_at` has passed. (The collector runs on DynamoDB only: it Scans and
/// conditionally deletes, which `MemoryStore` has no counterpart for.)
#[tokio::test]
async fn the_defaults_keep_what_the_layer_or_the_session_keeps_alive_until_its_expire_at() {
    let table = TestTable::new("gc_one_rule").await;
    let thirty_days = Duration::from_secs(30 * DAY as u64);
    // The configuration's default max_stale (one day) is what the old collector went by.
    let by_layer = SessionLayer::new(table.store(|c| c.seal_data(false).max_stale(thirty_days)));
    let by_session = SessionLayer::new(table.store(|c| c.seal_data(false)));
    let ids = HashMap::from([
        (
            "layer",
            (new_session(&by_layer, "layer", None).await, &by_layer),
        ),
        (
            "session",
            (
                new_session(&by_session, "session", Some(thirty_days)).await,
                &by_session,
            ),
        ),
    ]);
    let keys = label_keys(&table).await;
    let t = now();
    for label in ["layer", "session"] {
        let item = table
            .items()
            .await
            .into_iter()
            .find(|i| key_of(i) == keys[label])
            .unwrap();
        let expire: i64 = item["expire_at"].as_n().unwrap().parse().unwrap();
        assert!(
            (t + 30 * DAY - MINUTE..=t + 30 * DAY).contains(&expire),
            "{label}: the write set expire_at 30 days ahead, got {}",
            expire - t
        );
        // Two days idle: past the old collector's one-day rule, well within 30 days.
        idle_since(&table, &keys[label], t - 2 * DAY).await;
    }
    // What the store would still open, by its own rule, before each run.
    let opened = |label: &'static str| {
        let (id, layer) = &ids[label];
        async move { layer.store().load(id).await.unwrap().is_some() }
    };
    assert!(opened("layer").await && opened("session").await);

    assert_eq!(collect_with_defaults(&table).await, 0);
    assert_eq!(labels_left(&table).await, ["layer", "session"]);

    // The layer's session reaches its expire_at: the store no longer opens it, and the
    // collector deletes it, and only it.
    expire_at(&table, &keys["layer"], t - 1).await;
    assert!(!opened("layer").await && opened("session").await);
    assert_eq!(collect_with_defaults(&table).await, 1);
    assert_eq!(labels_left(&table).await, ["session"]);

    // The same for the session given its own lifetime.
    expire_at(&table, &keys["session"], t - 1).await;
    assert!(!opened("session").await);
    assert_eq!(collect_with_defaults(&table).await, 1);
    assert!(labels_left(&table).await.is_empty());
}

#[tokio::test]
async fn a_max_stale_cap_is_explicit_and_spares_sessions_with_their_own() {
    let table = TestTable::new("gc_stale_cap").await;
    let thirty_days = Duration::from_secs(30 * DAY as u64);
    let by_layer = SessionLayer::new(table.store(|c| c.seal_data(false).max_stale(thirty_days)));
    new_session(&by_layer, "layer", None).await;
    let by_session = new_session(&by_layer, "session", Some(thirty_days)).await;
    let keys = label_keys(&table).await;
    for key in keys.values() {
        idle_since(&table, key, now() - 2 * DAY).await;
    }

    // A one-day cap, given to session-gc through its own variable.
    let env = [
        ("AWS_DYNAMO_DB_SESSION_TABLE_NAME", table.name.as_str()),
        (GC_MAX_STALE_VAR, "1d"),
    ];
    let report = Handler::from_env(env, table.client.clone())
        .unwrap()
        .collector()
        .collect_all()
        .await
        .unwrap();
    assert_eq!(report.deleted, 1);
    assert_eq!(labels_left(&table).await, ["session"]);
    assert!(by_layer.store().load(&by_session).await.unwrap().is_some());
}

#[tokio::test]
async fn the_scheduled_event_runs_the_handler() {
    let table = TestTable::new("gc_handler").await;
    let store = table.store(|c| {
        c.seal_data(false)
            .max_stale(Duration::from_secs(10 * MINUTE as u64))
    });
    let keys = create_sessions(&table, &store, &["expired", "fresh"]).await;
    let t = now();
    set_times(
        &table,
        &keys["expired"],
        t - HOUR,
        t - HOUR,
        t - 50 * MINUTE,
    )
    .await;

    let env = HashMap::from([
        ("AWS_DYNAMO_DB_SESSION_TABLE_NAME", table.name.as_str()),
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
