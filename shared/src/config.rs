//! Configuration: every option of the Ruby gem, from code, the environment and a YAML file.
//!
//! Precedence is **explicit (builder) > environment > file > default**, as in the gem.
//!
//! Environment variables are named `AWS_DYNAMO_DB_SESSION_<OPTION>` (for example
//! `AWS_DYNAMO_DB_SESSION_TABLE_NAME`). The older form `DYNAMO_DB_SESSION_<OPTION>`, the one the
//! gem's README shows, is still read, with a one-time deprecation warning; when both are set the
//! `AWS_` form wins.
//!
//! Time options accept a plain integer in the gem's unit (milliseconds for `lock_expiry_time`
//! and `lock_retry_delay`, seconds for everything else) or a unit-suffixed value such as
//! `500ms`, `90s`, `30m` or `1h 30m`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::error_handler::{DefaultErrorHandler, ErrorHandler};
use crate::serializer::{JsonSerializer, SessionSerializer};

/// Prefix of the current environment variable form.
pub const ENV_PREFIX: &str = "AWS_DYNAMO_DB_SESSION_";
/// Prefix of the deprecated environment variable form shown in the gem's README.
pub const LEGACY_ENV_PREFIX: &str = "DYNAMO_DB_SESSION_";

/// Shortest secret key accepted, in bytes: HMAC-SHA256 wants at least its output size.
pub const MIN_SECRET_KEY_LEN: usize = 32;

/// How the session table is billed when [`SessionTable::create`](crate::SessionTable::create)
/// makes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BillingMode {
    /// On-demand capacity (`PAY_PER_REQUEST`): no capacity planning, the default.
    #[default]
    PayPerRequest,
    /// Provisioned capacity, using `read_capacity` and `write_capacity`.
    Provisioned,
}

impl BillingMode {
    /// The DynamoDB API spelling: `PAY_PER_REQUEST` or `PROVISIONED`.
    pub fn as_str(self) -> &'static str {
        match self {
            BillingMode::PayPerRequest => "PAY_PER_REQUEST",
            BillingMode::Provisioned => "PROVISIONED",
        }
    }
}

impl std::str::FromStr for BillingMode {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_uppercase().replace('-', "_").as_str() {
            "PAY_PER_REQUEST" | "ON_DEMAND" => Ok(BillingMode::PayPerRequest),
            "PROVISIONED" => Ok(BillingMode::Provisioned),
            _ => Err("expected PAY_PER_REQUEST (on-demand) or PROVISIONED".into()),
        }
    }
}

/// How concurrent requests on one session are kept from losing each other's updates.
///
/// | mode | reads | writes | cost per request | pick it when |
/// |---|---|---|---|---|
/// | `None` (default) | 1 GetItem | 1 write when something changed | lowest | requests on one session rarely overlap, or last-writer-wins is fine |
/// | `Optimistic` | 1 GetItem | 1 conditional write; a conflict fails with 409 and the client retries | as `None`, plus retries under contention | overlaps are rare but must not lose updates |
/// | `Pessimistic` | 1 UpdateItem that locks and reads | 1 UpdateItem that saves (or only releases) | 2 writes per request, plus one per retry while waiting (up to `lock_max_wait_time / lock_retry_delay`) | overlapping requests (parallel XHRs, double submits) must be serialized |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Concurrency {
    /// No coordination: the last write wins.
    #[default]
    None,
    /// A `version` attribute; a save succeeds only if nobody saved since the read.
    Optimistic,
    /// The gem's pessimistic lock (`enable_locking`), done race-free.
    Pessimistic,
}

impl std::str::FromStr for Concurrency {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(Concurrency::None),
            "optimistic" => Ok(Concurrency::Optimistic),
            "pessimistic" => Ok(Concurrency::Pessimistic),
            _ => Err("expected none, optimistic or pessimistic".into()),
        }
    }
}

/// A secret used to sign session ids. Its `Debug` output never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(Arc<[u8]>);

impl SecretKey {
    /// Wraps secret bytes. The length is checked when the store is built.
    ///
    /// # Examples
    ///
    /// ```
    /// use dynamodb_session_store::SecretKey;
    ///
    /// let key = SecretKey::new("a secret of at least thirty-two bytes!!");
    /// assert_eq!(format!("{key:?}"), "SecretKey(<redacted>)");
    /// ```
    pub fn new(secret: impl AsRef<[u8]>) -> Self {
        SecretKey(Arc::from(secret.as_ref()))
    }

