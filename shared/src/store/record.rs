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
    /// This session's own idle limit ("remember me"), overriding the configured `max_stale`.
    pub max_stale: Option<Duration>,
    /// The user the session is bound to (kept sealed in `data`; the table holds only a keyed
    /// hash of it).
    pub user: Option<String>,
    /// The lock this request holds on the item, under pessimistic locking.
    pub(crate) lock: Option<LockToken>,
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
            user: payload.user,
            created_at: stored.created_at,
            updated_at: stored.updated_at,
            expire_at: stored.expire_at,
            version: stored.version,
            max_stale: stored.max_stale.map(Duration::from_secs),
            lock,
        }
    }

    /// The idle limit that applies to this session.
    pub(super) fn idle_limit(&self, config: &Config) -> Option<Duration> {
        self.max_stale.or(config.max_stale)
    }

    /// Whether the session is dead at `now` (Unix seconds) under its own `expire_at` or the
    /// store's current limits (which may have been tightened since it was written).
    pub(super) fn is_expired(&self, config: &Config, now: i64) -> bool {
        let past = |deadline: Option<i64>| deadline.is_some_and(|t| t <= now);
        past(self.expire_at)
            || past(
                config
                    .max_age
                    .map(|d| self.created_at.saturating_add(secs(d))),
            )
            || past(
                self.idle_limit(config)
                    .map(|d| self.updated_at.saturating_add(secs(d))),
            )
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

/// Why a guarded write was refused, from the item as it stands (`None`: absent).
pub(super) fn refusal(guard: &Guard, current: Option<&StoredItem>) -> Error {
    match (guard, current) {
        (_, None) => Error::ConditionalCheckFailed,
        (Guard::Lock(_), Some(_)) => Error::LockLost,
        (Guard::Version(_), Some(_)) => Error::VersionConflict,
        (Guard::None, Some(_)) => Error::ConditionalCheckFailed,
    }
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
