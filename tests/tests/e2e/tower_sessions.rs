//! `TowerSessionsStore` under tower-sessions and axum-login: the `axum_login` example's app
//! served on a loopback port and driven over real HTTP by a client with a cookie jar, the
//! raw items read back, and the store's contract (collision-safe create, no resurrection,
//! the collector) — each on the local DynamoDB and on `MemoryStore`.

use std::time::Duration;

use axum_login::tower_sessions::cookie::time::{self, OffsetDateTime};
use axum_login::tower_sessions::session::{Id, Record};
use axum_login::tower_sessions::session_store::SessionStore as _;
use dynamodb_session_store::gc::GarbageCollector;
use dynamodb_session_store::{
    Config, ConfigBuilder, MemoryStore, SessionStore, TowerSessionsStore,
};
use integration_tests::{OTHER_SECRET, SECRET, TestTable, now};
use serde_json::{Value, json};

/// The example's app, exactly as the example serves it.
#[path = "../../../shared/examples/axum_login.rs"]
#[allow(dead_code)]
mod axum_login_example;

/// The example's user, as the session keeps it, and its username.
const USER_ID: &str = "user-7f3a91";
const USERNAME: &str = "ferris";

/// How long any one exchange may take before the test fails instead of hanging.
const LIMIT: Duration = Duration::from_secs(20);

/// Where the sessions are kept, with a view of the raw items.
trait Place: Sized {
    fn new(test: &str) -> impl Future<Output = Self>;
    /// A store on it with the test secret, configured by `configure`.
    fn store_with(&self, configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> SessionStore;
    fn store(&self) -> SessionStore {
        self.store_with(|c| c)
    }
    /// Every item as stored: its table key, all of it as text, its `expire_at`.
    fn items(&self) -> impl Future<Output = Vec<(String, String, Option<i64>)>>;
    fn collector(&self) -> GarbageCollector;
}

struct DynamoDb(TestTable);

impl Place for DynamoDb {
    async fn new(test: &str) -> Self {
        DynamoDb(TestTable::new(test).await)
    }

    fn store_with(&self, configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> SessionStore {
        self.0.store(configure)
    }

    async fn items(&self) -> Vec<(String, String, Option<i64>)> {
        self.0
            .items()
            .await
            .into_iter()
            .map(|item| {
                let key = item["session_id"].as_s().unwrap().clone();
                let expire_at = item
                    .get("expire_at")
                    .map(|n| n.as_n().unwrap().parse().unwrap());
                // A Binary attribute's Debug is hex: its bytes are added as text too, so
                // that nothing written in plain text hides in one.
                let mut raw = format!("{item:?}");
                for value in item.values() {
                    if let Ok(bytes) = value.as_b() {
                        raw.push(' ');
                        raw.push_str(&String::from_utf8_lossy(bytes.as_ref()));
                    }
                }
                (key, raw, expire_at)
            })
            .collect()
    }

    fn collector(&self) -> GarbageCollector {
        GarbageCollector::new(self.0.client.clone(), &self.0.config().build().unwrap()).unwrap()
    }
}

struct Memory(MemoryStore);

impl Place for Memory {
    async fn new(_test: &str) -> Self {
        Memory(MemoryStore::new())
    }

    fn store_with(&self, configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> SessionStore {
        let config = configure(Config::builder().secret_key(SECRET))
            .build()
            .unwrap();
        SessionStore::with_backend(config, self.0.clone()).unwrap()
    }

    async fn items(&self) -> Vec<(String, String, Option<i64>)> {
        self.0
            .items_snapshot()
            .into_iter()
            .map(|(key, item)| {
                let text = format!("{key} {item:?}");
                (key, text, item.expire_at)
            })
            .collect()
    }

    fn collector(&self) -> GarbageCollector {
        GarbageCollector::with_backend(self.0.clone())
    }
}

/// Serves `router` on a free port of 127.0.0.1; the server task ends with the test's
/// runtime.
async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

/// One request: its status and body (JSON, or `null` when empty).
async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    let body = response.bytes().await.expect("the whole body");
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).expect("a JSON body")
    };
    (status, body)
}

