//! The session store: what to write for each session operation, on any [`SessionBackend`].
//!
//! `expire_at` is the earlier of `updated_at` + `max_stale` (the session's own, or the
//! configured one) and `created_at + max_age`; only with both limits explicitly unlimited is it
//! absent. Every write honours the [`Concurrency`] mode (see [`SessionRecord`]'s guards): a
//! write whose condition no longer holds fails with a typed error and writes nothing.

mod backend;
mod dynamodb;
mod lock;
mod memory;
mod payload;
mod record;
mod users;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;

use crate::config::{Config, MIN_SECRET_KEY_LEN};
use crate::deadline::Deadline;
use crate::error::{Error, Result};
use crate::keys::refresh::{Refresher, SecretSource, SigningSecrets};
use crate::keys::{self, KeyCell, Keyring, SessionId};
use crate::serializer::SessionData;
use crate::table::SessionTable;

pub use self::backend::{
    Changes, CollectorBackend, GarbagePage, GarbageRule, GarbageScan, Guard, Locked, Replaced,
    Retry, SessionBackend, StoredCheckpoint, StoredItem, StoredLock, Written,
};
pub(crate) use self::dynamodb::DynamoDbBackend;
pub use self::memory::MemoryStore;
use self::payload::{Codec, Framed, Opened, Refusal};
pub use self::record::{EndedBy, SessionRecord};
use self::record::{refusal, secs};
pub use self::users::{UserSession, UserSessionPage};

/// Largest item, in bytes, the store writes. DynamoDB refuses items over 409,600 bytes
/// (attribute names included) and moto over 405,000; this leaves a margin under both.
pub const MAX_ITEM_BYTES: usize = 400_000;

/// Bytes reserved in every item for the timestamp, version, lock and limit attributes.
const METADATA_RESERVE: usize = 512;

/// Fresh ids tried before [`Error::IdCollision`].
const CREATE_ATTEMPTS: u32 = 3;

/// Stores sessions, one item each, in DynamoDB (or any [`SessionBackend`]). Cheap to clone:
/// clones share the backend and keys.
///
/// # Examples
///
/// ```no_run
/// use dynamodb_session_store::{Config, SessionData, SessionStore};
///
/// # async fn demo() -> Result<(), dynamodb_session_store::Error> {
/// let aws = aws_config::load_from_env().await;
/// let store = SessionStore::new(
///     Config::builder()
///         .secret_key(std::env::var("SESSION_SECRET").unwrap())
///         .dynamo_db_client(aws_sdk_dynamodb::Client::new(&aws))
///         .build()?,
/// )?;
/// store.create_table().await?;
///
/// let mut data = SessionData::new();
/// data.insert("user_id".into(), 42.into());
/// let (id, _) = store.create(&data).await?;
/// let cookie = store.cookie_value(&id);
///
/// // A later request:
/// let id = store.verify_cookie(&cookie).expect("our own signature");
/// let record = store.load(&id).await?.expect("still there");
/// assert_eq!(record.data["user_id"], 42);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SessionStore {
    inner: Arc<Inner>,
    /// When this handle's operations must be done (see [`with_deadline`](Self::with_deadline)).
    deadline: Option<Deadline>,
}

/// Built only by [`SessionStore::build`]; a variant of a store clones it.
#[derive(Clone)]
struct Inner {
    config: Config,
    backend: Arc<dyn SessionBackend>,
    /// The DynamoDB client, when the backend is DynamoDB (table management needs it).
    client: Option<Client>,
    keys: Arc<KeyCell>,
    refresher: Option<Arc<Refresher>>,
    /// Items refused instead of opened (see [`SessionStore::refused_items`]), shared by every
    /// handle on this store.
    refused: Arc<AtomicU64>,
    #[cfg(feature = "testing")]
    forced_ids: Arc<std::sync::Mutex<std::collections::VecDeque<[u8; 32]>>>,
}

impl fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionStore")
            .field("config", &self.inner.config)
            .field("backend", &self.inner.backend)
            .finish_non_exhaustive()
    }
}

