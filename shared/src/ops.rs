//! The operators' API: what tools, runbooks and benchmarks need and a request handler does not.
//!
//! `sessionctl` is built on this module alone. It reaches below the store's request-level
//! operations — an item as stored, data as sealed, raw DynamoDB attribute maps, the table
//! itself — so it is kept apart from [`SessionStore`]'s own methods, and its trait must be
//! imported on purpose:
//!
//! ```
//! use dynamodb_session_store::ops::StoreOps as _;
//! use dynamodb_session_store::{Config, MemoryStore, SessionData, SessionStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), dynamodb_session_store::Error> {
//! let config = Config::builder().secret_key("0123456789abcdef0123456789abcdef").build()?;
//! let store = SessionStore::with_backend(config, MemoryStore::default())?;
//! let (id, _) = store.create(&SessionData::new()).await?;
//! let item = store.inspect(&id).await?.expect("just created");
//! assert_eq!(store.open_data(&id, &item.data)?, (SessionData::new(), None));
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::future::Future;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::backend::StoredItem;
use crate::deadline::Deadline;
use crate::error::{Error, Result};
use crate::keys::{SessionId, SigningSecrets};
use crate::serializer::SessionData;
use crate::store::SessionStore;

mod sealed {
    /// Keeps [`StoreOps`](super::StoreOps) implemented by [`SessionStore`](crate::SessionStore)
    /// alone, so it can gain methods without breaking anyone.
    pub trait Sealed {}
}

impl sealed::Sealed for SessionStore {}

/// What operators' tools do with a [`SessionStore`]: inspect an item as stored, seal and open
/// `data` attributes, manage the table, rotate the secrets by hand, read the store's counters.
pub trait StoreOps: sealed::Sealed {
    /// The DynamoDB client the store uses, if its backend is DynamoDB.
    fn client(&self) -> Option<&Client>;

    /// The deadline this handle's operations keep, if any (see
    /// [`SessionStore::with_deadline`]).
    fn deadline(&self) -> Option<Deadline>;

    /// The session's item as stored — lock, version and expiry included, data still encoded —
    /// read consistently, taking no lock and ignoring expiry. A request reads with
    /// [`SessionStore::load`].
    ///
    /// # Errors
    ///
    /// [`Error::TableNotFound`], [`Error::DynamoDb`] (throttling and other failures of the
    /// read), [`Error::DeadlineExceeded`] past the handle's deadline, and
    /// [`Error::MalformedItem`] for an item whose attributes do not decode.
    fn inspect(&self, id: &SessionId) -> impl Future<Output = Result<Option<StoredItem>>> + Send;

    /// The `data` attribute this store writes for `id`'s session: `data` (and the bound
    /// `user`) serialized, compressed above the threshold, and sealed when sealing is on.
    /// Sealed data comes as its `s1.` text, as backends carry it; DynamoDB stores its raw
    /// bytes (a Binary attribute), which [`decode_item`] reads back as this text.
    /// Requests go through [`SessionStore::save`].
    ///
    /// # Errors
    ///
    /// [`Error::SessionTooLarge`], [`Error::Serialization`].
    ///
    /// # Examples
    ///
    /// ```
    /// use dynamodb_session_store::ops::StoreOps as _;
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
    fn seal_data(&self, id: &SessionId, data: &SessionData, user: Option<&str>) -> Result<String>;

    /// Reads a `data` attribute of `id`'s session (see [`seal_data`](Self::seal_data)): its
    /// data and bound user. Unsealed forms open only with sealing off or `accept_unsealed`.
    ///
    /// # Errors
    ///
    /// [`Error::MalformedItem`] when the data is refused (unsealed while sealing is on, or
    /// sealed for another session) or does not decode, [`Error::Serialization`].
    fn open_data(&self, id: &SessionId, attribute: &str) -> Result<(SessionData, Option<String>)>;

    /// The largest encoded `data` attribute, in bytes, a save accepts.
    fn max_data_len(&self) -> usize;

