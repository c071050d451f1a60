//! A user's sessions: listing them ("where am I signed in") and ending them ("sign out
//! everywhere"), through the user index (`user_hash-index`, keys only).
//!
//! A session bound to a user (see [`Session::set_user`](crate::Session::set_user)) carries a
//! keyed hash of the user id; the index maps it to the sessions' table keys. Listing reads the
//! index a page at a time and the items in one batch per page, and leaves expired sessions
//! out. Each session is shown by an opaque handle: not its id, not its cookie, not its table
//! key.
//!
//! Signing out everywhere cannot be escaped. The index is eventually consistent and a renewal
//! makes a new table key, so the index alone may miss a session; and a busy session must not
//! stop the sign-out. So [`SessionStore::revoke_user_sessions`]:
//!
//! 1. writes a *revocation marker* per index value of the user (one per configured secret),
//!    an item under `revoked.` + the user's keyed hash (no session's key has a `.`), whose
//!    `bound_at` is the revocation's time in Unix ms; it expires (TTL, and the collector's
//!    rule through its own `expire_at` and `max_stale`) after `max_age`, or 400 days without
//!    one;
//! 2. deletes every session the index shows, unconditionally — revocation is not a data
//!    write, so a locked or changing session is ended too, and its holder's next write fails
//!    its existence condition — and pages the index again until a pass finds nothing left;
//! 3. and every load of a bound session reads its user's marker (consistently): a session
//!    bound at or before the marker's time is deleted and reads as absent. A renewal keeps the
//!    binding time, so a session a thief renewed while the sign-out ran, or one the index had
//!    not shown yet, is ended on its first use.
//!
//! The session kept (`except`) has its binding time moved past the marker's first, and the
//! sign-out returns only once the clock has passed the marker, so a binding made after it
//! returns (a login, or the kept session written or renewed by the same request) is later
//! than the marker and opens. Listings leave out what the marker ended, and counts and
//! "found" answers count live sessions only: an expired one still stored is deleted but not
//! counted.
//!
//! Renewals are not checked against the marker inside their transaction: a renewal keeps the
//! binding time, so the renewed session is ended on its first load, and checking on load
//! covers a session the renewal's transaction could not see either (one the index had not
//! shown yet). Cost: an indexed (bound) session costs one extra index write per item write,
//! and one extra consistent GetItem per load (the marker); unbound sessions cost nothing more.
//! A binding made by a Lambda whose clock lags the sign-out's is ended with it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::backend::{Changes, Guard, StoredItem, Written};
use super::{SessionStore, now, now_ms};
use crate::error::{Error, Result};
use crate::keys::{self, SessionId};

/// Sessions read per page of a listing (BatchGetItem's limit).
const PAGE: usize = 100;

/// Passes over the index a sign-out makes at most; the markers end what is left.
const REVOKE_PASSES: usize = 3;

/// How long a marker lasts without a `max_age`: longer than any session is expected to idle.
const MARKER_TTL_UNLIMITED: std::time::Duration = std::time::Duration::from_secs(400 * 86_400);

/// The table key of the revocation marker for the user index value `user_hash`.
fn marker_key(user_hash: &str) -> String {
    format!("{}{user_hash}", SessionStore::REVOCATION_MARKER_PREFIX)
}

/// One of a user's live sessions, as a device list shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct UserSession {
    /// An opaque handle to revoke it by: not its id, its cookie or its table key.
    pub handle: String,
    /// Whether it is the session of the request that asked.
    pub current: bool,
    /// Unix seconds of its creation.
    pub created_at: i64,
    /// Unix seconds of its last write.
    pub updated_at: i64,
    /// Unix seconds after which it is dead, if it has a limit.
    pub expire_at: Option<i64>,
}

/// A page of a user's sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserSessionPage {
    /// The live sessions of this page.
    pub sessions: Vec<UserSession>,
    /// Where the next page starts, if more may follow: pass it back to
    /// [`SessionStore::user_sessions`].
    pub next: Option<String>,
}