impl SessionStore {
    /// Builds a DynamoDB store from a configuration that carries a DynamoDB client.
    ///
    /// # Errors
    ///
    /// [`Error::MissingSecretKey`] without a secret key, [`Error::MissingClient`] without a
    /// client. The values themselves were checked when the [`Config`] was built.
    ///
    /// # Examples
    ///
    /// ```
    /// use dynamodb_session_store::{Config, Error, SessionStore};
    ///
    /// let err = SessionStore::new(Config::builder().build().unwrap()).unwrap_err();
    /// assert!(matches!(err, Error::MissingSecretKey));
    /// ```
    pub fn new(config: Config) -> Result<Self> {
        if config.secret_key.is_none() {
            return Err(Error::MissingSecretKey);
        }
        let client = config
            .dynamo_db_client
            .clone()
            .ok_or(Error::MissingClient)?;
        let backend = DynamoDbBackend::new(
            client.clone(),
            config.table_name.clone(),
            config.table_key.clone(),
        );
        Self::build(config, Arc::new(backend), Some(client))
    }

    /// Builds a store on another backend, such as [`MemoryStore`] for tests. The
    /// configuration's table name, key and client are not used by it.
    ///
    /// # Errors
    ///
    /// [`Error::MissingSecretKey`] without a secret key. The values themselves were checked
    /// when the [`Config`] was built.
    ///
    /// # Examples
    ///
    /// ```
    /// use dynamodb_session_store::{Config, MemoryStore, SessionStore};
    ///
    /// let config = Config::builder().secret_key("0123456789abcdef0123456789abcdef").build()?;
    /// let store = SessionStore::with_backend(config, MemoryStore::default())?;
    /// # Ok::<(), dynamodb_session_store::Error>(())
    /// ```
    pub fn with_backend(config: Config, backend: impl SessionBackend) -> Result<Self> {
        let client = config.dynamo_db_client.clone();
        Self::build(config, Arc::new(backend), client)
    }

    fn build(
        config: Config,
        backend: Arc<dyn SessionBackend>,
        client: Option<Client>,
    ) -> Result<Self> {
        let secret = config.secret_key.as_ref().ok_or(Error::MissingSecretKey)?;
        let keyring = Keyring::new(std::iter::once(secret).chain(&config.previous_secret_keys));
        Ok(SessionStore {
            inner: Arc::new(Inner {
                config,
                backend,
                client,
                keys: Arc::new(KeyCell::new(keyring)),
                refresher: None,
                refused: Arc::default(),
                #[cfg(feature = "testing")]
                forced_ids: Default::default(),
            }),
            deadline: None,
        })
    }

    /// Builds a store from the process environment: [`Config::from_env`] with a client from
    /// the default AWS configuration (region, credentials and `AWS_ENDPOINT_URL_DYNAMODB`).
    ///
    /// # Errors
    ///
    /// As [`Config::from_env`] and [`SessionStore::new`].
    pub async fn from_env() -> Result<Self> {
        let mut config = Config::from_env()?;
        if config.dynamo_db_client.is_none() {
            let aws = aws_config::load_from_env().await;
            config.dynamo_db_client = Some(Client::new(&aws));
        }
        SessionStore::new(config)
    }

    /// The configuration the store runs with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The DynamoDB client the store uses, if its backend is DynamoDB.
    pub fn client(&self) -> Option<&Client> {
        self.inner.client.as_ref()
    }

    /// The same store, whose operations give up with [`Error::DeadlineExceeded`] (and whose
    /// lock waits stop) at `deadline`. Cheap: the backend and keys are shared.
    pub fn with_deadline(&self, deadline: Deadline) -> SessionStore {
        SessionStore {
            inner: self.inner.clone(),
            deadline: Some(deadline),
        }
    }

    /// The deadline this handle's operations keep, if any.
    pub fn deadline(&self) -> Option<Deadline> {
        self.deadline
    }

    /// Reads the signing secrets again from `source` when a cookie fails verification (so a
    /// secret rotated elsewhere does not log users out), at most once per `min_interval`
    /// (30 s is a good choice), one fetch at a time. A failed fetch is logged and counted
    /// ([`secret_refresh_failures`](Self::secret_refresh_failures)); the secrets in use stay.
    pub fn with_secret_source(self, source: impl SecretSource, min_interval: Duration) -> Self {
        let mut inner = Inner::clone(&self.inner);
        inner.refresher = Some(Arc::new(Refresher::new(source, min_interval)));
        SessionStore {
            inner: Arc::new(inner),
            deadline: self.deadline,
        }
    }

    /// How many secret refreshes failed since the store was built.
    pub fn secret_refresh_failures(&self) -> u64 {
        self.inner.refresher.as_ref().map_or(0, |r| r.failures())
    }

