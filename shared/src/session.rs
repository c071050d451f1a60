//! The per-request session handle the layer puts in the request extensions.
//!
//! The handle is lazy: nothing is read from DynamoDB until the handler first touches the
//! session, and nothing is written unless the data changed, the id must change, or the
//! expiry needs pushing forward. It tracks what happened so the layer can decide, after the
//! handler answered, which single write (if any) to make.

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;

use crate::error::{Error, Result};
use crate::error_handler::ErrorAction;
use crate::id::SessionId;
use crate::serializer::SessionData;
use crate::store::{SessionRecord, SessionStore};

/// A request's session. Cheap to clone; all clones share the same state.
///
/// Get it from the request extensions (`req.extensions().get::<Session>()`, or
/// [`RequestSessionExt::session`](crate::RequestSessionExt::session)); with the `axum` feature
/// it is also an extractor.
///
/// # Examples
///
/// ```no_run
/// use dynamodb_session_store::{RequestSessionExt, Session};
/// use lambda_http::{Body, Request, Response};
///
/// async fn handler(req: Request) -> Result<Response<Body>, lambda_http::Error> {
///     let session = req.session().expect("wrapped in SessionLayer");
///     let visits: u64 = session.get("visits").await?.unwrap_or(0);
///     session.insert("visits", visits + 1).await?;
///     Ok(Response::new(format!("visit number {}", visits + 1).into()))
/// }
/// ```
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("has_cookie", &self.inner.cookie_id.is_some())
            .finish_non_exhaustive()
    }
}

struct Inner {
    store: SessionStore,
    /// The id from a cookie whose signature verified.
    cookie_id: Option<SessionId>,
    /// What the error handler is shown (request line and headers, no body or extensions).
    request: http::request::Parts,
    state: Mutex<State>,
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Load {
    #[default]
    NotLoaded,
    Loaded,
    /// The read failed: this session must not be written in this request.
    Failed,
}

#[derive(Default)]
struct State {
    load: Load,
    /// The stored session, as read (or as last written by this request).
    stored: Option<(SessionId, SessionRecord)>,
    data: SessionData,
    changed: bool,
    renew: bool,
    destroy: bool,
    /// An error the error handler chose to raise: the layer answers with an error response.
    raised: Option<RaisedError>,
}

/// An error the policy raised, remembered for the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RaisedError {
    /// The lock could not be taken in time: 503 with Retry-After.
    LockTimeout,
    /// Another request changed the session first: 409, the client may retry.
    Conflict,
    /// Anything else: 500.
    Failure,
}

/// What the layer must do to the response once the session is finished with.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// The session was read: responses vary by cookie.
    pub(crate) read: bool,
    /// The cookie to send, if any.
    pub(crate) cookie: Option<CookieUpdate>,
    /// Replace the response with an error.
    pub(crate) raised: Option<RaisedError>,
}

/// A change to the client's cookie.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CookieUpdate {
    /// The session was written under `value`'s id.
    Issue {
        /// The signed cookie value.
        value: String,
        /// When the session expires server-side (Unix seconds), if it does.
        expire_at: Option<i64>,
        /// The id is new to the client (new or renewed session): the cookie must be sent.
        /// Otherwise it only needs re-sending when it carries a lifetime that moved.
        new_id: bool,
    },
    /// The session is gone: expire the client's cookie.
    Remove,
}

