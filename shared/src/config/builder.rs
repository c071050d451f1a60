//! [`ConfigBuilder`]: the explicit source, and the merge of all sources into a [`Config`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cookie::SameSite;

use super::sources::Settings;
use super::{
    Concurrency, Config, DEFAULT_COMPRESS_ABOVE, DEFAULT_MAX_STALE, ENV_PREFIX, LEGACY_ENV_PREFIX,
    LayerOptions, Lifetime, SecretKey, validate,
};
use crate::config::BillingMode;
use crate::error::Result;
use crate::error_handler::{DefaultErrorHandler, ErrorHandler};
use crate::serializer::{JsonSerializer, SessionSerializer};

/// Builds a [`Config`]. Values set here win over the environment, which wins over the file.
#[derive(Default)]
pub struct ConfigBuilder {
    explicit: Settings,
    env: Option<Vec<(String, String)>>,
    error_handler: Option<Arc<dyn ErrorHandler>>,
    serializer: Option<Arc<dyn SessionSerializer>>,
    client: Option<aws_sdk_dynamodb::Client>,
    also_known: Vec<String>,
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, value: impl Into<$ty>) -> Self {
                self.explicit.$name = Some(value.into());
                self.explicit
                    .origins
                    .insert(stringify!($name).into(), concat!("ConfigBuilder::", stringify!($name)).into());
                self
            }
        )*
    };
}

impl ConfigBuilder {
    setters! {
        /// Session table name.
        table_name: String;
        /// Hash key attribute name.
        table_key: String;
        /// The key that signs session ids (at least 32 bytes).
        secret_key: SecretKey;
        /// Strongly consistent reads.
        consistent_read: bool;
        /// Billing mode for table creation.
        billing_mode: BillingMode;
        /// Provisioned read capacity.
        read_capacity: i64;
        /// Provisioned write capacity.
        write_capacity: i64;
        /// Re-raise soft errors in the default error handler.
        raise_errors: bool;
        /// Absolute session lifetime (a `Duration`, or [`Lifetime::Unlimited`]).
        max_age: Lifetime;
        /// `max_stale` (a `Duration`, or [`Lifetime::Unlimited`]); default one day.
        max_stale: Lifetime;
        /// The gem's switch for pessimistic locking: `true` = [`Concurrency::Pessimistic`],
        /// `false` = [`Concurrency::None`]. It and [`concurrency`](Self::concurrency) are one
        /// setting; set both here only if they agree.
        enable_locking: bool;
        /// Concurrency control (none, optimistic, pessimistic).
        concurrency: Concurrency;
        /// Age after which a lock may be broken (positive).
        lock_expiry_time: Duration;
        /// Wait between lock attempts (positive).
        lock_retry_delay: Duration;
        /// Longest wait for a lock.
        lock_max_wait_time: Duration;
        /// YAML configuration file to read.
        config_file: PathBuf;
        /// Minimum age of the last write before an unchanged session is written again.
        touch_after: Duration;
        /// Seal session data so only the cookie's holder can read it (default on).
        seal_data: bool;
        /// Migration switch: with sealing on, still open unsealed items (default off; see
        /// [`Config::accept_unsealed`]).
        accept_unsealed: bool;
        /// Compress serialized data above this many bytes (`None`: never).
        compress_above: Option<usize>;
        /// The layer's cookie name (see [`LayerOptions::cookie_name`]).
        cookie_name: String;
        /// The cookie's `Domain`.
        cookie_domain: String;
        /// The cookie's `Path`.
        cookie_path: String;
        /// The cookie's `Secure` attribute.
        cookie_secure: bool;
        /// The cookie's `HttpOnly` attribute.
        cookie_http_only: bool;
        /// The cookie's `SameSite` attribute.
        cookie_same_site: SameSite;
        /// Persistent cookies (see [`LayerOptions::persistent_cookie`]).
        persistent_cookie: bool;
        /// Rack's `defer`: the layer never sends `Set-Cookie`.
        defer: bool;
        /// Rack's `expire_after`: sets `max_stale` (over any other source's `max_stale`) and,
        /// unless `persistent_cookie` is set, persistent cookies.
        expire_after: Duration;
        /// Time the layer keeps back from a request's deadline.
        deadline_margin: Duration;
        /// The session header (see [`LayerOptions::header_name`]).
        header_name: http::HeaderName;
    }

    /// Declares variables under the prefix that the caller reads itself (session-gc's
    /// `AWS_DYNAMO_DB_SESSION_GC_SEGMENTS`, say), so that the environment source does not warn
    /// about them as typos. The library keeps no list of its callers' variables.
    pub fn also_reads<S: AsRef<str>>(mut self, variables: impl IntoIterator<Item = S>) -> Self {
        self.also_known.extend(variables.into_iter().map(|name| {
            let name = name.as_ref();
            let option = name
                .strip_prefix(ENV_PREFIX)
                .or_else(|| name.strip_prefix(LEGACY_ENV_PREFIX))
                .unwrap_or(name);
            option.to_ascii_lowercase()
        }));
        self
    }

    /// Earlier secret keys still accepted for verification, newest first.
    pub fn previous_secret_keys<K: Into<SecretKey>>(
        mut self,
        keys: impl IntoIterator<Item = K>,
    ) -> Self {
        self.explicit.previous_secret_keys = Some(keys.into_iter().map(Into::into).collect());
        self.explicit.origins.insert(
            "previous_secret_keys".into(),
            "ConfigBuilder::previous_secret_keys".into(),
        );
        self
    }

    /// A custom error handler (the gem's `error_handler`).
    pub fn error_handler(mut self, handler: impl ErrorHandler) -> Self {
        self.error_handler = Some(Arc::new(handler));
        self
    }

