//! The storage a [`SessionStore`](crate::SessionStore) runs on: a small set of atomic,
//! conditional operations on one item per session.
//!
//! [`SessionStore`](crate::SessionStore) decides *what* to write (ids, expiry, versions, the
//! lock protocol, the size limit, sealing) once, for every backend; a backend only has to
//! apply each operation atomically and say why a condition failed. DynamoDB and
//! [`MemoryStore`](crate::MemoryStore) implement it, and one conformance suite runs against
//! both.

use std::fmt::Debug;

use crate::error::Result;

/// One session as a backend stores it, under its table key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoredItem {
    /// The encoded session data.
    pub data: String,
    /// Unix seconds of creation.
    pub created_at: i64,
    /// Unix seconds of the last write.
    pub updated_at: i64,
    /// Unix seconds after which the session is dead, if it has a limit.
    pub expire_at: Option<i64>,
    /// Bumped by every data write; `None` on items written before versions existed.
    pub version: Option<u64>,
    /// The session's own `max_stale` in seconds, when it has one ("remember me").
    pub max_stale: Option<u64>,
    /// The keyed hash of the user the session is bound to: the user index's key.
    pub user_hash: Option<String>,
    /// Unix milliseconds at which the session was bound to its user: a sign-out everywhere
    /// at or after it ends the session (see `SessionStore::revoke_user_sessions`). `None` on
    /// items bound before it was kept (their `created_at` stands in). On a revocation marker,
    /// the revocation's time.
    pub bound_at: Option<i64>,
    /// The lock a request holds on the session (pessimistic concurrency).
    pub lock: Option<StoredLock>,
}

/// A held lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLock {
    /// The holder's random token.
    pub owner: String,
    /// Unix milliseconds at which it was taken.
    pub locked_at_ms: i64,
}

/// What a conditional write requires of the stored item. Every update also requires the
/// item to exist, so no write ever brings a deleted session back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guard {
    /// Nothing more (a delete under this guard is unconditional).
    None,
    /// The item's version is still this one (`None`: the item has no version yet).
    Version(Option<u64>),
    /// The lock is still held by this owner. A write under this guard also releases it.
    Lock(String),
}

/// What an update writes. Fields left `None` are not touched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// New encoded data.
    pub data: Option<String>,
    /// New creation time (Unix seconds): only a revocation marker written afresh sets it.
    pub created_at: Option<i64>,
    /// New last-write time (Unix seconds).
    pub updated_at: Option<i64>,
    /// New expiry: `Some(None)` removes it.
    pub expire_at: Option<Option<i64>>,
    /// New per-session `max_stale` in seconds: `Some(None)` removes it.
    pub max_stale: Option<Option<u64>>,
    /// New user index value: `Some(None)` removes it.
    pub user_hash: Option<Option<String>>,
    /// New binding time (Unix milliseconds): `Some(None)` removes it.
    pub bound_at: Option<Option<i64>>,
    /// Increment the version (creating it at 1 when absent).
    pub bump_version: bool,
}

/// How a conditional write ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// The write was applied.
    Applied,
    /// The guard did not hold; the item as it stands (`None`: absent). Backends that cannot
    /// tell must read it (consistently) rather than guess: the store fails safe only if it
    /// knows whether the session was deleted, locked or changed.
    Refused(Option<StoredItem>),
}

/// How an attempt to take a session's lock ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locked {
    /// This request holds the lock now; the item as it stands, lock included.
    Acquired(StoredItem),
    /// Another request holds an unexpired lock.
    Busy,
    /// There is no such session.
    Absent,
}

/// How an atomic move of a session to a new key ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replaced {
    /// The new item exists and the old one is gone.
    Applied,
    /// The new key is taken; nothing was written.
    Collision,
    /// The old item's guard did not hold; nothing was written. The old item as it stands.
    Refused(Option<StoredItem>),
}