    /// How many items [`load`](Self::load) refused to open since the store was built: with
    /// sealing on, data that is not sealed (unless `accept_unsealed`), sealed data that does
    /// not open for its session, or a stored `user_hash` that disagrees with the sealed user.
    /// Each such item read as absent and was logged at WARN (without its content); a rising
    /// count means someone writes to the table who should not (or a migration needs
    /// `accept_unsealed`).
    pub fn refused_items(&self) -> u64 {
        self.inner.refused.load(Ordering::Relaxed)
    }

    /// Replaces the signing secrets: `current` signs from now on; it and `others` verify.
    /// Sessions signed with a secret no longer listed stop opening.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when a secret is shorter than [`MIN_SECRET_KEY_LEN`]; the
    /// secrets in use stay.
    pub fn rotate_secrets(&self, secrets: &SigningSecrets) -> Result<()> {
        let all = std::iter::once(&secrets.current).chain(&secrets.others);
        if all.clone().any(|s| s.expose().len() < MIN_SECRET_KEY_LEN) {
            return Err(Error::invalid(
                "rotated secrets",
                "<redacted>",
                format!("every secret must be at least {MIN_SECRET_KEY_LEN} bytes"),
            ));
        }
        self.inner.keys.replace(Keyring::new(all));
        Ok(())
    }

    /// Checks a cookie value's signature against the current and previous secret keys.
    /// Malformed, truncated and forged values give `None`.
    pub fn verify_cookie(&self, cookie_value: &str) -> Option<SessionId> {
        self.inner.keys.current().verify(cookie_value)
    }

    /// As [`verify_cookie`](Self::verify_cookie), but a value that fails verification makes
    /// the store read its secrets again (see [`with_secret_source`](Self::with_secret_source))
    /// and try once more — giving up on the read at this handle's deadline.
    pub async fn verify_cookie_refreshing(&self, cookie_value: &str) -> Option<SessionId> {
        let seen = self.inner.keys.current();
        if let Some(id) = seen.verify(cookie_value) {
            return Some(id);
        }
        let refresher = self.inner.refresher.as_ref()?;
        let refresh = refresher.refresh(&self.inner.keys, &seen);
        let refreshed = match self.deadline {
            Some(deadline) => tokio::time::timeout_at(deadline.instant().into(), refresh)
                .await
                .unwrap_or(false),
            None => refresh.await,
        };
        if refreshed {
            return self.verify_cookie(cookie_value);
        }
        None
    }

    /// The signed cookie value for `id`.
    pub fn cookie_value(&self, id: &SessionId) -> String {
        keys::cookie_value(id)
    }

    /// The largest encoded `data` attribute, in bytes, a save accepts.
    pub fn max_data_len(&self) -> usize {
        MAX_ITEM_BYTES - self.fixed_item_bytes()
    }

    /// Checks that `data` would fit in one item, without writing anything.
    ///
    /// # Errors
    ///
    /// [`Error::SessionTooLarge`], or [`Error::Serialization`] if the data cannot be encoded.
    pub fn check_size(&self, data: &SessionData) -> Result<()> {
        self.codec().check(data)
    }

    /// The `data` attribute this store writes for `id`'s session: `data` (and the bound
    /// `user`) serialized, compressed above the threshold, and sealed when sealing is on.
    /// For tools and benchmarks; requests go through [`save`](Self::save).
    ///
    /// # Errors
    ///
    /// [`Error::SessionTooLarge`], [`Error::Serialization`].
    ///
    /// # Examples
    ///
    /// ```
    /// use dynamodb_session_store::{Config, MemoryStore, SessionData, SessionStore};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), dynamodb_session_store::Error> {
    /// let config = Config::builder().secret_key("0123456789abcdef0123456789abcdef").build()?;
    /// let store = SessionStore::with_backend(config, MemoryStore::default())?;
    /// let (id, _) = store.create(&SessionData::new()).await?;
    /// let mut data = SessionData::new();
    /// data.insert("email".into(), "ann@example.com".into());
    /// let sealed = store.seal_data(&id, &data, Some("ann"))?;
    /// assert!(!sealed.contains("ann"));
    /// assert_eq!(store.open_data(&id, &sealed)?, (data, Some("ann".to_owned())));
    /// # Ok(()) }
    /// ```
    pub fn seal_data(
        &self,
        id: &SessionId,
        data: &SessionData,
        user: Option<&str>,
    ) -> Result<String> {
        let codec = self.codec();
        let framed = codec.frame(data, user)?;
        Ok(codec.encode(framed, id, &keys::table_key(id)))
    }

