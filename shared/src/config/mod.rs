//! Configuration: every option of the Ruby gem, from code, the environment and a YAML file.
//!
//! Precedence is **explicit (builder) > environment > file > default**, as in the gem. The
//! gem's `enable_locking` and this crate's `concurrency` name one setting: each source maps
//! one to the other before the sources are merged, so precedence holds for both names.
//!
//! Environment variables are named `AWS_DYNAMO_DB_SESSION_<OPTION>` (for example
//! `AWS_DYNAMO_DB_SESSION_TABLE_NAME`). The older form `DYNAMO_DB_SESSION_<OPTION>`, the one the
//! gem's README shows, is still read, with a one-time deprecation warning; when both are set the
//! `AWS_` form wins. A variable under either prefix that names no option gets a warning naming
//! the closest valid one.
//!
//! Time options accept a plain integer in the gem's unit (milliseconds for `lock_expiry_time`
//! and `lock_retry_delay`, seconds for everything else) or a unit-suffixed value such as
//! `500ms`, `90s`, `30m` or `1h 30m`; the two lifetimes also accept `none`.

mod builder;
mod layer;
mod parse;
mod sources;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::error_handler::ErrorHandler;
use crate::serializer::SessionSerializer;

pub use builder::ConfigBuilder;
pub use layer::LayerOptions;
pub(crate) use parse::parse_lifetime;

/// Prefix of the current environment variable form.
pub const ENV_PREFIX: &str = "AWS_DYNAMO_DB_SESSION_";
/// Prefix of the deprecated environment variable form shown in the gem's README.
pub const LEGACY_ENV_PREFIX: &str = "DYNAMO_DB_SESSION_";

/// Shortest secret key accepted, in bytes: HMAC-SHA256 wants at least its output size.
pub const MIN_SECRET_KEY_LEN: usize = 32;

/// The `max_stale` every session gets unless told otherwise: one day without a write.
///
/// Every peer bounds a session's life by default — express-session with connect-dynamodb
/// keeps an item one day, tower-sessions two weeks, PHP's handler 24 minutes — because a
/// browser-session cookie dies with the browser while its item would otherwise live for
/// ever. One day matches connect-dynamodb and the SAM template's `MaxStale`; set
/// [`Lifetime::Unlimited`] explicitly for sessions without a `max_stale`.
pub const DEFAULT_MAX_STALE: Duration = Duration::from_secs(24 * 60 * 60);

/// Session data above this many serialized bytes is compressed before it is sealed (see
/// [`Config::compress_above`]).
///
/// Below it an item stays within one write unit uncompressed (1,024 bytes less about 250 of
/// key, attributes, nonce and tag, with room to spare), so LZ4 would spend CPU and save no
/// unit; above it a typical JSON session (a user, a locale, a cart) crosses the unit
/// unless compressed. Where compressing does not shrink the padded frame, data is stored
/// uncompressed anyway.
pub const DEFAULT_COMPRESS_ABOVE: usize = 512;

/// How the session table is billed when [`SessionTable::create`](crate::table::SessionTable::create)
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
/// Every write honours the mode: saves, renewals, the move of a session signed with a
/// previous key, deleting an emptied session and destroying one.
///
/// | mode | reads | writes | cost per request | pick it when |
/// |---|---|---|---|---|
/// | `None` (default) | 1 GetItem | 1 write when something changed; saves are last-writer-wins, renewals still refuse to copy stale data | lowest | requests on one session rarely overlap, or last-writer-wins is fine |
/// | `Optimistic` | 1 GetItem | 1 conditional write; a conflict fails with 409 and the client retries | as `None`, plus retries under contention | overlaps are rare but must not lose updates |
/// | `Pessimistic` | 1 UpdateItem that locks and reads | 1 UpdateItem that saves (or only releases) | 2 writes per request, plus one per retry while waiting (up to `lock_max_wait_time / lock_retry_delay`) | overlapping requests (parallel XHRs, double submits) must be serialized |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Concurrency {
    /// No coordination: the last save wins.
    #[default]
    None,
    /// A `version` attribute; a write succeeds only if nobody wrote since the read.
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