/// A position in a listing: which of the user's index values (one per configured secret)
/// and the table key to continue after.
struct Cursor {
    hash_index: usize,
    after: Option<String>,
}

impl Cursor {
    fn parse(text: Option<&str>) -> Result<Cursor> {
        let Some(text) = text else {
            return Ok(Cursor {
                hash_index: 0,
                after: None,
            });
        };
        let invalid = || Error::invalid("cursor", "<not shown>", "not a cursor this store issued");
        let raw = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
        let raw = String::from_utf8(raw).map_err(|_| invalid())?;
        let (index, after) = raw.split_once(':').ok_or_else(invalid)?;
        Ok(Cursor {
            hash_index: index.parse().map_err(|_| invalid())?,
            after: (!after.is_empty()).then(|| after.to_owned()),
        })
    }

    fn text(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "{}:{}",
            self.hash_index,
            self.after.as_deref().unwrap_or_default()
        ))
    }
}

/// A walk over every page of a user's index entries, through the index values of every
/// configured secret in turn.
struct Pages {
    hashes: Vec<String>,
    cursor: Cursor,
}

impl Pages {
    fn new(hashes: Vec<String>, cursor: Cursor) -> Self {
        Pages { hashes, cursor }
    }

    /// The next page: the index value it was read under and its table keys.
    async fn next(&mut self, store: &SessionStore) -> Result<Option<(String, Vec<String>)>> {
        let Some(hash) = self.hashes.get(self.cursor.hash_index).cloned() else {
            return Ok(None);
        };
        let (keys, next) = store
            .bounded(
                store
                    .inner
                    .backend
                    .sessions_of(&hash, self.cursor.after.as_deref(), PAGE),
            )
            .await?;
        self.cursor = match next {
            Some(after) => Cursor {
                hash_index: self.cursor.hash_index,
                after: Some(after),
            },
            None => Cursor {
                hash_index: self.cursor.hash_index + 1,
                after: None,
            },
        };
        Ok(Some((hash, keys)))
    }

    /// Whether pages may follow.
    fn more(&self) -> bool {
        self.cursor.hash_index < self.hashes.len()
    }
}

impl SessionStore {
    /// How the table keys of revocation markers begin (see the [module documentation](self)):
    /// items under such a key are not sessions, and tools that count or list sessions skip
    /// them. They carry no user id, no data and no `user_hash`, and expire by TTL.
    pub const REVOCATION_MARKER_PREFIX: &'static str = "revoked.";

    /// One page of `user`'s live sessions; `current` marks the asking request's session.
    /// Start with `cursor: None` and pass each page's [`next`](UserSessionPage::next) back.
    ///
    /// # Errors
    ///
    /// [`Error::UserIndexMissing`] when the table has no user index; [`Error::TableNotFound`],
    /// [`Error::DynamoDb`], [`Error::DeadlineExceeded`] from the backend;
    /// [`Error::InvalidConfig`] for a cursor this store did not issue.
    ///
    /// # Examples
    ///
    /// ```
    /// use dynamodb_session_store::{Config, MemoryStore, SessionStore};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), dynamodb_session_store::Error> {
    /// let config = Config::builder().secret_key("0123456789abcdef0123456789abcdef").build()?;
    /// let store = SessionStore::with_backend(config, MemoryStore::default())?;
    /// let page = store.user_sessions("ann", None, None).await?;
    /// assert!(page.sessions.is_empty() && page.next.is_none());
    /// # Ok(()) }
    /// ```
    pub async fn user_sessions(
        &self,
        user: &str,
        current: Option<&SessionId>,
        cursor: Option<&str>,
    ) -> Result<UserSessionPage> {
        let keyring = self.inner.keys.current();
        let current = current.map(keys::table_key);
        let mut pages = Pages::new(keyring.user_hashes(user), Cursor::parse(cursor)?);
        while let Some((hash, keys)) = pages.next(self).await? {
            let items = self.bounded(self.inner.backend.get_many(&keys)).await?;
            let revoked_at = self.revoked_at(&hash).await?;
            let now = now();
            let sessions: Vec<UserSession> = items
                .into_iter()
                .filter(|(_, item)| self.is_live(item, &hash, now, revoked_at))
                .map(|(key, item)| UserSession {
                    handle: keyring.handle(&key),
                    current: current.as_deref() == Some(key.as_str()),
                    created_at: item.created_at,
                    updated_at: item.updated_at,
                    expire_at: item.expire_at,
                })
                .collect();
            if !sessions.is_empty() || !pages.more() {
                return Ok(UserSessionPage {
                    sessions,
                    next: pages.more().then(|| pages.cursor.text()),
                });
            }
        }
        Ok(UserSessionPage {
            sessions: Vec::new(),
            next: None,
        })
    }

