//! [`SessionRecord`]: a session as the store reads and writes it, and what a write of it
//! must find in the table (its [`Guard`]).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::backend::{Guard, StoredItem};
use super::payload::Payload;
use crate::config::{Concurrency, Config};
use crate::error::Error;
use crate::serializer::SessionData;

/// A stored session as read or written.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    /// The session data.
    pub data: SessionData,
    /// Unix seconds of creation.
    pub created_at: i64,
    /// Unix seconds of the last write.
    pub updated_at: i64,
    /// Unix seconds after which the session is dead, if a limit applies.
    pub expire_at: Option<i64>,
    /// The version read: every data write bumps it, and renewals (in every mode) and
    /// optimistic saves are conditional on it.
    pub version: Option<u64>,
    /// This session's own `max_stale` ("remember me"), overriding the configured `max_stale`.
    pub max_stale: Option<Duration>,
    /// The user the session is bound to (kept sealed in `data`; the table holds only a keyed
    /// hash of it).
    pub user: Option<String>,
    /// The lock this request holds on the item, under pessimistic locking.
    pub(crate) lock: Option<LockToken>,
    /// The user as read, to tell a new binding from a kept one.
    pub(crate) bound_user: Option<String>,
    /// Unix ms of the binding as read (see [`StoredItem::bound_at`]).
    pub(crate) bound_at: Option<i64>,
}

impl SessionRecord {
    /// Whether this record holds the session's lock (pessimistic locking).
    pub fn is_locked(&self) -> bool {
        self.lock.is_some()
    }

    /// The record for `stored`, with its `data` attribute already opened.
    pub(super) fn from_stored(
        stored: &StoredItem,
        payload: Payload,
        lock: Option<LockToken>,
    ) -> Self {
        SessionRecord {
            data: payload.data,
            bound_user: payload.user.clone(),
            bound_at: stored.bound_at(),
            user: payload.user,
            created_at: stored.created_at,
            updated_at: stored.updated_at,
            expire_at: stored.expire_at,
            version: stored.version,
            max_stale: stored.max_stale.map(Duration::from_secs),
            lock,
        }
    }

    /// When the binding this record would be written with was made: kept from the read for
    /// the same user, `now_ms` for a new one, `None` unbound.
    pub(super) fn binding_at(&self, now_ms: i64) -> Option<i64> {
        match &self.user {
            None => None,
            Some(user) if self.bound_user.as_ref() == Some(user) => self.bound_at.or(Some(now_ms)),
            Some(_) => Some(now_ms),
        }
    }

    /// Moves the binding as read past a sign-out everywhere at `revoked_at` (Unix ms) that
    /// spared this session, as the store did to the stored item.
    pub(crate) fn keep_binding_past(&mut self, revoked_at: i64) {
        if self.bound_user.is_some() {
            self.bound_at = Some(self.bound_at.unwrap_or(0).max(revoked_at + 1));
        }
    }

    /// Whether the write of this record changes the user binding.
    pub(super) fn rebinds(&self) -> bool {
        self.user != self.bound_user
    }

    /// The `max_stale` that applies to this session: its own, else the configured one.
    pub(super) fn max_stale_in_force(&self, config: &Config) -> Option<Duration> {
        self.max_stale.or(config.max_stale)
    }

    /// Whether the session is dead at `now` (Unix seconds) under its own `expire_at` or the
    /// store's current limits (which may have been tightened since it was written).
    pub(super) fn is_expired(&self, config: &Config, now: i64) -> bool {
        ends_at(
            self.created_at,
            self.updated_at,
            self.expire_at,
            self.max_stale,
            config,
        )
        .is_some_and(|(at, _)| at <= now)
    }

    /// What a save (or a touch) requires: our lock; under optimistic concurrency the
    /// version read (saves only); otherwise only that the session still exists.
    pub(super) fn save_guard(&self, config: &Config, versioned: bool) -> Guard {
        match (&self.lock, config.concurrency) {
            (Some(token), _) => Guard::Lock(token.0.clone()),
            (None, Concurrency::Optimistic) if versioned => Guard::Version(self.version),
            _ => Guard::None,
        }
    }

