//! Writing sessions: create, save, touch, renew, release and delete, each conditional on what
//! the request read (see [`Concurrency`](crate::Concurrency)).

use std::time::Duration;

use super::backend::{Changes, Guard, Replaced, StoredItem, Written};
use super::payload::Framed;
use super::record::{refusal, secs};
use super::{CREATE_ATTEMPTS, SessionRecord, SessionStore, now, now_ms};
use crate::error::{Error, Result};
use crate::keys::{self, SessionId};
use crate::serializer::SessionData;

impl SessionStore {
    /// Stores a new session under a fresh id. The write is conditional on the id being
    /// unused, so a colliding id never takes over another session: a new id is drawn instead.
    ///
    /// # Errors
    ///
    /// [`Error::SessionTooLarge`] before any write; [`Error::IdCollision`] if fresh ids keep
    /// colliding; backend errors as for [`load`](Self::load).
    pub async fn create(&self, data: &SessionData) -> Result<(SessionId, SessionRecord)> {
        self.create_with(None, data, None, None).await
    }

    /// Stores a new session under `id` (drawn by [`next_id`](Self::next_id) and possibly
    /// already shown to the application) or a fresh id.
    pub(crate) async fn create_with(
        &self,
        id: Option<SessionId>,
        data: &SessionData,
        max_stale: Option<Duration>,
        user: Option<&str>,
    ) -> Result<(SessionId, SessionRecord)> {
        let framed = self.codec().frame(data, user)?;
        // An id the application has seen cannot silently change: one attempt only.
        let attempts = if id.is_some() { 1 } else { CREATE_ATTEMPTS };
        let mut preset = id;
        for _ in 0..attempts {
            let id = preset.take().unwrap_or_else(|| self.next_id());
            let now = now();
            let mut record = SessionRecord {
                data: data.clone(),
                created_at: now,
                updated_at: now,
                expire_at: None,
                version: Some(1),
                max_stale,
                user: user.map(str::to_owned),
                lock: None,
                bound_user: None,
                bound_at: None,
            };
            record.expire_at = self.expire_at(&record, now);
            let key = keys::table_key(&id);
            let item = self.stored(&id, &key, framed.clone(), &record);
            record.bound_at = item.bound_at;
            record.bound_user = record.user.clone();
            if self.bounded(self.inner.backend.insert(&key, &item)).await?
                || self.holds_own_write(&key, &item.data).await?
            {
                crate::metrics::written(crate::metrics::SESSIONS_CREATED, item.data.len());
                return Ok((id, record));
            }
            tracing::warn!("fresh session id collided with a stored session; drawing another");
        }
        Err(Error::IdCollision { attempts })
    }

    /// Moves a session to a fresh id in one atomic write: the new item (data and
    /// `created_at` kept) exists and the old one is gone, or neither. Use it after a login to
    /// defeat session fixation. The old item must still be as it was read: this request's
    /// lock (pessimistic) or, in every other mode, the version read — copying data that
    /// changed since would lose that change.
    ///
    /// # Errors
    ///
    /// [`Error::LockLost`] or [`Error::VersionConflict`] when the old item changed hands or
    /// data since it was read, [`Error::ConditionalCheckFailed`] when it is gone; in each case
    /// nothing was written. Otherwise as [`create`](Self::create).
    pub async fn renew(
        &self,
        old: &SessionId,
        record: &SessionRecord,
    ) -> Result<(SessionId, SessionRecord)> {
        self.renew_to(old, record, None).await
    }

    pub(crate) async fn renew_to(
        &self,
        old: &SessionId,
        record: &SessionRecord,
        new_id: Option<SessionId>,
    ) -> Result<(SessionId, SessionRecord)> {
        let framed = self.codec().frame(&record.data, record.user.as_deref())?;
        let guard = record.move_guard();
        let old_key = keys::table_key(old);
        let attempts = if new_id.is_some() { 1 } else { CREATE_ATTEMPTS };
        let mut preset = new_id;
        for _ in 0..attempts {
            let id = preset.take().unwrap_or_else(|| self.next_id());
            let now = now();
            let renewed = SessionRecord {
                data: record.data.clone(),
                updated_at: now,
                expire_at: self.expire_at(record, now),
                version: Some(1),
                lock: None,
                bound_at: record.binding_at(now_ms()),
                bound_user: record.user.clone(),
                ..record.clone()
            };
            let key = keys::table_key(&id);
            // Sealed again: the data key and the associated data follow the id.
            let item = self.stored(&id, &key, framed.clone(), &renewed);
            let replaced = self
                .bounded(self.inner.backend.replace(&old_key, &guard, &key, &item))
                .await?;
            // The new item present (and the old one gone) is also what a retry meets after
            // its first attempt applied: the new item being this write's own proves it landed.
            let landed_before = matches!(replaced, Replaced::Collision | Replaced::Refused(None))
                && self.holds_own_write(&key, &item.data).await?;
            match replaced {
                _ if landed_before => {}
                Replaced::Applied => {}
                Replaced::Collision => {
                    tracing::warn!(
                        "fresh session id collided with a stored session; drawing another"
                    );
                    continue;
                }
                Replaced::Refused(current) => return Err(refusal(&guard, current.as_ref())),
            }
            crate::metrics::written(crate::metrics::SESSIONS_RENEWED, item.data.len());
            return Ok((id, renewed));
        }
        Err(Error::IdCollision { attempts })
    }

