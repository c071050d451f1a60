//! Reading the signing secrets again while the process runs, so that a secret rotated
//! elsewhere (for example by Secrets Manager) does not log out users whose cookies a newer
//! instance signed.
//!
//! A cookie that fails verification with the keys in use triggers at most one fetch per
//! interval, single-flight across concurrent requests: forged cookies cannot turn into a
//! stream of calls to the secret's store. A failed fetch is logged and counted, and the
//! keys in use stay.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::{MIN_SECRET_KEY_LEN, SecretKey};
use crate::keys::{KeyCell, Keyring};

/// The signing secrets as a [`SecretSource`] returns them.
#[derive(Clone)]
pub struct SigningSecrets {
    /// The secret that signs new ids.
    pub current: SecretKey,
    /// Secrets that still verify (a rotation's previous or pending version), newest first.
    pub others: Vec<SecretKey>,
}

impl std::fmt::Debug for SigningSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningSecrets")
            .field("others", &self.others.len())
            .finish_non_exhaustive()
    }
}

/// Where the signing secrets can be read again, e.g. AWS Secrets Manager.
///
/// # Examples
///
/// ```
/// use dynamodb_session_store::config::SecretKey;
/// use dynamodb_session_store::keys::{SecretSource, SigningSecrets};
///
/// #[derive(Debug)]
/// struct FromEnv;
///
/// #[async_trait::async_trait]
/// impl SecretSource for FromEnv {
///     async fn fetch(&self) -> Result<SigningSecrets, Box<dyn std::error::Error + Send + Sync>> {
///         let current = std::env::var("SESSION_SECRET")?;
///         Ok(SigningSecrets { current: SecretKey::new(current), others: vec![] })
///     }
/// }
/// ```
#[async_trait::async_trait]
pub trait SecretSource: std::fmt::Debug + Send + Sync + 'static {
    /// Reads the secrets.
    ///
    /// # Errors
    ///
    /// Any failure to read them; the store keeps the secrets it has.
    async fn fetch(&self) -> Result<SigningSecrets, Box<dyn std::error::Error + Send + Sync>>;
}

/// A source plus the bookkeeping that keeps it from being asked too often.
#[derive(Debug)]
pub(crate) struct Refresher {
    source: Box<dyn SecretSource>,
    min_interval: Duration,
    /// When the last fetch ended; the lock makes fetches single-flight.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
    failures: AtomicU64,
}

impl Refresher {
    pub(crate) fn new(source: impl SecretSource, min_interval: Duration) -> Self {
        Refresher {
            source: Box::new(source),
            min_interval,
            last_fetch: tokio::sync::Mutex::new(None),
            failures: AtomicU64::new(0),
        }
    }

    /// Fetches the secrets into `cell` unless a fetch ended less than the interval ago.
    /// Returns whether the keys may have changed since the caller last looked. A fetch
    /// dropped half-way (its request ran out of time) does not count: the next one may try
    /// at once.
    pub(crate) async fn refresh(&self, cell: &KeyCell, seen: &std::sync::Arc<Keyring>) -> bool {
        let mut last = self.last_fetch.lock().await;
        // Another request refreshed while this one waited for the lock.
        if !std::sync::Arc::ptr_eq(&cell.current(), seen) {
            return true;
        }
        if last.is_some_and(|at| at.elapsed() < self.min_interval) {
            return false;
        }
        let fetched = self.source.fetch().await;
        *last = Some(Instant::now());
        let secrets = match fetched {
            Ok(secrets) => secrets,
            Err(error) => return self.failed(&error.to_string()),
        };
        let all = || std::iter::once(&secrets.current).chain(&secrets.others);
        if all().any(|secret| secret.expose().len() < MIN_SECRET_KEY_LEN) {
            return self.failed(&format!(
                "a fetched secret is shorter than {MIN_SECRET_KEY_LEN} bytes"
            ));
        }
        cell.replace(Keyring::new(all()));
        tracing::info!(
            verifying_secrets = 1 + secrets.others.len(),
            "signing secrets refreshed"
        );
        true
    }

    fn failed(&self, error: &str) -> bool {
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::error!(
            error,
            failures,
            "could not refresh the signing secrets; keeping the ones in use"
        );
        false
    }

    pub(crate) fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}
