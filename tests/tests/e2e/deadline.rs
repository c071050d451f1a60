//! session-api answers before its invocation's deadline. `lambda_http` puts the invocation's
//! `Context` in every request; the layer reads its `deadline` with the rule every function
//! shares (`Deadline::from_lambda_millis`): Unix milliseconds on Lambda, a time budget from
//! an emulator (`cargo lambda watch` sends 600000), or 0 (none known). Here the layered
//! `session_api::app` gets each, with pessimistic locking, a lock held elsewhere and
//! `LOCK_MAX_WAIT_TIME` (10 s) longer than a real deadline leaves.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dynamodb_session_store::{Concurrency, SessionLayer, SessionRecord, SessionStore};
use integration_tests::api::{self, Reply, decode};
use integration_tests::{SECRET, TestTable};
use lambda_http::http::{Method, StatusCode, header};
use lambda_http::tower::ServiceExt;
use serde_json::json;
use session_api::Clients;

/// The budget a real deadline gives in these tests; the layer keeps its default 1 s margin.
const BUDGET_MS: u64 = 3_000;

/// Unix milliseconds now.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// session-api on a fresh table, configured through its environment, and another store on
/// the same table that holds locks "elsewhere".
struct Api {
    table: TestTable,
    layer: SessionLayer,
    elsewhere: SessionStore,
}

impl Api {
    async fn new(test: &str) -> Api {
        let table = TestTable::new(test).await;
        let env = [
            ("TABLE_NAME", table.name.as_str()),
            ("SECRET_KEY", SECRET),
            ("ENABLE_LOCKING", "true"),
            ("LOCK_MAX_WAIT_TIME", "10s"),
            ("LOCK_RETRY_DELAY", "100ms"),
            ("LOCK_EXPIRY_TIME", "60s"),
        ]
        .map(|(name, value)| (format!("AWS_DYNAMO_DB_SESSION_{name}"), value.to_owned()));
        // No secret ARN: the Secrets Manager client is never used.
        let clients = Clients {
            dynamodb: table.client.clone(),
            secrets_manager: aws_sdk_secretsmanager::Client::from_conf(
                aws_sdk_secretsmanager::Config::builder()
                    .behavior_version_latest()
                    .build(),
            ),
        };
        let layer = session_api::layer_with(clients, env.to_vec())
            .await
            .unwrap();
        let elsewhere = table.store(|c| {
            c.concurrency(Concurrency::Pessimistic)
                .lock_expiry_time(Duration::from_secs(60))
        });
        Api {
            table,
            layer,
            elsewhere,
        }
    }

    /// A new session with `count` 1, and its cookie.
    async fn session(&self) -> String {
        let reply = api::get(&self.layer, "/counter", None).await;
        assert_eq!(reply.body, json!({"count": 1}));
        reply.cookie()
    }

    /// Takes the session's lock from elsewhere, as another request would.
    async fn hold(&self, cookie: &str) -> (dynamodb_session_store::SessionId, SessionRecord) {
        let id = self
            .elsewhere
            .verify_cookie(cookie.split_once('=').unwrap().1)
            .unwrap();
        let record = self.elsewhere.load(&id).await.unwrap().unwrap();
        assert!(record.is_locked());
        (id, record)
    }

    /// The only item's `lock_owner` and `locked_at`, if set.
    async fn lock(&self) -> (Option<String>, Option<String>) {
        let items = self.table.items().await;
        assert_eq!(items.len(), 1, "one session");
        let read = |name: &str| {
            items[0].get(name).map(|v| match v {
                aws_sdk_dynamodb::types::AttributeValue::S(s) => s.clone(),
                aws_sdk_dynamodb::types::AttributeValue::N(n) => n.clone(),
                other => format!("{other:?}"),
            })
        };
        (read("lock_owner"), read("locked_at"))
    }

    /// The session's count, read without a deadline.
    async fn count(&self, cookie: &str) -> serde_json::Value {
        api::get(&self.layer, "/session", Some(cookie)).await.body["count"].clone()
    }
}