    /// Writes new data for an existing session (`SET data, updated_at, expire_at`, keeping
    /// `created_at`); `record` is what [`load`](Self::load) returned, with new data. Under
    /// pessimistic locking the same write releases the lock; under optimistic concurrency it
    /// succeeds only if nobody wrote since the read.
    ///
    /// # Errors
    ///
    /// [`Error::SessionTooLarge`] before any write, leaving the stored session intact;
    /// [`Error::ConditionalCheckFailed`] when the session no longer exists (deleted or
    /// collected since it was read: it is not brought back); [`Error::LockLost`] when another
    /// request broke this one's expired lock; [`Error::VersionConflict`] when another request
    /// wrote first. In every case the stored session is left as it was.
    pub async fn save(&self, id: &SessionId, record: &SessionRecord) -> Result<SessionRecord> {
        let framed = self.codec().frame(&record.data, record.user.as_deref())?;
        let now = now();
        let expire_at = self.expire_at(record, now);
        let changes = Changes {
            created_at: None,
            data: Some(self.codec().encode(framed, id, &keys::table_key(id))),
            updated_at: Some(now),
            expire_at: Some(expire_at),
            max_stale: Some(record.max_stale.map(|d| d.as_secs())),
            user_hash: Some(record.user.as_deref().map(|user| keys::user_hash(id, user))),
            // Only a new binding is written: a kept one may have been moved forward by a
            // sign-out everywhere that spared this session since it was read.
            bound_at: record.rebinds().then(|| record.binding_at(now_ms())),
            bump_version: true,
        };
        self.write(id, &changes, &record.save_guard(&self.inner.config, true))
            .await?;
        crate::metrics::written(
            crate::metrics::SESSION_WRITES,
            changes.data.as_ref().map_or(0, String::len),
        );
        Ok(SessionRecord {
            updated_at: now,
            expire_at,
            version: Some(record.version.unwrap_or(0) + 1),
            lock: None,
            bound_at: changes.bound_at.unwrap_or(record.bound_at),
            bound_user: record.user.clone(),
            ..record.clone()
        })
    }

    /// Pushes an unchanged session's expiry forward (`SET updated_at, expire_at` only), and
    /// releases its lock if it holds one.
    ///
    /// # Errors
    ///
    /// [`Error::ConditionalCheckFailed`] when the session no longer exists;
    /// [`Error::LockLost`] when another request broke this one's expired lock;
    /// [`Error::TableNotFound`], [`Error::DynamoDb`] (throttling and other
    /// failures) and [`Error::DeadlineExceeded`] from the backend.
    pub async fn touch(&self, id: &SessionId, record: &SessionRecord) -> Result<SessionRecord> {
        let now = now();
        let expire_at = self.expire_at(record, now);
        let changes = Changes {
            updated_at: Some(now),
            expire_at: Some(expire_at),
            ..Changes::default()
        };
        self.write(id, &changes, &record.save_guard(&self.inner.config, false))
            .await?;
        crate::metrics::count(crate::metrics::SESSION_TOUCHES, 1);
        Ok(SessionRecord {
            updated_at: now,
            expire_at,
            lock: None,
            ..record.clone()
        })
    }

    /// Releases the lock `record` holds, writing nothing else. Without a lock it does
    /// nothing. A lock that was already broken by another request is not an error here.
    ///
    /// # Errors
    ///
    /// [`Error::TableNotFound`], [`Error::DynamoDb`] (throttling and other failures) and
    /// [`Error::DeadlineExceeded`] from the backend; a lock already broken or a session
    /// already gone is not an error.
    pub async fn release(&self, id: &SessionId, record: &SessionRecord) -> Result<()> {
        if record.lock.is_none() {
            return Ok(());
        }
        let guard = record.save_guard(&self.inner.config, false);
        match self.write(id, &Changes::default(), &guard).await {
            Err(Error::LockLost | Error::ConditionalCheckFailed) => {
                tracing::debug!(
                    "lock already taken over by another request, or the session is gone"
                );
                Ok(())
            }
            other => other,
        }
    }