    /// Reads a `data` attribute of `id`'s session (see [`seal_data`](Self::seal_data)): its
    /// data and bound user. Unsealed forms open only with sealing off or `accept_unsealed`.
    ///
    /// # Errors
    ///
    /// [`Error::MalformedItem`] when the data is refused (unsealed while sealing is on, or
    /// sealed for another session) or does not decode, [`Error::Serialization`].
    pub fn open_data(
        &self,
        id: &SessionId,
        attribute: &str,
    ) -> Result<(SessionData, Option<String>)> {
        match self.codec().decode(attribute, id, &keys::table_key(id))? {
            Opened::Payload(payload) => Ok((payload.data, payload.user)),
            Opened::Refused(refusal) => Err(Error::MalformedItem(refusal.reason().to_owned())),
        }
    }

    /// `data` sealed as releases before the secret keyed the data key did (under the id
    /// alone) — what a table writer holding their own cookie could compute. Test builds only:
    /// it exists to prove that such data no longer opens.
    #[cfg(feature = "testing")]
    pub fn seal_data_with_id_only_key(
        &self,
        id: &SessionId,
        data: &SessionData,
        user: Option<&str>,
    ) -> Result<String> {
        let codec = self.codec();
        let framed = codec.frame(data, user)?;
        Ok(codec.encode_with(framed, &keys::id_only_data_key(id), &keys::table_key(id)))
    }

    /// Whether an unchanged session last written at `updated_at` is due for a touch: only
    /// when a `max_stale` applies, after `touch_after` — capped at a tenth of `max_stale` so
    /// the expiry is never more than 10 % early.
    pub(crate) fn touch_due(&self, record: &SessionRecord) -> bool {
        let config = &self.inner.config;
        let Some(idle) = record.max_stale_in_force(config) else {
            return false;
        };
        let interval = config.touch_after.min(idle / 10);
        now().saturating_sub(record.updated_at) >= secs(interval).max(1)
    }

    /// Reads a session. An item whose expiry has passed counts as absent, because DynamoDB's
    /// TTL deletes items up to about 48 hours late.
    ///
    /// With pessimistic locking ([`Concurrency::Pessimistic`](crate::Concurrency)) this also
    /// takes the session's lock, in the same call: a conditional UpdateItem that succeeds only
    /// when the item has no lock or an expired one, and returns the item. A busy session is
    /// retried every `lock_retry_delay` (plus up to 25 % jitter) until `lock_max_wait_time` or
    /// the deadline. The lock is released by the next [`save`](Self::save),
    /// [`touch`](Self::touch), [`release`](Self::release), [`renew`](Self::renew) or
    /// [`destroy`](Self::destroy). A missing session needs no lock.
    ///
    /// # Errors
    ///
    /// [`Error::TableNotFound`], [`Error::DynamoDb`] for throttling and other failures,
    /// [`Error::LockWaitTimeout`] when the lock stays busy, [`Error::DeadlineExceeded`],
    /// [`Error::Serialization`] or [`Error::MalformedItem`] for an unreadable item. A failed
    /// read is an error, never an empty session.
    pub async fn load(&self, id: &SessionId) -> Result<Option<SessionRecord>> {
        let key = keys::table_key(id);
        let found = match self.inner.config.concurrency {
            crate::Concurrency::Pessimistic => self.acquire(&key).await?,
            _ => self
                .bounded(
                    self.inner
                        .backend
                        .get(&key, self.inner.config.consistent_read),
                )
                .await?
                .map(|item| (item, None)),
        };
        let Some((item, lock)) = found else {
            tracing::debug!("session not found");
            return Ok(None);
        };
        let opened = self
            .codec()
            .decode(&item.data, id, &key)
            .map(|opened| match opened {
                // The user binding lives in two places, the sealed frame and the indexed hash; a
                // table writer may change the hash (and so which user's sign-out reaches the
                // session) but cannot reseal the frame, so both must agree.
                Opened::Payload(payload)
                    if item.user_hash
                        != payload
                            .user
                            .as_deref()
                            .map(|user| keys::user_hash(id, user)) =>
                {
                    Opened::Refused(Refusal::UserMismatch)
                }
                other => other,
            });
        let payload = match opened {
            Ok(Opened::Payload(payload)) => payload,
            Ok(Opened::Refused(refusal)) => {
                self.free_unreadable(&key, lock).await;
                let refused = self.inner.refused.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(
                    reason = refusal.reason(),
                    refused,
                    "session item refused: it reads as absent"
                );
                return Ok(None);
            }
            Err(error) => {
                self.free_unreadable(&key, lock).await;
                return Err(error);
            }
        };
        let record = SessionRecord::from_stored(&item, payload, lock);
        if self.revoked(&item).await? {
            // Ended for good: a sign-out everywhere reached it through the marker only (the
            // index had not shown it, or a renewal made it after the index was read).
            tracing::debug!("session bound before a sign-out everywhere: ended");
            self.bounded(self.inner.backend.delete(&key, &Guard::None))
                .await?;
            return Ok(None);
        }
        if record.is_expired(&self.inner.config, now()) {
            tracing::debug!("session found but expired");
            self.release(id, &record).await?;
            return Ok(None);
        }
        Ok(Some(record))
    }

