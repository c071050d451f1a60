//! [`MemoryStore`]: sessions in process memory, with the same semantics as DynamoDB.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};

use super::backend::{
    Changes, CollectorBackend, GarbagePage, GarbageRule, GarbageScan, Guard, Locked, Replaced,
    Retry, SessionBackend, StoredCheckpoint, StoredItem, StoredLock, Written,
};
use crate::error::Result;
use crate::gc::Checkpoint;

/// Sessions kept in memory: for unit tests of handlers, and for local development.
///
/// It applies every operation atomically, as DynamoDB does, so the store's concurrency
/// modes, expiry, renewals and size limit behave exactly as on a table; the same
/// conformance suite runs against both. Clones share the sessions. Nothing is persisted and
/// nothing is shared between processes: not for production.
///
/// # Examples
///
/// Unit-testing a handler behind the layer, no DynamoDB emulator needed:
///
/// ```
/// use dynamodb_session_store::{Config, MemoryStore, RequestSessionExt, SessionLayer, SessionStore};
/// use http::{Request, Response, header};
/// use tower::{Layer, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// async fn count(req: Request<String>) -> Result<Response<String>, dynamodb_session_store::Error> {
///     let session = req.session().expect("behind the layer");
///     let n: u64 = session.get("n").await?.unwrap_or(0) + 1;
///     session.insert("n", n).await?;
///     Ok(Response::new(n.to_string()))
/// }
///
/// let config = Config::builder().secret_key("0123456789abcdef0123456789abcdef").build()?;
/// let memory = MemoryStore::default();
/// let app = SessionLayer::new(SessionStore::with_backend(config, memory.clone())?)
///     .layer(service_fn(count));
///
/// let first = app.clone().oneshot(Request::new(String::new())).await?;
/// assert_eq!(first.body(), "1");
/// let cookie = first.headers()[header::SET_COOKIE].to_str()?.split(';').next().unwrap().to_owned();
///
/// let mut again = Request::new(String::new());
/// again.headers_mut().insert(header::COOKIE, cookie.parse()?);
/// assert_eq!(app.oneshot(again).await?.body(), "2");
/// assert_eq!(memory.len(), 1);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    items: Arc<Mutex<HashMap<String, StoredItem>>>,
    /// When each item's latest user index entry becomes visible (see
    /// [`with_index_delay`](Self::with_index_delay)).
    indexed_from: Arc<Mutex<HashMap<String, Instant>>>,
    index_delay: Duration,
    /// The collector's checkpoint and its version, beside the sessions as on a table.
    checkpoint: Arc<Mutex<Option<(u64, Checkpoint)>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// An empty store whose user index shows a written item only `delay` after the write,
    /// as DynamoDB's eventually consistent `user_hash-index` may: for testing that a sign-out
    /// everywhere also ends sessions the index does not show yet.
    pub fn with_index_delay(delay: Duration) -> Self {
        MemoryStore {
            index_delay: delay,
            ..MemoryStore::default()
        }
    }

    /// Hides `key`'s index entry until the configured delay has passed.
    fn reindex(&self, key: &str) {
        if self.index_delay.is_zero() {
            return;
        }
        self.indexed_from
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_owned(), Instant::now() + self.index_delay);
    }

    /// How many sessions are stored (expired ones included until overwritten or deleted;
    /// revocation markers left out).
    pub fn len(&self) -> usize {
        self.items().keys().filter(|key| !is_marker(key)).count()
    }

    /// Whether no session is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every stored item with its table key, for assertions in tests.
    pub fn items_snapshot(&self) -> Vec<(String, StoredItem)> {
        self.items()
            .iter()
            .map(|(key, item)| (key.clone(), item.clone()))
            .collect()
    }

    fn checkpoint(&self) -> MutexGuard<'_, Option<(u64, Checkpoint)>> {
        self.checkpoint.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn items(&self) -> MutexGuard<'_, HashMap<String, StoredItem>> {
        // A panic while holding the lock cannot leave an item half-written: every operation
        // replaces whole values.
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn is_marker(key: &str) -> bool {
    key.starts_with(crate::SessionStore::REVOCATION_MARKER_PREFIX)
}