    /// Deletes the session `record` was read as, honouring the concurrency mode: only while
    /// this request holds its lock (pessimistic), only if nobody wrote since the read
    /// (optimistic), unconditionally otherwise.
    ///
    /// # Errors
    ///
    /// [`Error::LockLost`], [`Error::VersionConflict`] (nothing was deleted);
    /// [`Error::TableNotFound`], [`Error::DynamoDb`] (throttling and other
    /// failures) and [`Error::DeadlineExceeded`] from the backend.
    /// A session already gone is not an error.
    pub async fn destroy(&self, id: &SessionId, record: &SessionRecord) -> Result<()> {
        let guard = record.delete_guard(&self.inner.config);
        match self
            .bounded(self.inner.backend.delete(&keys::table_key(id), &guard))
            .await?
        {
            Written::Applied | Written::Refused(None) => {
                crate::metrics::count(crate::metrics::SESSIONS_DESTROYED, 1);
                Ok(())
            }
            Written::Refused(Some(current)) => Err(refusal(&guard, Some(&current))),
        }
    }

    /// Deletes a session (and so any lock on it) whatever its state — an administrative end,
    /// like revoking it. Deleting a session that does not exist is not an error.
    ///
    /// # Errors
    ///
    /// [`Error::TableNotFound`], [`Error::DynamoDb`] (throttling and other
    /// failures) and [`Error::DeadlineExceeded`] from the backend.
    pub async fn delete(&self, id: &SessionId) -> Result<()> {
        self.bounded(
            self.inner
                .backend
                .delete(&keys::table_key(id), &Guard::None),
        )
        .await?;
        crate::metrics::count(crate::metrics::SESSIONS_DESTROYED, 1);
        Ok(())
    }

    /// One guarded update, its refusal turned into the guard's typed error.
    async fn write(&self, id: &SessionId, changes: &Changes, guard: &Guard) -> Result<()> {
        let key = keys::table_key(id);
        match self
            .bounded(self.inner.backend.update(&key, changes, guard))
            .await?
        {
            Written::Applied => Ok(()),
            // A retry that met its own first attempt's effect (the answer was lost after the
            // write applied): sealed data carries a random nonce, so the stored value being
            // exactly the one sent proves the write landed — answering a conflict would say
            // "nothing was written" and invite the client to apply its change twice.
            Written::Refused(Some(current))
                if changes
                    .data
                    .as_deref()
                    .is_some_and(|sent| self.is_own(sent, &current)) =>
            {
                tracing::debug!("a retried write found its own first attempt applied");
                Ok(())
            }
            // A touch (no data) refused while the item already has exactly its timestamps: its
            // own first attempt (whose answer was lost) applied, or a concurrent write left
            // the session as fresh; either way what it asked for holds, and its lock is gone.
            Written::Refused(Some(current)) if touch_holds(changes, &current) => {
                tracing::debug!("a refused touch found the session already as it wanted");
                Ok(())
            }
            Written::Refused(current) => Err(refusal(guard, current.as_ref())),
        }
    }

    /// Whether `key` holds exactly `data`, read consistently: a write whose answer was lost
    /// after it applied and that the SDK sent again meets its own first attempt. Sealed data
    /// carries a random nonce, so only this write can have stored those bytes; plain data
    /// proves nothing (another writer may have stored the same), and is never claimed.
    async fn holds_own_write(&self, key: &str, data: &str) -> Result<bool> {
        if !self.inner.config.seal_data {
            return Ok(false);
        }
        let stored = self.bounded(self.inner.backend.get(key, true)).await?;
        Ok(stored.is_some_and(|stored| self.is_own(data, &stored)))
    }

    /// Whether `stored` holds exactly the sealed bytes this write sent (see
    /// [`holds_own_write`](Self::holds_own_write)); never for plain data.
    fn is_own(&self, sent: &str, stored: &StoredItem) -> bool {
        self.inner.config.seal_data && stored.data == sent
    }

    /// The item a record is stored as under `key`, its data sealed for `id`.
    pub(super) fn stored(
        &self,
        id: &SessionId,
        key: &str,
        framed: Framed,
        record: &SessionRecord,
    ) -> StoredItem {
        StoredItem {
            data: self.codec().encode(framed, id, key),
            created_at: record.created_at,
            updated_at: record.updated_at,
            expire_at: record.expire_at,
            version: record.version,
            max_stale: record.max_stale.map(|d| d.as_secs()),
            user_hash: record.user.as_deref().map(|user| keys::user_hash(id, user)),
            bound_at: record.binding_at(now_ms()),
            lock: None,
        }
    }

    /// The earlier of last activity + `max_stale` and creation + absolute limit.
    fn expire_at(&self, record: &SessionRecord, now: i64) -> Option<i64> {
        let config = &self.inner.config;
        let idle = record
            .max_stale_in_force(config)
            .map(|d| now.saturating_add(secs(d)));
        let absolute = config
            .max_age
            .map(|d| record.created_at.saturating_add(secs(d)));
        match (idle, absolute) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Whether `changes` is a touch (new timestamps, no data) that `current` already reflects.
fn touch_holds(changes: &Changes, current: &StoredItem) -> bool {
    changes.data.is_none()
        && changes.updated_at == Some(current.updated_at)
        && changes.expire_at == Some(current.expire_at)
}