    /// What a renewal requires in every mode: our lock, or the version read. Copying data
    /// that changed since it was read would lose the change, even without concurrency
    /// control.
    pub(super) fn move_guard(&self) -> Guard {
        match &self.lock {
            Some(token) => Guard::Lock(token.0.clone()),
            None => Guard::Version(self.version),
        }
    }

    /// What deleting the session requires: our lock; under optimistic concurrency the
    /// version read; otherwise nothing (the last writer wins, and this is the last write).
    pub(super) fn delete_guard(&self, config: &Config) -> Guard {
        self.save_guard(config, true)
    }
}

/// Which limit ends a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndedBy {
    /// Its `expire_at`, as written.
    ExpireAt,
    /// `created_at` + the configured `max_age`.
    MaxAge,
    /// `updated_at` + `max_stale`: the session's own, else the configured one.
    MaxStale,
}

/// The store's lifetime rule, the one place it is written: a session ends at the earliest of
/// its `expire_at`, `created_at + max_age` and `updated_at + max_stale` (its own, else the
/// configured one) — the configured limits as they are now, which may be tighter than when it
/// was written. `None` without any limit.
fn ends_at(
    created_at: i64,
    updated_at: i64,
    expire_at: Option<i64>,
    own_max_stale: Option<Duration>,
    config: &Config,
) -> Option<(i64, EndedBy)> {
    let after = |from: i64, limit: Option<Duration>| limit.map(|d| from.saturating_add(secs(d)));
    [
        (expire_at, EndedBy::ExpireAt),
        (after(created_at, config.max_age), EndedBy::MaxAge),
        (
            after(updated_at, own_max_stale.or(config.max_stale)),
            EndedBy::MaxStale,
        ),
    ]
    .into_iter()
    .filter_map(|(at, by)| at.map(|at| (at, by)))
    .min_by_key(|(at, _)| *at)
}

impl StoredItem {
    /// When the session was bound to its user (Unix ms): `bound_at`, else, on items from
    /// before it was kept, `created_at`. `None` unbound.
    pub(super) fn bound_at(&self) -> Option<i64> {
        self.user_hash.as_ref()?;
        Some(
            self.bound_at
                .unwrap_or_else(|| self.created_at.saturating_mul(1000)),
        )
    }

    /// When this session ends by the store's rule, and which limit ends it: the earliest of
    /// its `expire_at`, `created_at + max_age` and `updated_at + max_stale` (its own, else
    /// `config`'s). `None` without any limit.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use dynamodb_session_store::Config;
    /// use dynamodb_session_store::backend::StoredItem;
    /// use dynamodb_session_store::store::EndedBy;
    ///
    /// let config = Config::builder().max_stale(Duration::from_secs(600)).build()?;
    /// let item = StoredItem { created_at: 1_000, updated_at: 1_500, ..StoredItem::default() };
    /// assert_eq!(item.ends_at(&config), Some((2_100, EndedBy::MaxStale)));
    /// assert!(item.is_expired(&config, 2_100) && !item.is_expired(&config, 2_099));
    /// # Ok::<(), dynamodb_session_store::Error>(())
    /// ```
    pub fn ends_at(&self, config: &Config) -> Option<(i64, EndedBy)> {
        ends_at(
            self.created_at,
            self.updated_at,
            self.expire_at,
            self.max_stale.map(Duration::from_secs),
            config,
        )
    }

    /// The `max_stale` that applies to this session: its own ("remember me"), else
    /// `config`'s.
    pub fn max_stale_in_force(&self, config: &Config) -> Option<Duration> {
        self.max_stale.map(Duration::from_secs).or(config.max_stale)
    }

    /// Whether this session is dead at `now` (Unix seconds): what
    /// [`SessionStore::load`](crate::SessionStore::load) treats as absent.
    pub fn is_expired(&self, config: &Config, now: i64) -> bool {
        self.ends_at(config).is_some_and(|(at, _)| at <= now)
    }