/// Whether `guard` holds for the present `item`.
fn holds(guard: &Guard, item: &StoredItem) -> bool {
    match guard {
        Guard::None => true,
        Guard::Version(version) => item.version == *version,
        Guard::Lock(owner) => item.lock.as_ref().is_some_and(|l| l.owner == *owner),
    }
}

#[async_trait::async_trait]
impl SessionBackend for MemoryStore {
    async fn get(&self, key: &str, _consistent: bool) -> Result<Option<StoredItem>> {
        Ok(self.items().get(key).cloned())
    }

    async fn insert(&self, key: &str, item: &StoredItem) -> Result<bool> {
        let mut items = self.items();
        if items.contains_key(key) {
            return Ok(false);
        }
        items.insert(key.to_owned(), item.clone());
        self.reindex(key);
        Ok(true)
    }

    async fn lock(
        &self,
        key: &str,
        owner: &str,
        now_ms: i64,
        stale_before_ms: i64,
    ) -> Result<Locked> {
        let mut items = self.items();
        let Some(item) = items.get_mut(key) else {
            return Ok(Locked::Absent);
        };
        let free = match &item.lock {
            None => true,
            Some(lock) => lock.locked_at_ms < stale_before_ms || lock.owner == owner,
        };
        if !free {
            return Ok(Locked::Busy);
        }
        item.lock = Some(StoredLock {
            owner: owner.to_owned(),
            locked_at_ms: now_ms,
        });
        Ok(Locked::Acquired(item.clone()))
    }

    async fn update(&self, key: &str, changes: &Changes, guard: &Guard) -> Result<Written> {
        let mut items = self.items();
        let Some(item) = items.get_mut(key) else {
            return Ok(Written::Refused(None));
        };
        if !holds(guard, item) {
            return Ok(Written::Refused(Some(item.clone())));
        }
        if let Some(data) = &changes.data {
            item.data = data.clone();
        }
        if let Some(created_at) = changes.created_at {
            item.created_at = created_at;
        }
        if let Some(updated_at) = changes.updated_at {
            item.updated_at = updated_at;
        }
        if let Some(expire_at) = changes.expire_at {
            item.expire_at = expire_at;
        }
        if let Some(max_stale) = changes.max_stale {
            item.max_stale = max_stale;
        }
        if let Some(user_hash) = &changes.user_hash {
            if item.user_hash != *user_hash {
                self.reindex(key);
            }
            item.user_hash.clone_from(user_hash);
        }
        if let Some(bound_at) = changes.bound_at {
            item.bound_at = bound_at;
        }
        if changes.bump_version {
            item.version = Some(item.version.unwrap_or(0) + 1);
        }
        if matches!(guard, Guard::Lock(_)) {
            item.lock = None;
        }
        Ok(Written::Applied)
    }

    async fn delete(&self, key: &str, guard: &Guard) -> Result<Written> {
        let mut items = self.items();
        match items.get(key) {
            None if *guard == Guard::None => Ok(Written::Applied),
            None => Ok(Written::Refused(None)),
            Some(item) if !holds(guard, item) => Ok(Written::Refused(Some(item.clone()))),
            Some(_) => {
                items.remove(key);
                Ok(Written::Applied)
            }
        }
    }

    async fn replace(
        &self,
        old_key: &str,
        guard: &Guard,
        new_key: &str,
        item: &StoredItem,
    ) -> Result<Replaced> {
        let mut items = self.items();
        if items.contains_key(new_key) {
            return Ok(Replaced::Collision);
        }
        match items.get(old_key) {
            None => return Ok(Replaced::Refused(None)),
            Some(old) if !holds(guard, old) => return Ok(Replaced::Refused(Some(old.clone()))),
            Some(_) => {}
        }
        items.remove(old_key);
        items.insert(new_key.to_owned(), item.clone());
        self.reindex(new_key);
        Ok(Replaced::Applied)
    }

