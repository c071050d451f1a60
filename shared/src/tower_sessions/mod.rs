//! This store under the tower-sessions ecosystem (feature `tower-sessions`): a
//! [`TowerSessionsStore`] implements `tower_sessions::SessionStore` (tower-sessions 0.14,
//! the version axum-login 0.18 uses), so axum-login, axum-messages and any other
//! `tower_sessions::Session` user keep their sessions in this store's table.
//!
//! Each tower-sessions session is an ordinary session item: its table key is the store's
//! keyed hash of the tower-sessions id (`id.rs`), its data is sealed as every session's is,
//! its `expire_at` (the TTL attribute) is the tower-sessions record's expiry (`record.rs`).
//! The garbage collector, TTL and `sessionctl gc`/`stats` therefore work on them unchanged, and no
//! DynamoDB request is built here: every call goes through [`SessionStore`].
//!
//! `ExpiredDeletion` is not implemented: DynamoDB's TTL and the collector
//! ([`GarbageCollector`](crate::gc::GarbageCollector), session-gc) already delete expired
//! items, resumably and without racing a live session.

mod id;
mod record;

use async_trait::async_trait;
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::session_store::{self, SessionStore as TowerStore};

use crate::error::Error;
use crate::keys::SessionId;
use crate::store::{SessionRecord, SessionStore};

/// How many ids [`create`](TowerStore::create) tries before it reports the collision, as
/// the store does for its own ids.
const CREATE_ATTEMPTS: u32 = 3;

/// How many times [`save`](TowerStore::save) reads and writes again when another request
/// wrote in between: tower-sessions' contract is that the last save wins.
const SAVE_ATTEMPTS: u32 = 3;

/// A [`SessionStore`] as a `tower_sessions::SessionStore`. Cheap to clone.
///
/// # Examples
///
/// ```
/// use dynamodb_session_store::{Config, MemoryStore, SessionStore, TowerSessionsStore};
///
/// let config = Config::builder().secret_key("0123456789abcdef0123456789abcdef").build()?;
/// let store = SessionStore::with_backend(config, MemoryStore::new())?;
/// // tower_sessions::SessionManagerLayer::new(TowerSessionsStore::new(store))
/// let _store = TowerSessionsStore::new(store);
/// # Ok::<(), dynamodb_session_store::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct TowerSessionsStore {
    store: SessionStore,
}

impl TowerSessionsStore {
    /// tower-sessions' sessions kept in `store` (DynamoDB or any other backend), under its
    /// configuration: table, secret, sealing, `max_age` and concurrency mode. The
    /// tower-sessions expiry sets each session's idle limit; `max_age` still caps it.
    pub fn new(store: SessionStore) -> Self {
        TowerSessionsStore { store }
    }

    /// The store the sessions are kept in.
    pub fn store(&self) -> &SessionStore {
        &self.store
    }

    /// The session `id` names, and the store id it is stored under: the current secret's,
    /// else (after a rotation) a previous secret's, which it keeps until it ends, as long as
    /// that secret stays configured.
    async fn find(&self, id: Id) -> crate::Result<Option<(SessionId, SessionRecord)>> {
        for id in id::session_ids(&self.store, id) {
            if let Some(record) = self.store.load(&id).await? {
                return Ok(Some((id, record)));
            }
        }
        Ok(None)
    }
}

#[async_trait]
impl TowerStore for TowerSessionsStore {
    /// A conditional insert: an id already in the table is never overwritten; a new id is
    /// drawn instead (written back to `record.id`), as tower-sessions asks of a store.
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let data = record::data_of(record);
        let max_stale = record::idle_limit(record.expiry_date);
        for _ in 0..CREATE_ATTEMPTS {
            let id = id::current(&self.store, record.id);
            match self
                .store
                .create_with(Some(id), &data, Some(max_stale), None)
                .await
            {
                Ok(_) => return Ok(()),
                Err(Error::IdCollision { .. }) => {
                    tracing::warn!(
                        "tower-sessions id collided with a stored session; drawing another"
                    );
                    record.id = Id::default();
                }
                Err(error) => return Err(record::encode_error(error)),
            }
        }
        Err(record::encode_error(Error::IdCollision {
            attempts: CREATE_ATTEMPTS,
        }))
    }

    /// Reads the session as stored and writes the record's data and expiry over it, under
    /// the store's concurrency mode. A session deleted meanwhile (logged out elsewhere,
    /// revoked by an operator, collected) is not brought back: that is an error.
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let data = record::data_of(record);
        let max_stale = record::idle_limit(record.expiry_date);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let Some((id, mut stored)) =
                self.find(record.id).await.map_err(record::decode_error)?
            else {
                return Err(session_store::Error::Backend(
                    "the session no longer exists: not saved".into(),
                ));
            };
            stored.data = data.clone();
            stored.max_stale = Some(max_stale);
            match self.store.save(&id, &stored).await {
                Ok(_) => return Ok(()),
                Err(Error::VersionConflict | Error::LockLost) if attempt < SAVE_ATTEMPTS => {
                    tracing::debug!("another request wrote the session first; saving again");
                }
                Err(error) => return Err(record::encode_error(error)),
            }
        }
    }

    async fn load(&self, session_id: &Id) -> session_store::Result<Option<Record>> {
        let Some((id, stored)) = self.find(*session_id).await.map_err(record::decode_error)? else {
            return Ok(None);
        };
        // tower-sessions has no lock to hold across a request: a lock the pessimistic mode
        // took with the read is released at once (a save takes its own).
        self.store
            .release(&id, &stored)
            .await
            .map_err(record::decode_error)?;
        record::record_of(*session_id, &stored).map(Some)
    }

    /// Deletes the session whatever its state and whichever secret it is stored under, as
    /// a logout or `cycle_id` requires.
    async fn delete(&self, session_id: &Id) -> session_store::Result<()> {
        for id in id::session_ids(&self.store, *session_id) {
            self.store.delete(&id).await.map_err(record::encode_error)?;
        }
        Ok(())
    }
}