    /// The handle [`SessionStore::user_sessions`] shows for `id`'s session.
    fn session_handle(&self, id: &SessionId) -> String;

    /// How many items [`SessionStore::load`] refused to open since the store was built: with
    /// sealing on, data that is not sealed (unless `accept_unsealed`), sealed data that does
    /// not open for its session, or a stored `user_hash` that disagrees with the sealed user.
    /// Each such item read as absent and was logged at WARN (without its content); a rising
    /// count means someone writes to the table who should not (or a migration needs
    /// `accept_unsealed`).
    fn refused_items(&self) -> u64;

    /// How many secret refreshes (see [`SessionStore::with_secret_source`]) failed since the
    /// store was built.
    fn secret_refresh_failures(&self) -> u64;

    /// Replaces the signing secrets: `current` signs from now on; it and `others` verify.
    /// Sessions signed with a secret no longer listed stop opening.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when a secret is shorter than
    /// [`MIN_SECRET_KEY_LEN`](crate::config::MIN_SECRET_KEY_LEN); the secrets in use stay.
    fn rotate_secrets(&self, secrets: &SigningSecrets) -> Result<()>;

    /// Creates the session table described by the configuration (see
    /// [`SessionTable::create`](crate::table::SessionTable::create)): waits until it is
    /// active and turns TTL on for `expire_at`. An existing table is not an error. Returns the
    /// table's ARN.
    ///
    /// # Errors
    ///
    /// [`Error::MissingClient`] when the store is not on DynamoDB; otherwise as
    /// [`SessionTable::create`](crate::table::SessionTable::create).
    fn create_table(&self) -> impl Future<Output = Result<String>> + Send;

    /// Deletes the session table and waits until it is gone. A missing table is not an error.
    ///
    /// # Errors
    ///
    /// [`Error::MissingClient`] when the store is not on DynamoDB; otherwise as
    /// [`SessionTable::delete`](crate::table::SessionTable::delete).
    fn delete_table(&self) -> impl Future<Output = Result<()>> + Send;
}

/// Reads a raw DynamoDB attribute map (from a Scan or a GetItem of one's own) as the store
/// reads a session's item: items the Ruby gem wrote too (`data` may be absent, numbers
/// decimal, a lock without its owner). Attributes the store does not know are ignored.
///
/// # Errors
///
/// [`Error::MalformedItem`] for an attribute of the wrong type.
///
/// # Examples
///
/// ```
/// use std::collections::HashMap;
/// use aws_sdk_dynamodb::types::AttributeValue;
/// use dynamodb_session_store::ops;
///
/// let item = HashMap::from([
///     ("created_at".to_owned(), AttributeValue::N("1700000000.5".into())),
///     ("updated_at".to_owned(), AttributeValue::N("1700000600".into())),
/// ]);
/// let stored = ops::decode_item(&item)?;
/// assert_eq!((stored.created_at, stored.updated_at), (1_700_000_000, 1_700_000_600));
/// # Ok::<(), dynamodb_session_store::Error>(())
/// ```
pub fn decode_item(item: &HashMap<String, AttributeValue>) -> Result<StoredItem> {
    StoredItem::from_attributes(item)
}

/// Classifies a DynamoDB SDK error from an operation on `table` as the library's own calls
/// are: a missing table as [`Error::TableNotFound`], a failed condition as
/// [`Error::ConditionalCheckFailed`], anything else as [`Error::DynamoDb`].
///
/// # Examples
///
/// ```no_run
/// use dynamodb_session_store::{Error, ops};
///
/// # async fn demo(client: aws_sdk_dynamodb::Client) -> Result<(), Error> {
/// let described = client
///     .describe_table()
///     .table_name("sessions")
///     .send()
///     .await
///     .map_err(|e| ops::sdk_error("sessions", e))?;
/// # Ok(()) }
/// ```
pub fn sdk_error<E, R>(table: &str, err: SdkError<E, R>) -> Error
where
    aws_sdk_dynamodb::Error: From<SdkError<E, R>>,
{
    Error::from_sdk(table, err)
}
