//! The session store: one DynamoDB item per session.
//!
//! Item layout (compatible in spirit with the Ruby gem's):
//!
//! | attribute | type | meaning |
//! |---|---|---|
//! | `<table_key>` | S | keyed hash of the session id (never the cookie value) |
//! | `data` | S | the serialized session data (JSON by default) |
//! | `created_at` | N | Unix seconds of the first save |
//! | `updated_at` | N | Unix seconds of the last write |
//! | `expire_at` | N | Unix seconds after which the session is dead: the TTL attribute |
//!
//! `expire_at` is the earlier of `updated_at + max_stale` and `created_at + max_age`; with
//! neither limit set the attribute is absent and the session lives until deleted.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::config::{self, Concurrency, Config};
use crate::error::{Error, Result};
use crate::expression::Expression;
use crate::id::{Keyring, SessionId};
use crate::serializer::SessionData;
use crate::table::SessionTable;

/// Largest item, in bytes, the store writes. DynamoDB refuses items over 409,600 bytes
/// (attribute names included) and moto over 405,000; this leaves a margin under both.
pub const MAX_ITEM_BYTES: usize = 400_000;

/// Bytes reserved in every item for the timestamp, lock and version attributes.
const METADATA_RESERVE: usize = 512;

/// Fresh ids tried before [`Error::IdCollision`].
const CREATE_ATTEMPTS: u32 = 3;

pub(crate) const DATA: &str = "data";
pub(crate) const CREATED_AT: &str = "created_at";
pub(crate) const UPDATED_AT: &str = "updated_at";
pub(crate) const EXPIRE_AT: &str = "expire_at";

pub(crate) const VERSION: &str = "version";
pub(crate) const LOCKED_AT: &str = "locked_at";
pub(crate) const LOCK_OWNER: &str = "lock_owner";

/// A stored session as read or written.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    /// The session data.
    pub data: SessionData,
    /// Unix seconds of creation.
    pub created_at: i64,
    /// Unix seconds of the last write.
    pub updated_at: i64,
    /// Unix seconds after which the session is dead, if a limit is configured.
    pub expire_at: Option<i64>,
    /// The version read, under optimistic concurrency.
    pub version: Option<u64>,
    /// The lock this request holds on the item, under pessimistic locking.
    pub(crate) lock: Option<LockToken>,
}

impl SessionRecord {
    /// Whether this record holds the session's lock (pessimistic locking).
    pub fn is_locked(&self) -> bool {
        self.lock.is_some()
    }
}

/// Identifies the request that holds a session's lock: random, unique per acquisition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LockToken(String);

impl LockToken {
    fn generate() -> Self {
        let mut raw = [0u8; 16];
        getrandom::fill(&mut raw).expect("the operating system's random source failed");
        LockToken(URL_SAFE_NO_PAD.encode(raw))
    }
}

impl SessionRecord {
    /// Whether the session is dead at `now` (Unix seconds) under its own `expire_at` or the
    /// store's current limits (which may have been tightened since it was written).
    fn is_expired(&self, config: &Config, now: i64) -> bool {
        let past = |deadline: Option<i64>| deadline.is_some_and(|t| t <= now);
        past(self.expire_at)
            || past(
                config
                    .max_age
                    .map(|d| self.created_at.saturating_add(secs(d))),
            )
            || past(
                config
                    .max_stale
                    .map(|d| self.updated_at.saturating_add(secs(d))),
            )
    }
}

/// Stores sessions in a DynamoDB table. Cheap to clone: clones share the client and keys.
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
}

struct Inner {
    config: Config,
    client: Client,
    keyring: Arc<Keyring>,
    #[cfg(feature = "testing")]
    forced_ids: std::sync::Mutex<std::collections::VecDeque<[u8; 32]>>,
}

