//! session-api under injected DynamoDB faults: throttling, 500s and dropped connections
//! between the SDK and the server. Whatever fails, no stored session is overwritten by an
//! empty one, goes backwards or vanishes; every request gets an answer; no lock outlives its
//! request.

use std::sync::atomic::Ordering;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use dynamodb_session_store::{Concurrency, Config, SessionLayer, SessionStore};
use integration_tests::fault_proxy::{FaultProxy, FaultRates};
use integration_tests::{Endpoint, SECRET, TestTable, api, client_config, endpoint};
use lambda_http::http::{Method, StatusCode};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

const RATES: FaultRates = FaultRates {
    throttle: 0.08,
    server_error: 0.05,
    drop_before: 0.04,
    drop_after: 0.03,
};
const SESSIONS: usize = 12;
const REQUESTS_PER_SESSION: usize = 25;

/// Where the proxy forwards to: moto, or a plain-HTTP endpoint such as DynamoDB Local.
fn upstream() -> Option<String> {
    match endpoint() {
        Endpoint::Moto(url) => Some(url),
        Endpoint::External => std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
            .ok()
            .filter(|url| url.starts_with("http://")),
    }
}

/// A store on `table` whose every call goes through `proxy`, with session-api's retries, a
/// 30 s lock expiry and a 2 s lock wait.
async fn store_behind(
    proxy: &FaultProxy,
    table: &TestTable,
    concurrency: Concurrency,
) -> SessionStore {
    let faulty = Client::from_conf(
        session_api::resilient(client_config().await.endpoint_url(&proxy.url)).build(),
    );
    SessionStore::new(
        Config::builder()
            .table_name(&table.name)
            .secret_key(SECRET)
            .concurrency(concurrency)
            .lock_expiry_time(Duration::from_secs(30))
            .lock_max_wait_time(Duration::from_secs(2))
            .dynamo_db_client(faulty)
            .build()
            .unwrap(),
    )
    .unwrap()
}

async fn call(
    layer: &SessionLayer,
    method: Method,
    path: &str,
    cookie: Option<&str>,
    body: &str,
) -> (StatusCode, Option<String>, Value) {
    let reply = tokio::time::timeout(
        Duration::from_secs(30),
        api::call(layer, method, path, cookie, body),
    )
    .await
    .expect("every request gets an answer in time");
    // A removal cookie (`session=`) is not a new session.
    let cookie = reply.cookie_pair().filter(|c| !c.ends_with('='));
    (reply.status, cookie, reply.body)
}

/// One session's life: sequential requests, checking the stored session after each.
async fn drive_one_session(layer: SessionLayer, observer: SessionStore, seed: u64) -> usize {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut cookie: Option<String> = None;
    let mut stored_count = 0i64;
    let mut requests = 0;
    for i in 0..REQUESTS_PER_SESSION {
        let roll: f64 = rng.random();
        let (method, path, body) = match (&cookie, roll) {
            (None, _) | (Some(_), 0.0..0.6) => (Method::GET, "/counter", String::new()),
            (Some(_), 0.6..0.85) => (Method::GET, "/session", String::new()),
            _ => (Method::PATCH, "/session", json!({ "note": i }).to_string()),
        };
        let (status, set_cookie, answer) =
            call(&layer, method, path, cookie.as_deref(), &body).await;
        requests += 1;
        assert!(
            matches!(status.as_u16(), 200 | 409 | 500 | 503),
            "unexpected {status}: {answer}"
        );
        if let Some(new) = set_cookie {
            assert!(
                cookie.is_none(),
                "a working session never gets a new id here"
            );
            cookie = Some(new);
        }
        let Some(cookie) = &cookie else {
            continue;
        };
        // Read what is stored through a fault-free client, without taking any lock.
        let id = observer
            .verify_cookie(cookie.strip_prefix("__Host-session=").unwrap())
            .unwrap();
        let record = observer
            .load(&id)
            .await
            .unwrap()
            .expect("a stored session never vanishes");
        assert!(
            !record.data.is_empty(),
            "never overwritten by an empty session"
        );
        let count = record.data["count"].as_i64().expect("count is kept");
        assert!(
            count >= stored_count,
            "count went backwards: {stored_count} -> {count}"
        );
        stored_count = count;
    }
    requests
}

async fn survive_faults(test: &str, concurrency: Concurrency, seed: u64) {
    let Some(upstream) = upstream() else {
        eprintln!("skipped: the fault proxy speaks plain HTTP only");
        return;
    };
    let table = TestTable::new(test).await;
    let proxy = FaultProxy::start(&upstream, RATES, seed).await;
    let store = store_behind(&proxy, &table, concurrency).await;
    let layer = SessionLayer::new(store);
    let observer = table.store(|c| c);

    let tasks: Vec<_> = (0..SESSIONS)
        .map(|n| {
            tokio::spawn(drive_one_session(
                layer.clone(),
                observer.clone(),
                seed + n as u64,
            ))
        })
        .collect();
    let mut requests = 0;
    for task in tasks {
        requests += task.await.unwrap();
    }

    for item in table.items().await {
        assert!(
            !item.contains_key("locked_at"),
            "a lock outlived its request: {item:?}"
        );
    }
    let c = &proxy.counts;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    eprintln!(
        "{test}: {requests} requests, {} DynamoDB requests forwarded, faults injected: {} \
         (throttled {}, 500 {}, dropped before {}, dropped after {}); seed {seed}",
        load(&c.forwarded),
        c.injected(),
        load(&c.throttled),
        load(&c.server_errors),
        load(&c.dropped_before),
        load(&c.dropped_after),
    );
    for (kind, n) in [
        ("throttling", &c.throttled),
        ("500", &c.server_errors),
        ("drop before", &c.dropped_before),
        ("drop after", &c.dropped_after),
    ] {
        assert!(
            load(n) > 0,
            "no {kind} fault was injected: the test proves nothing"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_survive_faults_without_locking() {
    survive_faults("faults_none", Concurrency::None, 7).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_and_locks_survive_faults_with_pessimistic_locking() {
    survive_faults("faults_pessimistic", Concurrency::Pessimistic, 1_000).await;
}

/// The cause of the rare "a lock outlived its request" above, made certain: every answer of
/// the lock-and-read is lost after DynamoDB applied it, so the first attempt takes the lock
/// (with the request's own token, which lets the retries pass too) and the call still fails.
/// Before the fix the request then held a lock it never learnt of, and every request on the
/// session answered 503 until `lock_expiry_time` (under the random faults above, a few times
/// in a hundred runs). The store knows its token, so it releases by it when the lock-and-read
/// fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_and_read_that_fails_leaves_no_lock() {
    let Some(upstream) = upstream() else {
        eprintln!("skipped: the fault proxy speaks plain HTTP only");
        return;
    };
    let table = TestTable::new("lost_lock").await;
    let (id, _) = table
        .store(|c| c)
        .create(&integration_tests::data(json!({"n": 1})))
        .await
        .unwrap();
    let every_answer_lost = FaultRates {
        drop_after: 1.0,
        ..FaultRates::default()
    };
    let proxy = FaultProxy::start(&upstream, every_answer_lost, 1).await;
    let store = store_behind(&proxy, &table, Concurrency::Pessimistic).await;
    store.load(&id).await.expect_err("no answer ever arrives");
    assert!(
        proxy.counts.dropped_after.load(Ordering::Relaxed) > 0,
        "the lock-and-read reached DynamoDB"
    );
    let items = table.items().await;
    assert_eq!(items.len(), 1);
    assert!(
        !items[0].contains_key("locked_at"),
        "a lock outlived its request: {:?}",
        items[0]
    );
}