/// Refused before login and with a wrong password; logged in, the protected route answers
/// with the user, and the one item holds no user id, cookie value or tower-sessions id in
/// plain text, with `expire_at` the session's expiry; logged out, the item is gone and the
/// old cookie opens nothing.
async fn login_protected_logout<P: Place>() {
    let place = P::new("tower_sessions_login").await;
    let base = serve(axum_login_example::app(place.store(), false)).await;
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .timeout(LIMIT)
        .build()
        .unwrap();
    let credentials =
        |password: &str| json!({"username": USERNAME, "password": password}).to_string();

    assert_eq!(send(client.get(format!("{base}/protected"))).await.0, 401);
    let wrong = client
        .post(format!("{base}/login"))
        .header("content-type", "application/json")
        .body(credentials("not-it"));
    assert_eq!(send(wrong).await.0, 401);
    assert!(
        place.items().await.is_empty(),
        "no session for a failed login"
    );

    let login = client
        .post(format!("{base}/login"))
        .header("content-type", "application/json")
        .body(credentials("crab-rave"));
    let response = login.send().await.expect("the server answers");
    assert_eq!(response.status(), 200);
    let cookie = response
        .cookies()
        .find(|c| c.name() == "id")
        .expect("the tower-sessions cookie")
        .value()
        .to_owned();
    let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body, json!({"user": USERNAME}));
    let (status, body) = send(client.get(format!("{base}/protected"))).await;
    assert_eq!((status, body), (200, json!({"user": USERNAME})));

    let items = place.items().await;
    assert_eq!(items.len(), 1, "one item per session: {items:?}");
    let (key, raw, expire_at) = &items[0];
    // The cookie value is the tower-sessions id (base64 of its 128 bits); its decimal form
    // is the other way it could have been written.
    let tower_id: Id = cookie.parse().expect("the cookie is a tower-sessions id");
    for secret in [
        USER_ID,
        USERNAME,
        "auth-hash-of-ferris",
        cookie.as_str(),
        &tower_id.0.to_string(),
    ] {
        assert!(!raw.contains(secret), "{secret:?} in plain text: {raw}");
    }
    assert_ne!(key, &cookie);
    // Sealed: raw bytes on DynamoDB (a Binary attribute), `s1.` text in memory.
    assert!(
        raw.contains("\"data\": B(") || raw.contains("s1."),
        "the data is sealed: {raw}"
    );
    // The example's idle limit is an hour, moved forward by every request.
    let expire_at = expire_at.expect("expire_at is the TTL attribute");
    assert!(
        (now() + 3590..=now() + 3601).contains(&expire_at),
        "expire_at {expire_at} is not the session's expiry (now {})",
        now()
    );

    let (status, _) = send(client.post(format!("{base}/logout"))).await;
    assert_eq!(status, 204);
    assert!(
        place.items().await.is_empty(),
        "logged out: the item is gone"
    );
    assert_eq!(send(client.get(format!("{base}/protected"))).await.0, 401);
    // Replayed by hand, the old cookie names nothing.
    let replay = reqwest::Client::new()
        .get(format!("{base}/protected"))
        .header("cookie", format!("id={cookie}"))
        .timeout(LIMIT);
    assert_eq!(send(replay).await.0, 401);
    assert!(place.items().await.is_empty(), "the replay wrote nothing");
}

fn record(id: i128, value: Value, expires_in: time::Duration) -> Record {
    Record {
        id: Id(id),
        data: [("n".to_owned(), value)].into_iter().collect(),
        expiry_date: OffsetDateTime::now_utc() + expires_in,
    }
}