/// Storage for sessions, one item per table key.
///
/// Every method must be atomic with respect to the others on the same key, as DynamoDB's
/// single-item writes are.
///
/// # Examples
///
/// A backend of your own implements eight methods; here one that counts the writes it passes
/// on to another:
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use dynamodb_session_store::{MemoryStore, Result};
/// use dynamodb_session_store::backend::{Changes, Guard, Locked, Replaced, SessionBackend, StoredItem, Written};
///
/// #[derive(Debug, Default)]
/// struct CountingWrites {
///     inner: MemoryStore,
///     writes: AtomicUsize,
/// }
///
/// impl CountingWrites {
///     fn wrote(&self) {
///         self.writes.fetch_add(1, Ordering::Relaxed);
///     }
/// }
///
/// #[async_trait::async_trait]
/// impl SessionBackend for CountingWrites {
///     async fn get(&self, key: &str, consistent: bool) -> Result<Option<StoredItem>> {
///         self.inner.get(key, consistent).await
///     }
///     async fn insert(&self, key: &str, item: &StoredItem) -> Result<bool> {
///         self.wrote();
///         self.inner.insert(key, item).await
///     }
///     async fn lock(&self, key: &str, owner: &str, now_ms: i64, stale_before_ms: i64) -> Result<Locked> {
///         self.wrote();
///         self.inner.lock(key, owner, now_ms, stale_before_ms).await
///     }
///     async fn update(&self, key: &str, changes: &Changes, guard: &Guard) -> Result<Written> {
///         self.wrote();
///         self.inner.update(key, changes, guard).await
///     }
///     async fn delete(&self, key: &str, guard: &Guard) -> Result<Written> {
///         self.wrote();
///         self.inner.delete(key, guard).await
///     }
///     async fn replace(&self, old: &str, guard: &Guard, new: &str, item: &StoredItem) -> Result<Replaced> {
///         self.wrote();
///         self.inner.replace(old, guard, new, item).await
///     }
///     async fn sessions_of(&self, user_hash: &str, after: Option<&str>, limit: usize) -> Result<(Vec<String>, Option<String>)> {
///         self.inner.sessions_of(user_hash, after, limit).await
///     }
///     async fn get_many(&self, keys: &[String]) -> Result<Vec<(String, StoredItem)>> {
///         self.inner.get_many(keys).await
///     }
/// }
/// ```
///
/// A handler test against [`MemoryStore`](crate::MemoryStore), no DynamoDB needed:
///
/// ```
/// use dynamodb_session_store::{Config, MemoryStore, SessionData, SessionStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), dynamodb_session_store::Error> {
/// let config = Config::builder().secret_key("0123456789abcdef0123456789abcdef").build()?;
/// let store = SessionStore::with_backend(config, MemoryStore::default())?;
/// let (id, _) = store.create(&SessionData::new()).await?;
/// assert!(store.load(&id).await?.is_some());
/// # Ok(()) }
/// ```
#[async_trait::async_trait]
pub trait SessionBackend: Debug + Send + Sync + 'static {
    /// Reads an item (strongly consistent when `consistent`).
    ///
    /// # Errors
    ///
    /// Backend failures.
    async fn get(&self, key: &str, consistent: bool) -> Result<Option<StoredItem>>;

    /// Writes `item` under `key` only if the key is unused. Returns `false` when it is taken.
    ///
    /// # Errors
    ///
    /// Backend failures.
    async fn insert(&self, key: &str, item: &StoredItem) -> Result<bool>;

    /// Takes the lock for `owner` if the item exists and has no lock, a lock taken before
    /// `stale_before_ms`, or a lock `owner` already holds; stamps it `now_ms`.
    ///
    /// # Errors
    ///
    /// Backend failures.
    async fn lock(
        &self,
        key: &str,
        owner: &str,
        now_ms: i64,
        stale_before_ms: i64,
    ) -> Result<Locked>;

    /// Applies `changes` if the item exists and `guard` holds.
    ///
    /// # Errors
    ///
    /// Backend failures.
    async fn update(&self, key: &str, changes: &Changes, guard: &Guard) -> Result<Written>;

    /// Deletes the item if `guard` holds. Deleting an absent item under [`Guard::None`] is
    /// applied (there is nothing to delete).
    ///
    /// # Errors
    ///
    /// Backend failures.
    async fn delete(&self, key: &str, guard: &Guard) -> Result<Written>;

    /// Atomically inserts `item` under the unused `new_key` and deletes `old_key` if `guard`
    /// holds: both or neither.
    ///
    /// # Errors
    ///
    /// Backend failures.
    async fn replace(
        &self,
        old_key: &str,
        guard: &Guard,
        new_key: &str,
        item: &StoredItem,
    ) -> Result<Replaced>;

    /// The table keys of the sessions whose user index value is `user_hash`, after the key
    /// `after`, at most `limit`, in a stable order; and the key to continue after, if more
    /// may follow.
    ///
    /// # Errors
    ///
    /// Backend failures; [`Error::UserIndexMissing`](crate::Error::UserIndexMissing) when
    /// the table has no user index.
    async fn sessions_of(
        &self,
        user_hash: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<String>, Option<String>)>;

    /// Reads several items at once (strongly consistent); absent keys are left out.
    ///
    /// # Errors
    ///
    /// Backend failures.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<(String, StoredItem)>>;
}

/// The garbage rule of one collector run, fixed when the run starts: a session is garbage
/// when its `expire_at` has passed, or when one of the collector's optional caps says so.
///
/// Backends evaluate it twice: to find candidates
/// ([`CollectorBackend::scan_garbage`]), and again, atomically, when deleting one
/// ([`CollectorBackend::delete_if_garbage`]), so a session written after the scan no longer
/// matches and survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GarbageRule {
    /// The run's instant (Unix seconds): `expire_at <= now` is garbage, as the store treats
    /// a session whose `expire_at <= now` as absent. An item without `expire_at` never
    /// matches this clause.
    pub now: i64,
    /// The `max_age` cap: `created_at` before this (Unix seconds) is garbage.
    pub created_before: Option<i64>,
    /// The `max_stale` cap: `updated_at` before this (Unix seconds) is garbage, unless the
    /// session has an idle limit of its own (then its `expire_at` alone decides).
    pub updated_before: Option<i64>,
}