    /// A custom session data serializer.
    pub fn serializer(mut self, serializer: impl SessionSerializer) -> Self {
        self.serializer = Some(Arc::new(serializer));
        self
    }

    /// The DynamoDB client the store uses (the gem's `dynamo_db_client`).
    pub fn dynamo_db_client(mut self, client: aws_sdk_dynamodb::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Reads the environment layer from the process environment.
    pub fn env_from_process(self) -> Self {
        self.env(std::env::vars())
    }

    /// Uses these variables as the environment layer instead of the process environment
    /// (handy in tests, where changing the process environment is racy).
    ///
    /// # Examples
    ///
    /// ```
    /// use dynamodb_session_store::{Concurrency, Config};
    ///
    /// let config = Config::builder()
    ///     .env([
    ///         ("AWS_DYNAMO_DB_SESSION_TABLE_NAME", "from-env"),
    ///         ("AWS_DYNAMO_DB_SESSION_ENABLE_LOCKING", "true"),
    ///     ])
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(config.table_name, "from-env");
    /// assert_eq!(config.concurrency, Concurrency::Pessimistic);
    ///
    /// // The builder wins over the environment, whichever of the two names each uses.
    /// let config = Config::builder()
    ///     .enable_locking(false)
    ///     .env([("AWS_DYNAMO_DB_SESSION_CONCURRENCY", "pessimistic")])
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(config.concurrency, Concurrency::None);
    ///
    /// let err = Config::builder()
    ///     .env([("AWS_DYNAMO_DB_SESSION_ENABLE_LOCKING", "maybe")])
    ///     .build()
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("AWS_DYNAMO_DB_SESSION_ENABLE_LOCKING"));
    /// ```
    pub fn env<K: Into<String>, V: Into<String>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.env = Some(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        self
    }

    /// Resolves every source into a [`Config`].
    ///
    /// A missing secret key is not an error here (the garbage collector and the table
    /// function need no secret); [`SessionStore::new`](crate::SessionStore::new) refuses it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) naming the variable, file key or
    /// option and the value (never a secret's value); [`Error::ConfigFile`](crate::Error::ConfigFile)
    /// when the configuration file cannot be read or parsed.
    pub fn build(self) -> Result<Config> {
        let env = match &self.env {
            Some(vars) => Settings::from_env(vars, &self.also_known)?,
            None => Settings::default(),
        };
        let file_path = self
            .explicit
            .config_file
            .clone()
            .or_else(|| env.config_file.clone());
        let file = match &file_path {
            Some(path) => Settings::from_file(path)?,
            None => Settings::default(),
        };
        let merged = self
            .explicit
            .reconciled()?
            .or(env.reconciled()?)
            .or(file.reconciled()?);
        let mut origins = merged.origins.clone();
        // `expire_after` is `max_stale` under Rack's name: it sets the one lifetime, so a
        // zero value is refused naming it.
        let max_stale = match merged.expire_after {
            Some(idle) => {
                if let Some(origin) = origins.get("expire_after").cloned() {
                    origins.insert("max_stale".into(), origin);
                }
                Some(idle)
            }
            None => merged
                .max_stale
                .unwrap_or(Lifetime::After(DEFAULT_MAX_STALE))
                .duration(),
        };
        let layer = LayerOptions {
            cookie_name: merged.cookie_name,
            cookie_domain: merged.cookie_domain,
            cookie_path: merged.cookie_path,
            cookie_secure: merged.cookie_secure,
            cookie_http_only: merged.cookie_http_only,
            cookie_same_site: merged.cookie_same_site,
            persistent_cookie: merged
                .persistent_cookie
                .or(merged.expire_after.map(|_| true)),
            defer: merged.defer,
            deadline_margin: merged.deadline_margin,
            header_name: merged.header_name,
        };
        let raise_errors = merged.raise_errors.unwrap_or(false);
        let config = Config {
            table_name: merged.table_name.unwrap_or_else(|| "sessions".into()),
            table_key: merged.table_key.unwrap_or_else(|| "session_id".into()),
            secret_key: merged.secret_key,
            previous_secret_keys: merged.previous_secret_keys.unwrap_or_default(),
            consistent_read: merged.consistent_read.unwrap_or(true),
            billing_mode: merged.billing_mode.unwrap_or_default(),
            read_capacity: merged.read_capacity.unwrap_or(10),
            write_capacity: merged.write_capacity.unwrap_or(5),
            raise_errors,
            error_handler: self
                .error_handler
                .unwrap_or_else(|| Arc::new(DefaultErrorHandler::new(raise_errors))),
            max_age: merged.max_age.and_then(Lifetime::duration),
            max_stale,
            concurrency: merged.concurrency.unwrap_or_default(),
            lock_expiry_time: merged
                .lock_expiry_time
                .unwrap_or(Duration::from_millis(500)),
            lock_retry_delay: merged
                .lock_retry_delay
                .unwrap_or(Duration::from_millis(500)),
            lock_max_wait_time: merged.lock_max_wait_time.unwrap_or(Duration::from_secs(1)),
            serializer: self.serializer.unwrap_or_else(|| Arc::new(JsonSerializer)),
            config_file: file_path,
            touch_after: merged.touch_after.unwrap_or(Duration::from_secs(60)),
            seal_data: merged.seal_data.unwrap_or(true),
            accept_unsealed: merged.accept_unsealed.unwrap_or(false),
            compress_above: merged
                .compress_above
                .unwrap_or(Some(DEFAULT_COMPRESS_ABOVE)),
            dynamo_db_client: self.client,
            layer,
        };
        validate(&config, |option| {
            origins
                .get(option)
                .cloned()
                .unwrap_or_else(|| format!("{option} (default)"))
        })?;
        Ok(config)
    }
}