    pub(crate) fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl<T: AsRef<[u8]>> From<T> for SecretKey {
    fn from(value: T) -> Self {
        SecretKey::new(value)
    }
}

/// The session store's configuration. Build it with [`Config::builder`] or load it with
/// [`Config::from_env`].
///
/// Fields are public for reading; [`SessionStore::new`](crate::SessionStore::new) validates
/// them again, so a hand-edited config cannot bypass the checks.
#[derive(Clone)]
#[non_exhaustive]
pub struct Config {
    /// Session table name. Default `sessions`.
    pub table_name: String,
    /// Name of the table's hash key attribute (type S). Default `session_id`.
    pub table_key: String,
    /// Key that signs session ids. Mandatory: building a store without one fails.
    pub secret_key: Option<SecretKey>,
    /// Earlier secret keys still accepted when verifying cookies, newest first, so a key can be
    /// rotated without logging everybody out. Sessions signed with one of these are moved to a
    /// new id signed with `secret_key` on their next write.
    pub previous_secret_keys: Vec<SecretKey>,
    /// Strongly consistent reads. Default `true`.
    pub consistent_read: bool,
    /// Billing mode used when the table is created. Default on-demand.
    pub billing_mode: BillingMode,
    /// Read capacity units for a provisioned table. Default 10.
    pub read_capacity: i64,
    /// Write capacity units for a provisioned table. Default 5.
    pub write_capacity: i64,
    /// Whether the default error handler re-raises soft errors too. Default `false`.
    pub raise_errors: bool,
    /// Decides which errors reach the client. Default: [`DefaultErrorHandler`] honouring
    /// `raise_errors`.
    pub error_handler: Arc<dyn ErrorHandler>,
    /// Absolute session lifetime, counted from creation. Default none.
    pub max_age: Option<Duration>,
    /// Idle limit, counted from the last write. Default none.
    pub max_stale: Option<Duration>,
    /// Concurrency control. Default none; the gem's `enable_locking = true` means
    /// [`Concurrency::Pessimistic`].
    pub concurrency: Concurrency,
    /// Age after which another request may break a lock. Default 500 ms.
    pub lock_expiry_time: Duration,
    /// Wait between two attempts to take a lock. Default 500 ms.
    pub lock_retry_delay: Duration,
    /// Give up taking a lock after this long. Default 1 s.
    pub lock_max_wait_time: Duration,
    /// Encodes session data into the `data` attribute. Default JSON.
    pub serializer: Arc<dyn SessionSerializer>,
    /// The YAML file the configuration was read from, if any.
    pub config_file: Option<PathBuf>,
    /// An unchanged session is written again (to push its expiry forward) only when its last
    /// write is older than this. Default 60 s; capped at a tenth of the idle limit.
    pub touch_after: Duration,
    /// The DynamoDB client. When absent, [`SessionStore::from_env`](crate::SessionStore::from_env)
    /// builds one from the default AWS configuration.
    pub dynamo_db_client: Option<aws_sdk_dynamodb::Client>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("table_name", &self.table_name)
            .field("table_key", &self.table_key)
            .field("secret_key", &self.secret_key)
            .field("previous_secret_keys", &self.previous_secret_keys.len())
            .field("consistent_read", &self.consistent_read)
            .field("billing_mode", &self.billing_mode)
            .field("read_capacity", &self.read_capacity)
            .field("write_capacity", &self.write_capacity)
            .field("raise_errors", &self.raise_errors)
            .field("error_handler", &self.error_handler)
            .field("max_age", &self.max_age)
            .field("max_stale", &self.max_stale)
            .field("concurrency", &self.concurrency)
            .field("lock_expiry_time", &self.lock_expiry_time)
            .field("lock_retry_delay", &self.lock_retry_delay)
            .field("lock_max_wait_time", &self.lock_max_wait_time)
            .field("serializer", &self.serializer)
            .field("config_file", &self.config_file)
            .field("touch_after", &self.touch_after)
            .field("dynamo_db_client", &self.dynamo_db_client.is_some())
            .finish()
    }
}

