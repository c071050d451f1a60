//! The conformance suite: the contract every session backend meets, run with the same
//! assertions against DynamoDB (on the local DynamoDB) and against [`MemoryStore`].
//!
//! Each test is a generic function over a [`Backend`] fixture; [`conformance_suite!`] turns
//! the list into `#[tokio::test]`s for one backend. Races are interleaved deterministically:
//! the "concurrent" request is a second handle on the same session, stepped by the test.
//! What only one backend can show (DynamoDB's item layout, timestamps edited in the table)
//! stays in that backend's own tests; everything a caller relies on is here.
//!
//! # Running it against your own backend
//!
//! A third-party backend (an implementation of the library's `SessionBackend` trait) keeps
//! the library's promises when this suite passes on it. Depend on this crate
//! (`integration-tests`, by path or git, as a dev-dependency), implement [`Backend`] for a
//! fixture that hands out a fresh, empty place per test and builds stores on it with
//! [`SessionStore::with_backend`], and expand the macro in an integration test:
//!
//! ```ignore
//! use dynamodb_session_store::{Config, ConfigBuilder, SessionStore};
//! use integration_tests::conformance::Backend;
//!
//! struct Mine(my_backend::Store);
//!
//! impl Backend for Mine {
//!     async fn new(_test: &str) -> Self {
//!         Mine(my_backend::Store::fresh().await)
//!     }
//!     fn store(&self, configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> SessionStore {
//!         let config = configure(Config::builder().secret_key(integration_tests::SECRET));
//!         SessionStore::with_backend(config.build().unwrap(), self.0.clone()).unwrap()
//!     }
//!     async fn count(&self) -> usize {
//!         self.0.session_count().await
//!     }
//! }
//!
//! integration_tests::conformance_suite!(Mine);
//! ```
//!
//! `cargo test --test <that file>` then runs every case, in every concurrency mode it
//! concerns. The two fixtures here, [`DynamoDb`] and [`Memory`], are the reference; this
//! workspace expands the macro for both in `tests/tests/e2e/conformance.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dynamodb_session_store::backend::{Changes, Guard, SessionBackend, Written};
use dynamodb_session_store::deadline::Deadline;
use dynamodb_session_store::gc::{CHECKPOINT_KEY, GarbageCollector};
use dynamodb_session_store::ops::StoreOps as _;
use dynamodb_session_store::testing::StoreTesting as _;
use dynamodb_session_store::{
    Concurrency, Config, ConfigBuilder, Error, MemoryStore, RequestSessionExt, SessionData,
    SessionLayer, SessionStore,
};
use lambda_http::http::{Request, Response, StatusCode, header};
use lambda_http::tower::{Layer, ServiceExt, service_fn};
use serde_json::{Value, json};

pub use crate::conformance_gc::*;
use crate::{OTHER_SECRET, SECRET, TestTable, data};

/// A fresh place to keep sessions, one per test.
pub trait Backend: Sized {
    /// A fresh backend for `test`.
    fn new(test: &str) -> impl Future<Output = Self>;
    /// A store on it, configured by `configure` (the test secret is set).
    fn store(&self, configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> SessionStore;
    /// How many session items it holds.
    fn count(&self) -> impl Future<Output = usize>;
    /// A garbage collector on it, with the collector's defaults.
    fn collector(&self) -> GarbageCollector;
    /// The table keys of the items it holds, but the collector's checkpoint.
    fn keys(&self) -> impl Future<Output = Vec<String>>;
    /// Rewrites the timestamps of the item under `key`, as if time had passed.
    fn age(&self, key: &str, times: Times) -> impl Future<Output = ()>;
}

/// The timestamps [`Backend::age`] gives an item (Unix seconds).
#[derive(Debug, Clone, Copy)]
pub struct Times {
    /// Its creation.
    pub created_at: i64,
    /// Its last write.
    pub updated_at: i64,
    /// When it ends, if it has a limit.
    pub expire_at: Option<i64>,
    /// Its own idle limit in seconds, if it has one.
    pub max_stale: Option<u64>,
}

/// Sessions in a fresh table on the suite's DynamoDB.
pub struct DynamoDb(TestTable);

impl Backend for DynamoDb {
    async fn new(test: &str) -> Self {
        DynamoDb(TestTable::new(test).await)
    }