/// A session lifetime limit (`max_age`, `max_stale`): a duration, or explicitly none.
///
/// A `Duration` converts into it, so `builder.max_stale(Duration::from_secs(1800))` works.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use dynamodb_session_store::{Config, Lifetime};
/// use dynamodb_session_store::config::DEFAULT_MAX_STALE;
///
/// // A day without a write ends a session, unless configured otherwise.
/// assert_eq!(Config::builder().build()?.max_stale, Some(DEFAULT_MAX_STALE));
///
/// let half_hour = Config::builder().max_stale(Duration::from_secs(1800)).build()?;
/// assert_eq!(half_hour.max_stale, Some(Duration::from_secs(1800)));
///
/// // No `max_stale`: only an explicit setting gives that.
/// let unlimited = Config::builder().max_stale(Lifetime::Unlimited).build()?;
/// assert_eq!(unlimited.max_stale, None);
/// # Ok::<(), dynamodb_session_store::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// The session ends this long after the event the limit counts from.
    After(Duration),
    /// No limit.
    Unlimited,
}

impl Lifetime {
    /// The limit as an optional duration (`None` = unlimited).
    pub fn duration(self) -> Option<Duration> {
        match self {
            Lifetime::After(d) => Some(d),
            Lifetime::Unlimited => None,
        }
    }
}

