//! A write whose answer was lost after it applied, retried by the SDK: the retry meets its own
//! first attempt's effect (a failed condition). With sealed data the store recognises its own
//! write and answers success, once; it never reports "nothing was written" for a write that
//! landed, which would invite the client to apply its change twice.

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