impl fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionStore")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl SessionStore {
    /// Builds a store from a configuration that carries a DynamoDB client.
    ///
    /// # Errors
    ///
    /// [`Error::MissingSecretKey`] without a secret key, [`Error::MissingClient`] without a
    /// client, [`Error::InvalidConfig`] for values a hand-edited [`Config`] got wrong.
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
        config::validate(&config, |option| format!("Config::{option}"))?;
        let secret = config.secret_key.as_ref().ok_or(Error::MissingSecretKey)?;
        let client = config
            .dynamo_db_client
            .clone()
            .ok_or(Error::MissingClient)?;
        let keyring = Arc::new(Keyring::new(
            std::iter::once(secret).chain(&config.previous_secret_keys),
        ));
        Ok(SessionStore {
            inner: Arc::new(Inner {
                config,
                client,
                keyring,
                #[cfg(feature = "testing")]
                forced_ids: Default::default(),
            }),
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

    /// The DynamoDB client the store uses.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// Checks a cookie value's signature against the current and previous secret keys.
    /// Malformed, truncated and forged values give `None`.
    pub fn verify_cookie(&self, cookie_value: &str) -> Option<SessionId> {
        self.inner.keyring.verify(cookie_value)
    }

    /// The signed cookie value for `id`.
    pub fn cookie_value(&self, id: &SessionId) -> String {
        self.inner.keyring.cookie_value(id)
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
        self.encode(data).map(drop)
    }

    /// A store sharing this one's client and keys with other lifetime limits (the layer's
    /// `expire_after` and `max_age` override the configuration's).
    pub(crate) fn with_lifetimes(
        &self,
        max_age: Option<std::time::Duration>,
        max_stale: Option<std::time::Duration>,
    ) -> SessionStore {
        let mut config = self.inner.config.clone();
        config.max_age = max_age.or(config.max_age);
        config.max_stale = max_stale.or(config.max_stale);
        SessionStore {
            inner: Arc::new(Inner {
                config,
                client: self.inner.client.clone(),
                keyring: self.inner.keyring.clone(),
                #[cfg(feature = "testing")]
                forced_ids: Default::default(),
            }),
        }
    }

    /// Whether an unchanged session last written at `updated_at` is due for a touch: only
    /// when an idle limit exists, after `touch_after` — capped at a tenth of the idle limit so
    /// the expiry is never more than 10 % early.
    pub(crate) fn touch_due(&self, record: &SessionRecord) -> bool {
        let config = &self.inner.config;
        let Some(idle) = config.max_stale else {
            return false;
        };
        let interval = config.touch_after.min(idle / 10);
        now().saturating_sub(record.updated_at) >= secs(interval).max(1)
    }

    /// Reads a session. An item whose expiry has passed counts as absent, because DynamoDB's
    /// TTL deletes items up to about 48 hours late.
    ///
    /// With pessimistic locking ([`Concurrency::Pessimistic`]) this also takes the session's
    /// lock, in the same call: a conditional UpdateItem that succeeds only when the item has no
    /// lock or an expired one, and returns the item. A busy session is retried every
    /// `lock_retry_delay` (plus jitter) until `lock_max_wait_time`. The lock is released by the
    /// next [`save`](Self::save), [`touch`](Self::touch), [`release`](Self::release),
    /// [`renew`](Self::renew) or [`delete`](Self::delete). A missing session needs no lock.
    ///
    /// # Errors
    ///
    /// [`Error::TableNotFound`], [`Error::DynamoDb`] for throttling and other failures,
    /// [`Error::LockWaitTimeout`] when the lock stays busy, [`Error::Serialization`] or
    /// [`Error::MalformedItem`] for an unreadable item. A failed read is an error, never an
    /// empty session.
    pub async fn load(&self, id: &SessionId) -> Result<Option<SessionRecord>> {
        let record = match self.inner.config.concurrency {
            Concurrency::Pessimistic => self.acquire(id).await?,
            Concurrency::None | Concurrency::Optimistic => self.get(id).await?,
        };
        let Some(record) = record else {
            tracing::debug!("session not found");
            return Ok(None);
        };
        if record.is_expired(&self.inner.config, now()) {
            tracing::debug!("session found but expired");
            self.release(id, &record).await?;
            return Ok(None);
        }
        Ok(Some(record))
    }

    /// Stores a new session under a fresh id. The write is conditional on the id being
    /// unused, so a colliding id never takes over another session: a new id is drawn instead.
    ///
    /// # Errors
    ///
    /// [`Error::SessionTooLarge`] before any write; [`Error::IdCollision`] if fresh ids keep
    /// colliding; DynamoDB errors as for [`load`](Self::load).
    pub async fn create(&self, data: &SessionData) -> Result<(SessionId, SessionRecord)> {
        self.insert_new(data, None).await
    }

    /// Moves a session to a fresh id: the data and `created_at` are kept, the old item is
    /// deleted (which also drops its lock). Use it after a login to defeat session fixation.
    ///
    /// # Errors
    ///
    /// As [`create`](Self::create) and [`delete`](Self::delete). If deleting the old item
    /// fails, the new one exists and the error is returned.
    pub async fn renew(
        &self,
        old: &SessionId,
        record: &SessionRecord,
    ) -> Result<(SessionId, SessionRecord)> {
        let renewed = self
            .insert_new(&record.data, Some(record.created_at))
            .await?;
        self.delete(old).await?;
        Ok(renewed)
    }

    /// Writes new data for an existing session (`SET data, updated_at, expire_at`, keeping
    /// `created_at`); `record` is what [`load`](Self::load) returned, with new data. Under
    /// pessimistic locking the same write releases the lock; under optimistic concurrency it
    /// succeeds only if nobody saved since the read.
    ///
    /// # Errors
    ///
    /// [`Error::SessionTooLarge`] before any write, leaving the stored session intact;
    /// [`Error::ConditionalCheckFailed`] when the session no longer exists (deleted or
    /// collected since it was read: it is not brought back); [`Error::LockLost`] when another
    /// request broke this one's expired lock; [`Error::VersionConflict`] when another request
    /// saved first. In every case the stored session is left as it was.
    pub async fn save(&self, id: &SessionId, record: &SessionRecord) -> Result<SessionRecord> {
        let encoded = self.encode(&record.data)?;
        let now = now();
        let expire_at = self.expire_at(record.created_at, now);
        let mut e = Expression::default();
        e.name("#data", DATA)
            .name("#updated", UPDATED_AT)
            .name("#created", CREATED_AT)
            .value(":data", AttributeValue::S(encoded))
            .value(":now", number(now))
            .set("#data = :data")
            .set("#updated = :now")
            .set("#created = if_not_exists(#created, :now)");
        self.set_expiry(&mut e, expire_at);
        let version = match self.inner.config.concurrency {
            Concurrency::Optimistic => {
                let next = record.version.unwrap_or(0) + 1;
                e.name("#version", VERSION)
                    .value(":next_version", number(next as i64))
                    .set("#version = :next_version");
                match record.version {
                    Some(read) => e
                        .value(":read_version", number(read as i64))
                        .condition("#version = :read_version"),
                    None => e.condition("attribute_not_exists(#version)"),
                };
                Some(next)
            }
            _ => record.version,
        };
        self.guarded_update(id, record, e).await?;
        Ok(SessionRecord {
            data: record.data.clone(),
            updated_at: now,
            expire_at,
            version,
            lock: None,
            ..*record
        })
    }

    /// Pushes an unchanged session's expiry forward (`SET updated_at, expire_at` only), and
    /// releases its lock if it holds one.
    ///
    /// # Errors
    ///
    /// [`Error::ConditionalCheckFailed`] when the session no longer exists;
    /// [`Error::LockLost`]; DynamoDB errors.
    pub async fn touch(&self, id: &SessionId, record: &SessionRecord) -> Result<SessionRecord> {
        let now = now();
        let expire_at = self.expire_at(record.created_at, now);
        let mut e = Expression::default();
        e.name("#updated", UPDATED_AT)
            .value(":now", number(now))
            .set("#updated = :now");
        self.set_expiry(&mut e, expire_at);
        self.guarded_update(id, record, e).await?;
        Ok(SessionRecord {
            data: record.data.clone(),
            updated_at: now,
            expire_at,
            lock: None,
            ..*record
        })
    }

    /// Releases the lock `record` holds, writing nothing else. Without a lock it does
    /// nothing. A lock that was already broken by another request is not an error here.
    ///
    /// # Errors
    ///
    /// DynamoDB errors.
    pub async fn release(&self, id: &SessionId, record: &SessionRecord) -> Result<()> {
        if record.lock.is_none() {
            return Ok(());
        }
        match self.guarded_update(id, record, Expression::default()).await {
            Err(Error::LockLost) => {
                tracing::debug!("lock already taken over by another request");
                Ok(())
            }
            other => other,
        }
    }

    /// Deletes a session (and so any lock on it). Deleting a session that does not exist is
    /// not an error.
    ///
    /// # Errors
    ///
    /// DynamoDB errors ([`Error::TableNotFound`], [`Error::DynamoDb`]).
    pub async fn delete(&self, id: &SessionId) -> Result<()> {
        let config = &self.inner.config;
        self.inner
            .client
            .delete_item()
            .table_name(&config.table_name)
            .key(&config.table_key, self.key_value(id))
            .send()
            .await
            .map_err(|e| Error::from_sdk(&config.table_name, e))?;
        Ok(())
    }

    /// Creates the session table described by the configuration (see
    /// [`SessionTable::create`]): waits until it is active and turns TTL on for `expire_at`.
    /// An existing table is not an error.
    ///
    /// # Errors
    ///
    /// As [`SessionTable::create`].
    pub async fn create_table(&self) -> Result<String> {
        SessionTable::from_config(&self.inner.config)
            .create(&self.inner.client)
            .await
    }

    /// Deletes the session table and waits until it is gone. A missing table is not an error.
    ///
    /// # Errors
    ///
    /// As [`SessionTable::delete`].
    pub async fn delete_table(&self) -> Result<()> {
        SessionTable::from_config(&self.inner.config)
            .delete(&self.inner.client)
            .await
    }

    /// Makes the next [`create`](Self::create) calls use these ids before random ones
    /// (test builds only: it exists to reproduce id collisions).
    #[cfg(feature = "testing")]
    pub fn force_next_ids(&self, ids: impl IntoIterator<Item = [u8; 32]>) {
        self.inner.forced_ids.lock().unwrap().extend(ids);
    }

    fn next_id(&self) -> SessionId {
        #[cfg(feature = "testing")]
        if let Some(raw) = self.inner.forced_ids.lock().unwrap().pop_front() {
            return self.inner.keyring.adopt(raw);
        }
        self.inner.keyring.generate()
    }

    /// The one PutItem: a new item under a fresh id, conditional on the id being unused.
    async fn insert_new(
        &self,
        data: &SessionData,
        created_at: Option<i64>,
    ) -> Result<(SessionId, SessionRecord)> {
        let encoded = self.encode(data)?;
        let config = &self.inner.config;
        for _ in 0..CREATE_ATTEMPTS {
            let id = self.next_id();
            let now = now();
            let created_at = created_at.unwrap_or(now);
            let expire_at = self.expire_at(created_at, now);
            let mut request = self
                .inner
                .client
                .put_item()
                .table_name(&config.table_name)
                .item(&config.table_key, self.key_value(&id))
                .item(DATA, AttributeValue::S(encoded.clone()))
                .item(CREATED_AT, number(created_at))
                .item(UPDATED_AT, number(now))
                .condition_expression("attribute_not_exists(#key)")
                .expression_attribute_names("#key", &config.table_key);
            if let Some(t) = expire_at {
                request = request.item(EXPIRE_AT, number(t));
            }
            let version = (config.concurrency == Concurrency::Optimistic).then_some(1);
            if let Some(v) = version {
                request = request.item(VERSION, number(v as i64));
            }
            match request
                .send()
                .await
                .map_err(|e| Error::from_sdk(&config.table_name, e))
            {
                Ok(_) => {
                    let record = SessionRecord {
                        data: data.clone(),
                        created_at,
                        updated_at: now,
                        expire_at,
                        version,
                        lock: None,
                    };
                    return Ok((id, record));
                }
                Err(Error::ConditionalCheckFailed { .. }) => {
                    tracing::warn!(
                        "fresh session id collided with a stored session; drawing another"
                    );
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::IdCollision {
            attempts: CREATE_ATTEMPTS,
        })
    }

    fn key_value(&self, id: &SessionId) -> AttributeValue {
        AttributeValue::S(self.inner.keyring.table_key(id))
    }

    /// The one GetItem: a strongly consistent (by default) read of the session attributes.
    async fn get(&self, id: &SessionId) -> Result<Option<SessionRecord>> {
        let config = &self.inner.config;
        let output = self
            .inner
            .client
            .get_item()
            .table_name(&config.table_name)
            .key(&config.table_key, self.key_value(id))
            .projection_expression("#data, #created, #updated, #expire, #version")
            .expression_attribute_names("#data", DATA)
            .expression_attribute_names("#created", CREATED_AT)
            .expression_attribute_names("#updated", UPDATED_AT)
            .expression_attribute_names("#expire", EXPIRE_AT)
            .expression_attribute_names("#version", VERSION)
            .consistent_read(config.consistent_read)
            .send()
            .await
            .map_err(|e| Error::from_sdk(&config.table_name, e))?;
        output.item.map(|item| self.decode(&item)).transpose()
    }

    /// Takes the session's lock and reads it in one call, waiting while another request
    /// holds it. `None` when there is no such session.
    async fn acquire(&self, id: &SessionId) -> Result<Option<SessionRecord>> {
        let config = &self.inner.config;
        let token = LockToken::generate();
        let started = Instant::now();
        loop {
            let now_ms = now_millis();
            let stale_before =
                now_ms - i64::try_from(config.lock_expiry_time.as_millis()).unwrap_or(i64::MAX);
            let mut e = Expression::default();
            e.name("#key", &config.table_key)
                .name("#locked", LOCKED_AT)
                .name("#owner", LOCK_OWNER)
                .value(":now_ms", number(now_ms))
                .value(":token", AttributeValue::S(token.0.clone()))
                .value(":stale_before", number(stale_before))
                .set("#locked = :now_ms")
                .set("#owner = :token")
                .condition("attribute_exists(#key)")
                // Breaking an expired lock is part of the same condition, so two waiters
                // can never both win it. Our own token also passes: when an attempt's
                // answer is lost after DynamoDB applied it, the SDK's retry must not find
                // the session "locked by someone else" and wait for itself.
                .condition(
                    "attribute_not_exists(#locked) OR #locked < :stale_before OR #owner = :token",
                );
            let attempt = self
                .update_request(id, &e)
                .return_values(ReturnValue::AllNew)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            match attempt {
                Ok(output) => {
                    let item = output.attributes.unwrap_or_default();
                    let mut record = self.decode(&item)?;
                    record.lock = Some(token);
                    return Ok(Some(record));
                }
                Err(err) => {
                    let busy = match err.as_service_error() {
                        Some(UpdateItemError::ConditionalCheckFailedException(failure)) => {
                            failure.item.is_some()
                        }
                        _ => return Err(Error::from_sdk(&config.table_name, err)),
                    };
                    if !busy {
                        return Ok(None);
                    }
                }
            }
            let waited = started.elapsed();
            let delay = config.lock_retry_delay + jitter(config.lock_retry_delay / 4);
            if waited + delay > config.lock_max_wait_time {
                tracing::info!(
                    waited_ms = waited.as_millis() as u64,
                    "session lock wait timed out"
                );
                return Err(Error::LockWaitTimeout { waited });
            }
            tracing::debug!("session locked by another request; waiting");
            tokio::time::sleep(delay).await;
        }
    }

    /// Sends an UpdateItem guarded by what `record` holds: our lock (released by the same
    /// write) or, without one, the item's existence.
    async fn guarded_update(
        &self,
        id: &SessionId,
        record: &SessionRecord,
        mut e: Expression,
    ) -> Result<()> {
        let config = &self.inner.config;
        match &record.lock {
            Some(token) => {
                e.name("#locked", LOCKED_AT)
                    .name("#owner", LOCK_OWNER)
                    .value(":token", AttributeValue::S(token.0.clone()))
                    .remove("#locked")
                    .remove("#owner")
                    .condition("#owner = :token");
            }
            None => {
                e.name("#key", &config.table_key)
                    .condition("attribute_exists(#key)");
            }
        }
        let locked = record.lock.is_some();
        let versioned = e
            .names()
            .is_some_and(|names| names.contains_key("#version"));
        self.update_request(id, &e)
            .send()
            .await
            .map(drop)
            .map_err(|err| match Error::from_sdk(&config.table_name, err) {
                Error::ConditionalCheckFailed { .. } if locked => Error::LockLost,
                Error::ConditionalCheckFailed { .. } if versioned => Error::VersionConflict,
                other => other,
            })
    }

    /// The one UpdateItem builder: `e`'s clauses on the session's key.
    fn update_request(&self, id: &SessionId, e: &Expression) -> UpdateItemFluentBuilder {
        let config = &self.inner.config;
        self.inner
            .client
            .update_item()
            .table_name(&config.table_name)
            .key(&config.table_key, self.key_value(id))
            .set_update_expression(e.update_expression())
            .set_condition_expression(e.condition_expression())
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
    }

    /// `SET #expire = :expire`, or `REMOVE #expire` when no limit applies.
    fn set_expiry(&self, e: &mut Expression, expire_at: Option<i64>) {
        e.name("#expire", EXPIRE_AT);
        match expire_at {
            Some(t) => e.value(":expire", number(t)).set("#expire = :expire"),
            None => e.remove("#expire"),
        };
    }

    /// Bytes every item spends outside `data`'s value: attribute names, the key value, and a
    /// reserve for the numeric and lock attributes.
    fn fixed_item_bytes(&self) -> usize {
        // Table keys are base64url of 32 bytes: 43 characters.
        self.inner.config.table_key.len() + 43 + DATA.len() + METADATA_RESERVE
    }

    /// Serializes `data` and refuses it before any write if the item would be too large.
    fn encode(&self, data: &SessionData) -> Result<String> {
        let encoded = self.inner.config.serializer.serialize(data)?;
        let size = self.fixed_item_bytes() + encoded.len();
        if size > MAX_ITEM_BYTES {
            return Err(Error::SessionTooLarge {
                size,
                limit: MAX_ITEM_BYTES,
            });
        }
        Ok(encoded)
    }

    fn decode(
        &self,
        item: &std::collections::HashMap<String, AttributeValue>,
    ) -> Result<SessionRecord> {
        let data = match item.get(DATA) {
            Some(AttributeValue::S(text)) => self.inner.config.serializer.deserialize(text)?,
            None => SessionData::new(),
            Some(_) => return Err(Error::MalformedItem("`data` is not a string".into())),
        };
        let updated_at = read_number(item, UPDATED_AT)?.unwrap_or(0);
        Ok(SessionRecord {
            data,
            created_at: read_number(item, CREATED_AT)?.unwrap_or(updated_at),
            updated_at,
            expire_at: read_number(item, EXPIRE_AT)?,
            version: read_number(item, VERSION)?.map(|v| v.max(0) as u64),
            lock: None,
        })
    }

    /// The earlier of last activity + idle limit and creation + absolute limit.
    fn expire_at(&self, created_at: i64, now: i64) -> Option<i64> {
        let config = &self.inner.config;
        let idle = config.max_stale.map(|d| now.saturating_add(secs(d)));
        let absolute = config.max_age.map(|d| created_at.saturating_add(secs(d)));
        match (idle, absolute) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Unix milliseconds now (lock timestamps).
fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A random duration in `[0, max)`, so waiters spread out instead of retrying in step.
fn jitter(max: Duration) -> Duration {
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX).max(1);
    let random = getrandom::u64().unwrap_or(0);
    Duration::from_nanos(random % nanos)
}

/// Unix seconds now.
pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(secs)
        .unwrap_or(0)
}

fn secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

pub(crate) fn number(n: i64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

fn read_number(
    item: &std::collections::HashMap<String, AttributeValue>,
    name: &str,
) -> Result<Option<i64>> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::N(n)) => n
            .parse::<f64>()
            .map(|v| Some(v as i64))
            .map_err(|_| Error::MalformedItem(format!("`{name}` is not a number"))),
        Some(_) => Err(Error::MalformedItem(format!("`{name}` is not a number"))),
    }
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
        let id = store.inner.keyring.generate();
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
        let id = store.inner.keyring.generate();
        let mut data = SessionData::new();
        data.insert("blob".into(), "x".repeat(MAX_ITEM_BYTES).into());
        let record = SessionRecord {
            data,
            created_at: 0,
            updated_at: 0,
            expire_at: None,
            version: None,
            lock: None,
        };
        let err = store.save(&id, &record).await.unwrap_err();
        assert!(matches!(err, Error::SessionTooLarge { .. }), "{err:?}");
        assert_eq!(update.num_calls(), 0);
    }
}