/// `GET path` through session-api with the cookie and a Lambda context whose deadline is
/// `deadline_ms`, as `lambda_http` passes it.
async fn get(layer: SessionLayer, path: &str, cookie: &str, deadline_ms: u64) -> Reply {
    let mut request = api::request(Method::GET, path, Some(cookie), "");
    let mut context = lambda_http::Context::default();
    context.deadline = deadline_ms;
    request.extensions_mut().insert(context);
    let app = session_api::app_with(layer, api::DemoRoutes::On, session_api::FUNCTION_TIMEOUT);
    decode(app.oneshot(request).await.unwrap())
}

fn assert_busy(reply: &Reply) {
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        reply.body
    );
    let retry_after: u64 = reply.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
}

#[tokio::test]
async fn a_real_deadline_cuts_the_lock_wait_short_and_answers_503_before_it() {
    let api = Api::new("deadline_real_lock_held").await;
    let cookie = api.session().await;
    let (id, held) = api.hold(&cookie).await;
    let before = api.lock().await;
    assert!(before.0.is_some());

    let started = Instant::now();
    let reply = get(api.layer.clone(), "/counter", &cookie, now_ms() + BUDGET_MS).await;
    let elapsed = started.elapsed();
    assert_busy(&reply);
    eprintln!("answered 503 after {elapsed:?} of a {BUDGET_MS} ms deadline");
    assert!(
        elapsed < Duration::from_millis(BUDGET_MS),
        "answered after the deadline: {elapsed:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(BUDGET_MS - 1_500),
        "it waited for the lock until the budget ran out, not less: {elapsed:?}"
    );
    assert_eq!(
        api.lock().await,
        before,
        "the other holder's lock is untouched and this request left none"
    );

    api.elsewhere.release(&id, &held).await.unwrap();
    assert_eq!(api.lock().await, (None, None));
    assert_eq!(api.count(&cookie).await, json!(1), "nothing was written");
}

#[tokio::test]
async fn a_request_out_of_time_while_holding_the_lock_releases_it_before_the_deadline() {
    let api = Api::new("deadline_real_holding").await;
    let cookie = api.session().await;

    // The handler takes the lock, then holds it for 5 s: past the deadline.
    let started = Instant::now();
    let deadline = now_ms() + BUDGET_MS;
    let request = tokio::spawn({
        let (layer, cookie) = (api.layer.clone(), cookie.clone());
        async move { get(layer, "/counter?hold_ms=5000", &cookie, deadline).await }
    });
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let (ours, _) = api.lock().await;
    let ours = ours.expect("the request holds the lock");

    let reply = request.await.unwrap();
    let elapsed = started.elapsed();
    assert_busy(&reply);
    eprintln!("answered 503 after {elapsed:?} of a {BUDGET_MS} ms deadline");
    assert!(
        elapsed < Duration::from_millis(BUDGET_MS),
        "answered after the deadline: {elapsed:?}"
    );
    let after = api.lock().await;
    assert_ne!(after.0.as_deref(), Some(ours.as_str()), "its lock survived");
    assert_eq!(after, (None, None), "the lock was released");
    assert_eq!(api.count(&cookie).await, json!(1), "nothing was written");
}

/// With an emulator's budget or no deadline, the lock wait is bounded only by
/// `LOCK_MAX_WAIT_TIME`: the request outwaits a lock held past a real deadline, then succeeds.
async fn no_tight_deadline(test: &str, deadline_ms: u64) {
    let api = Api::new(test).await;
    let cookie = api.session().await;
    let (id, held) = api.hold(&cookie).await;

    let started = Instant::now();
    let request = tokio::spawn({
        let (layer, cookie) = (api.layer.clone(), cookie.clone());
        async move { get(layer, "/counter", &cookie, deadline_ms).await }
    });
    let held_for = Duration::from_millis(BUDGET_MS + 500);
    tokio::time::sleep(held_for).await;
    assert!(!request.is_finished(), "still waiting for the lock");
    api.elsewhere.release(&id, &held).await.unwrap();

    let reply = request.await.unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body, json!({"count": 2}));
    assert!(started.elapsed() >= held_for);
    assert_eq!(api.lock().await, (None, None), "released by its save");
}

#[tokio::test]
async fn an_emulator_budget_is_not_a_tight_deadline() {
    no_tight_deadline("deadline_emulator", 600_000).await;
}

#[tokio::test]
async fn no_deadline_is_not_a_tight_deadline() {
    no_tight_deadline("deadline_none", 0).await;
}
