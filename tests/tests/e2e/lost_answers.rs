//! A write whose answer was lost after it applied, retried by the SDK: the retry meets its own
//! first attempt's effect (a failed condition). With sealed data the store recognises its own
//! write and answers success, once; it never reports "nothing was written" for a write that
//! landed, which would invite the client to apply its change twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use dynamodb_session_store::backend::{
    Changes, Guard, Locked, Replaced, SessionBackend, StoredItem, Written,
};
use dynamodb_session_store::{Concurrency, Config, Error, MemoryStore, Result, SessionStore};
use integration_tests::{SECRET, data};
use serde_json::json;

/// MemoryStore whose next `update`, when armed, applies and is then sent again, as an SDK
/// retry after a lost answer would be: the caller sees the second attempt's answer.
#[derive(Debug, Clone, Default)]
struct RetriedOnce {
    inner: MemoryStore,
    armed: Arc<AtomicBool>,
}

#[async_trait::async_trait]
impl SessionBackend for RetriedOnce {
    async fn get(&self, key: &str, consistent: bool) -> Result<Option<StoredItem>> {
        self.inner.get(key, consistent).await
    }
    async fn insert(&self, key: &str, item: &StoredItem) -> Result<bool> {
        self.inner.insert(key, item).await
    }
    async fn lock(&self, key: &str, owner: &str, now_ms: i64, stale: i64) -> Result<Locked> {
        self.inner.lock(key, owner, now_ms, stale).await
    }
    async fn update(&self, key: &str, changes: &Changes, guard: &Guard) -> Result<Written> {
        let first = self.inner.update(key, changes, guard).await?;
        if self.armed.swap(false, Ordering::SeqCst) && first == Written::Applied {
            return self.inner.update(key, changes, guard).await;
        }
        Ok(first)
    }
    async fn delete(&self, key: &str, guard: &Guard) -> Result<Written> {
        self.inner.delete(key, guard).await
    }
    async fn replace(
        &self,
        old: &str,
        guard: &Guard,
        new: &str,
        item: &StoredItem,
    ) -> Result<Replaced> {
        self.inner.replace(old, guard, new, item).await
    }
    async fn sessions_of(
        &self,
        user_hash: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<String>, Option<String>)> {
        self.inner.sessions_of(user_hash, after, limit).await
    }
    async fn get_many(&self, keys: &[String]) -> Result<Vec<(String, StoredItem)>> {
        self.inner.get_many(keys).await
    }
}

fn store(mode: Concurrency, seal: bool) -> (SessionStore, RetriedOnce) {
    let backend = RetriedOnce::default();
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
        backend.armed.store(true, Ordering::SeqCst);
        store
            .save(&id, &record)
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: the write landed, yet: {e}"));
        assert!(!backend.armed.load(Ordering::SeqCst), "the retry was sent");
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
    backend.armed.store(true, Ordering::SeqCst);
    let err = store.save(&id, &record).await.unwrap_err();
    assert!(matches!(err, Error::VersionConflict), "{err:?}");
}
