//! Taking a session's lock (pessimistic concurrency): retried every `lock_retry_delay` plus
//! jitter ([`Backoff::constant`]), until `lock_max_wait_time` or the deadline.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::SessionStore;
use super::backend::{Changes, Guard, Locked, StoredItem, Written};
use super::record::{LockToken, stale_lock_before_ms};
use crate::error::{Error, Result};
use crate::retry::Backoff;

/// Why one attempt did not take the lock.
enum Attempt {
    /// Another request holds it: wait and try again.
    Busy,
    /// Anything else ends the wait.
    Failed(Error),
}

impl SessionStore {
    /// Takes the lock on `key` and reads the item in one call, waiting while another request
    /// holds it. `None` when there is no such session.
    pub(super) async fn acquire(
        &self,
        key: &str,
    ) -> Result<Option<(StoredItem, Option<LockToken>)>> {
        let config = &self.inner.config;
        let token = LockToken::generate();
        let started = Instant::now();
        let mut give_up = started + config.lock_max_wait_time;
        if let Some(deadline) = self.deadline {
            give_up = give_up.min(deadline.instant());
        }
        let attempt = || async {
            let now_ms = now_millis();
            let locked = self
                .bounded(self.inner.backend.lock(
                    key,
                    &token.0,
                    now_ms,
                    stale_lock_before_ms(config, now_ms),
                ))
                .await;
            match locked {
                Ok(Locked::Acquired(item)) => Ok(Some(item)),
                Ok(Locked::Absent) => Ok(None),
                Ok(Locked::Busy) => Err(Attempt::Busy),
                Err(error) => Err(Attempt::Failed(error)),
            }
        };
        let mut waits = 0;
        // Jitter spreads waiters out instead of retrying in step; no sleep may end past the
        // wait's limit.
        let waited = Backoff::constant(config.lock_retry_delay)
            .until(Some(give_up))
            .retry(
                attempt,
                |e| matches!(e, Attempt::Busy),
                |_, _| {
                    waits += 1;
                    tracing::debug!("session locked by another request; waiting");
                },
            )
            .await;
        crate::metrics::lock_waited(waits, started.elapsed());
        match waited {
            Ok(item) => Ok(item.map(|item| (item, Some(token)))),
            Err(Attempt::Failed(error)) => {
                // The attempt may have taken the lock and lost only its answer (a dropped
                // response, retries that then failed, the deadline): nothing else would ever
                // release it, and every request on the session would wait until it expired.
                self.let_go(key, &token).await;
                Err(error)
            }
            Err(Attempt::Busy) => {
                let waited = started.elapsed();
                tracing::info!(
                    waited_ms = waited.as_millis() as u64,
                    "session lock wait timed out"
                );
                Err(Error::LockWaitTimeout { waited })
            }
        }
    }
}

impl SessionStore {
    /// Releases the lock on `key` if this request's `token` holds it, best effort: a write
    /// conditional on the token, so it never frees another request's lock; a failure leaves
    /// the lock to expire. Bounded by its own short limit rather than the request's deadline,
    /// which may be what ended the request.
    pub(super) async fn let_go(&self, key: &str, token: &LockToken) {
        let (changes, guard) = (Changes::default(), Guard::Lock(token.0.clone()));
        let release = self.inner.backend.update(key, &changes, &guard);
        if !matches!(
            tokio::time::timeout(LET_GO_LIMIT, release).await,
            Ok(Ok(Written::Applied))
        ) {
            tracing::debug!("no lock of this request's to release, or the release failed");
        }
    }
}

/// How long a best-effort release may take.
const LET_GO_LIMIT: Duration = Duration::from_millis(500);

/// Unix milliseconds now (lock timestamps).
fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