/// `create` on a taken id draws another and leaves the stored session alone; `save`
/// writes over it; `save` after `delete` fails and brings nothing back.
async fn create_save_delete<P: Place>() {
    let place = P::new("tower_sessions_contract").await;
    let store = TowerSessionsStore::new(place.store());
    let hour = time::Duration::hours(1);

    let mut first = record(42, json!(1), hour);
    store.create(&mut first).await.unwrap();
    assert_eq!(first.id, Id(42), "a free id is kept");
    let mut second = record(42, json!(2), hour);
    store.create(&mut second).await.unwrap();
    assert_ne!(second.id, Id(42), "a taken id is replaced");
    assert_eq!(place.items().await.len(), 2);
    let loaded = store.load(&Id(42)).await.unwrap().expect("still there");
    assert_eq!(loaded.data["n"], json!(1), "the first session is untouched");
    let off = (loaded.expiry_date - first.expiry_date).abs();
    assert!(off <= time::Duration::seconds(1), "expiry off by {off}");
    let loaded = store.load(&second.id).await.unwrap().unwrap();
    assert_eq!(loaded.data["n"], json!(2));

    first.data.insert("n".into(), json!(3));
    store.save(&first).await.unwrap();
    assert_eq!(
        store.load(&Id(42)).await.unwrap().unwrap().data["n"],
        json!(3)
    );

    store.delete(&Id(42)).await.unwrap();
    assert_eq!(store.load(&Id(42)).await.unwrap(), None);
    assert!(
        store.save(&first).await.is_err(),
        "no save of a deleted session"
    );
    assert_eq!(store.load(&Id(42)).await.unwrap(), None, "not brought back");
    assert_eq!(place.items().await.len(), 1);
    store.delete(&Id(42)).await.unwrap();
}

/// The collector deletes a tower-sessions session whose expiry has passed and keeps a live
/// one: they are ordinary session items.
async fn the_collector_takes_expired_ones<P: Place>() {
    let place = P::new("tower_sessions_gc").await;
    let store = TowerSessionsStore::new(place.store());
    let mut dead = record(1, json!("dead"), time::Duration::seconds(-5));
    let mut live = record(2, json!("live"), time::Duration::hours(1));
    store.create(&mut dead).await.unwrap();
    store.create(&mut live).await.unwrap();
    assert_eq!(
        store.load(&dead.id).await.unwrap(),
        None,
        "expired reads as absent"
    );

    let report = place.collector().collect_all().await.unwrap();
    assert_eq!((report.garbage_found, report.deleted), (1, 1));
    let items = place.items().await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert!(store.load(&live.id).await.unwrap().is_some());
}

/// After a rotation a session stored under the previous secret still loads, saves in place
/// and deletes; new sessions take the current secret.
async fn a_rotated_secret_keeps_the_sessions<P: Place>() {
    let place = P::new("tower_sessions_rotation").await;
    let old = TowerSessionsStore::new(place.store());
    let rotated = TowerSessionsStore::new(
        place.store_with(|c| c.secret_key(OTHER_SECRET).previous_secret_keys([SECRET])),
    );
    let mut before = record(5, json!(1), time::Duration::hours(1));
    old.create(&mut before).await.unwrap();

    let loaded = rotated
        .load(&before.id)
        .await
        .unwrap()
        .expect("found under the old secret");
    assert_eq!(loaded.data["n"], json!(1));
    before.data.insert("n".into(), json!(2));
    rotated.save(&before).await.unwrap();
    assert_eq!(place.items().await.len(), 1, "saved in place, not copied");
    assert_eq!(
        old.load(&before.id).await.unwrap().unwrap().data["n"],
        json!(2)
    );

    let mut after = record(6, json!(3), time::Duration::hours(1));
    rotated.create(&mut after).await.unwrap();
    assert_eq!(
        old.load(&after.id).await.unwrap(),
        None,
        "under the new secret"
    );
    rotated.delete(&before.id).await.unwrap();
    assert_eq!(rotated.load(&before.id).await.unwrap(), None);
    assert_eq!(place.items().await.len(), 1);
    assert!(rotated.load(&after.id).await.unwrap().is_some());
}

on_both!(
    login_protected_logout,
    create_save_delete,
    the_collector_takes_expired_ones,
    a_rotated_secret_keeps_the_sessions,
);