impl Config {
    /// Starts a builder with nothing set: only the builder's values and the defaults apply
    /// until you call [`ConfigBuilder::env_from_process`] or [`ConfigBuilder::env`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use dynamodb_session_store::Config;
    ///
    /// let config = Config::builder()
    ///     .table_name("my-sessions")
    ///     .secret_key("0123456789abcdef0123456789abcdef")
    ///     .max_stale(Duration::from_secs(30 * 60))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(config.table_name, "my-sessions");
    /// assert_eq!(config.table_key, "session_id");
    /// assert!(config.consistent_read);
    /// ```
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder::default()
    }

    /// Loads the configuration from the process environment and the YAML file it names
    /// (`AWS_DYNAMO_DB_SESSION_CONFIG_FILE`), over the defaults.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the variable and its value when a value does not
    /// parse; [`Error::ConfigFile`] when the file cannot be read.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let config = dynamodb_session_store::Config::from_env()?;
    /// # Ok::<(), dynamodb_session_store::Error>(())
    /// ```
    pub fn from_env() -> Result<Config> {
        Config::builder().env_from_process().build()
    }
}

/// Builds a [`Config`]. Values set here win over the environment, which wins over the file.
#[derive(Default)]
pub struct ConfigBuilder {
    explicit: Settings,
    env: Option<Vec<(String, String)>>,
    error_handler: Option<Arc<dyn ErrorHandler>>,
    serializer: Option<Arc<dyn SessionSerializer>>,
    client: Option<aws_sdk_dynamodb::Client>,
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
        /// Absolute session lifetime.
        max_age: Duration;
        /// Idle limit.
        max_stale: Duration;
        /// The gem's switch for pessimistic locking (`true` = [`Concurrency::Pessimistic`]).
        enable_locking: bool;
        /// Concurrency control (none, optimistic, pessimistic).
        concurrency: Concurrency;
        /// Age after which a lock may be broken.
        lock_expiry_time: Duration;
        /// Wait between lock attempts.
        lock_retry_delay: Duration;
        /// Longest wait for a lock.
        lock_max_wait_time: Duration;
        /// YAML configuration file to read.
        config_file: PathBuf;
        /// Minimum age of the last write before an unchanged session is written again.
        touch_after: Duration;
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
    /// use dynamodb_session_store::Config;
    ///
    /// let config = Config::builder()
    ///     .env([
    ///         ("AWS_DYNAMO_DB_SESSION_TABLE_NAME", "from-env"),
    ///         ("AWS_DYNAMO_DB_SESSION_ENABLE_LOCKING", "true"),
    ///     ])
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(config.table_name, "from-env");
    /// assert_eq!(config.concurrency, dynamodb_session_store::Concurrency::Pessimistic);
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