    /// Releases the lock this request took on an item it cannot open, for whoever can fix
    /// it; a failure leaves the lock to expire.
    async fn free_unreadable(&self, key: &str, lock: Option<record::LockToken>) {
        if let Some(token) = lock {
            let _ = self
                .bounded(
                    self.inner
                        .backend
                        .update(key, &Changes::default(), &Guard::Lock(token.0)),
                )
                .await;
        }
    }

    /// The session's item as stored — lock, version and expiry included, data still encoded —
    /// read consistently, taking no lock and ignoring expiry. For inspection and tests; a
    /// request reads with [`load`](Self::load).
    ///
    /// # Errors
    ///
    /// Backend errors.
    pub async fn inspect(&self, id: &SessionId) -> Result<Option<StoredItem>> {
        self.bounded(self.inner.backend.get(&keys::table_key(id), true))
            .await
    }

    /// Stores a new session under a fresh id. The write is conditional on the id being
    /// unused, so a colliding id never takes over another session: a new id is drawn instead.
    ///
    /// # Errors
    ///
    /// [`Error::SessionTooLarge`] before any write; [`Error::IdCollision`] if fresh ids keep
    /// colliding; backend errors as for [`load`](Self::load).
    pub async fn create(&self, data: &SessionData) -> Result<(SessionId, SessionRecord)> {
        self.create_with(None, data, None, None).await
    }

    /// Stores a new session under `id` (drawn by [`next_id`](Self::next_id) and possibly
    /// already shown to the application) or a fresh id.
    pub(crate) async fn create_with(
        &self,
        id: Option<SessionId>,
        data: &SessionData,
        max_stale: Option<Duration>,
        user: Option<&str>,
    ) -> Result<(SessionId, SessionRecord)> {
        let framed = self.codec().frame(data, user)?;
        // An id the application has seen cannot silently change: one attempt only.
        let attempts = if id.is_some() { 1 } else { CREATE_ATTEMPTS };
        let mut preset = id;
        for _ in 0..attempts {
            let id = preset.take().unwrap_or_else(|| self.next_id());
            let now = now();
            let mut record = SessionRecord {
                data: data.clone(),
                created_at: now,
                updated_at: now,
                expire_at: None,
                version: Some(1),
                max_stale,
                user: user.map(str::to_owned),
                lock: None,
                bound_user: None,
                bound_at: None,
            };
            record.expire_at = self.expire_at(&record, now);
            let key = keys::table_key(&id);
            let item = self.stored(&id, &key, framed.clone(), &record);
            record.bound_at = item.bound_at;
            record.bound_user = record.user.clone();
            if self.bounded(self.inner.backend.insert(&key, &item)).await? {
                return Ok((id, record));
            }
            tracing::warn!("fresh session id collided with a stored session; drawing another");
        }
        Err(Error::IdCollision { attempts })
    }

    /// Moves a session to a fresh id in one atomic write: the new item (data and
    /// `created_at` kept) exists and the old one is gone, or neither. Use it after a login to
    /// defeat session fixation. The old item must still be as it was read: this request's
    /// lock (pessimistic) or, in every other mode, the version read — copying data that
    /// changed since would lose that change.
    ///
    /// # Errors
    ///
    /// [`Error::LockLost`] or [`Error::VersionConflict`] when the old item changed hands or
    /// data since it was read, [`Error::ConditionalCheckFailed`] when it is gone; in each case
    /// nothing was written. Otherwise as [`create`](Self::create).
    pub async fn renew(
        &self,
        old: &SessionId,
        record: &SessionRecord,
    ) -> Result<(SessionId, SessionRecord)> {
        self.renew_to(old, record, None).await
    }

