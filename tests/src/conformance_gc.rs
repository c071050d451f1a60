//! The collector's conformance cases: the same assertions for every [`Backend`], run by
//! [`conformance_suite!`](crate::conformance_suite) beside the store's.
//!
//! Time is simulated by [`Backend::age`], which rewrites an item's timestamps the way the
//! passing of time would have left them, so no case sleeps.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dynamodb_session_store::gc::{GcLimits, PassStatus};
use dynamodb_session_store::{SessionId, SessionRecord, SessionStore};
use serde_json::json;

use crate::conformance::{Backend, Times};
use crate::data;

const MINUTE: i64 = 60;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Creates a session and finds the table key it was stored under.
async fn create<B: Backend>(
    backend: &B,
    store: &SessionStore,
) -> (SessionId, SessionRecord, String) {
    let before = backend.keys().await;
    let (id, record) = store.create(&data(json!({"n": 1}))).await.unwrap();
    let mut added: Vec<String> = backend
        .keys()
        .await
        .into_iter()
        .filter(|key| !before.contains(key))
        .collect();
    assert_eq!(added.len(), 1, "one item per session");
    (id, record, added.remove(0))
}

fn times(created_ago: i64, updated_ago: i64, expires_in: Option<i64>) -> Times {
    let t = now();
    Times {
        created_at: t - created_ago,
        updated_at: t - updated_ago,
        expire_at: expires_in.map(|s| t + s),
        max_stale: None,
    }
}

/// A session whose `expire_at` has passed is deleted, and the store no longer holds it.
pub async fn gc_deletes_what_has_expired<B: Backend>() {
    let backend = B::new("gc_expired").await;
    let store = backend.store(|c| c.max_stale(Duration::from_secs(600)));
    let (dead, _, dead_key) = create(&backend, &store).await;
    let (live, _, _) = create(&backend, &store).await;
    backend
        .age(&dead_key, times(2 * HOUR, 2 * HOUR, Some(-MINUTE)))
        .await;

    let report = backend.collector().collect_all().await.unwrap();
    assert_eq!(report.status, PassStatus::Complete);
    assert_eq!((report.garbage_found, report.deleted), (1, 1));
    assert_eq!(report.skipped_refreshed, 0);
    assert!(!backend.keys().await.contains(&dead_key));
    assert_eq!(store.load(&dead).await.unwrap(), None);
    assert!(store.load(&live).await.unwrap().is_some());
    assert_eq!(backend.count().await, 1);
}

/// What the store would still open stays: old but unexpired, untouched, and unlimited.
pub async fn gc_keeps_live_sessions<B: Backend>() {
    let backend = B::new("gc_live").await;
    let store = backend.store(|c| c.max_stale(Duration::from_secs(600)));
    let (old, _, old_key) = create(&backend, &store).await;
    let (fresh, _, _) = create(&backend, &store).await;
    let unlimited_store =
        backend.store(|c| c.max_stale(dynamodb_session_store::Lifetime::Unlimited));
    let (unlimited, _, unlimited_key) = create(&backend, &unlimited_store).await;
    backend
        .age(&old_key, times(100 * DAY, 5 * MINUTE, Some(5 * MINUTE)))
        .await;
    backend
        .age(&unlimited_key, times(100 * DAY, 100 * DAY, None))
        .await;

    let report = backend.collector().collect_all().await.unwrap();
    assert_eq!(report.status, PassStatus::Complete);
    assert_eq!((report.garbage_found, report.deleted), (0, 0));
    assert!(report.scanned >= 3, "{report:?}");
    for id in [&old, &fresh] {
        assert!(store.load(id).await.unwrap().is_some());
    }
    assert!(unlimited_store.load(&unlimited).await.unwrap().is_some());
    assert_eq!(backend.count().await, 3);
}

/// A session the scan saw as garbage but that was written before its delete survives: the
/// delete re-checks the rule.
pub async fn gc_spares_a_session_refreshed_after_the_scan<B: Backend>() {
    let backend = B::new("gc_refreshed").await;
    let store = backend.store(|c| c.max_stale(Duration::from_secs(600)));
    let (id, record, key) = create(&backend, &store).await;
    let kept = id.clone();
    backend.age(&key, times(HOUR, HOUR, Some(-MINUTE))).await;
    let refreshed = Arc::new(AtomicBool::new(false));
    let collector = backend.collector().with_segments(1).on_page_scanned({
        let (store, refreshed) = (store.clone(), refreshed.clone());
        move |page| {
            let (store, id, record, refreshed) =
                (store.clone(), id.clone(), record.clone(), refreshed.clone());
            Box::pin(async move {
                if !page.garbage.is_empty() && !refreshed.swap(true, Ordering::SeqCst) {
                    store.touch(&id, &record).await.unwrap();
                }
            })
        }
    });

    let report = collector.collect_all().await.unwrap();
    assert!(
        refreshed.load(Ordering::SeqCst),
        "the scan found it as garbage"
    );
    assert_eq!(report.garbage_found, 1);
    assert_eq!((report.deleted, report.skipped_refreshed), (0, 1));
    assert!(backend.keys().await.contains(&key));
    assert!(store.load(&kept).await.unwrap().is_some());
    assert_eq!(backend.count().await, 1);
}