    /// Resolves every layer into a [`Config`].
    ///
    /// A missing secret key is not an error here (the garbage collector and the table
    /// function need no secret); [`SessionStore::new`](crate::SessionStore::new) refuses it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the variable, file key or option and the value;
    /// [`Error::ConfigFile`] when the configuration file cannot be read or parsed.
    pub fn build(self) -> Result<Config> {
        let env = match &self.env {
            Some(vars) => Settings::from_env(vars)?,
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
        let merged = self.explicit.or(env).or(file);
        let origins = merged.origins.clone();
        let concurrency = resolve_concurrency(&merged)?;
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
            max_age: merged.max_age,
            max_stale: merged.max_stale,
            concurrency,
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
            dynamo_db_client: self.client,
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

/// `concurrency` and the gem's `enable_locking` must agree when both are given.
fn resolve_concurrency(settings: &Settings) -> Result<Concurrency> {
    match (settings.concurrency, settings.enable_locking) {
        (Some(mode), Some(true)) if mode != Concurrency::Pessimistic => {
            let origin = settings
                .origins
                .get("concurrency")
                .cloned()
                .unwrap_or_else(|| "concurrency".into());
            Err(Error::invalid(
                origin,
                format!("{mode:?}").to_lowercase(),
                "enable_locking=true asks for pessimistic locking; set only one of the two",
            ))
        }
        (Some(mode), _) => Ok(mode),
        (None, Some(true)) => Ok(Concurrency::Pessimistic),
        (None, _) => Ok(Concurrency::None),
    }
}

/// Checks the invariants that no single value's parser can see.
/// `origin` names where an option's value came from, for error messages.
pub(crate) fn validate(config: &Config, origin: impl Fn(&str) -> String) -> Result<()> {
    let named = origin;
    if config.table_name.len() < 3 || config.table_name.len() > 255 {
        return Err(Error::invalid(
            named("table_name"),
            &config.table_name,
            "DynamoDB table names are 3 to 255 characters long",
        ));
    }
    if config.table_key.is_empty() {
        return Err(Error::invalid(named("table_key"), "", "must not be empty"));
    }
    for (option, value) in [
        ("read_capacity", config.read_capacity),
        ("write_capacity", config.write_capacity),
    ] {
        if value < 1 {
            return Err(Error::invalid(
                named(option),
                value.to_string(),
                "must be at least 1",
            ));
        }
    }
    for (option, value) in [("max_age", config.max_age), ("max_stale", config.max_stale)] {
        if value == Some(Duration::ZERO) {
            return Err(Error::invalid(
                named(option),
                "0",
                "must be positive (leave it unset for no limit)",
            ));
        }
    }
    let keys = config.secret_key.iter().map(|k| ("secret_key", k));
    let previous = config
        .previous_secret_keys
        .iter()
        .map(|k| ("previous_secret_keys", k));
    for (option, key) in keys.chain(previous) {
        if key.expose().len() < MIN_SECRET_KEY_LEN {
            return Err(Error::invalid(
                named(option),
                "<redacted>",
                format!("must be at least {MIN_SECRET_KEY_LEN} bytes"),
            ));
        }
    }
    Ok(())
}

/// One configuration layer: every option optional.
#[derive(Default)]
struct Settings {
    table_name: Option<String>,
    table_key: Option<String>,
    secret_key: Option<SecretKey>,
    previous_secret_keys: Option<Vec<SecretKey>>,
    consistent_read: Option<bool>,
    billing_mode: Option<BillingMode>,
    read_capacity: Option<i64>,
    write_capacity: Option<i64>,
    raise_errors: Option<bool>,
    max_age: Option<Duration>,
    max_stale: Option<Duration>,
    enable_locking: Option<bool>,
    concurrency: Option<Concurrency>,
    lock_expiry_time: Option<Duration>,
    lock_retry_delay: Option<Duration>,
    lock_max_wait_time: Option<Duration>,
    config_file: Option<PathBuf>,
    touch_after: Option<Duration>,
    /// Option name → where its value came from (variable, `file:key`, builder method).
    origins: BTreeMap<String, String>,
}

/// The unit a bare integer means for a time option: the gem's unit.
#[derive(Clone, Copy)]
pub(crate) enum TimeUnit {
    Seconds,
    Millis,
}

impl Settings {
    /// Every field `None` in `self` takes the value from `lower`.
    fn or(self, lower: Settings) -> Settings {
        let mut origins = lower.origins;
        origins.extend(self.origins);
        macro_rules! pick {
            ($($field:ident),*) => { Settings { $($field: self.$field.or(lower.$field)),*, origins } };
        }
        pick!(
            table_name,
            table_key,
            secret_key,
            previous_secret_keys,
            consistent_read,
            billing_mode,
            read_capacity,
            write_capacity,
            raise_errors,
            max_age,
            max_stale,
            enable_locking,
            concurrency,
            lock_expiry_time,
            lock_retry_delay,
            lock_max_wait_time,
            config_file,
            touch_after
        )
    }

    /// Parses one option given as text. `option` is the lower-case option name; `origin`
    /// names the variable or file key for error messages. Returns `false` for an unknown
    /// option.
    fn set(&mut self, option: &str, raw: &str, origin: &str) -> Result<bool> {
        let value = raw.trim();
        match option {
            "table_name" => self.table_name = Some(value.to_owned()),
            "table_key" => self.table_key = Some(value.to_owned()),
            "secret_key" => self.secret_key = Some(SecretKey::new(value)),
            "previous_secret_keys" => {
                self.previous_secret_keys = Some(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|k| !k.is_empty())
                        .map(SecretKey::new)
                        .collect(),
                )
            }
            "consistent_read" => self.consistent_read = Some(parse_bool(value, origin)?),
            "billing_mode" => {
                self.billing_mode = Some(
                    value
                        .parse()
                        .map_err(|reason: String| Error::invalid(origin, value, reason))?,
                )
            }
            "read_capacity" => self.read_capacity = Some(parse_int(value, origin)?),
            "write_capacity" => self.write_capacity = Some(parse_int(value, origin)?),
            "raise_errors" => self.raise_errors = Some(parse_bool(value, origin)?),
            "max_age" => self.max_age = Some(parse_time(value, origin, TimeUnit::Seconds)?),
            "max_stale" => self.max_stale = Some(parse_time(value, origin, TimeUnit::Seconds)?),
            "enable_locking" => self.enable_locking = Some(parse_bool(value, origin)?),
            "concurrency" => {
                self.concurrency = Some(
                    value
                        .parse()
                        .map_err(|reason: String| Error::invalid(origin, value, reason))?,
                )
            }
            "lock_expiry_time" => {
                self.lock_expiry_time = Some(parse_time(value, origin, TimeUnit::Millis)?)
            }
            "lock_retry_delay" => {
                self.lock_retry_delay = Some(parse_time(value, origin, TimeUnit::Millis)?)
            }
            "lock_max_wait_time" => {
                self.lock_max_wait_time = Some(parse_time(value, origin, TimeUnit::Seconds)?)
            }
            "touch_after" => self.touch_after = Some(parse_time(value, origin, TimeUnit::Seconds)?),
            "serializer" => {
                if !value.eq_ignore_ascii_case("json") {
                    return Err(Error::invalid(
                        origin,
                        value,
                        "only `json` can be named here; plug other serializers in with ConfigBuilder::serializer",
                    ));
                }
                // Naming the default changes nothing; only its validity is checked.
            }
            "config_file" => self.config_file = Some(PathBuf::from(value)),
            _ => return Ok(false),
        }
        self.origins.insert(option.to_owned(), origin.to_owned());
        Ok(true)
    }

    fn from_env(vars: &[(String, String)]) -> Result<Settings> {
        static LEGACY_WARNING: Once = Once::new();
        let mut settings = Settings::default();
        // Legacy first, so the current form overwrites it when both are set.
        let mut legacy_names = Vec::new();
        for (prefix, legacy) in [(LEGACY_ENV_PREFIX, true), (ENV_PREFIX, false)] {
            for (name, value) in vars {
                let Some(option) = name.strip_prefix(prefix) else {
                    continue;
                };
                // `AWS_DYNAMO_DB_SESSION_X` also ends with `DYNAMO_DB_SESSION_X`, but
                // strip_prefix only matches at the start, so the two forms never mix.
                let option = option.to_ascii_lowercase();
                if settings.set(&option, value, name)? && legacy {
                    legacy_names.push(name.clone());
                }
            }
        }
        if !legacy_names.is_empty() {
            LEGACY_WARNING.call_once(|| {
                tracing::warn!(
                    variables = ?legacy_names,
                    "DYNAMO_DB_SESSION_* environment variables are deprecated; \
                     rename them to AWS_DYNAMO_DB_SESSION_*"
                );
            });
        }
        Ok(settings)
    }

    fn from_file(path: &Path) -> Result<Settings> {
        let file_error = |source: Box<dyn std::error::Error + Send + Sync>| Error::ConfigFile {
            path: path.to_owned(),
            source,
        };
        let text = std::fs::read_to_string(path).map_err(|e| file_error(Box::new(e)))?;
        let map: BTreeMap<String, serde_yaml_ng::Value> = if text.trim().is_empty() {
            BTreeMap::new()
        } else {
            serde_yaml_ng::from_str(&text).map_err(|e| file_error(Box::new(e)))?
        };
        let mut settings = Settings::default();
        for (key, value) in map {
            let origin = format!("{}:{key}", path.display());
            let option = key.trim_start_matches(':').to_ascii_lowercase();
            let text = yaml_scalar_text(&option, &value, &origin)?;
            if option == "config_file" {
                return Err(Error::invalid(
                    origin,
                    text,
                    "a configuration file cannot name another one",
                ));
            }
            if !settings.set(&option, &text, &origin)? {
                return Err(Error::invalid(origin, text, "unknown option"));
            }
        }
        Ok(settings)
    }
}

/// Turns a YAML value into the text form the option parsers take; a list is allowed only
/// for `previous_secret_keys`.
fn yaml_scalar_text(option: &str, value: &serde_yaml_ng::Value, origin: &str) -> Result<String> {
    use serde_yaml_ng::Value;
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Sequence(items) if option == "previous_secret_keys" => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                _ => Err(Error::invalid(
                    origin,
                    "<redacted>",
                    "expected a list of strings",
                )),
            })
            .collect::<Result<Vec<_>>>()
            .map(|keys| keys.join(",")),
        other => Err(Error::invalid(
            origin,
            format!("{other:?}"),
            "expected a string, a number or a boolean",
        )),
    }
}