    /// Signs `user` out everywhere but `except` (the asking request's session, typically):
    /// when it returns `Ok`, no session bound to `user` before the call, other than
    /// `except`, opens again — including one the index did not show yet and one a renewal
    /// made while this ran (see the [module documentation](self)). Sessions that are locked or
    /// changing are ended too. Returns how many live sessions it deleted; the ones it could not see
    /// end on their next load.
    ///
    /// # Errors
    ///
    /// As [`user_sessions`](Self::user_sessions); an error may leave some sessions undeleted,
    /// but once the markers are written (the first step) none of them opens again.
    pub async fn revoke_user_sessions(
        &self,
        user: &str,
        except: Option<&SessionId>,
    ) -> Result<u64> {
        self.revoke_user_sessions_at(user, except)
            .await
            .map(|(revoked, _)| revoked)
    }

    /// As [`revoke_user_sessions`](Self::revoke_user_sessions), with the marker's time (Unix
    /// ms): a binding at or before it does not open, so the request that kept its session
    /// moves that session's binding past it.
    pub(crate) async fn revoke_user_sessions_at(
        &self,
        user: &str,
        except: Option<&SessionId>,
    ) -> Result<(u64, i64)> {
        let keyring = self.inner.keys.current();
        let except = except.map(keys::table_key);
        let hashes = keyring.user_hashes(user);
        let revoked_at = now_ms();
        if let Some(except) = &except {
            // First, so that the kept session never reads as revoked.
            let spare = Changes {
                bound_at: Some(Some(revoked_at + 1)),
                ..Changes::default()
            };
            self.bounded(self.inner.backend.update(except, &spare, &Guard::None))
                .await?;
        }
        for hash in &hashes {
            self.mark_revoked(hash, revoked_at).await?;
        }
        let mut revoked = 0;
        for _ in 0..REVOKE_PASSES {
            let mut ended = 0;
            let mut pages = Pages::new(hashes.clone(), Cursor::parse(None)?);
            while let Some((_, keys)) = pages.next(self).await? {
                let keys: Vec<String> = keys
                    .into_iter()
                    .filter(|key| except.as_deref() != Some(key.as_str()))
                    .collect();
                let items = self.bounded(self.inner.backend.get_many(&keys)).await?;
                let now = now();
                for (key, item) in items {
                    // Read before the marker went down in this pass's eyes: live means live
                    // before this sign-out.
                    let live = !item.is_expired(&self.inner.config, now);
                    if self.revoke(&key).await? {
                        ended += 1;
                        revoked += u64::from(live);
                    }
                }
            }
            if ended == 0 {
                break;
            }
        }
        // A binding made once this returns must be later than the marker.
        while now_ms() <= revoked_at {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        tracing::info!(revoked, "revoked a user's sessions");
        Ok((revoked, revoked_at))
    }

    /// Writes (or moves forward) the marker for `user_hash`: sessions bound at or before
    /// `revoked_at` (Unix ms) do not open.
    async fn mark_revoked(&self, user_hash: &str, revoked_at: i64) -> Result<()> {
        let key = marker_key(user_hash);
        let now = now();
        let ttl = self.inner.config.max_age.unwrap_or(MARKER_TTL_UNLIMITED);
        let expire_at = now.saturating_add(super::record::secs(ttl));
        let marker = StoredItem {
            created_at: now,
            updated_at: now,
            expire_at: Some(expire_at),
            // The collector's idle rule must not take it before its expiry.
            max_stale: Some(ttl.as_secs()),
            bound_at: Some(revoked_at),
            ..StoredItem::default()
        };
        if self
            .bounded(self.inner.backend.insert(&key, &marker))
            .await?
        {
            return Ok(());
        }
        let changes = Changes {
            // Afresh, so that the collector's `max_age` cap dates it from this sign-out.
            created_at: Some(now),
            updated_at: Some(now),
            expire_at: Some(Some(expire_at)),
            max_stale: Some(marker.max_stale),
            bound_at: Some(Some(revoked_at)),
            ..Changes::default()
        };
        // Gone between the two calls (collected): write it afresh.
        if let Written::Refused(None) = self
            .bounded(self.inner.backend.update(&key, &changes, &Guard::None))
            .await?
        {
            self.bounded(self.inner.backend.insert(&key, &marker))
                .await?;
        }
        Ok(())
    }

    /// Whether `item` (a bound session) was bound at or before its user's last sign-out
    /// everywhere. Unbound sessions cost no read.
    pub(super) async fn revoked(&self, item: &StoredItem) -> Result<bool> {
        let (Some(hash), Some(bound_at)) = (&item.user_hash, item.bound_at()) else {
            return Ok(false);
        };
        let revoked_at = self.revoked_at(hash).await?;
        Ok(revoked_at.is_some_and(|revoked_at| bound_at <= revoked_at))
    }

    /// The time (Unix ms) of the last sign-out everywhere under the index value `user_hash`.
    async fn revoked_at(&self, user_hash: &str) -> Result<Option<i64>> {
        let marker = self
            .bounded(self.inner.backend.get(&marker_key(user_hash), true))
            .await?;
        Ok(marker.and_then(|marker| marker.bound_at))
    }

    /// Ends `user`'s session shown as `handle`. Returns whether there was one (a handle of
    /// another user's session, or of none, ends nothing).
    ///
    /// # Errors
    ///
    /// As [`revoke_user_sessions`](Self::revoke_user_sessions).
    pub async fn revoke_user_session(&self, user: &str, handle: &str) -> Result<bool> {
        let keyring = self.inner.keys.current();
        let mut pages = Pages::new(keyring.user_hashes(user), Cursor::parse(None)?);
        while let Some((hash, keys)) = pages.next(self).await? {
            if let Some(key) = keys.into_iter().find(|key| keyring.handle(key) == handle) {
                let items = self
                    .bounded(self.inner.backend.get_many(std::slice::from_ref(&key)))
                    .await?;
                let revoked_at = self.revoked_at(&hash).await?;
                return match items.into_iter().next() {
                    // One that already ended (expired, or by a sign-out) is not found.
                    Some((key, item)) if self.is_live(&item, &hash, now(), revoked_at) => {
                        self.revoke(&key).await
                    }
                    _ => Ok(false),
                };
            }
        }
        Ok(false)
    }

    fn is_live(&self, item: &StoredItem, hash: &str, now: i64, revoked_at: Option<i64>) -> bool {
        item.user_hash.as_deref() == Some(hash)
            && !item.is_expired(&self.inner.config, now)
            && !matches!((item.bound_at(), revoked_at), (Some(at), Some(revoked)) if at <= revoked)
    }

    /// Ends one session whatever its state: revocation is not a data write, so neither a
    /// lock nor a version stops it, and the holder's next write fails its existence
    /// condition. Returns whether it was there.
    async fn revoke(&self, key: &str) -> Result<bool> {
        match self
            .bounded(self.inner.backend.delete(key, &Guard::None))
            .await?
        {
            Written::Applied => Ok(true),
            Written::Refused(_) => Ok(false),
        }
    }
}