    pub(crate) async fn renew_to(
        &self,
        old: &SessionId,
        record: &SessionRecord,
        new_id: Option<SessionId>,
    ) -> Result<(SessionId, SessionRecord)> {
        let framed = self.codec().frame(&record.data, record.user.as_deref())?;
        let guard = record.move_guard();
        let old_key = keys::table_key(old);
        let attempts = if new_id.is_some() { 1 } else { CREATE_ATTEMPTS };
        let mut preset = new_id;
        for _ in 0..attempts {
            let id = preset.take().unwrap_or_else(|| self.next_id());
            let now = now();
            let renewed = SessionRecord {
                data: record.data.clone(),
                updated_at: now,
                expire_at: self.expire_at(record, now),
                version: Some(1),
                lock: None,
                bound_at: record.binding_at(now_ms()),
                bound_user: record.user.clone(),
                ..record.clone()
            };
            let key = keys::table_key(&id);
            // Sealed again: the data key and the associated data follow the id.
            let item = self.stored(&id, &key, framed.clone(), &renewed);
            let replaced = self
                .bounded(self.inner.backend.replace(&old_key, &guard, &key, &item))
                .await?;
            match replaced {
                Replaced::Applied => return Ok((id, renewed)),
                Replaced::Collision => {
                    tracing::warn!(
                        "fresh session id collided with a stored session; drawing another"
                    )
                }
                Replaced::Refused(current) => return Err(refusal(&guard, current.as_ref())),
            }
        }
        Err(Error::IdCollision { attempts })
    }

    /// Writes new data for an existing session (`SET data, updated_at, expire_at`, keeping
    /// `created_at`); `record` is what [`load`](Self::load) returned, with new data. Under
    /// pessimistic locking the same write releases the lock; under optimistic concurrency it
    /// succeeds only if nobody wrote since the read.
    ///
    /// # Errors
    ///
    /// [`Error::SessionTooLarge`] before any write, leaving the stored session intact;
    /// [`Error::ConditionalCheckFailed`] when the session no longer exists (deleted or
    /// collected since it was read: it is not brought back); [`Error::LockLost`] when another
    /// request broke this one's expired lock; [`Error::VersionConflict`] when another request
    /// wrote first. In every case the stored session is left as it was.
    pub async fn save(&self, id: &SessionId, record: &SessionRecord) -> Result<SessionRecord> {
        let framed = self.codec().frame(&record.data, record.user.as_deref())?;
        let now = now();
        let expire_at = self.expire_at(record, now);
        let changes = Changes {
            created_at: None,
            data: Some(self.codec().encode(framed, id, &keys::table_key(id))),
            updated_at: Some(now),
            expire_at: Some(expire_at),
            max_stale: Some(record.max_stale.map(|d| d.as_secs())),
            user_hash: Some(record.user.as_deref().map(|user| keys::user_hash(id, user))),
            // Only a new binding is written: a kept one may have been moved forward by a
            // sign-out everywhere that spared this session since it was read.
            bound_at: record.rebinds().then(|| record.binding_at(now_ms())),
            bump_version: true,
        };
        self.write(id, &changes, &record.save_guard(&self.inner.config, true))
            .await?;
        Ok(SessionRecord {
            updated_at: now,
            expire_at,
            version: Some(record.version.unwrap_or(0) + 1),
            lock: None,
            bound_at: changes.bound_at.unwrap_or(record.bound_at),
            bound_user: record.user.clone(),
            ..record.clone()
        })
    }

    /// Pushes an unchanged session's expiry forward (`SET updated_at, expire_at` only), and
    /// releases its lock if it holds one.
    ///
    /// # Errors
    ///
    /// [`Error::ConditionalCheckFailed`] when the session no longer exists;
    /// [`Error::LockLost`]; backend errors.
    pub async fn touch(&self, id: &SessionId, record: &SessionRecord) -> Result<SessionRecord> {
        let now = now();
        let expire_at = self.expire_at(record, now);
        let changes = Changes {
            updated_at: Some(now),
            expire_at: Some(expire_at),
            ..Changes::default()
        };
        self.write(id, &changes, &record.save_guard(&self.inner.config, false))
            .await?;
        Ok(SessionRecord {
            updated_at: now,
            expire_at,
            lock: None,
            ..record.clone()
        })
    }