/// A `max_stale` cap deletes idle sessions, but a session with an idle limit of its own is
/// judged by its `expire_at`, as the store judges it.
pub async fn gc_respects_a_sessions_own_max_stale<B: Backend>() {
    let backend = B::new("gc_own_max_stale").await;
    let store = backend.store(|c| c.max_stale(Duration::from_secs(600)));
    let (own, _, own_key) = create(&backend, &store).await;
    let (idle, _, idle_key) = create(&backend, &store).await;
    let thirty_days = 30 * DAY;
    backend
        .age(
            &own_key,
            Times {
                max_stale: Some(thirty_days as u64),
                ..times(HOUR, HOUR, Some(thirty_days - HOUR))
            },
        )
        .await;
    backend
        .age(&idle_key, times(HOUR, HOUR, Some(thirty_days - HOUR)))
        .await;

    let report = backend
        .collector()
        .with_limits(GcLimits {
            max_age: None,
            max_stale: Some(Duration::from_secs(10 * MINUTE as u64)),
        })
        .collect_all()
        .await
        .unwrap();
    assert_eq!((report.garbage_found, report.deleted), (1, 1));
    assert!(store.load(&own).await.unwrap().is_some());
    assert_eq!(store.load(&idle).await.unwrap(), None);
    assert_eq!(backend.keys().await, [own_key]);
}

/// The caps and the expiry are ORed: any one of them makes a session garbage.
pub async fn gc_ors_its_caps_with_expiry<B: Backend>() {
    let backend = B::new("gc_caps").await;
    let store = backend.store(|c| c.max_stale(Duration::from_secs(HOUR as u64)));
    let (old, _, old_key) = create(&backend, &store).await;
    let (idle, _, idle_key) = create(&backend, &store).await;
    let (expired, _, expired_key) = create(&backend, &store).await;
    let (fresh, _, fresh_key) = create(&backend, &store).await;
    backend
        .age(&old_key, times(2 * DAY, MINUTE, Some(HOUR)))
        .await;
    backend
        .age(&idle_key, times(HOUR, 30 * MINUTE, Some(30 * MINUTE)))
        .await;
    backend
        .age(&expired_key, times(HOUR, HOUR, Some(-MINUTE)))
        .await;
    backend
        .age(&fresh_key, times(HOUR, MINUTE, Some(HOUR)))
        .await;

    let report = backend
        .collector()
        .with_limits(GcLimits {
            max_age: Some(Duration::from_secs(DAY as u64)),
            max_stale: Some(Duration::from_secs(10 * MINUTE as u64)),
        })
        .collect_all()
        .await
        .unwrap();
    assert_eq!(report.status, PassStatus::Complete);
    assert_eq!((report.garbage_found, report.deleted), (3, 3));
    for gone in [&old, &idle, &expired] {
        assert_eq!(store.load(gone).await.unwrap(), None);
    }
    assert!(store.load(&fresh).await.unwrap().is_some());
    assert_eq!(backend.keys().await, [fresh_key]);
}

/// A pass stopped after one page resumes where it stopped, in the same pass, and together
/// the two invocations delete every expired session once.
pub async fn gc_resumes_from_its_checkpoint<B: Backend>() {
    const EXPIRED: usize = 5;
    let backend = B::new("gc_resume").await;
    let store = backend.store(|c| c.max_stale(Duration::from_secs(600)));
    for _ in 0..EXPIRED {
        let (_, _, key) = create(&backend, &store).await;
        backend.age(&key, times(HOUR, HOUR, Some(-MINUTE))).await;
    }
    let (live, _, live_key) = create(&backend, &store).await;

    let stop = Arc::new(AtomicBool::new(false));
    let first = backend
        .collector()
        .with_segments(1)
        .with_page_size(1)
        .with_stop_flag(stop.clone())
        .on_progress(move |_| stop.store(true, Ordering::Relaxed))
        .collect_all()
        .await
        .unwrap();
    assert_eq!(first.status, PassStatus::Continuing);
    assert_eq!((first.pages, first.segments_done), (1, 0));

    let starts = Arc::new(Mutex::new(Vec::new()));
    let second = backend
        .collector()
        .with_segments(1)
        .with_page_size(1)
        .on_page_scanned({
            let starts = starts.clone();
            move |page| {
                starts.lock().unwrap().push(page.exclusive_start_key);
                Box::pin(async {})
            }
        })
        .collect_all()
        .await
        .unwrap();
    assert_eq!(second.status, PassStatus::Complete);
    assert_eq!(
        second.pass_started_at, first.pass_started_at,
        "the same pass"
    );
    assert!(
        starts.lock().unwrap()[0].is_some(),
        "the second invocation starts after the first one's last page"
    );
    assert_eq!(first.deleted + second.deleted, EXPIRED as u64);
    assert_eq!(second.skipped_refreshed, 0);
    assert!(store.load(&live).await.unwrap().is_some());
    assert_eq!(
        backend.keys().await,
        [live_key],
        "the finished pass left no checkpoint"
    );
}
