//! Reading a session: the lock taken with the read under pessimistic locking, sealed data
//! opened and checked against its user binding, expiry and sign-outs applied.

use std::sync::atomic::Ordering;

use super::backend::Guard;
use super::payload::{Opened, Refusal};
use super::record::{self, secs};
use super::{SessionRecord, SessionStore, now};
use crate::error::Result;
use crate::keys::{self, SessionId};

impl SessionStore {
    /// Whether an unchanged session last written at `updated_at` is due for a touch: only
    /// when a `max_stale` applies, after `touch_after` — capped at a tenth of `max_stale` so
    /// the expiry is never more than 10 % early.
    pub(crate) fn touch_due(&self, record: &SessionRecord) -> bool {
        let config = &self.inner.config;
        let Some(idle) = record.max_stale_in_force(config) else {
            return false;
        };
        let interval = config.touch_after.min(idle / 10);
        now().saturating_sub(record.updated_at) >= secs(interval).max(1)
    }

    /// Reads a session. An item whose expiry has passed counts as absent, because DynamoDB's
    /// TTL deletes items up to about 48 hours late.
    ///
    /// With pessimistic locking ([`Concurrency::Pessimistic`](crate::Concurrency)) this also
    /// takes the session's lock, in the same call: a conditional UpdateItem that succeeds only
    /// when the item has no lock or an expired one, and returns the item. A busy session is
    /// retried every `lock_retry_delay` (plus up to 25 % jitter) until `lock_max_wait_time` or
    /// the deadline. The lock is released by the next [`save`](Self::save),
    /// [`touch`](Self::touch), [`release`](Self::release), [`renew`](Self::renew) or
    /// [`destroy`](Self::destroy). A missing session needs no lock.
    ///
    /// # Errors
    ///
    /// [`Error::TableNotFound`](crate::Error::TableNotFound), [`Error::DynamoDb`](crate::Error::DynamoDb) for throttling and other failures,
    /// [`Error::LockWaitTimeout`](crate::Error::LockWaitTimeout) when the lock stays busy, [`Error::DeadlineExceeded`](crate::Error::DeadlineExceeded),
    /// [`Error::Serialization`](crate::Error::Serialization) or [`Error::MalformedItem`](crate::Error::MalformedItem) for an unreadable item. A failed
    /// read is an error, never an empty session.
    pub async fn load(&self, id: &SessionId) -> Result<Option<SessionRecord>> {
        let key = keys::table_key(id);
        let found = match self.inner.config.concurrency {
            crate::Concurrency::Pessimistic => self.acquire(&key).await?,
            _ => self
                .bounded(
                    self.inner
                        .backend
                        .get(&key, self.inner.config.consistent_read),
                )
                .await?
                .map(|item| (item, None)),
        };
        let Some((item, lock)) = found else {
            tracing::debug!("session not found");
            return Ok(None);
        };
        let opened = self
            .codec()
            .decode(&item.data, id, &key)
            .map(|opened| match opened {
                // The user binding lives in two places, the sealed frame and the indexed hash; a
                // table writer may change the hash (and so which user's sign-out reaches the
                // session) but cannot reseal the frame, so both must agree.
                Opened::Payload(payload)
                    if item.user_hash
                        != payload
                            .user
                            .as_deref()
                            .map(|user| keys::user_hash(id, user)) =>
                {
                    Opened::Refused(Refusal::UserMismatch)
                }
                other => other,
            });
        let payload = match opened {
            Ok(Opened::Payload(payload)) => payload,
            Ok(Opened::Refused(refusal)) => {
                self.free_unreadable(&key, lock).await;
                let refused = self.inner.refused.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(
                    reason = refusal.reason(),
                    refused,
                    "session item refused: it reads as absent"
                );
                return Ok(None);
            }
            Err(error) => {
                self.free_unreadable(&key, lock).await;
                return Err(error);
            }
        };
        let record = SessionRecord::from_stored(&item, payload, lock);
        if self.revoked(&item).await? {
            // Ended for good: a sign-out everywhere reached it through the marker only (the
            // index had not shown it, or a renewal made it after the index was read).
            tracing::debug!("session bound before a sign-out everywhere: ended");
            self.bounded(self.inner.backend.delete(&key, &Guard::None))
                .await?;
            return Ok(None);
        }
        if record.is_expired(&self.inner.config, now()) {
            tracing::debug!("session found but expired");
            self.release(id, &record).await?;
            return Ok(None);
        }
        crate::metrics::count(crate::metrics::SESSIONS_LOADED, 1);
        Ok(Some(record))
    }

    /// Releases the lock this request took on an item it cannot open, for whoever can fix
    /// it; a failure leaves the lock to expire.
    async fn free_unreadable(&self, key: &str, lock: Option<record::LockToken>) {
        if let Some(token) = lock {
            self.let_go(key, &token).await;
        }
    }
}