    async fn sessions_of(
        &self,
        user_hash: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<String>, Option<String>)> {
        let items = self.items();
        let hidden = self.indexed_from.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let mut keys: Vec<&String> = items
            .iter()
            .filter(|(key, item)| {
                item.user_hash.as_deref() == Some(user_hash)
                    && hidden.get(key.as_str()).is_none_or(|from| *from <= now)
                    && after.is_none_or(|after| key.as_str() > after)
            })
            .map(|(key, _)| key)
            .collect();
        keys.sort();
        let more = keys.len() > limit;
        let page: Vec<String> = keys.into_iter().take(limit).cloned().collect();
        let next = more.then(|| page.last().cloned()).flatten();
        Ok((page, next))
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<(String, StoredItem)>> {
        let items = self.items();
        Ok(keys
            .iter()
            .filter_map(|key| items.get(key).map(|item| (key.clone(), item.clone())))
            .collect())
    }
}

/// The scan segment `key` falls in: a fixed hash, so the segments of one count are disjoint
/// and cover every key, as DynamoDB's are.
fn segment_of(key: &str, total_segments: u32) -> u32 {
    let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(key);
    (hash % u64::from(total_segments.max(1))) as u32
}

/// Nothing here fails transiently, so `Retry` is never needed.
#[async_trait::async_trait]
impl CollectorBackend for MemoryStore {
    async fn scan_garbage(
        &self,
        scan: &GarbageScan,
        rule: &GarbageRule,
        _retry: Retry<'_>,
    ) -> Result<GarbagePage> {
        let items = self.items();
        let mut keys: Vec<&String> = items
            .keys()
            .filter(|key| {
                segment_of(key, scan.total_segments) == scan.segment
                    && scan.after.as_ref().is_none_or(|after| *key > after)
            })
            .collect();
        keys.sort();
        let limit = scan.limit.max(1) as usize;
        let more = keys.len() > limit;
        keys.truncate(limit);
        Ok(GarbagePage {
            scanned: keys.len() as u64,
            garbage: keys
                .iter()
                .filter(|key| rule.matches(&items[key.as_str()]))
                .map(|key| (*key).clone())
                .collect(),
            next: more
                .then(|| keys.last().map(|key| (*key).clone()))
                .flatten(),
        })
    }

    async fn delete_if_garbage(
        &self,
        key: &str,
        rule: &GarbageRule,
        _retry: Retry<'_>,
    ) -> Result<bool> {
        let mut items = self.items();
        if items.get(key).is_some_and(|item| rule.matches(item)) {
            items.remove(key);
            return Ok(true);
        }
        Ok(false)
    }

    async fn load_checkpoint(&self, _retry: Retry<'_>) -> Result<Option<StoredCheckpoint>> {
        Ok(self
            .checkpoint()
            .as_ref()
            .map(|(version, pass)| StoredCheckpoint {
                version: *version,
                pass: Ok(pass.clone()),
            }))
    }

    async fn save_checkpoint(
        &self,
        pass: &Checkpoint,
        expected: u64,
        _retry: Retry<'_>,
    ) -> Result<bool> {
        let mut stored = self.checkpoint();
        if stored.as_ref().map_or(0, |(version, _)| *version) != expected {
            return Ok(false);
        }
        *stored = Some((expected + 1, pass.clone()));
        Ok(true)
    }

    async fn clear_checkpoint(&self, version: u64, _retry: Retry<'_>) -> Result<bool> {
        let mut stored = self.checkpoint();
        if stored.as_ref().map(|(stored, _)| *stored) != Some(version) {
            return Ok(false);
        }
        *stored = None;
        Ok(true)
    }
}
