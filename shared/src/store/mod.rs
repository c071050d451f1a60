//! The session store: what to write for each session operation, on any [`SessionBackend`],
//! and the values it returns; a user's sessions and signing out everywhere in [`users`].
//!
//! `expire_at` is the earlier of `updated_at` + `max_stale` (the session's own, or the
//! configured one) and `created_at + max_age`; only with both limits explicitly unlimited is it
//! absent. Every write honours the [`Concurrency`](crate::Concurrency) mode (see [`SessionRecord`]'s guards): a
//! write whose condition no longer holds fails with a typed error and writes nothing.

pub(crate) mod backend;
mod cookie;
mod data;
mod dynamodb;
mod lock;
mod memory;
mod ops;
mod payload;
mod read;
mod record;
pub mod users;
mod write;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;

use crate::config::Config;
use crate::deadline::Deadline;
use crate::error::{Error, Result};
use crate::keys::{KeyCell, Keyring, Refresher, SecretSource, SessionId};

pub(crate) use self::backend::SessionBackend;
pub(crate) use self::dynamodb::DynamoDbBackend;
pub use self::memory::MemoryStore;
use self::record::secs;
pub use self::record::{EndedBy, SessionRecord};

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
/// use dynamodb_session_store::ops::StoreOps as _;
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
    /// Items refused instead of opened (see
    /// [`StoreOps::refused_items`](crate::ops::StoreOps::refused_items)), shared by every
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
    /// the default AWS configuration (region, credentials and `AWS_ENDPOINT_URL_DYNAMODB`),
    /// loaded by [`sdk::load`](crate::sdk::load): its HTTPS trusts Amazon's roots where
    /// that is enough, the system's otherwise (`SESSION_TLS_ROOTS` chooses).
    ///
    /// # Errors
    ///
    /// As [`Config::from_env`] and [`SessionStore::new`]; [`Error::InvalidConfig`] for a
    /// `SESSION_TLS_ROOTS` other than `amazon` or `system`.
    pub async fn from_env() -> Result<Self> {
        let mut config = Config::from_env()?;
        if config.dynamo_db_client.is_none() {
            let aws = crate::sdk::load(std::env::vars())
                .await
                .map_err(crate::sdk::InvalidTrustRoots::into_library_error)?;
            config.dynamo_db_client = Some(Client::new(&aws));
        }
        SessionStore::new(config)
    }

    /// The configuration the store runs with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The same store, whose operations give up with [`Error::DeadlineExceeded`] (and whose
    /// lock waits stop) at `deadline`. Cheap: the backend and keys are shared.
    pub fn with_deadline(&self, deadline: Deadline) -> SessionStore {
        SessionStore {
            inner: self.inner.clone(),
            deadline: Some(deadline),
        }
    }

    /// Reads the signing secrets again from `source` when a cookie fails verification (so a
    /// secret rotated elsewhere does not log users out), at most once per `min_interval`
    /// (30 s is a good choice), one fetch at a time. A failed fetch is logged and counted
    /// ([`secret_refresh_failures`](crate::ops::StoreOps::secret_refresh_failures)); the
    /// secrets in use stay.
    pub fn with_secret_source(self, source: impl SecretSource, min_interval: Duration) -> Self {
        let mut inner = Inner::clone(&self.inner);
        inner.refresher = Some(Arc::new(Refresher::new(source, min_interval)));
        SessionStore {
            inner: Arc::new(inner),
            deadline: self.deadline,
        }
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

    /// The ids that `raw` names under each configured secret, current first: for ids drawn
    /// by another session library (tower-sessions), which then get this store's table key
    /// and sealing.
    #[cfg(feature = "tower-sessions")]
    pub(crate) fn adopt_ids(&self, raw: [u8; 32]) -> Vec<SessionId> {
        self.inner.keys.current().adopt_each(raw)
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
    use crate::serializer::SessionData;

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