    /// Whether a lock on this session holds at `now_ms` (Unix milliseconds): taken no longer
    /// than `lock_expiry_time` ago. An older one may be broken by the next request.
    pub fn is_locked(&self, config: &Config, now_ms: i64) -> bool {
        let stale_before = stale_lock_before_ms(config, now_ms);
        self.lock
            .as_ref()
            .is_some_and(|lock| lock.locked_at_ms >= stale_before)
    }
}

/// The lock rule, the one place it is written: a lock taken before this instant (Unix
/// milliseconds) is older than `lock_expiry_time` at `now_ms`, and the next request breaks it.
pub(super) fn stale_lock_before_ms(config: &Config, now_ms: i64) -> i64 {
    let expiry = i64::try_from(config.lock_expiry_time.as_millis()).unwrap_or(i64::MAX);
    now_ms.saturating_sub(expiry)
}

/// Why a guarded write was refused, from the item as it stands (`None`: absent).
pub(super) fn refusal(guard: &Guard, current: Option<&StoredItem>) -> Error {
    let error = match (guard, current) {
        (_, None) => Error::ConditionalCheckFailed,
        (Guard::Lock(_), Some(_)) => Error::LockLost,
        (Guard::Version(_), Some(_)) => Error::VersionConflict,
        (Guard::None, Some(_)) => Error::ConditionalCheckFailed,
    };
    crate::metrics::refused(&error);
    error
}

/// Identifies the request that holds a session's lock: random, unique per acquisition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LockToken(pub(super) String);

impl LockToken {
    pub(super) fn generate() -> Self {
        let mut raw = [0u8; 16];
        getrandom::fill(&mut raw).expect("the operating system's random source failed");
        LockToken(URL_SAFE_NO_PAD.encode(raw))
    }
}

pub(crate) fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Lifetime;
    use crate::store::backend::StoredLock;

    fn config(max_age: Option<u64>, max_stale: Option<u64>) -> Config {
        let lifetime =
            |l: Option<u64>| l.map_or(Lifetime::Unlimited, |s| Duration::from_secs(s).into());
        Config::builder()
            .max_age(lifetime(max_age))
            .max_stale(lifetime(max_stale))
            .build()
            .unwrap()
    }

    #[test]
    fn a_session_ends_at_the_earliest_limit() {
        let item = StoredItem {
            created_at: 1000,
            updated_at: 1500,
            expire_at: Some(3000),
            ..StoredItem::default()
        };
        let unlimited = config(None, None);
        assert!(!item.is_expired(&unlimited, 2999));
        assert!(
            item.is_expired(&unlimited, 3000),
            "expire_at itself is dead"
        );
        assert!(item.is_expired(&config(Some(500), None), 1500));
        assert!(!item.is_expired(&config(Some(501), None), 1500));
        assert!(item.is_expired(&config(None, Some(100)), 1600));
        // The session's own max_stale wins over the configured one.
        let remembered = StoredItem {
            max_stale: Some(10_000),
            expire_at: None,
            ..item.clone()
        };
        assert!(!remembered.is_expired(&config(None, Some(100)), 1600));
        assert!(remembered.is_expired(&config(None, Some(100)), 11_500));
        assert_eq!(
            item.ends_at(&config(Some(5_000), Some(100))),
            Some((1600, EndedBy::MaxStale))
        );
        assert_eq!(item.ends_at(&unlimited), Some((3000, EndedBy::ExpireAt)));
        let forever = StoredItem {
            expire_at: None,
            ..item
        };
        assert_eq!(forever.ends_at(&unlimited), None);
    }

    #[test]
    fn a_lock_holds_until_lock_expiry_time() {
        let config = Config::builder()
            .lock_expiry_time(Duration::from_millis(500))
            .build()
            .unwrap();
        let locked = StoredItem {
            lock: Some(StoredLock {
                owner: "t".into(),
                locked_at_ms: 10_000,
            }),
            ..StoredItem::default()
        };
        assert!(locked.is_locked(&config, 10_500));
        assert!(!locked.is_locked(&config, 10_501));
        assert!(!StoredItem::default().is_locked(&config, 0));
    }
}