impl GarbageRule {
    /// Whether `item` is garbage under this rule: the same test a backend's conditional
    /// delete applies.
    pub fn matches(&self, item: &StoredItem) -> bool {
        item.expire_at
            .is_some_and(|expire_at| expire_at <= self.now)
            || self
                .created_before
                .is_some_and(|before| item.created_at < before)
            || self
                .updated_before
                .is_some_and(|before| item.updated_at < before && item.max_stale.is_none())
    }
}

/// One page of one scan segment, as the collector asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GarbageScan {
    /// The segment to read, `0..total_segments`.
    pub segment: u32,
    /// How many disjoint segments the whole table is split into.
    pub total_segments: u32,
    /// Most items the page evaluates (garbage or not), at least 1.
    pub limit: u32,
    /// The table key the page starts after (`None`: the segment's start), as a previous
    /// page of the same segment and `total_segments` returned it.
    pub after: Option<String>,
}

/// A page of garbage candidates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GarbagePage {
    /// Items the page evaluated.
    pub scanned: u64,
    /// The table keys of the items that matched the rule when they were read.
    pub garbage: Vec<String>,
    /// The key the segment's next page starts after; `None` when the segment is done.
    pub next: Option<String>,
}

/// The stored checkpoint of a collection pass, as a backend read it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredCheckpoint {
    /// The version it was written as (at least 1).
    pub version: u64,
    /// The pass, or why it could not be read (the pass then restarts, replacing it).
    pub pass: std::result::Result<crate::gc::Checkpoint, String>,
}

/// How a backend may retry one of the collector's requests itself: the collector has no
/// view of a backend's failures, so the backend decides which are transient (throttling, a
/// timeout), and counts each retry in `retries` for the collector's report.
#[derive(Debug, Clone, Copy)]
pub struct Retry<'a> {
    /// Most retries of the request.
    pub max_retries: usize,
    /// No retry may sleep past this instant.
    pub until: Option<std::time::Instant>,
    /// Incremented once per retry sent.
    pub retries: &'a std::sync::atomic::AtomicU64,
}

/// What the [`GarbageCollector`](crate::gc::GarbageCollector) needs of a backend: a segmented
/// scan for garbage, a delete that re-checks the rule atomically, and a versioned place for
/// the checkpoint that carries a pass across invocations. In the spirit of
/// tower-sessions' `ExpiredDeletion`, but resumable and race-safe.
///
/// DynamoDB (through [`GarbageCollector::new`](crate::gc::GarbageCollector::new)) and
/// [`MemoryStore`](crate::MemoryStore) implement it, and the conformance suite runs the
/// collector's cases on both.
#[async_trait::async_trait]
pub trait CollectorBackend: Debug + Send + Sync + 'static {
    /// Reads one page of `scan`'s segment and returns the keys of the items `rule` matches.
    /// The segments of one `total_segments` are disjoint and together cover every item.
    ///
    /// # Errors
    ///
    /// [`Error::TableNotFound`](crate::Error::TableNotFound) when the table is gone;
    /// [`Error::DynamoDb`](crate::Error::DynamoDb) (or a backend's own error) when the read
    /// fails for good.
    async fn scan_garbage(
        &self,
        scan: &GarbageScan,
        rule: &GarbageRule,
        retry: Retry<'_>,
    ) -> Result<GarbagePage>;

    /// Deletes `key` if it still matches `rule`, atomically. Returns `false`, deleting
    /// nothing, when it no longer matches or is already gone.
    ///
    /// # Errors
    ///
    /// As [`scan_garbage`](Self::scan_garbage).
    async fn delete_if_garbage(
        &self,
        key: &str,
        rule: &GarbageRule,
        retry: Retry<'_>,
    ) -> Result<bool>;

    /// The stored checkpoint, if any (strongly consistent).
    ///
    /// # Errors
    ///
    /// As [`scan_garbage`](Self::scan_garbage);
    /// [`Error::MalformedItem`](crate::Error::MalformedItem) when its version is unreadable.
    async fn load_checkpoint(&self, retry: Retry<'_>) -> Result<Option<StoredCheckpoint>>;

    /// Stores `pass` as version `expected + 1` if the stored checkpoint is still version
    /// `expected` (`0`: none stored). Returns `false`, writing nothing, when another
    /// collector moved it.
    ///
    /// # Errors
    ///
    /// As [`scan_garbage`](Self::scan_garbage).
    async fn save_checkpoint(
        &self,
        pass: &crate::gc::Checkpoint,
        expected: u64,
        retry: Retry<'_>,
    ) -> Result<bool>;

    /// Deletes the checkpoint if it is still `version`. Returns `false` when another
    /// collector moved it.
    ///
    /// # Errors
    ///
    /// As [`scan_garbage`](Self::scan_garbage).
    async fn clear_checkpoint(&self, version: u64, retry: Retry<'_>) -> Result<bool>;
}