impl From<Duration> for Lifetime {
    fn from(duration: Duration) -> Self {
        Lifetime::After(duration)
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
    /// use dynamodb_session_store::config::SecretKey;
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
/// Fields are public for reading. [`ConfigBuilder::build`] checks them, once: set values on
/// the builder, not on a built config, whose hand-edited fields nothing checks again.
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
    /// Decides which errors reach the client. Default: [`DefaultErrorHandler`](crate::error_handler::DefaultErrorHandler)
    /// honouring `raise_errors`.
    pub error_handler: Arc<dyn ErrorHandler>,
    /// Absolute session lifetime, counted from creation. Default none.
    pub max_age: Option<Duration>,
    /// `max_stale`: a session ends this long after its last write (Rack calls it
    /// `expire_after`). Default [`DEFAULT_MAX_STALE`]; `None` only when set to
    /// [`Lifetime::Unlimited`].
    pub max_stale: Option<Duration>,
    /// Concurrency control. Default none; the gem's `enable_locking = true` means
    /// [`Concurrency::Pessimistic`].
    pub concurrency: Concurrency,
    /// Age after which another request may break a lock. Default 500 ms; must be positive.
    pub lock_expiry_time: Duration,
    /// Wait between two attempts to take a lock. Default 500 ms; must be positive.
    pub lock_retry_delay: Duration,
    /// Give up taking a lock after this long. Default 1 s.
    pub lock_max_wait_time: Duration,
    /// Encodes session data into the `data` attribute. Default JSON.
    pub serializer: Arc<dyn SessionSerializer>,
    /// The YAML file the configuration was read from, if any.
    pub config_file: Option<PathBuf>,
    /// An unchanged session is written again (to push its expiry forward) only when its last
    /// write is older than this. Default 60 s; capped at a tenth of `max_stale`.
    pub touch_after: Duration,
    /// Seal each session's `data` (AES-256-GCM-SIV, keyed from both the session id and the
    /// secret, bound to the item's key) so that only a request carrying the cookie can read
    /// it and nobody without the secret can forge it: neither a table dump with the secret
    /// nor table write access with one's own cookie opens or forges a session. Default
    /// `true`. With it on, an item whose data is not sealed (written before sealing, or by a
    /// table writer) reads as absent unless [`accept_unsealed`](Self::accept_unsealed).
    pub seal_data: bool,
    /// Migration switch, off by default: with sealing on, still open items whose `data` is
    /// unsealed (plain serializer text, or a `p1.` frame, as written with `seal_data: false`
    /// or before sealing existed); their next write seals them. While it is on, anyone who
    /// can write to the table can forge such an item's data, so turn it on only while old
    /// items are being re-sealed, then off again.
    pub accept_unsealed: bool,
    /// Serialized data above this many bytes is LZ4-compressed before sealing (DynamoDB bills
    /// writes per KB) when that makes it smaller; sealed, the compressed frame is padded to a
    /// multiple of 64 bytes. Default [`DEFAULT_COMPRESS_ABOVE`]; `None` never compresses.
    pub compress_above: Option<usize>,
    /// The DynamoDB client. When absent, [`SessionStore::from_env`](crate::SessionStore::from_env)
    /// builds one from the default AWS configuration.
    pub dynamo_db_client: Option<aws_sdk_dynamodb::Client>,
    /// The [`SessionLayer`](crate::SessionLayer)'s options, read by the same sources.
    pub layer: LayerOptions,
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
            .field("seal_data", &self.seal_data)
            .field("accept_unsealed", &self.accept_unsealed)
            .field("compress_above", &self.compress_above)
            .field("dynamo_db_client", &self.dynamo_db_client.is_some())
            .field("layer", &self.layer)
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

/// Checks the invariants that no single value's parser can see.
/// `origin` names where an option's value came from, for error messages.
fn validate(config: &Config, origin: impl Fn(&str) -> String) -> Result<()> {
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
                "must be positive (`none`, or Lifetime::Unlimited, means no limit)",
            ));
        }
    }
    // A zero retry delay spins conditional writes for the whole wait; a zero expiry makes
    // every lock breakable at once, which is no lock at all.
    for (option, value) in [
        ("lock_retry_delay", config.lock_retry_delay),
        ("lock_expiry_time", config.lock_expiry_time),
    ] {
        if value.is_zero() {
            return Err(Error::invalid(named(option), "0", "must be positive"));
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

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn defaults_match_the_gem_and_bound_every_session() {
        let c = Config::builder().build().unwrap();
        assert_eq!(c.table_name, "sessions");
        assert_eq!(c.table_key, "session_id");
        assert!(c.secret_key.is_none());
        assert!(c.consistent_read);
        assert_eq!((c.read_capacity, c.write_capacity), (10, 5));
        assert!(!c.raise_errors);
        assert_eq!((c.max_age, c.max_stale), (None, Some(DEFAULT_MAX_STALE)));
        assert_eq!(c.concurrency, Concurrency::None);
        assert_eq!(c.lock_expiry_time, Duration::from_millis(500));
        assert_eq!(c.lock_retry_delay, Duration::from_millis(500));
        assert_eq!(c.lock_max_wait_time, Duration::from_secs(1));
        assert_eq!(c.billing_mode, BillingMode::PayPerRequest);
        assert_eq!(c.touch_after, Duration::from_secs(60));
        assert!(c.seal_data);
        assert_eq!(c.compress_above, Some(DEFAULT_COMPRESS_ABOVE));
    }

    #[test]
    fn time_values_use_the_gems_units_or_suffixes() {
        let c = Config::builder()
            .env([
                ("AWS_DYNAMO_DB_SESSION_LOCK_EXPIRY_TIME", "750"),
                ("AWS_DYNAMO_DB_SESSION_LOCK_MAX_WAIT_TIME", "3"),
                ("AWS_DYNAMO_DB_SESSION_MAX_STALE", "30m"),
                ("AWS_DYNAMO_DB_SESSION_LOCK_RETRY_DELAY", "1s"),
                ("AWS_DYNAMO_DB_SESSION_MAX_AGE", "none"),
            ])
            .build()
            .unwrap();
        assert_eq!(c.lock_expiry_time, Duration::from_millis(750));
        assert_eq!(c.lock_max_wait_time, Duration::from_secs(3));
        assert_eq!(c.max_stale, Some(Duration::from_secs(1800)));
        assert_eq!(c.lock_retry_delay, Duration::from_secs(1));
        assert_eq!(c.max_age, None);
    }

    #[test]
    fn unlimited_is_explicit_in_every_source() {
        let from_env = Config::builder()
            .env([("AWS_DYNAMO_DB_SESSION_MAX_STALE", "none")])
            .build()
            .unwrap();
        assert_eq!(from_env.max_stale, None);
        let from_builder = Config::builder()
            .max_stale(Lifetime::Unlimited)
            .build()
            .unwrap();
        assert_eq!(from_builder.max_stale, None);
        // The builder's explicit limit wins over the environment's explicit none.
        let both = Config::builder()
            .max_stale(Duration::from_secs(60))
            .env([("AWS_DYNAMO_DB_SESSION_MAX_STALE", "none")])
            .build()
            .unwrap();
        assert_eq!(both.max_stale, Some(Duration::from_secs(60)));
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
    fn zero_limits_and_lock_delays_are_refused() {
        let err = Config::builder()
            .max_stale(Duration::ZERO)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("max_stale"), "{err}");
        for (var, option) in [
            ("AWS_DYNAMO_DB_SESSION_LOCK_RETRY_DELAY", "lock_retry_delay"),
            ("AWS_DYNAMO_DB_SESSION_LOCK_EXPIRY_TIME", "lock_expiry_time"),
        ] {
            let err = Config::builder().env([(var, "0")]).build().unwrap_err();
            assert!(err.to_string().contains(var), "{option}: {err}");
        }
        let err = Config::builder()
            .lock_retry_delay(Duration::ZERO)
            .build()
            .unwrap_err();
        assert!(
            err.to_string().contains("ConfigBuilder::lock_retry_delay"),
            "{err}"
        );
    }
}