    /// Releases the lock `record` holds, writing nothing else. Without a lock it does
    /// nothing. A lock that was already broken by another request is not an error here.
    ///
    /// # Errors
    ///
    /// Backend errors.
    pub async fn release(&self, id: &SessionId, record: &SessionRecord) -> Result<()> {
        if record.lock.is_none() {
            return Ok(());
        }
        let guard = record.save_guard(&self.inner.config, false);
        match self.write(id, &Changes::default(), &guard).await {
            Err(Error::LockLost | Error::ConditionalCheckFailed) => {
                tracing::debug!(
                    "lock already taken over by another request, or the session is gone"
                );
                Ok(())
            }
            other => other,
        }
    }

    /// Deletes the session `record` was read as, honouring the concurrency mode: only while
    /// this request holds its lock (pessimistic), only if nobody wrote since the read
    /// (optimistic), unconditionally otherwise.
    ///
    /// # Errors
    ///
    /// [`Error::LockLost`], [`Error::VersionConflict`] (nothing was deleted); backend errors.
    /// A session already gone is not an error.
    pub async fn destroy(&self, id: &SessionId, record: &SessionRecord) -> Result<()> {
        let guard = record.delete_guard(&self.inner.config);
        match self
            .bounded(self.inner.backend.delete(&keys::table_key(id), &guard))
            .await?
        {
            Written::Applied | Written::Refused(None) => Ok(()),
            Written::Refused(Some(current)) => Err(refusal(&guard, Some(&current))),
        }
    }

    /// Deletes a session (and so any lock on it) whatever its state — an administrative end,
    /// like revoking it. Deleting a session that does not exist is not an error.
    ///
    /// # Errors
    ///
    /// Backend errors ([`Error::TableNotFound`], [`Error::DynamoDb`]).
    pub async fn delete(&self, id: &SessionId) -> Result<()> {
        self.bounded(
            self.inner
                .backend
                .delete(&keys::table_key(id), &Guard::None),
        )
        .await
        .map(drop)
    }

    /// Creates the session table described by the configuration (see
    /// [`SessionTable::create`]): waits until it is active and turns TTL on for `expire_at`.
    /// An existing table is not an error.
    ///
    /// # Errors
    ///
    /// [`Error::MissingClient`] when the store is not on DynamoDB; as [`SessionTable::create`].
    pub async fn create_table(&self) -> Result<String> {
        let client = self.client().ok_or(Error::MissingClient)?;
        SessionTable::from_config(&self.inner.config)
            .create(client)
            .await
    }

    /// Deletes the session table and waits until it is gone. A missing table is not an error.
    ///
    /// # Errors
    ///
    /// [`Error::MissingClient`] when the store is not on DynamoDB; as [`SessionTable::delete`].
    pub async fn delete_table(&self) -> Result<()> {
        let client = self.client().ok_or(Error::MissingClient)?;
        SessionTable::from_config(&self.inner.config)
            .delete(client)
            .await
    }

    /// Makes the next new ids these before random ones (test builds only: it exists to
    /// reproduce id collisions).
    #[cfg(feature = "testing")]
    pub fn force_next_ids(&self, ids: impl IntoIterator<Item = [u8; 32]>) {
        self.inner.forced_ids.lock().unwrap().extend(ids);
    }

    /// A fresh id signed with the current secret.
    pub(crate) fn next_id(&self) -> SessionId {
        let keyring = self.inner.keys.current();
        #[cfg(feature = "testing")]
        if let Some(raw) = self.inner.forced_ids.lock().unwrap().pop_front() {
            return keyring.adopt(raw);
        }
        keyring.generate()
    }

    /// One guarded update, its refusal turned into the guard's typed error.
    async fn write(&self, id: &SessionId, changes: &Changes, guard: &Guard) -> Result<()> {
        let key = keys::table_key(id);
        match self
            .bounded(self.inner.backend.update(&key, changes, guard))
            .await?
        {
            Written::Applied => Ok(()),
            Written::Refused(current) => Err(refusal(guard, current.as_ref())),
        }
    }

    /// Runs a backend call, giving up at the deadline.
    async fn bounded<T>(&self, call: impl Future<Output = Result<T>>) -> Result<T> {
        match self.deadline {
            None => call.await,
            Some(deadline) => tokio::time::timeout_at(deadline.instant().into(), call)
                .await
                .unwrap_or(Err(Error::DeadlineExceeded)),
        }
    }

    /// Bytes every item spends outside `data`'s value: attribute names, the key value, and a
    /// reserve for the numeric and lock attributes.
    fn fixed_item_bytes(&self) -> usize {
        // Table keys are base64url of 32 bytes: 43 characters.
        self.inner.config.table_key.len() + 43 + crate::attributes::DATA.len() + METADATA_RESERVE
    }