    fn store(&self, configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> SessionStore {
        self.0.store(configure)
    }

    async fn count(&self) -> usize {
        // Revocation markers are items, not sessions.
        self.0
            .items()
            .await
            .iter()
            .filter(|item| {
                !item["session_id"]
                    .as_s()
                    .is_ok_and(|key| key.starts_with(SessionStore::REVOCATION_MARKER_PREFIX))
            })
            .count()
    }

    fn collector(&self) -> GarbageCollector {
        GarbageCollector::new(self.0.client.clone(), &self.0.config().build().unwrap()).unwrap()
    }

    async fn keys(&self) -> Vec<String> {
        self.0
            .items()
            .await
            .iter()
            .map(|item| item["session_id"].as_s().unwrap().clone())
            .filter(|key| key != CHECKPOINT_KEY)
            .collect()
    }

    async fn age(&self, key: &str, times: Times) {
        use aws_sdk_dynamodb::types::AttributeValue;
        let n = |n: String| AttributeValue::N(n);
        let mut set = vec!["created_at = :c", "updated_at = :u"];
        let mut remove = Vec::new();
        let mut update = self
            .0
            .client
            .update_item()
            .table_name(&self.0.name)
            .key("session_id", AttributeValue::S(key.to_owned()))
            .expression_attribute_values(":c", n(times.created_at.to_string()))
            .expression_attribute_values(":u", n(times.updated_at.to_string()));
        match times.expire_at {
            Some(t) => {
                set.push("expire_at = :e");
                update = update.expression_attribute_values(":e", n(t.to_string()));
            }
            None => remove.push("expire_at"),
        }
        match times.max_stale {
            Some(s) => {
                set.push("max_stale = :m");
                update = update.expression_attribute_values(":m", n(s.to_string()));
            }
            None => remove.push("max_stale"),
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        update
            .update_expression(expression)
            .condition_expression("attribute_exists(session_id)")
            .send()
            .await
            .expect("aged");
    }
}

/// Sessions in memory.
pub struct Memory(MemoryStore);

impl Backend for Memory {
    async fn new(_test: &str) -> Self {
        Memory(MemoryStore::new())
    }

    fn store(&self, configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> SessionStore {
        let config = configure(Config::builder().secret_key(SECRET))
            .build()
            .expect("valid config");
        SessionStore::with_backend(config, self.0.clone()).expect("store builds")
    }

    async fn count(&self) -> usize {
        self.0.len()
    }

    fn collector(&self) -> GarbageCollector {
        GarbageCollector::with_backend(self.0.clone())
    }

    async fn keys(&self) -> Vec<String> {
        self.0
            .items_snapshot()
            .into_iter()
            .map(|(key, _)| key)
            .collect()
    }

    async fn age(&self, key: &str, times: Times) {
        let changes = Changes {
            created_at: Some(times.created_at),
            updated_at: Some(times.updated_at),
            expire_at: Some(times.expire_at),
            max_stale: Some(times.max_stale),
            ..Changes::default()
        };
        let written = SessionBackend::update(&self.0, key, &changes, &Guard::None)
            .await
            .unwrap();
        assert_eq!(written, Written::Applied);
    }
}

/// Runs the whole conformance suite against one backend type: every test, in every
/// concurrency mode it concerns.
#[macro_export]
macro_rules! conformance_suite {
    ($backend:ty) => {
        $crate::conformance_suite!($backend;
            round_trip_with_a_lifetime_by_default => round_trip_with_a_lifetime_by_default(),
            save_and_touch => save_and_touch(),
            expired_sessions_read_as_absent => expired_sessions_read_as_absent(),
            oversize_is_refused_and_the_stored_one_stays => oversize_is_refused_and_the_stored_one_stays(),
            a_colliding_id_never_takes_over => a_colliding_id_never_takes_over(),
            delete_removes_and_tolerates_a_missing_one => delete_removes_and_tolerates_a_missing_one(),
            save_after_delete_fails_and_does_not_resurrect => save_after_delete_fails_and_does_not_resurrect(),
            forged_and_truncated_cookies_open_nothing => forged_and_truncated_cookies_open_nothing(),
            rotated_secret_still_opens_existing_sessions => rotated_secret_still_opens_existing_sessions(),
            renew_racing_a_save_none => renew_racing_a_save(Concurrency::None),
            renew_racing_a_save_optimistic => renew_racing_a_save(Concurrency::Optimistic),
            renew_racing_a_save_pessimistic => renew_racing_a_save(Concurrency::Pessimistic),
            stale_holders_write_nothing_none => stale_holders_write_nothing(Concurrency::None),
            stale_holders_write_nothing_optimistic => stale_holders_write_nothing(Concurrency::Optimistic),
            stale_holders_write_nothing_pessimistic => stale_holders_write_nothing(Concurrency::Pessimistic),
            key_move_none => a_previous_key_session_moves_without_losing_a_save(Concurrency::None),
            key_move_optimistic => a_previous_key_session_moves_without_losing_a_save(Concurrency::Optimistic),
            key_move_pessimistic => a_previous_key_session_moves_without_losing_a_save(Concurrency::Pessimistic),
            locks_serialize_and_time_out => locks_serialize_and_time_out(),
            errors_through_question_mark_get_the_layers_answers => errors_through_question_mark_get_the_layers_answers(),
            a_held_lock_never_yields_a_fresh_session => a_held_lock_never_yields_a_fresh_session(),
            panics_and_deadlines_release_the_lock => panics_and_deadlines_release_the_lock(),
            emptied_and_destroyed_none => emptied_and_destroyed_sessions_honour_the_mode(Concurrency::None),
            emptied_and_destroyed_optimistic => emptied_and_destroyed_sessions_honour_the_mode(Concurrency::Optimistic),
            emptied_and_destroyed_pessimistic => emptied_and_destroyed_sessions_honour_the_mode(Concurrency::Pessimistic),
            defer_gives_the_application_the_cookie_value => defer_gives_the_application_the_cookie_value(),
            a_session_can_have_its_own_lifetime => a_session_can_have_its_own_lifetime(),
            users_none => a_users_sessions_are_listed_and_revoked(Concurrency::None),
            users_optimistic => a_users_sessions_are_listed_and_revoked(Concurrency::Optimistic),
            users_pessimistic => a_users_sessions_are_listed_and_revoked(Concurrency::Pessimistic),
            many_sessions_are_paginated => many_sessions_are_paginated(),
            expired_sessions_are_never_listed => expired_sessions_are_never_listed(),
            changes_after_the_write_are_refused => changes_after_the_write_are_refused(),
            tossed_cookies_are_never_used => tossed_cookies_are_never_used(),
            gc_deletes_what_has_expired => gc_deletes_what_has_expired(),
            gc_keeps_live_sessions => gc_keeps_live_sessions(),
            gc_spares_a_session_refreshed_after_the_scan => gc_spares_a_session_refreshed_after_the_scan(),
            gc_respects_a_sessions_own_max_stale => gc_respects_a_sessions_own_max_stale(),
            gc_ors_its_caps_with_expiry => gc_ors_its_caps_with_expiry(),
            gc_resumes_from_its_checkpoint => gc_resumes_from_its_checkpoint(),
        );
    };
    ($backend:ty; $($name:ident => $test:ident ($($arg:expr),*)),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                use dynamodb_session_store::Concurrency;
                $crate::conformance::$test::<$backend>($($arg),*).await;
            }
        )*
    };
}

/// Lock settings that make a held lock expire quickly and waits short.
fn locking(c: ConfigBuilder, expiry_ms: u64, max_wait_ms: u64) -> ConfigBuilder {
    c.concurrency(Concurrency::Pessimistic)
        .lock_expiry_time(Duration::from_millis(expiry_ms))
        .lock_retry_delay(Duration::from_millis(20))
        .lock_max_wait_time(Duration::from_millis(max_wait_ms))
}

fn in_mode(c: ConfigBuilder, mode: Concurrency) -> ConfigBuilder {
    match mode {
        Concurrency::Pessimistic => locking(c, 200, 2_000),
        other => c.concurrency(other),
    }
}

/// Waits until a lock taken now has expired (see [`locking`]'s 200 ms in [`in_mode`]).
async fn outlive_the_lock() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

// ---------------------------------------------------------------------------------------
// The store.

/// Data and timestamps round-trip; with no limit configured the session still expires.
pub async fn round_trip_with_a_lifetime_by_default<B: Backend>() {
    let backend = B::new("round_trip").await;
    let store = backend.store(|c| c);
    let (id, created) = store
        .create(&data(json!({"user": 7, "roles": ["a"]})))
        .await
        .unwrap();
    let loaded = store.load(&id).await.unwrap().expect("stored");
    assert_eq!(loaded, created);
    assert_eq!(loaded.data["user"], 7);
    assert_eq!(loaded.created_at, loaded.updated_at);
    let expire_at = loaded.expire_at.expect("a lifetime by default");
    assert!(expire_at > crate::now(), "in the future");
    assert_eq!(
        expire_at,
        loaded.updated_at + dynamodb_session_store::config::DEFAULT_MAX_STALE.as_secs() as i64
    );

    let unlimited = backend.store(|c| c.max_stale(dynamodb_session_store::Lifetime::Unlimited));
    let (id, created) = unlimited.create(&data(json!({}))).await.unwrap();
    assert_eq!(created.expire_at, None);
    assert_eq!(
        unlimited.inspect(&id).await.unwrap().unwrap().expire_at,
        None
    );
    assert_eq!(unlimited.load(&id).await.unwrap().unwrap().expire_at, None);
}

/// Touch moves the expiry and leaves data alone; save keeps `created_at`.
pub async fn save_and_touch<B: Backend>() {
    let backend = B::new("save_touch").await;
    let store = backend.store(|c| c.max_stale(Duration::from_secs(300)));
    let (id, record) = store.create(&data(json!({"n": 1}))).await.unwrap();
    let mut changed = record.clone();
    changed.data = data(json!({"n": 2}));
    let saved = store.save(&id, &changed).await.unwrap();
    assert_eq!(saved.created_at, record.created_at);
    let mut stale = saved.clone();
    stale.data = data(json!({"n": 999}));
    store.touch(&id, &stale).await.unwrap();
    let loaded = store.load(&id).await.unwrap().unwrap();
    assert_eq!(loaded.data["n"], 2, "touch never writes data");
    assert_eq!(loaded.expire_at, Some(loaded.updated_at + 300));
}

/// An item past its idle limit reads as absent before anything deletes it.
pub async fn expired_sessions_read_as_absent<B: Backend>() {
    let backend = B::new("expired").await;
    let store = backend.store(|c| c.max_stale(Duration::from_secs(1)));
    let (id, _) = store.create(&data(json!({"n": 1}))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(store.load(&id).await.unwrap(), None);
    assert_eq!(
        backend.count().await,
        1,
        "still stored until TTL or the collector"
    );
}

/// A session too large for one item is refused before any write, one byte over the exact
/// limit, and the stored one stays; exactly at the limit it is written.
pub async fn oversize_is_refused_and_the_stored_one_stays<B: Backend>() {
    let backend = B::new("oversize").await;
    let store = backend.store(|c| c);
    let (id, mut record) = store.create(&data(json!({"keep": "me"}))).await.unwrap();
    record.data.insert(
        "blob".into(),
        json!(crate::incompressible(
            dynamodb_session_store::store::MAX_ITEM_BYTES
        )),
    );
    let err = store.save(&id, &record).await.unwrap_err();
    assert!(matches!(err, Error::SessionTooLarge { .. }), "{err:?}");
    let err = store.create(&record.data).await.unwrap_err();
    assert!(matches!(err, Error::SessionTooLarge { .. }), "{err:?}");
    assert_eq!(
        store.load(&id).await.unwrap().unwrap().data,
        data(json!({"keep": "me"}))
    );
    assert_eq!(backend.count().await, 1);

    let backend = B::new("size_limit").await;
    // The exact boundary is a property of the item: plain JSON data, so the sizes add up.
    let store = backend.store(|c| c.seal_data(false).compress_above(None));
    let (id, mut record) = store.create(&data(json!({"n": "original"}))).await.unwrap();
    let limit = store.max_data_len();
    let max_item = dynamodb_session_store::store::MAX_ITEM_BYTES;
    assert!(limit < max_item && max_item < 405_000);

    // `{"n":"…"}` is 8 bytes of JSON around the string.
    let fits = data(json!({"n": "x".repeat(limit - 8)}));
    assert_eq!(serde_json::to_string(&fits).unwrap().len(), limit);
    let too_big = data(json!({"n": "x".repeat(limit - 7)}));

    record.data = too_big.clone();
    let err = store.save(&id, &record).await.unwrap_err();
    assert!(
        matches!(err, Error::SessionTooLarge { size, limit } if size == limit + 1),
        "{err:?}"
    );
    assert_eq!(
        store.load(&id).await.unwrap().unwrap().data["n"],
        "original"
    );

    let err = store.create(&too_big).await.unwrap_err();
    assert!(matches!(err, Error::SessionTooLarge { .. }), "{err:?}");
    assert_eq!(backend.count().await, 1, "nothing written");

    // Exactly at the limit the backend accepts it (DynamoDB's own limit is above it).
    record.data = fits.clone();
    store.save(&id, &record).await.expect("at the limit");
    assert_eq!(store.load(&id).await.unwrap().unwrap().data, fits);
    let (big_id, _) = store.create(&fits).await.expect("create at the limit");
    assert_eq!(store.load(&big_id).await.unwrap().unwrap().data, fits);
}

/// A fresh id that collides with a stored session never takes it over: another id is drawn,
/// and after three collisions in a row the create fails with a typed error.
pub async fn a_colliding_id_never_takes_over<B: Backend>() {
    let backend = B::new("collision").await;
    let store = backend.store(|c| c);
    store.force_next_ids([[7u8; 32], [7u8; 32], [8u8; 32]]);
    let (first, _) = store.create(&data(json!({"owner": "a"}))).await.unwrap();
    let (second, _) = store.create(&data(json!({"owner": "b"}))).await.unwrap();
    assert_ne!(first, second, "a new id was drawn after the collision");
    assert_eq!(
        store.load(&first).await.unwrap().unwrap().data["owner"],
        "a"
    );
    assert_eq!(
        store.load(&second).await.unwrap().unwrap().data["owner"],
        "b"
    );
    assert_eq!(backend.count().await, 2);

    store.force_next_ids([first.to_bytes(); 3]);
    let err = store
        .create(&data(json!({"owner": "third"})))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::IdCollision { attempts: 3 }), "{err:?}");
    assert_eq!(
        store.load(&first).await.unwrap().unwrap().data["owner"],
        "a"
    );
    assert_eq!(backend.count().await, 2);
}

/// Delete removes the session and tolerates a missing one.
pub async fn delete_removes_and_tolerates_a_missing_one<B: Backend>() {
    let backend = B::new("delete").await;
    let store = backend.store(|c| c);
    let (id, _) = store.create(&SessionData::new()).await.unwrap();
    store.delete(&id).await.unwrap();
    assert_eq!(store.load(&id).await.unwrap(), None);
    assert_eq!(backend.count().await, 0);
    store.delete(&id).await.expect("deleting twice is fine");
}

/// A save or touch after a delete fails, hard, and brings nothing back.
pub async fn save_after_delete_fails_and_does_not_resurrect<B: Backend>() {
    let backend = B::new("save_after_delete").await;
    let store = backend.store(|c| c);
    let (id, record) = store.create(&data(json!({"n": 1}))).await.unwrap();
    store.delete(&id).await.unwrap();
    let err = store.save(&id, &record).await.unwrap_err();
    assert!(matches!(err, Error::ConditionalCheckFailed), "{err:?}");
    assert!(err.is_hard());
    let err = store.touch(&id, &record).await.unwrap_err();
    assert!(matches!(err, Error::ConditionalCheckFailed), "{err:?}");
    assert_eq!(backend.count().await, 0);
}

/// Forged, truncated and foreign-key cookies verify as nothing.
pub async fn forged_and_truncated_cookies_open_nothing<B: Backend>() {
    let backend = B::new("forged").await;
    let store = backend.store(|c| c);
    let (id, _) = store.create(&data(json!({"secret": true}))).await.unwrap();
    let cookie = store.cookie_value(&id);
    let (id_part, tag_part) = cookie.split_once('.').unwrap();

    // The same id, signed with another secret.
    let other = backend.store(|c| c.secret_key(OTHER_SECRET));
    other.force_next_ids([id.to_bytes()]);
    let (other_id, _) = other.create(&data(json!({}))).await.unwrap();
    let forged_by_other_key = other.cookie_value(&other_id);
    assert_eq!(forged_by_other_key.split_once('.').unwrap().0, id_part);
    for bad in [
        String::new(),
        cookie[..cookie.len() - 1].to_owned(),
        cookie[..20].to_owned(),
        id_part.to_owned(),
        format!("{id_part}."),
        format!("{id_part}.{}", "A".repeat(tag_part.len())),
        format!("{}.{tag_part}", "A".repeat(id_part.len())),
        forged_by_other_key,
        format!("{cookie}x"),
        cookie.to_uppercase(),
    ] {
        assert!(store.verify_cookie(&bad).is_none(), "accepted {bad:?}");
    }
    assert!(store.verify_cookie(&cookie).is_some());
}

/// A rotated secret still opens existing sessions; renewing moves them to the current key,
/// and once the old key is dropped its cookies no longer verify.
pub async fn rotated_secret_still_opens_existing_sessions<B: Backend>() {
    let backend = B::new("rotation").await;
    let old_store = backend.store(|c| c);
    let (id, _) = old_store.create(&data(json!({"user": 1}))).await.unwrap();
    let cookie = old_store.cookie_value(&id);

    let rotated = backend.store(|c| c.secret_key(OTHER_SECRET).previous_secret_keys([SECRET]));
    let verified = rotated
        .verify_cookie(&cookie)
        .expect("previous key verifies");
    assert!(verified.signed_with_previous_key());
    let loaded = rotated
        .load(&verified)
        .await
        .unwrap()
        .expect("found under the old key");
    assert_eq!(loaded.data["user"], 1);

    let (renewed, _) = rotated.renew(&verified, &loaded).await.unwrap();
    assert!(!renewed.signed_with_previous_key());
    let fresh_cookie = rotated.cookie_value(&renewed);
    let only_new = backend.store(|c| c.secret_key(OTHER_SECRET));
    let again = only_new.verify_cookie(&fresh_cookie).expect("current key");
    assert_eq!(
        only_new.load(&again).await.unwrap().unwrap().data["user"],
        1
    );

    assert!(only_new.verify_cookie(&cookie).is_none());
}

/// A renew racing a save, both interleavings, in `mode`: the save is never lost, and there
/// are never two live copies.
pub async fn renew_racing_a_save<B: Backend>(mode: Concurrency) {
    let backend = B::new("renew_race").await;
    let store = backend.store(|c| in_mode(c, mode));

    // The save lands between the renewal's read and its write: the renewal is refused.
    let (id, _) = store.create(&data(json!({"n": 0}))).await.unwrap();
    let renewing = store.load(&id).await.unwrap().unwrap();
    if mode == Concurrency::Pessimistic {
        // Under locking the save can only land once the renewal's lock expired.
        outlive_the_lock().await;
    }
    let mut saving = store.load(&id).await.unwrap().unwrap();
    saving.data = data(json!({"n": "saved"}));
    store.save(&id, &saving).await.unwrap();
    let err = store.renew(&id, &renewing).await.unwrap_err();
    let expected = match mode {
        Concurrency::Pessimistic => matches!(err, Error::LockLost),
        _ => matches!(err, Error::VersionConflict),
    };
    assert!(expected, "{mode:?}: {err:?}");
    assert_eq!(backend.count().await, 1, "{mode:?}: no second copy");
    assert_eq!(store.load(&id).await.unwrap().unwrap().data["n"], "saved");
    if mode == Concurrency::Pessimistic {
        store
            .release(&id, &store.load(&id).await.unwrap().unwrap())
            .await
            .unwrap();
    }

    // The renewal lands first: the save finds the session gone and writes nothing.
    let (id, _) = store.create(&data(json!({"n": 1}))).await.unwrap();
    let saving = if mode == Concurrency::Pessimistic {
        None
    } else {
        Some(store.load(&id).await.unwrap().unwrap())
    };
    let renewing = store.load(&id).await.unwrap().unwrap();
    let (new_id, _) = store.renew(&id, &renewing).await.unwrap();
    // Under locking a stale holder is one whose lock the renewal's delete removed.
    let mut stale = saving.unwrap_or(renewing);
    stale.data = data(json!({"n": "late"}));
    let err = store.save(&id, &stale).await.unwrap_err();
    assert!(
        matches!(err, Error::ConditionalCheckFailed | Error::LockLost),
        "{mode:?}: {err:?}"
    );
    assert_eq!(
        backend.count().await,
        2,
        "{mode:?}: the first test's item and the renewed one"
    );
    assert_eq!(
        store.load(&id).await.unwrap(),
        None,
        "{mode:?}: the old id opens nothing"
    );
    assert_eq!(store.load(&new_id).await.unwrap().unwrap().data["n"], 1);
}

/// A request whose lock was broken or whose version is stale renews, clears and destroys
/// nothing, and gets the mode's typed error.
pub async fn stale_holders_write_nothing<B: Backend>(mode: Concurrency) {
    let backend = B::new("stale_holder").await;
    let store = backend.store(|c| in_mode(c, mode));
    let (id, _) = store.create(&data(json!({"n": 0}))).await.unwrap();
    let stale = store.load(&id).await.unwrap().unwrap();
    if mode == Concurrency::Pessimistic {
        outlive_the_lock().await;
    }
    let mut current = store.load(&id).await.unwrap().unwrap();
    if mode != Concurrency::Pessimistic {
        current.data = data(json!({"n": "newer"}));
        current = store.save(&id, &current).await.unwrap();
    }
    let is_typed = |err: &Error| match mode {
        Concurrency::Pessimistic => matches!(err, Error::LockLost),
        _ => matches!(err, Error::VersionConflict),
    };
    let err = store.renew(&id, &stale).await.unwrap_err();
    assert!(is_typed(&err), "{mode:?} renew: {err:?}");
    let mut emptied = stale.clone();
    emptied.data.clear();
    if mode == Concurrency::None {
        // Without concurrency control saves are last-writer-wins and a delete is not
        // conditional; only the renewal refuses stale data.
        assert_eq!(backend.count().await, 1);
        return;
    }
    let err = store.save(&id, &emptied).await.unwrap_err();
    assert!(is_typed(&err), "{mode:?} save: {err:?}");
    let err = store.destroy(&id, &stale).await.unwrap_err();
    assert!(is_typed(&err), "{mode:?} destroy: {err:?}");
    assert_eq!(
        backend.count().await,
        1,
        "{mode:?}: nothing deleted or copied"
    );
    if mode == Concurrency::Pessimistic {
        store.release(&id, &current).await.unwrap();
    }
    let kept = store.load(&id).await.unwrap().unwrap();
    assert_eq!(kept.data, current.data, "{mode:?}: the current data stands");
    store.destroy(&id, &kept).await.unwrap();
    assert_eq!(
        backend.count().await,
        0,
        "{mode:?}: the current holder may destroy"
    );
}

/// A session signed with a rotated-out secret moves to a current-key id, but never over a
/// save that landed after its read.
pub async fn a_previous_key_session_moves_without_losing_a_save<B: Backend>(mode: Concurrency) {
    const OLD: &str = "an-old-secret-of-at-least-thirty-two-bytes";
    let backend = B::new("key_move").await;
    let old = backend.store(|c| in_mode(c.secret_key(OLD), mode));
    let rotated = backend.store(|c| in_mode(c.previous_secret_keys([OLD]), mode));
    let (old_id, _) = old.create(&data(json!({"n": 0}))).await.unwrap();
    let id = rotated
        .verify_cookie(&old.cookie_value(&old_id))
        .expect("the previous secret still verifies");
    assert!(id.signed_with_previous_key());

    let moving = rotated.load(&id).await.unwrap().unwrap();
    if mode == Concurrency::Pessimistic {
        outlive_the_lock().await;
    }
    let mut saving = rotated.load(&id).await.unwrap().unwrap();
    saving.data = data(json!({"n": "saved"}));
    let saved = rotated.save(&id, &saving).await.unwrap();
    assert!(rotated.renew(&id, &moving).await.is_err(), "{mode:?}");
    assert_eq!(rotated.load(&id).await.unwrap().unwrap().data["n"], "saved");
    if mode == Concurrency::Pessimistic {
        rotated
            .release(&id, &rotated.load(&id).await.unwrap().unwrap())
            .await
            .unwrap();
    }

    // From a fresh read the move succeeds, with the saved data.
    let fresh = rotated.load(&id).await.unwrap().unwrap();
    assert_eq!(fresh.version, saved.version);
    let (moved, _) = rotated.renew(&id, &fresh).await.unwrap();
    assert!(!moved.signed_with_previous_key());
    assert_eq!(
        rotated.load(&moved).await.unwrap().unwrap().data["n"],
        "saved"
    );
    assert_eq!(backend.count().await, 1);
}

/// Pessimistic locking: a second reader waits, a wait too long is a typed error, and a
/// missing session locks without creating a stub.
pub async fn locks_serialize_and_time_out<B: Backend>() {
    let backend = B::new("lock_wait").await;
    let store = backend.store(|c| locking(c, 10_000, 300));
    let (id, _) = store.create(&data(json!({"n": 0}))).await.unwrap();
    let held = store.load(&id).await.unwrap().unwrap();
    assert!(held.is_locked());
    let err = store.load(&id).await.unwrap_err();
    assert!(matches!(err, Error::LockWaitTimeout { .. }), "{err:?}");

    let waiting = backend.store(|c| locking(c, 10_000, 5_000));
    let waiter = async {
        let record = waiting.load(&id).await.unwrap().unwrap();
        waiting.release(&id, &record).await.unwrap();
        record.data
    };
    let holder = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut record = held.clone();
        record.data = data(json!({"n": 1}));
        store.save(&id, &record).await.unwrap();
    };
    let (seen, ()) = tokio::join!(waiter, holder);
    assert_eq!(seen["n"], 1, "the waiter read what the holder saved");

