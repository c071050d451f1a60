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
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::config::{self, Config};
use crate::error::{Error, Result};
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
                    .idle_limit()
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
    keyring: Keyring,
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
        let keyring = Keyring::new(std::iter::once(secret).chain(&config.previous_secret_keys));
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

    /// Reads a session. An item whose expiry has passed counts as absent, because DynamoDB's
    /// TTL deletes items up to about 48 hours late.
    ///
    /// # Errors
    ///
    /// [`Error::TableNotFound`], [`Error::DynamoDb`] for throttling and other failures,
    /// [`Error::Serialization`] or [`Error::MalformedItem`] for an unreadable item. A failed
    /// read is an error, never an empty session.
    pub async fn load(&self, id: &SessionId) -> Result<Option<SessionRecord>> {
        let config = &self.inner.config;
        let output = self
            .inner
            .client
            .get_item()
            .table_name(&config.table_name)
            .key(&config.table_key, self.key_value(id))
            .projection_expression("#data, #created, #updated, #expire")
            .expression_attribute_names("#data", DATA)
            .expression_attribute_names("#created", CREATED_AT)
            .expression_attribute_names("#updated", UPDATED_AT)
            .expression_attribute_names("#expire", EXPIRE_AT)
            .consistent_read(config.consistent_read)
            .send()
            .await
            .map_err(|e| Error::from_sdk(&config.table_name, e))?;
        let Some(item) = output.item else {
            tracing::debug!("session not found");
            return Ok(None);
        };
        let record = self.decode(&item)?;
        if record.is_expired(config, now()) {
            tracing::debug!("session found but expired");
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
    /// deleted. Use it after a login to defeat session fixation.
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
    /// `created_at`). `record.created_at` is the one read by [`load`](Self::load).
    ///
    /// # Errors
    ///
    /// [`Error::SessionTooLarge`] before any write, leaving the stored session intact;
    /// [`Error::ConditionalCheckFailed`] when the session no longer exists (deleted or
    /// collected since it was read: it is not brought back).
    pub async fn save(&self, id: &SessionId, record: &SessionRecord) -> Result<SessionRecord> {
        let encoded = self.encode(&record.data)?;
        let config = &self.inner.config;
        let now = now();
        let expire_at = self.expire_at(record.created_at, now);
        let mut update = String::from(
            "SET #data = :data, #updated = :now, #created = if_not_exists(#created, :now)",
        );
        let mut request = self
            .inner
            .client
            .update_item()
            .table_name(&config.table_name)
            .key(&config.table_key, self.key_value(id))
            .condition_expression("attribute_exists(#key)")
            .expression_attribute_names("#key", &config.table_key)
            .expression_attribute_names("#data", DATA)
            .expression_attribute_names("#updated", UPDATED_AT)
            .expression_attribute_names("#created", CREATED_AT)
            .expression_attribute_names("#expire", EXPIRE_AT)
            .expression_attribute_values(":data", AttributeValue::S(encoded))
            .expression_attribute_values(":now", number(now));
        match expire_at {
            Some(t) => {
                update.push_str(", #expire = :expire");
                request = request.expression_attribute_values(":expire", number(t));
            }
            None => update.push_str(" REMOVE #expire"),
        }
        request
            .update_expression(update)
            .send()
            .await
            .map_err(|e| Error::from_sdk(&config.table_name, e))?;
        Ok(SessionRecord {
            data: record.data.clone(),
            created_at: record.created_at,
            updated_at: now,
            expire_at,
        })
    }

    /// Pushes an unchanged session's expiry forward (`SET updated_at, expire_at` only).
    ///
    /// # Errors
    ///
    /// [`Error::ConditionalCheckFailed`] when the session no longer exists; DynamoDB errors.
    pub async fn touch(&self, id: &SessionId, record: &SessionRecord) -> Result<SessionRecord> {
        let config = &self.inner.config;
        let now = now();
        let expire_at = self.expire_at(record.created_at, now);
        let mut request = self
            .inner
            .client
            .update_item()
            .table_name(&config.table_name)
            .key(&config.table_key, self.key_value(id))
            .condition_expression("attribute_exists(#key)")
            .expression_attribute_names("#key", &config.table_key)
            .expression_attribute_names("#updated", UPDATED_AT)
            .expression_attribute_names("#expire", EXPIRE_AT)
            .expression_attribute_values(":now", number(now));
        request = match expire_at {
            Some(t) => request
                .update_expression("SET #updated = :now, #expire = :expire")
                .expression_attribute_values(":expire", number(t)),
            None => request.update_expression("SET #updated = :now REMOVE #expire"),
        };
        request
            .send()
            .await
            .map_err(|e| Error::from_sdk(&config.table_name, e))?;
        Ok(SessionRecord {
            updated_at: now,
            expire_at,
            ..record.clone()
        })
    }

    /// Deletes a session. Deleting a session that does not exist is not an error.
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
        })
    }

    /// The earlier of last activity + idle limit and creation + absolute limit.
    fn expire_at(&self, created_at: i64, now: i64) -> Option<i64> {
        let config = &self.inner.config;
        let idle = config.idle_limit().map(|d| now.saturating_add(secs(d)));
        let absolute = config.max_age.map(|d| created_at.saturating_add(secs(d)));
        match (idle, absolute) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
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
        };
        let err = store.save(&id, &record).await.unwrap_err();
        assert!(matches!(err, Error::SessionTooLarge { .. }), "{err:?}");
        assert_eq!(update.num_calls(), 0);
    }
}
