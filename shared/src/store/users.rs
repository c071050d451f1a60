//! A user's sessions: listing them ("where am I signed in") and ending them ("sign out
//! everywhere"), through the user index (`user_hash-index`, keys only).
//!
//! A session bound to a user (see [`Session::set_user`](crate::Session::set_user)) carries a
//! keyed hash of the user id; the index maps it to the sessions' table keys. Listing reads the
//! index a page at a time and the items in one batch per page, and leaves expired sessions
//! out. Each session is shown by an opaque handle: not its id, not its cookie, not its table
//! key. Revoking deletes each session under the store's concurrency mode.
//!
//! Cost: an indexed (bound) session costs one extra index write per item write; unbound
//! sessions are not in the index and cost nothing more.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::backend::{Guard, StoredItem, Written};
use super::{SessionStore, now};
use crate::config::Concurrency;
use crate::error::{Error, Result};
use crate::keys::{self, SessionId};

/// Sessions read per page of a listing (BatchGetItem's limit).
const PAGE: usize = 100;

/// Attempts to delete a session whose version keeps changing (optimistic revocation).
const REVOKE_ATTEMPTS: usize = 3;

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
    /// One page of `user`'s live sessions; `current` marks the asking request's session.
    /// Start with `cursor: None` and pass each page's [`next`](UserSessionPage::next) back.
    ///
    /// # Errors
    ///
    /// [`Error::UserIndexMissing`] when the table has no user index; backend errors;
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
            let now = now();
            let sessions: Vec<UserSession> = items
                .into_iter()
                .filter(|(_, item)| self.is_live(item, &hash, now))
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

    /// Ends every live session of `user` except `except` (the asking request's, typically),
    /// a page at a time. Returns how many it ended.
    ///
    /// # Errors
    ///
    /// As [`user_sessions`](Self::user_sessions); [`Error::LockWaitTimeout`] when a session
    /// stays locked (pessimistic concurrency); [`Error::VersionConflict`] when one keeps
    /// changing (optimistic).
    pub async fn revoke_user_sessions(
        &self,
        user: &str,
        except: Option<&SessionId>,
    ) -> Result<u64> {
        let keyring = self.inner.keys.current();
        let except = except.map(keys::table_key);
        let mut revoked = 0;
        let mut pages = Pages::new(keyring.user_hashes(user), Cursor::parse(None)?);
        while let Some((_, keys)) = pages.next(self).await? {
            let items = self.bounded(self.inner.backend.get_many(&keys)).await?;
            for (key, item) in items {
                if except.as_deref() != Some(key.as_str()) && self.revoke(&key, item).await? {
                    revoked += 1;
                }
            }
        }
        tracing::info!(revoked, "revoked a user's sessions");
        Ok(revoked)
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
        while let Some((_, keys)) = pages.next(self).await? {
            if let Some(key) = keys.into_iter().find(|key| keyring.handle(key) == handle) {
                let items = self
                    .bounded(self.inner.backend.get_many(std::slice::from_ref(&key)))
                    .await?;
                return match items.into_iter().next() {
                    Some((key, item)) => self.revoke(&key, item).await,
                    None => Ok(false),
                };
            }
        }
        Ok(false)
    }

    /// The handle [`user_sessions`](Self::user_sessions) shows for `id`'s session.
    pub fn session_handle(&self, id: &SessionId) -> String {
        self.inner.keys.current().handle(&keys::table_key(id))
    }

    fn is_live(&self, item: &StoredItem, hash: &str, now: i64) -> bool {
        item.user_hash.as_deref() == Some(hash) && !item.is_expired(&self.inner.config, now)
    }

    /// Deletes one session under the concurrency mode. Returns whether it was there.
    async fn revoke(&self, key: &str, mut item: StoredItem) -> Result<bool> {
        match self.inner.config.concurrency {
            Concurrency::None => {
                self.bounded(self.inner.backend.delete(key, &Guard::None))
                    .await?;
                Ok(true)
            }
            Concurrency::Optimistic => {
                for _ in 0..REVOKE_ATTEMPTS {
                    let guard = Guard::Version(item.version);
                    match self.bounded(self.inner.backend.delete(key, &guard)).await? {
                        Written::Applied => return Ok(true),
                        Written::Refused(None) => return Ok(false),
                        Written::Refused(Some(current)) => item = current,
                    }
                }
                Err(Error::VersionConflict)
            }
            Concurrency::Pessimistic => {
                // Wait for a request holding the session, then delete under our own lock.
                let Some((_, Some(token))) = self.acquire(key).await? else {
                    return Ok(false);
                };
                let guard = Guard::Lock(token.0);
                match self.bounded(self.inner.backend.delete(key, &guard)).await? {
                    Written::Applied => Ok(true),
                    Written::Refused(None) => Ok(false),
                    Written::Refused(Some(_)) => Err(Error::LockLost),
                }
            }
        }
    }
}