    store.delete(&id).await.unwrap();
    assert_eq!(store.load(&id).await.unwrap(), None);
    assert_eq!(
        backend.count().await,
        0,
        "locking a missing session creates nothing"
    );
}

// ---------------------------------------------------------------------------------------
// The layer, with a handler written with `?`.

type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// Sends one request with `cookie` through `handler` behind `layer`.
async fn through<F, Fut>(layer: &SessionLayer, cookie: Option<&str>, handler: F) -> Response<String>
where
    F: Fn(Request<String>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<Response<String>, HandlerError>> + Send + 'static,
{
    let mut request = Request::new(String::new());
    if let Some(cookie) = cookie {
        request
            .headers_mut()
            .insert(header::COOKIE, cookie.parse().unwrap());
    }
    through_request(layer, request, handler).await
}

async fn through_request<F, Fut>(
    layer: &SessionLayer,
    request: Request<String>,
    handler: F,
) -> Response<String>
where
    F: Fn(Request<String>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<Response<String>, HandlerError>> + Send + 'static,
{
    layer
        .layer(service_fn(handler))
        .oneshot(request)
        .await
        .expect("the layer answers the session's errors")
}

/// Increments `n` with `?` throughout, as users write handlers.
async fn increment(request: Request<String>) -> Result<Response<String>, HandlerError> {
    let session = request.session().expect("behind the layer");
    let n: u64 = session.get("n").await?.unwrap_or(0) + 1;
    session.insert("n", n).await?;
    Ok(Response::new(n.to_string()))
}

fn cookie_of(response: &Response<String>) -> String {
    let set_cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    set_cookie.split(';').next().unwrap().to_owned()
}

/// A handler that fails with `?` gets the layer's answers: 503 with `Retry-After` when the
/// lock stays busy, 409 on a conflict, 413 when too large.
pub async fn errors_through_question_mark_get_the_layers_answers<B: Backend>() {
    let backend = B::new("question_mark").await;
    let locked = SessionLayer::new(backend.store(|c| locking(c, 10_000, 200)));
    let first = through(&locked, None, increment).await;
    let cookie = cookie_of(&first);
    let store = locked.store();
    let id = store
        .verify_cookie(cookie.strip_prefix("__Host-session=").unwrap())
        .unwrap();
    let held = store.load(&id).await.unwrap().unwrap();
    let busy = through(&locked, Some(&cookie), increment).await;
    assert_eq!(
        busy.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        busy.body()
    );
    assert!(busy.headers().contains_key(header::RETRY_AFTER));
    assert!(busy.headers().get(header::SET_COOKIE).is_none());
    store.release(&id, &held).await.unwrap();
    assert_eq!(through(&locked, Some(&cookie), increment).await.body(), "2");

    // A conflict: the session changes between this request's read and its renewal.
    let optimistic = SessionLayer::new(backend.store(|c| c.concurrency(Concurrency::Optimistic)));
    let cookie = cookie_of(&through(&optimistic, None, increment).await);
    let store = optimistic.store().clone();
    let meddler = store.clone();
    let meddle_cookie = cookie.clone();
    let conflict = through(
        &optimistic,
        Some(&cookie),
        move |request: Request<String>| {
            let (store, cookie) = (meddler.clone(), meddle_cookie.clone());
            async move {
                let session = request.session().unwrap();
                session.get::<u64>("n").await?;
                // Another request saves now.
                let id = store
                    .verify_cookie(cookie.strip_prefix("__Host-session=").unwrap())
                    .unwrap();
                let mut other = store.load(&id).await?.unwrap();
                other.data.insert("other".into(), json!(true));
                store.save(&id, &other).await?;
                session.insert("n", 100).await?;
                Ok(Response::new(String::new()))
            }
        },
    )
    .await;
    assert_eq!(
        conflict.status(),
        StatusCode::CONFLICT,
        "{}",
        conflict.body()
    );
    let id = store
        .verify_cookie(cookie.strip_prefix("__Host-session=").unwrap())
        .unwrap();
    let kept = store.load(&id).await.unwrap().unwrap();
    assert_eq!(
        (kept.data["n"].clone(), kept.data["other"].clone()),
        (json!(1), json!(true))
    );

    // Too large, through `?`: 413, and the stored session is unchanged.
    let too_large = through(
        &optimistic,
        Some(&cookie),
        |request: Request<String>| async move {
            let session = request.session().unwrap();
            session
                .insert(
                    "blob",
                    crate::incompressible(dynamodb_session_store::store::MAX_ITEM_BYTES),
                )
                .await?;
            Ok(Response::new(String::new()))
        },
    )
    .await;
    assert_eq!(too_large.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(store.load(&id).await.unwrap().unwrap().data, kept.data);
}

/// A lock held elsewhere never hands the client a fresh session or a new cookie.
pub async fn a_held_lock_never_yields_a_fresh_session<B: Backend>() {
    let backend = B::new("held_lock").await;
    let layer = SessionLayer::new(backend.store(|c| locking(c, 10_000, 100)));
    let cookie = cookie_of(&through(&layer, None, increment).await);
    let store = layer.store();
    let id = store
        .verify_cookie(cookie.strip_prefix("__Host-session=").unwrap())
        .unwrap();
    let held = store.load(&id).await.unwrap().unwrap();
    for _ in 0..3 {
        let busy = through(&layer, Some(&cookie), increment).await;
        assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(busy.headers().get(header::SET_COOKIE).is_none());
    }
    assert_eq!(backend.count().await, 1, "no fresh session was created");
    store.release(&id, &held).await.unwrap();
}

/// A handler that panics still releases its lock; one that outlives the deadline is dropped,
/// answered 503 and releases it too.
pub async fn panics_and_deadlines_release_the_lock<B: Backend>() {
    let backend = B::new("panic_release").await;
    let layer = SessionLayer::new(backend.store(|c| locking(c, 10_000, 200)))
        .with_deadline_margin(Duration::from_millis(400));
    let cookie = cookie_of(&through(&layer, None, increment).await);

    let panicking = layer
        .clone()
        .layer(service_fn(|request: Request<String>| async move {
            request.session().unwrap().get::<u64>("n").await?;
            if request.uri().path() == "/panic" {
                panic!("handler bug");
            }
            Ok::<_, HandlerError>(Response::new(String::new()))
        }));
    let mut request = Request::new(String::new());
    *request.uri_mut() = "/panic".parse().unwrap();
    request
        .headers_mut()
        .insert(header::COOKIE, cookie.parse().unwrap());
    let crashed = tokio::spawn(panicking.oneshot(request)).await;
    assert!(crashed.unwrap_err().is_panic());
    assert_eq!(
        through(&layer, Some(&cookie), increment).await.body(),
        "2",
        "lock released"
    );

    let slow = |request: Request<String>| async move {
        request.session().unwrap().insert("n", 99).await?;
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok(Response::new(String::new()))
    };
    let mut request = Request::new(String::new());
    request
        .headers_mut()
        .insert(header::COOKIE, cookie.parse().unwrap());
    request
        .extensions_mut()
        .insert(Deadline::after(Duration::from_millis(800)));
    let started = std::time::Instant::now();
    let late = through_request(&layer, request, slow).await;
    assert_eq!(late.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(late.headers().contains_key(header::RETRY_AFTER));
    assert!(
        started.elapsed() < Duration::from_millis(800),
        "answered before the deadline"
    );
    assert_eq!(
        through(&layer, Some(&cookie), increment).await.body(),
        "3",
        "nothing written, lock released"
    );
}

/// Emptying a session deletes it, under the mode's condition; destroying likewise.
pub async fn emptied_and_destroyed_sessions_honour_the_mode<B: Backend>(mode: Concurrency) {
    let backend = B::new("emptied").await;
    let layer = SessionLayer::new(backend.store(|c| in_mode(c, mode)));
    let cookie = cookie_of(&through(&layer, None, increment).await);
    let store = layer.store().clone();
    let id = store
        .verify_cookie(cookie.strip_prefix("__Host-session=").unwrap())
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let meddle = {
        let (store, id, calls) = (store.clone(), id.clone(), calls.clone());
        move |request: Request<String>| {
            let (store, id, calls) = (store.clone(), id.clone(), calls.clone());
            async move {
                let session = request.session().unwrap();
                session.get::<u64>("n").await?;
                if mode == Concurrency::Pessimistic {
                    // Stall past the lock's expiry; another request takes the session.
                    outlive_the_lock().await;
                }
                let mut other = store.load(&id).await?.unwrap();
                other.data.insert("other".into(), json!(true));
                store.save(&id, &other).await?;
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    session.clear().await?;
                } else {
                    session.destroy().await?;
                }
                Ok(Response::new(String::new()))
            }
        }
    };
    for attempt in ["clear", "destroy"] {
        let answer = through(&layer, Some(&cookie), meddle.clone()).await;
        if mode == Concurrency::None {
            // Last writer wins: the delete goes through.
            assert_eq!(answer.status(), StatusCode::OK, "{attempt}");
            assert_eq!(backend.count().await, 0, "{attempt}");
            return;
        }
        assert_eq!(
            answer.status(),
            StatusCode::CONFLICT,
            "{mode:?} {attempt}: {}",
            answer.body()
        );
        assert!(answer.headers().get(header::SET_COOKIE).is_none());
        let kept = store.load(&id).await.unwrap().expect("nothing deleted");
        assert_eq!(
            kept.data["other"], true,
            "{mode:?} {attempt}: the other save stands"
        );
        store.release(&id, &kept).await.unwrap();
    }
    // Without interference, destroy deletes and expires the cookie.
    let ended = through(
        &layer,
        Some(&cookie),
        |request: Request<String>| async move {
            request.session().unwrap().destroy().await?;
            Ok(Response::new(String::new()))
        },
    )
    .await;
    assert!(
        ended.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(backend.count().await, 0);
}

/// With `defer`, the application sends the cookie itself: `Session::cookie_value` is the
/// value the session will have, for new, kept and renewed sessions.
pub async fn defer_gives_the_application_the_cookie_value<B: Backend>() {
    let backend = B::new("defer").await;
    let layer = SessionLayer::new(backend.store(|c| c)).with_defer(true);
    let send_own_cookie = |request: Request<String>| async move {
        let session = request.session().unwrap();
        let n: u64 = session.get("n").await?.unwrap_or(0) + 1;
        session.insert("n", n).await?;
        if request.uri().path() == "/renew" {
            session.renew().await?;
        }
        let value = session.cookie_value().await?.expect("not destroyed");
        let mut response = Response::new(n.to_string());
        response
            .headers_mut()
            .insert("x-session", value.parse().unwrap());
        Ok(response)
    };
    let first = through(&layer, None, send_own_cookie).await;
    assert!(
        first.headers().get(header::SET_COOKIE).is_none(),
        "deferred"
    );
    let value = first.headers()["x-session"].to_str().unwrap().to_owned();
    let cookie = format!("__Host-session={value}");
    let second = through(&layer, Some(&cookie), send_own_cookie).await;
    assert_eq!(
        second.body(),
        "2",
        "the value the application got opens the session"
    );
    assert_eq!(
        second.headers()["x-session"],
        value.as_str(),
        "unchanged id"
    );

    let mut renew = Request::new(String::new());
    *renew.uri_mut() = "/renew".parse().unwrap();
    renew
        .headers_mut()
        .insert(header::COOKIE, cookie.parse().unwrap());
    let renewed = through_request(&layer, renew, send_own_cookie).await;
    let moved = renewed.headers()["x-session"].to_str().unwrap().to_owned();
    assert_ne!(moved, value, "a renewal's new id");
    let third = through(
        &layer,
        Some(&format!("__Host-session={moved}")),
        send_own_cookie,
    )
    .await;
    assert_eq!(third.body(), "4");
    assert_eq!(backend.count().await, 1);
}

/// "Remember me": one session gets its own idle limit and a persistent cookie.
pub async fn a_session_can_have_its_own_lifetime<B: Backend>() {
    let backend = B::new("remember_me").await;
    let layer = SessionLayer::new(backend.store(|c| c.max_stale(Duration::from_secs(600))));
    let remember = |request: Request<String>| async move {
        let session = request.session().unwrap();
        session.insert("user", "ann").await?;
        session
            .set_max_stale(Some(Duration::from_secs(30 * 86_400)))
            .await?;
        Ok(Response::new(String::new()))
    };
    let first = through(&layer, None, remember).await;
    let set_cookie = first.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(set_cookie.contains("Max-Age=2592000"), "{set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let store = layer.store();
    let id = store
        .verify_cookie(cookie.strip_prefix("__Host-session=").unwrap())
        .unwrap();
    let item = store.inspect(&id).await.unwrap().unwrap();
    assert_eq!(item.max_stale, Some(30 * 86_400));
    assert_eq!(item.expire_at, Some(item.updated_at + 30 * 86_400));

    // Another session on the same layer keeps a browser-session cookie and the default.
    let other = through(&layer, None, increment).await;
    let other_cookie = other.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(!other_cookie.contains("Max-Age"), "{other_cookie}");
}

// ---------------------------------------------------------------------------------------
// A user's sessions.

/// Logs a fresh client in as `user` and returns its cookie.
async fn log_in(layer: &SessionLayer, user: &str) -> String {
    let user = user.to_owned();
    let response = through(layer, None, move |request: Request<String>| {
        let user = user.clone();
        async move {
            let session = request.session().unwrap();
            session.insert("marker", format!("data of {user}")).await?;
            session.set_user(user).await?;
            Ok(Response::new(String::new()))
        }
    })
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    cookie_of(&response)
}

/// Every session the request with `cookie` sees as its user's, every page read.
async fn devices(
    layer: &SessionLayer,
    cookie: &str,
) -> Vec<dynamodb_session_store::store::users::UserSession> {
    let response = through(layer, Some(cookie), |request: Request<String>| async move {
        let session = request.session().unwrap();
        let mut all = Vec::new();
        let mut cursor = None;
        loop {
            let page = session
                .user_sessions(cursor.as_deref())
                .await?
                .expect("bound");
            all.extend(page.sessions);
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        Ok(Response::new(serde_json::to_string(&all)?))
    })
    .await;
    serde_json::from_str(response.body()).unwrap()
}

/// Three devices of one user and one of another: listed with `current` right, revoked all
/// but this one, one by handle, then all — under `mode`.
pub async fn a_users_sessions_are_listed_and_revoked<B: Backend>(mode: Concurrency) {
    let backend = B::new("users").await;
    let layer = SessionLayer::new(backend.store(|c| in_mode(c, mode)));
    let ann: Vec<String> = [
        log_in(&layer, "ann").await,
        log_in(&layer, "ann").await,
        log_in(&layer, "ann").await,
    ]
    .into();
    let bob = log_in(&layer, "bob").await;

    let seen = devices(&layer, &ann[0]).await;
    assert_eq!(seen.len(), 3, "{mode:?}");
    assert_eq!(seen.iter().filter(|d| d.current).count(), 1);
    let handles: Vec<&str> = seen.iter().map(|d| d.handle.as_str()).collect();
    for cookie in &ann {
        assert!(
            !handles.iter().any(|h| cookie.contains(h)),
            "a handle is not the cookie"
        );
    }
    let bobs = devices(&layer, &bob).await;
    assert_eq!(bobs.len(), 1);

    // Another user's handle ends nothing.
    let bob_handle = bobs[0].handle.clone();
    let foreign = through(&layer, Some(&ann[0]), move |request: Request<String>| {
        let handle = bob_handle.clone();
        async move {
            let found = request.session().unwrap().revoke_session(&handle).await?;
            Ok(Response::new(found.to_string()))
        }
    })
    .await;
    assert_eq!(foreign.body(), "false", "{mode:?}");
    assert_eq!(devices(&layer, &bob).await.len(), 1);

    // All but this one.
    let others = through(
        &layer,
        Some(&ann[0]),
        |request: Request<String>| async move {
            let revoked = request.session().unwrap().revoke_other_sessions().await?;
            Ok(Response::new(format!("{revoked:?}")))
        },
    )
    .await;
    assert_eq!(others.body(), "Some(2)", "{mode:?}");
    let left = devices(&layer, &ann[0]).await;
    assert_eq!(left.len(), 1);
    assert!(left[0].current);
    // The revoked devices' cookies now open fresh, empty sessions.
    let fresh = through(
        &layer,
        Some(&ann[1]),
        |request: Request<String>| async move {
            let data = request.session().unwrap().data().await?;
            Ok(Response::new(Value::Object(data).to_string()))
        },
    )
    .await;
    assert_eq!(fresh.body(), "{}", "{mode:?}");
    assert_eq!(
        devices(&layer, &bob).await.len(),
        1,
        "the other user is untouched"
    );
    assert_eq!(backend.count().await, 2);

    // This session by its own handle: it ends (its cookie expired) as a destroy would.
    let own_handle = left[0].handle.clone();
    let own = through(&layer, Some(&ann[0]), move |request: Request<String>| {
        let handle = own_handle.clone();
        async move {
            let found = request.session().unwrap().revoke_session(&handle).await?;
            Ok(Response::new(found.to_string()))
        }
    })
    .await;
    assert_eq!(own.body(), "true", "{mode:?}");
    let expired = own.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(expired.contains("Max-Age=0"), "{mode:?}: {expired}");
    assert_eq!(
        backend.count().await,
        1,
        "{mode:?}: only bob's session is left"
    );
    assert_eq!(devices(&layer, &bob).await.len(), 1);
}

/// A user with more sessions than a page holds is read page by page, not whole.
pub async fn many_sessions_are_paginated<B: Backend>() {
    const SESSIONS: usize = 230;
    let backend = B::new("pages").await;
    let layer = SessionLayer::new(backend.store(|c| c));
    let mut cookie = String::new();
    for _ in 0..SESSIONS {
        cookie = log_in(&layer, "many").await;
    }
    let store = layer.store();
    let mut cursor: Option<String> = None;
    let mut pages = Vec::new();
    loop {
        let page = store
            .user_sessions("many", None, cursor.as_deref())
            .await
            .unwrap();
        pages.push(page.sessions.len());
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert!(pages.iter().all(|n| *n <= 100), "{pages:?}");
    assert_eq!(pages.iter().sum::<usize>(), SESSIONS, "{pages:?}");
    let id = store
        .verify_cookie(cookie.strip_prefix("__Host-session=").unwrap())
        .unwrap();
    assert_eq!(
        store.revoke_user_sessions("many", Some(&id)).await.unwrap(),
        (SESSIONS - 1) as u64
    );
    assert_eq!(backend.count().await, 1);
}

/// A session past its limit is never in the list, even before anything deleted it.
pub async fn expired_sessions_are_never_listed<B: Backend>() {
    let backend = B::new("expired_listed").await;
    let short = SessionLayer::new(backend.store(|c| c.max_stale(Duration::from_secs(1))));
    log_in(&short, "eve").await;
    let long = SessionLayer::new(backend.store(|c| c));
    let cookie = log_in(&long, "eve").await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let seen = devices(&long, &cookie).await;
    assert_eq!(seen.len(), 1, "only the live one");
    assert!(seen[0].current);
    assert_eq!(backend.count().await, 2, "the expired item is still stored");
}

/// A change made after the layer wrote the session (from a streamed body, a spawned task) is
/// refused with a typed error instead of being silently dropped; reads still work.
pub async fn changes_after_the_write_are_refused<B: Backend>() {
    let backend = B::new("closed").await;
    let layer = SessionLayer::new(backend.store(|c| c));
    let (keep, kept) = std::sync::mpsc::channel();
    let response = through(&layer, None, move |request: Request<String>| {
        let keep = keep.clone();
        async move {
            let session = request.session().unwrap();
            session.insert("n", 1).await?;
            keep.send(session).unwrap();
            Ok(Response::new(String::new()))
        }
    })
    .await;
    let cookie = cookie_of(&response);
    let late = kept.recv().unwrap();
    let err = late.insert("n", 2).await.unwrap_err();
    assert!(matches!(err, Error::SessionClosed), "{err:?}");
    assert!(matches!(
        late.clear().await.unwrap_err(),
        Error::SessionClosed
    ));
    assert!(matches!(
        late.destroy().await.unwrap_err(),
        Error::SessionClosed
    ));
    assert_eq!(
        late.get::<u64>("n").await.unwrap(),
        Some(1),
        "reads still work"
    );
    let seen = through(
        &layer,
        Some(&cookie),
        |request: Request<String>| async move {
            let n: u64 = request.session().unwrap().get("n").await?.unwrap();
            Ok(Response::new(n.to_string()))
        },
    )
    .await;
    assert_eq!(seen.body(), "1");
}

/// The duplicate-cookie rule and the byte-wise `Cookie` parsing: a planted cookie of another
/// valid session opens neither session, a cookie that does not verify is ignored, and a bad
/// byte in an unrelated cookie drops nothing.
pub async fn tossed_cookies_are_never_used<B: Backend>() {
    let backend = B::new("tossed_cookies").await;
    // A parent-domain cookie has the plain name, which a sibling subdomain can set too.
    let layer = SessionLayer::new(backend.store(|c| c)).with_domain("example.com");
    let victim = cookie_of(&through(&layer, None, increment).await);
    assert_eq!(through(&layer, Some(&victim), increment).await.body(), "2");
    let attacker = cookie_of(&through(&layer, None, increment).await);
    assert!(victim.starts_with("session=") && victim != attacker);

    let tossed = through(&layer, Some(&format!("{attacker}; {victim}")), increment).await;
    assert_eq!(tossed.body(), "1", "neither session: a fresh one");
    let fresh = cookie_of(&tossed);
    assert!(fresh != victim && fresh != attacker);
    let reversed = through(&layer, Some(&format!("{victim}; {attacker}")), increment).await;
    assert_eq!(reversed.body(), "1", "in either order");

    let value = victim.strip_prefix("session=").unwrap();
    let forged = format!("session={}", crate::api::tamper_last(value));
    let with_forged = through(&layer, Some(&format!("{forged}; {victim}")), increment).await;
    assert_eq!(
        with_forged.body(),
        "3",
        "a cookie that does not verify is ignored"
    );

    let mut request = Request::new(String::new());
    let raw = [b"theme=caf\xe9; ".as_slice(), victim.as_bytes()].concat();
    request.headers_mut().insert(
        header::COOKIE,
        header::HeaderValue::from_bytes(&raw).unwrap(),
    );
    let bad_byte = through_request(&layer, request, increment).await;
    assert_eq!(bad_byte.body(), "4", "a bad byte elsewhere drops nothing");

    assert_eq!(
        through(&layer, Some(&attacker), increment).await.body(),
        "2"
    );
    assert_eq!(
        backend.count().await,
        4,
        "victim, attacker and the two fresh sessions"
    );
}
