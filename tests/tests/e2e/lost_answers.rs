//! A write whose answer was lost after it applied, retried by the SDK: the retry meets its own
//! first attempt's effect (a failed condition). With sealed data the store recognises its own
//! write and answers success, once; it never reports "nothing was written" for a write that
//! landed, which would invite the client to apply its change twice. The same holds for a
//! create (the retry finds its own item) and a renewal (the old item gone, its own new one
//! present).

use dynamodb_session_store::{Concurrency, Config, Error, SessionStore};
use integration_tests::faulty::{Faulty, WriteFault};
use integration_tests::{SECRET, data};
use serde_json::json;

/// The store on a MemoryStore whose armed write applies and is then sent again
/// ([`WriteFault::Retried`]).
fn store(mode: Concurrency, seal: bool) -> (SessionStore, Faulty) {
    let backend = Faulty::default();
    let config = Config::builder()
        .secret_key(SECRET)
        .concurrency(mode)
        .seal_data(seal)
        .build()
        .unwrap();
    (
        SessionStore::with_backend(config, backend.clone()).unwrap(),
        backend,
    )
}

#[tokio::test]
async fn a_save_whose_retry_meets_its_own_write_succeeds_once() {
    for mode in [Concurrency::Optimistic, Concurrency::Pessimistic] {
        let (store, backend) = store(mode, true);
        let (id, _) = store.create(&data(json!({ "count": 1 }))).await.unwrap();
        let mut record = store.load(&id).await.unwrap().unwrap();
        let version = record.version.unwrap();
        record.data = data(json!({ "count": 2 }));
        backend.arm_write(WriteFault::Retried);
        store
            .save(&id, &record)
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: the write landed, yet: {e}"));
        assert!(backend.write_fired(), "the retry was sent");
        let stored = store.load(&id).await.unwrap().unwrap();
        assert_eq!(stored.data, data(json!({ "count": 2 })), "{mode:?}");
        assert_eq!(stored.version, Some(version + 1), "{mode:?}: applied once");
        store.release(&id, &stored).await.unwrap();
    }
}

#[tokio::test]
async fn unsealed_data_cannot_prove_the_write_was_its_own() {
    // Plain data has no nonce: another writer could have stored the same bytes, so the store
    // does not claim the write; it reports the conflict it met (the fail-safe answer).
    let (store, backend) = store(Concurrency::Optimistic, false);
    let (id, _) = store.create(&data(json!({ "count": 1 }))).await.unwrap();
    let mut record = store.load(&id).await.unwrap().unwrap();
    record.data = data(json!({ "count": 2 }));
    backend.arm_write(WriteFault::Retried);
    let err = store.save(&id, &record).await.unwrap_err();
    assert!(matches!(err, Error::VersionConflict), "{err:?}");
}

#[tokio::test]
async fn a_create_whose_retry_meets_its_own_item_succeeds_once() {
    // Without the check the retry's "already exists" read as an id collision: the session was
    // stored again under another id and the first item orphaned.
    let (store, backend) = store(Concurrency::Optimistic, true);
    backend.arm_write(WriteFault::Retried);
    let (id, _) = store
        .create(&data(json!({ "count": 1 })))
        .await
        .unwrap_or_else(|e| panic!("the item landed, yet: {e}"));
    assert!(backend.write_fired(), "the retry was sent");
    assert_eq!(backend.inner.len(), 1, "one item, no orphan");
    let stored = store
        .load(&id)
        .await
        .unwrap()
        .expect("the session is stored");
    assert_eq!(stored.data, data(json!({ "count": 1 })));
}

#[tokio::test]
async fn a_renewal_whose_retry_meets_its_own_move_succeeds_once() {
    // The retry finds the old item gone and the new one present: before, that answered
    // "the session is gone" (or drew another id) for a renewal that had happened.
    for mode in [Concurrency::Optimistic, Concurrency::Pessimistic] {
        let (store, backend) = store(mode, true);
        let (old, _) = store.create(&data(json!({ "count": 1 }))).await.unwrap();
        let record = store.load(&old).await.unwrap().unwrap();
        backend.arm_write(WriteFault::Retried);
        let (new, _) = store
            .renew(&old, &record)
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: the renewal landed, yet: {e}"));
        assert!(backend.write_fired(), "the retry was sent");
        assert_ne!(new, old);
        assert_eq!(backend.inner.len(), 1, "{mode:?}: the new item only");
        assert!(
            store.load(&old).await.unwrap().is_none(),
            "{mode:?}: old id dead"
        );
        let stored = store.load(&new).await.unwrap().expect("renewed session");
        assert_eq!(stored.data, data(json!({ "count": 1 })), "{mode:?}");
        store.release(&new, &stored).await.unwrap();
    }
}

#[tokio::test]
async fn a_locked_touch_whose_retry_meets_its_own_release_succeeds() {
    // The first attempt released the lock, so the retry's "this request holds the lock"
    // fails: the session already has the touch's timestamps, which is all a touch asks for
    // (before, the layer answered 409 for a touch that had happened).
    let (store, backend) = store(Concurrency::Pessimistic, true);
    let (id, _) = store.create(&data(json!({ "count": 1 }))).await.unwrap();
    let record = store.load(&id).await.unwrap().unwrap();
    assert!(record.is_locked(), "pessimistic load locks");
    backend.arm_write(WriteFault::Retried);
    let touched = store
        .touch(&id, &record)
        .await
        .unwrap_or_else(|e| panic!("the touch landed, yet: {e}"));
    assert!(backend.write_fired(), "the retry was sent");
    let stored = store.load(&id).await.unwrap().expect("still stored");
    assert_eq!(stored.updated_at, touched.updated_at);
    assert_eq!(stored.expire_at, touched.expire_at);
    store.release(&id, &stored).await.unwrap();
}