impl Session {
    pub(crate) fn new(
        store: SessionStore,
        cookie_id: Option<SessionId>,
        request: http::request::Parts,
    ) -> Self {
        Session {
            inner: Arc::new(Inner {
                store,
                cookie_id,
                request,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// Reads a value and deserializes it into `T`. `None` when the key is absent.
    ///
    /// # Errors
    ///
    /// [`Error::Serialization`] when the stored value is not a `T`; a load error the error
    /// handler chose to raise.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let state = self.loaded().await?;
        state
            .data
            .get(key)
            .map(|value| serde_json::from_value(value.clone()).map_err(Error::Serialization))
            .transpose()
    }

    /// Stores a value under `key`. The session is written when the request ends, and only
    /// if the value actually changed.
    ///
    /// # Errors
    ///
    /// [`Error::SessionTooLarge`] when the session would no longer fit in one item: the
    /// insert is not applied and the stored session stays as it was. [`Error::Serialization`]
    /// when `value` cannot be serialized; a load error the error handler chose to raise.
    pub async fn insert<T: Serialize>(&self, key: &str, value: T) -> Result<()> {
        let value = serde_json::to_value(value).map_err(Error::Serialization)?;
        let mut state = self.loaded().await?;
        if state.data.get(key) == Some(&value) {
            return Ok(());
        }
        let previous = state.data.insert(key.to_owned(), value);
        if let Err(e) = self.inner.store.check_size(&state.data) {
            match previous {
                Some(old) => state.data.insert(key.to_owned(), old),
                None => state.data.remove(key),
            };
            return Err(e);
        }
        state.changed = true;
        Ok(())
    }

    /// Merges every entry of `entries` into the session at once: either all are applied or,
    /// if the result would be too large, none.
    ///
    /// # Errors
    ///
    /// As [`insert`](Self::insert).
    pub async fn extend(&self, entries: SessionData) -> Result<()> {
        let mut state = self.loaded().await?;
        let mut merged = state.data.clone();
        merged.extend(entries);
        if merged == state.data {
            return Ok(());
        }
        self.inner.store.check_size(&merged)?;
        state.data = merged;
        state.changed = true;
        Ok(())
    }

    /// Removes `key` and returns its value, deserialized.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub async fn remove<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let mut state = self.loaded().await?;
        let Some(value) = state.data.remove(key) else {
            return Ok(None);
        };
        state.changed = true;
        serde_json::from_value(value)
            .map(Some)
            .map_err(Error::Serialization)
    }

    /// Empties the session. An emptied session is deleted and its cookie removed.
    ///
    /// # Errors
    ///
    /// A load error the error handler chose to raise.
    pub async fn clear(&self) -> Result<()> {
        let mut state = self.loaded().await?;
        if !state.data.is_empty() {
            state.data.clear();
            state.changed = true;
        }
        Ok(())
    }

    /// A copy of all the session's data.
    ///
    /// # Errors
    ///
    /// A load error the error handler chose to raise.
    pub async fn data(&self) -> Result<SessionData> {
        Ok(self.loaded().await?.data.clone())
    }

    /// Moves the session to a fresh id when the request ends, keeping its data and
    /// creation time; the old id stops working. Call it after a login (session fixation).
    ///
    /// # Errors
    ///
    /// A load error the error handler chose to raise.
    pub async fn renew(&self) -> Result<()> {
        self.loaded().await?.renew = true;
        Ok(())
    }

    /// Deletes the session when the request ends and expires its cookie.
    pub async fn destroy(&self) {
        let mut state = self.inner.state.lock().await;
        state.destroy = true;
        state.data.clear();
    }

    /// Loads the session on first use and returns the locked state.
    async fn loaded(&self) -> Result<tokio::sync::MutexGuard<'_, State>> {
        let mut state = self.inner.state.lock().await;
        if state.raised.is_some() {
            return Err(Error::SessionUnavailable);
        }
        if state.load != Load::NotLoaded {
            return Ok(state);
        }
        let Some(id) = &self.inner.cookie_id else {
            state.load = Load::Loaded;
            return Ok(state);
        };
        match self.inner.store.load(id).await {
            Ok(Some(record)) => {
                state.data = record.data.clone();
                state.stored = Some((id.clone(), record));
                state.load = Load::Loaded;
                Ok(state)
            }
            Ok(None) => {
                tracing::debug!("session cookie names no live session; starting a fresh one");
                state.load = Load::Loaded;
                Ok(state)
            }
            Err(error) => {
                state.load = Load::Failed;
                if self.policy(&error) == ErrorAction::Raise {
                    state.raised = Some(raised(&error));
                    Err(error)
                } else {
                    Ok(state)
                }
            }
        }
    }

    fn policy(&self, error: &Error) -> ErrorAction {
        self.inner
            .store
            .config()
            .error_handler
            .handle_error(error, &self.inner.request)
    }

    /// Called by the layer once the handler has answered with `status`: makes the one write
    /// the request needs, and says what the response must carry.
    pub(crate) async fn finish(&self, status: http::StatusCode) -> Outcome {
        let mut state = self.inner.state.lock().await;
        let mut outcome = Outcome {
            read: state.load != Load::NotLoaded,
            raised: state.raised,
            ..Outcome::default()
        };
        if outcome.raised.is_some() || status.is_server_error() {
            self.release(&mut state).await;
            return outcome;
        }
        let emptied = state.changed && state.data.is_empty();
        if state.destroy || emptied {
            // An explicit logout is honoured even when the read failed: deleting cannot
            // overwrite stored data with an empty session.
            if state.load == Load::Failed && !state.destroy {
                return outcome;
            }
            if let Some(id) = &self.inner.cookie_id {
                // Deleting the item also drops its lock.
                if let Err(error) = self.inner.store.delete(id).await {
                    self.write_failed(&error, &mut outcome);
                    self.release(&mut state).await;
                    return outcome;
                }
                outcome.cookie = Some(CookieUpdate::Remove);
            }
            state.stored = None;
            return outcome;
        }
        if state.load != Load::Loaded {
            // Untouched (no call at all) or a failed read (never written over).
            return outcome;
        }
        let store = &self.inner.store;
        let result = match state.stored.take() {
            None if state.changed => store
                .create(&state.data)
                .await
                .map(|(id, record)| Some((id, record, true))),
            None => Ok(None),
            Some((id, record)) => {
                let touch_due = store.touch_due(&record);
                let must_move =
                    state.renew || (id.signed_with_previous_key() && (state.changed || touch_due));
                let record = SessionRecord {
                    data: state.data.clone(),
                    ..record
                };
                // Each branch is one write, and each releases a held lock.
                let written = if must_move {
                    store
                        .renew(&id, &record)
                        .await
                        .map(|(id, r)| Some((id, r, true)))
                } else if state.changed {
                    store
                        .save(&id, &record)
                        .await
                        .map(|r| Some((id.clone(), r, false)))
                } else if touch_due {
                    store
                        .touch(&id, &record)
                        .await
                        .map(|r| Some((id.clone(), r, false)))
                } else {
                    store.release(&id, &record).await.map(|()| None)
                };
                if written.is_err() {
                    state.stored = Some((id, record));
                }
                written
            }
        };
        match result {
            Ok(Some((id, record, new_id))) => {
                outcome.cookie = Some(CookieUpdate::Issue {
                    value: store.cookie_value(&id),
                    expire_at: record.expire_at,
                    new_id,
                });
                state.stored = Some((id, record));
            }
            Ok(None) => {}
            Err(error) => {
                self.write_failed(&error, &mut outcome);
                self.release(&mut state).await;
            }
        }
        outcome
    }

    /// Called by the layer when the handler failed without a response: writes nothing, but
    /// never leaves the session locked.
    pub(crate) async fn abandon(&self) {
        let mut state = self.inner.state.lock().await;
        self.release(&mut state).await;
    }

    /// Releases the lock this request holds, if any; a failure only delays the next request
    /// until the lock expires, so it is logged, not raised.
    async fn release(&self, state: &mut State) {
        let Some((id, record)) = state.stored.take() else {
            return;
        };
        if let Err(error) = self.inner.store.release(&id, &record).await {
            tracing::warn!(%error, "could not release the session lock; it will expire");
        }
    }

    fn write_failed(&self, error: &Error, outcome: &mut Outcome) {
        if self.policy(error) == ErrorAction::Raise {
            outcome.raised = Some(raised(error));
        }
    }
}

fn raised(error: &Error) -> RaisedError {
    match error {
        Error::LockWaitTimeout { .. } => RaisedError::LockTimeout,
        Error::VersionConflict | Error::LockLost => RaisedError::Conflict,
        _ => RaisedError::Failure,
    }
}