pub(crate) fn parse_bool(value: &str, origin: &str) -> Result<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Error::invalid(origin, value, "expected true or false")),
    }
}

fn parse_int(value: &str, origin: &str) -> Result<i64> {
    value
        .parse()
        .map_err(|_| Error::invalid(origin, value, "expected an integer"))
}

pub(crate) fn parse_time(value: &str, origin: &str, unit: TimeUnit) -> Result<Duration> {
    if value.starts_with('-') {
        return Err(Error::invalid(origin, value, "a time must not be negative"));
    }
    if let Ok(n) = value.parse::<u64>() {
        return Ok(match unit {
            TimeUnit::Seconds => Duration::from_secs(n),
            TimeUnit::Millis => Duration::from_millis(n),
        });
    }
    humantime::parse_duration(value).map_err(|_| {
        let unit = match unit {
            TimeUnit::Seconds => "seconds",
            TimeUnit::Millis => "milliseconds",
        };
        Error::invalid(
            origin,
            value,
            format!("expected a whole number of {unit} or a value such as 500ms, 90s, 30m"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn defaults_match_the_gem() {
        let c = Config::builder().build().unwrap();
        assert_eq!(c.table_name, "sessions");
        assert_eq!(c.table_key, "session_id");
        assert!(c.secret_key.is_none());
        assert!(c.consistent_read);
        assert_eq!((c.read_capacity, c.write_capacity), (10, 5));
        assert!(!c.raise_errors);
        assert_eq!((c.max_age, c.max_stale), (None, None));
        assert_eq!(c.concurrency, Concurrency::None);
        assert_eq!(c.lock_expiry_time, Duration::from_millis(500));
        assert_eq!(c.lock_retry_delay, Duration::from_millis(500));
        assert_eq!(c.lock_max_wait_time, Duration::from_secs(1));
        assert_eq!(c.billing_mode, BillingMode::PayPerRequest);
        assert_eq!(c.touch_after, Duration::from_secs(60));
    }

    #[test]
    fn time_values_use_the_gems_units_or_suffixes() {
        let c = Config::builder()
            .env([
                ("AWS_DYNAMO_DB_SESSION_LOCK_EXPIRY_TIME", "750"),
                ("AWS_DYNAMO_DB_SESSION_LOCK_MAX_WAIT_TIME", "3"),
                ("AWS_DYNAMO_DB_SESSION_MAX_STALE", "30m"),
                ("AWS_DYNAMO_DB_SESSION_LOCK_RETRY_DELAY", "1s"),
            ])
            .build()
            .unwrap();
        assert_eq!(c.lock_expiry_time, Duration::from_millis(750));
        assert_eq!(c.lock_max_wait_time, Duration::from_secs(3));
        assert_eq!(c.max_stale, Some(Duration::from_secs(1800)));
        assert_eq!(c.lock_retry_delay, Duration::from_secs(1));
    }

    #[test]
    fn bad_values_name_the_variable_and_the_value() {
        for (var, value) in [
            ("AWS_DYNAMO_DB_SESSION_ENABLE_LOCKING", "maybe"),
            ("AWS_DYNAMO_DB_SESSION_MAX_AGE", "-5"),
            ("AWS_DYNAMO_DB_SESSION_LOCK_RETRY_DELAY", "soon"),
            ("AWS_DYNAMO_DB_SESSION_READ_CAPACITY", "ten"),
            ("DYNAMO_DB_SESSION_CONSISTENT_READ", "yes"),
            ("AWS_DYNAMO_DB_SESSION_BILLING_MODE", "free"),
        ] {
            let err = Config::builder().env([(var, value)]).build().unwrap_err();
            match &err {
                Error::InvalidConfig {
                    origin, value: v, ..
                } => {
                    assert_eq!(origin, var);
                    assert_eq!(v, value);
                }
                other => panic!("{var}: unexpected {other:?}"),
            }
            let message = err.to_string();
            assert!(
                message.contains(var) && message.contains(value),
                "{message}"
            );
        }
    }

    #[test]
    fn short_secret_is_refused_without_echoing_it() {
        let err = Config::builder().secret_key("short").build().unwrap_err();
        assert!(!err.to_string().contains("short"), "{err}");
        assert!(matches!(err, Error::InvalidConfig { .. }));
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let c = Config::builder()
            .secret_key(SECRET)
            .previous_secret_keys([SECRET])
            .build()
            .unwrap();
        assert!(!format!("{c:?}").contains(SECRET));
    }

    #[test]
    fn zero_limits_are_refused() {
        let err = Config::builder()
            .max_stale(Duration::ZERO)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("max_stale"), "{err}");
    }
}