    /// The `data` attribute's encoder under this store's configuration.
    fn codec(&self) -> Codec<'_> {
        Codec {
            config: &self.inner.config,
            fixed_bytes: self.fixed_item_bytes(),
            limit: MAX_ITEM_BYTES,
        }
    }

    /// The item a record is stored as under `key`, its data sealed for `id`.
    fn stored(
        &self,
        id: &SessionId,
        key: &str,
        framed: Framed,
        record: &SessionRecord,
    ) -> StoredItem {
        StoredItem {
            data: self.codec().encode(framed, id, key),
            created_at: record.created_at,
            updated_at: record.updated_at,
            expire_at: record.expire_at,
            version: record.version,
            max_stale: record.max_stale.map(|d| d.as_secs()),
            user_hash: record.user.as_deref().map(|user| keys::user_hash(id, user)),
            bound_at: record.binding_at(now_ms()),
            lock: None,
        }
    }

    /// The earlier of last activity + `max_stale` and creation + absolute limit.
    fn expire_at(&self, record: &SessionRecord, now: i64) -> Option<i64> {
        let config = &self.inner.config;
        let idle = record
            .max_stale_in_force(config)
            .map(|d| now.saturating_add(secs(d)));
        let absolute = config
            .max_age
            .map(|d| record.created_at.saturating_add(secs(d)));
        match (idle, absolute) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Unix milliseconds now.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Unix seconds now.
pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(secs)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::operation::get_item::GetItemError;
    use aws_sdk_dynamodb::operation::update_item::UpdateItemOutput;
    use aws_sdk_dynamodb::types::error::ProvisionedThroughputExceededException;
    use aws_smithy_mocks::{mock, mock_client};

    use super::*;

    fn store(client: Client) -> SessionStore {
        SessionStore::new(
            Config::builder()
                .secret_key("0123456789abcdef0123456789abcdef")
                .dynamo_db_client(client)
                .build()
                .unwrap(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_throttled_read_is_an_error_never_an_empty_session() {
        let throttled = mock!(Client::get_item).then_error(|| {
            GetItemError::ProvisionedThroughputExceededException(
                ProvisionedThroughputExceededException::builder()
                    .message("slow down")
                    .build(),
            )
        });
        let store = store(mock_client!(aws_sdk_dynamodb, [&throttled]));
        let id = store.next_id();
        let err = store.load(&id).await.unwrap_err();
        assert!(matches!(err, Error::DynamoDb(_)), "{err:?}");
        assert!(
            !err.is_hard(),
            "throttling is a soft error the policy decides on"
        );
        assert_eq!(throttled.num_calls(), 1);
    }

    #[tokio::test]
    async fn an_oversize_save_sends_nothing() {
        let update = mock!(Client::update_item).then_output(|| UpdateItemOutput::builder().build());
        let store = store(mock_client!(aws_sdk_dynamodb, [&update]));
        let id = store.next_id();
        let mut data = SessionData::new();
        // Digits of a running product: nothing for the compressor to repeat.
        let mut n: u64 = 1;
        let blob: String = (0..MAX_ITEM_BYTES)
            .map(|_| {
                n = n
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                char::from(b'a' + (n >> 59) as u8)
            })
            .collect();
        data.insert("blob".into(), blob.into());
        let record = SessionRecord {
            data,
            created_at: 0,
            updated_at: 0,
            expire_at: None,
            version: None,
            max_stale: None,
            user: None,
            lock: None,
            bound_user: None,
            bound_at: None,
        };
        let err = store.save(&id, &record).await.unwrap_err();
        assert!(matches!(err, Error::SessionTooLarge { .. }), "{err:?}");
        assert_eq!(update.num_calls(), 0);
    }

    #[tokio::test]
    async fn a_call_past_the_deadline_is_deadline_exceeded() {
        let store = SessionStore::with_backend(
            Config::builder()
                .secret_key("0123456789abcdef0123456789abcdef")
                .build()
                .unwrap(),
            MemoryStore::default(),
        )
        .unwrap();
        let late = store.with_deadline(Deadline::after(Duration::ZERO));
        tokio::time::sleep(Duration::from_millis(2)).await;
        let never = std::future::pending::<Result<()>>();
        let err = late.bounded(never).await.unwrap_err();
        assert!(matches!(err, Error::DeadlineExceeded), "{err:?}");
    }
}
