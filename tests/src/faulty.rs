//! [`Faulty`]: `MemoryStore` failing once when told to, and aged to move time: the model
//! checker's in-memory backend (`tests/tests/model.rs`), and the lost answers' retried write
//! (`tests/tests/e2e/lost_answers.rs`).

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::error::{InternalServerError, ProvisionedThroughputExceededException};
use dynamodb_session_store::backend::{
    Changes, Guard, Locked, Replaced, SessionBackend, StoredItem, Written,
};
use dynamodb_session_store::{Error, MemoryStore, Result as StoreResult, SessionStore};

/// How the next write fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteFault {
    /// Throttled before it applied.
    Throttle,
    /// A 5xx before it applied.
    Server,
    /// Applied, then answered with a 5xx.
    Lost,
    /// Applied, its answer lost, and sent again, as the SDK's retry would: the caller sees
    /// the second attempt's answer, which meets the first attempt's effect.
    Retried,
}

impl WriteFault {
    /// Whether the write is stored despite the fault.
    pub fn applies(self) -> bool {
        matches!(self, WriteFault::Lost | WriteFault::Retried)
    }

    /// Whether the caller is told the write failed: a retry that meets its own first
    /// attempt is not a failure.
    pub fn fails(self) -> bool {
        self != WriteFault::Retried
    }
}

/// What is armed, and what fired.
#[derive(Debug, Default)]
pub struct Armed {
    /// The next read (`get`, or the pessimistic `lock`) fails.
    pub read: bool,
    /// The next write fails so.
    pub write: Option<WriteFault>,
    /// Whether an armed read failure fired.
    pub read_fired: bool,
    /// Whether an armed write fault fired.
    pub write_fired: bool,
}

/// `MemoryStore` failing once when [`Armed`] says so.
#[derive(Debug, Clone, Default)]
pub struct Faulty {
    /// The store under the faults.
    pub inner: MemoryStore,
    /// What fails next.
    pub armed: Arc<Mutex<Armed>>,
}

/// The SDK's throttling error, as the store gets it.
pub fn throttled() -> Error {
    Error::DynamoDb(Box::new(
        aws_sdk_dynamodb::Error::ProvisionedThroughputExceededException(
            ProvisionedThroughputExceededException::builder()
                .message("injected throttling")
                .build(),
        ),
    ))
}

/// The SDK's 5xx, as the store gets it.
pub fn server_error() -> Error {
    Error::DynamoDb(Box::new(aws_sdk_dynamodb::Error::InternalServerError(
        InternalServerError::builder()
            .message("injected 5xx")
            .build(),
    )))
}

/// Seconds since the epoch, as the store reads them.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Faulty {
    /// Arms the next write's fault.
    pub fn arm_write(&self, fault: WriteFault) {
        self.armed.lock().unwrap().write = Some(fault);
    }

    /// Whether the armed write fault fired (and disarms the report).
    pub fn write_fired(&self) -> bool {
        std::mem::take(&mut self.armed.lock().unwrap().write_fired)
    }

    fn read_fails(&self) -> bool {
        let mut armed = self.armed.lock().unwrap();
        std::mem::take(&mut armed.read) && {
            armed.read_fired = true;
            true
        }
    }

    fn write_fault(&self) -> Option<WriteFault> {
        let mut armed = self.armed.lock().unwrap();
        let fault = armed.write.take();
        armed.write_fired |= fault.is_some();
        fault
    }

    /// Runs a write (`send` sends it once) under the armed fault, if any.
    async fn written<T, F>(&self, send: impl Fn() -> F) -> StoreResult<T>
    where
        F: Future<Output = StoreResult<T>>,
    {
        match self.write_fault() {
            None => send().await,
            Some(WriteFault::Throttle) => Err(throttled()),
            Some(WriteFault::Server) => Err(server_error()),
            Some(WriteFault::Lost) => {
                send().await?;
                Err(server_error())
            }
            Some(WriteFault::Retried) => {
                send().await?;
                send().await
            }
        }
    }

    /// Moves every stored timestamp back by `secs`: the clock moving forward.
    pub async fn age(&self, secs: i64) {
        for (key, mut item) in self.inner.items_snapshot() {
            item.created_at -= secs;
            item.updated_at -= secs;
            item.expire_at = item.expire_at.map(|t| t - secs);
            if let Some(lock) = &mut item.lock {
                lock.locked_at_ms -= secs * 1000;
            }
            self.inner.delete(&key, &Guard::None).await.unwrap();
            assert!(self.inner.insert(&key, &item).await.unwrap());
        }
    }

    /// Sessions stored and not expired (revocation markers left out).
    pub fn live_items(&self) -> usize {
        let now = unix_now();
        self.inner
            .items_snapshot()
            .iter()
            .filter(|(key, item)| {
                !key.starts_with(SessionStore::REVOCATION_MARKER_PREFIX)
                    && item.expire_at.is_none_or(|t| t > now)
            })
            .count()
    }
}

#[async_trait::async_trait]
impl SessionBackend for Faulty {
    async fn get(&self, key: &str, consistent: bool) -> StoreResult<Option<StoredItem>> {
        if self.read_fails() {
            return Err(throttled());
        }
        self.inner.get(key, consistent).await
    }
    async fn insert(&self, key: &str, item: &StoredItem) -> StoreResult<bool> {
        self.written(|| self.inner.insert(key, item)).await
    }
    async fn lock(&self, key: &str, owner: &str, now_ms: i64, stale: i64) -> StoreResult<Locked> {
        if self.read_fails() {
            return Err(server_error());
        }
        self.inner.lock(key, owner, now_ms, stale).await
    }
    async fn update(&self, key: &str, changes: &Changes, guard: &Guard) -> StoreResult<Written> {
        self.written(|| self.inner.update(key, changes, guard))
            .await
    }
    async fn delete(&self, key: &str, guard: &Guard) -> StoreResult<Written> {
        self.written(|| self.inner.delete(key, guard)).await
    }
    async fn replace(
        &self,
        old: &str,
        guard: &Guard,
        new: &str,
        item: &StoredItem,
    ) -> StoreResult<Replaced> {
        self.written(|| self.inner.replace(old, guard, new, item))
            .await
    }
    async fn sessions_of(
        &self,
        user_hash: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<(Vec<String>, Option<String>)> {
        self.inner.sessions_of(user_hash, after, limit).await
    }
    async fn get_many(&self, keys: &[String]) -> StoreResult<Vec<(String, StoredItem)>> {
        self.inner.get_many(keys).await
    }
}
