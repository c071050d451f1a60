//! The library's one error type.

use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;

/// Everything that can go wrong in the session store.
///
/// The variants the Ruby gem treats as *hard* errors — a missing table, a failed
/// conditional check, a missing secret key and a lock wait timeout — are distinct
/// variants, and [`Error::is_hard`] tells them apart from the soft ones the default
/// error handler may swallow.
///
/// SDK failures keep the SDK error as their [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No secret key was configured. Session ids cannot be signed without one.
    #[error(
        "missing secret key: set it with ConfigBuilder::secret_key or AWS_DYNAMO_DB_SESSION_SECRET_KEY"
    )]
    MissingSecretKey,

    /// The store was built without a DynamoDB client.
    #[error(
        "no DynamoDB client: set one with ConfigBuilder::dynamo_db_client or use SessionStore::from_env"
    )]
    MissingClient,

    /// A configuration value could not be used. `origin` names where it came from
    /// (an environment variable, a `file:key`, or a builder method).
    #[error("invalid configuration value {value:?} for {origin}: {reason}")]
    InvalidConfig {
        /// Where the value came from, e.g. `AWS_DYNAMO_DB_SESSION_ENABLE_LOCKING`.
        origin: String,
        /// The offending value (never a secret: secrets are shown as `<redacted>`).
        value: String,
        /// Why it was refused.
        reason: String,
    },

    /// The YAML configuration file could not be read or parsed.
    #[error("cannot load configuration file {path}")]
    ConfigFile {
        /// The file's path.
        path: std::path::PathBuf,
        /// The I/O or YAML error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// The session table does not exist (hard error).
    #[error("session table {table:?} does not exist")]
    TableNotFound {
        /// The table that was addressed.
        table: String,
        /// The SDK error.
        #[source]
        source: Box<aws_sdk_dynamodb::Error>,
    },

    /// The session no longer exists (hard error): it was deleted, destroyed, renewed or
    /// collected after this request read it. Nothing was written, and it was not brought back.
    #[error("the session no longer exists; nothing was written")]
    ConditionalCheckFailed,

    /// The session lock could not be acquired in time (hard error): answered with 503 and
    /// `Retry-After`.
    #[error("could not acquire the session lock within {waited:?}")]
    LockWaitTimeout {
        /// How long this request waited.
        waited: Duration,
    },

    /// The request's time budget (its deadline less the layer's margin) ran out before the
    /// session work could finish (hard error): answered with 503 and `Retry-After`. What the
    /// request held is released.
    #[error("the request's deadline passed before the session store answered")]
    DeadlineExceeded,

    /// This request's lock was broken by another request (it outlived `lock_expiry_time`),
    /// so its write was refused rather than overwrite the other request's session.
    #[error("the session lock was taken over by another request; nothing was written")]
    LockLost,

    /// Another request saved the session since this one read it (optimistic concurrency);
    /// nothing was written. Retry the request.
    #[error("the session was changed by another request; nothing was written")]
    VersionConflict,

    /// The session would not fit in one DynamoDB item. Nothing was written.
    #[error("session too large: the item would be {size} bytes, the limit is {limit} bytes")]
    SessionTooLarge {
        /// The item size the write would have had.
        size: usize,
        /// The largest item size the store writes.
        limit: usize,
    },

    /// Fresh ids kept colliding with existing sessions (practically impossible with
    /// 256-bit ids unless the random source is broken).
    #[error("could not allocate a unique session id after {attempts} attempts")]
    IdCollision {
        /// How many ids were tried.
        attempts: u32,
    },

    /// Session data could not be encoded or decoded.
    #[error("cannot serialize or deserialize session data")]
    Serialization(#[source] serde_json::Error),

    /// The session could not be loaded earlier in this request and the error handler chose
    /// to fail the request; later accesses get this.
    #[error("the session is unavailable: loading it failed earlier in this request")]
    SessionUnavailable,

    /// The session was changed after the layer had written it for this request — from a
    /// streamed response body, say, or a task that outlived the handler. The change is not
    /// applied: change the session before returning the response.
    #[error("the session was already written for this request; change it before the response")]
    SessionClosed,

    /// A stored item does not have the layout this store writes.
    #[error("malformed session item: {0}")]
    MalformedItem(String),

    /// TTL is already enabled on another attribute of the table; DynamoDB allows one.
    #[error("table {table:?} already has TTL on {enabled_on:?}; disable it first")]
    TtlConflict {
        /// The table.
        table: String,
        /// The attribute TTL is on.
        enabled_on: String,
    },

    /// The table exists with a different hash key than the one asked for; DynamoDB cannot
    /// change a table's key.
    #[error(
        "table {table:?} has hash key {actual:?}, not {expected:?}; a key change needs a new table"
    )]
    TableKeyMismatch {
        /// The table.
        table: String,
        /// The key asked for.
        expected: String,
        /// The table's actual hash key.
        actual: String,
    },

    /// The table did not become active, or did not disappear, within the wait.
    #[error("table {table:?} did not reach the expected state: {reason}")]
    TableNotReady {
        /// The table.
        table: String,
        /// What the waiter reported.
        reason: String,
    },

    /// The table has no user index (`user_hash-index`), so a user's sessions cannot be
    /// listed or revoked. [`SessionTable::update`](crate::table::SessionTable::update) (or the
    /// custom resource's next update) adds it.
    #[error("table {table:?} has no user index; update the table to add it")]
    UserIndexMissing {
        /// The table.
        table: String,
    },

    /// Any other DynamoDB failure (throttling, network, permissions, ...).
    #[error("DynamoDB request failed")]
    DynamoDb(#[source] Box<aws_sdk_dynamodb::Error>),

    /// A failure of a [`SessionBackend`](crate::backend::SessionBackend) other than DynamoDB.
    #[error("session backend failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// Whether this is one of the errors that always propagate, whatever the
    /// error handler's `raise_errors` setting (the Ruby gem's hard errors).
    ///
    /// # Examples
    ///
    /// ```
    /// use dynamodb_session_store::Error;
    ///
    /// assert!(Error::MissingSecretKey.is_hard());
    /// assert!(!Error::SessionTooLarge { size: 500_000, limit: 400_000 }.is_hard());
    /// ```
    pub fn is_hard(&self) -> bool {
        matches!(
            self,
            Error::MissingSecretKey
                | Error::MissingClient
                | Error::TableNotFound { .. }
                | Error::ConditionalCheckFailed
                | Error::LockWaitTimeout { .. }
                | Error::DeadlineExceeded
                | Error::LockLost
                | Error::VersionConflict
        )
    }

    /// The variant's name (`"DynamoDb"`, `"LockWaitTimeout"`...): a stable label for logs
    /// and metrics, which never carries the error's details.
    ///
    /// # Examples
    ///
    /// ```
    /// use dynamodb_session_store::Error;
    ///
    /// assert_eq!(Error::VersionConflict.kind(), "VersionConflict");
    /// ```
    pub fn kind(&self) -> &'static str {
        match self {
            Error::MissingSecretKey => "MissingSecretKey",
            Error::MissingClient => "MissingClient",
            Error::InvalidConfig { .. } => "InvalidConfig",
            Error::ConfigFile { .. } => "ConfigFile",
            Error::TableNotFound { .. } => "TableNotFound",
            Error::ConditionalCheckFailed => "ConditionalCheckFailed",
            Error::LockWaitTimeout { .. } => "LockWaitTimeout",
            Error::DeadlineExceeded => "DeadlineExceeded",
            Error::LockLost => "LockLost",
            Error::VersionConflict => "VersionConflict",
            Error::SessionTooLarge { .. } => "SessionTooLarge",
            Error::IdCollision { .. } => "IdCollision",
            Error::Serialization(_) => "Serialization",
            Error::SessionUnavailable => "SessionUnavailable",
            Error::SessionClosed => "SessionClosed",
            Error::MalformedItem(_) => "MalformedItem",
            Error::TtlConflict { .. } => "TtlConflict",
            Error::TableKeyMismatch { .. } => "TableKeyMismatch",
            Error::TableNotReady { .. } => "TableNotReady",
            Error::UserIndexMissing { .. } => "UserIndexMissing",
            Error::DynamoDb(_) => "DynamoDb",
            Error::Backend(_) => "Backend",
        }
    }

    /// Classifies a DynamoDB SDK error from an operation on `table`: a missing table as
    /// [`Error::TableNotFound`], a failed condition as [`Error::ConditionalCheckFailed`],
    /// anything else as [`Error::DynamoDb`]. Operators reach it as
    /// [`ops::sdk_error`](crate::ops::sdk_error).
    pub(crate) fn from_sdk<E, R>(table: &str, err: SdkError<E, R>) -> Self
    where
        aws_sdk_dynamodb::Error: From<SdkError<E, R>>,
    {
        match aws_sdk_dynamodb::Error::from(err) {
            e @ aws_sdk_dynamodb::Error::ResourceNotFoundException(_) => Error::TableNotFound {
                table: table.to_owned(),
                source: Box::new(e),
            },
            aws_sdk_dynamodb::Error::ConditionalCheckFailedException(_) => {
                Error::ConditionalCheckFailed
            }
            e => Error::DynamoDb(Box::new(e)),
        }
    }

    pub(crate) fn invalid(
        origin: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Error::InvalidConfig {
            origin: origin.into(),
            value: value.into(),
            reason: reason.into(),
        }
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
