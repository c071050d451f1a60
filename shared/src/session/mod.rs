//! The per-request session handle the layer puts in the request extensions.
//!
//! The handle is lazy: nothing is read until the handler first touches the session, and it
//! records what the handler asked for (changed data, a renewal, a logout, its own lifetime).
//! What to write once the handler has answered is the service's decision
//! ([`crate::service`]).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{Mutex, MutexGuard};

use crate::config::Concurrency;
use crate::deadline::Deadline;
use crate::error::{Error, Result};
use crate::error_handler::ErrorAction;
use crate::keys::SessionId;
use crate::ops::StoreOps as _;
use crate::serializer::SessionData;
use crate::service::answer::Answer;
use crate::service::{Sole, sole};
use crate::store::users::UserSessionPage;
use crate::store::{SessionRecord, SessionStore};

/// A request's session. Cheap to clone; all clones share the same state.
///
/// Get it from the request extensions (`req.extensions().get::<Session>()`, or
/// [`RequestSessionExt::session`](crate::RequestSessionExt::session)); with the `axum` feature
/// it is also an extractor.
///
/// Every error a method returns is remembered: if the handler then fails with `Err` (as it
/// does when it uses `?`), the layer answers with that error's response — 503 with
/// `Retry-After`, 409, 413 or 500 — rather than let the failure become a bare 5xx. Each
/// such error is logged once (ERROR, or WARN for 409/413/503) with its kind, source chain and
/// the invocation's request id.
///
/// What the handler asks for — data it stores, [`renew`](Self::renew),
/// [`destroy`](Self::destroy), [`set_user`](Self::set_user), [`set_max_stale`](Self::set_max_stale),
/// emptying with [`clear`](Self::clear), and the revocations — either happens or the response
/// says it did not: when its write fails for any reason, the layer answers with the error
/// whatever the handler answered, and sends no `Set-Cookie`. The error handler's
/// `raise_errors` policy decides only for implicit work (a failed read, a touch).
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
            .field("has_cookie", &!self.inner.cookies.is_empty())
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) store: SessionStore,
    /// The values of the request's session cookies, verified on first use.
    pub(crate) cookies: Vec<String>,
    /// What the error handler is shown: method, URI and headers, credentials redacted.
    pub(crate) request: http::request::Parts,
    /// When the session's reads and writes must be done.
    pub(crate) work_until: Option<Deadline>,
    /// When releasing what the request holds must be done.
    pub(crate) cleanup_until: Option<Deadline>,
    pub(crate) state: Mutex<State>,
}

impl Inner {
    /// The store, bounded by the request's work deadline.
    pub(crate) fn work_store(&self) -> SessionStore {
        bounded(&self.store, self.work_until)
    }

    /// The store, bounded by the request's cleanup deadline.
    pub(crate) fn cleanup_store(&self) -> SessionStore {
        bounded(&self.store, self.cleanup_until)
    }

    pub(crate) fn policy(&self, error: &Error) -> ErrorAction {
        self.store
            .config()
            .error_handler
            .handle_error(error, &self.request)
    }
}

fn bounded(store: &SessionStore, deadline: Option<Deadline>) -> SessionStore {
    match deadline {
        Some(deadline) => store.with_deadline(deadline),
        None => store.clone(),
    }
}

#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Load {
    #[default]
    NotLoaded,
    Loaded,
    /// The read failed: this session must not be written over in this request.
    Failed,
}

/// What the handler did to the session; read by the service when the handler has answered.
#[derive(Default)]
pub(crate) struct State {
    /// The id of the first cookie that verified, once checked (`Some(None)`: none did).
    pub(crate) cookie_id: Option<Option<SessionId>>,
    pub(crate) load: Load,
    /// The stored session, as read (or as last written by this request).
    pub(crate) stored: Option<(SessionId, SessionRecord)>,
    pub(crate) data: SessionData,
    pub(crate) changed: bool,
    pub(crate) renew: bool,
    pub(crate) destroy: bool,
    /// A new per-session `max_stale` (`Some(None)`: back to the configured one).
    pub(crate) max_stale: Option<Option<Duration>>,
    /// A new user binding (`Some(None)`: unbound).
    pub(crate) user: Option<Option<String>>,
    /// The id a new or renewed session will get, drawn early when the application asked for
    /// its cookie value.
    pub(crate) next_id: Option<SessionId>,
    /// An error the error handler chose to raise: the response is replaced with its answer.
    pub(crate) raised: Option<Answer>,
    /// The last error a method returned to the application: answered if the handler fails.
    pub(crate) returned: Option<Answer>,
    /// An explicit operation (a revocation) failed: the response is this answer whatever
    /// the handler answers, so a 2xx never claims it happened.
    pub(crate) explicit_failed: Option<Answer>,
    /// The invocation's request id, for the log lines of this request's errors.
    pub(crate) request_id: Option<String>,
    /// The layer has made this request's write (or given up on it): later changes would be
    /// lost, so they are refused.
    pub(crate) closed: bool,
}

impl State {
    /// Remembers `error` for the response, logs it (the one log line it gets, even when
    /// the layer later answers with it) and hands it back.
    fn fail<T>(&mut self, error: Error) -> Result<T> {
        let answer = Answer::for_error(&error);
        crate::service::answer::log_error(
            &error,
            answer,
            self.request_id.as_deref(),
            "a session method returned an error to the handler",
        );
        self.returned = Some(answer);
        Err(error)
    }

    /// As [`fail`](Self::fail), for an explicit operation: the response becomes the error's
    /// answer even if the handler goes on to answer 2xx.
    fn fail_explicit<T>(&mut self, error: Error) -> Result<T> {
        self.explicit_failed = Some(Answer::for_error(&error));
        self.fail(error)
    }
}

impl Session {
    pub(crate) fn new(inner: Inner) -> Self {
        Session {
            inner: Arc::new(inner),
        }
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// The id the session cookies name, under the duplicate-cookie rule
    /// (see `service::cookie::sole`): cookies that verify must all name one session. When
    /// none verifies, a cookie signed with a secret this instance does not know yet makes the
    /// store read its secrets again (at most once per interval) before they are given up on.
    pub(crate) async fn identify(&self, state: &mut State) -> Option<SessionId> {
        if let Some(id) = &state.cookie_id {
            return id.clone();
        }
        let store = self.inner.work_store();
        let values = &self.inner.cookies;
        let verify_all = || values.iter().filter_map(|v| store.verify_cookie(v));
        let mut found = sole(verify_all());
        if matches!(found, Sole::None) && !values.is_empty() {
            // Called for its refresh: afterwards the store knows every secret any of the
            // cookies may be signed with, and all of them are counted again.
            let _ = store.verify_cookie_refreshing(&values[0]).await;
            found = sole(verify_all());
        }
        let id = match found {
            Sole::One(id) => Some(id),
            Sole::None => {
                if !values.is_empty() {
                    tracing::debug!(
                        "session cookie failed verification; a fresh session will be issued"
                    );
                }
                None
            }
            Sole::Ambiguous => {
                tracing::warn!(
                    cookies = values.len(),
                    "session cookies that verify name different sessions (a cookie set by \
                     a sibling domain?); none is trusted and a fresh session will be issued"
                );
                None
            }
        };
        state.cookie_id = Some(id.clone());
        id
    }

    /// Reads a value and deserializes it into `T`. `None` when the key is absent.
    ///
    /// # Errors
    ///
    /// [`Error::Serialization`] when the stored value is not a `T`; a load error the error
    /// handler chose to raise.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let mut state = self.loaded().await?;
        let value = state.data.get(key).cloned();
        match value.map(serde_json::from_value).transpose() {
            Ok(value) => Ok(value),
            Err(e) => state.fail(Error::Serialization(e)),
        }
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
        let value = serde_json::to_value(value);
        let mut state = self.loaded_for_change().await?;
        let value = match value {
            Ok(value) => value,
            Err(e) => return state.fail(Error::Serialization(e)),
        };
        if state.data.get(key) == Some(&value) {
            return Ok(());
        }
        let previous = state.data.insert(key.to_owned(), value);
        if let Err(e) = self.inner.store.check_size(&state.data) {
            match previous {
                Some(old) => state.data.insert(key.to_owned(), old),
                None => state.data.remove(key),
            };
            return state.fail(e);
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
        let mut state = self.loaded_for_change().await?;
        let mut merged = state.data.clone();
        merged.extend(entries);
        if merged == state.data {
            return Ok(());
        }
        if let Err(e) = self.inner.store.check_size(&merged) {
            return state.fail(e);
        }
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
        let mut state = self.loaded_for_change().await?;
        let Some(value) = state.data.remove(key) else {
            return Ok(None);
        };
        state.changed = true;
        match serde_json::from_value(value) {
            Ok(value) => Ok(Some(value)),
            Err(e) => state.fail(Error::Serialization(e)),
        }
    }

    /// Empties the session. An emptied session is deleted (honouring the concurrency mode)
    /// and its cookie removed — unless it is bound to a user or has its own `max_stale`,
    /// which keep it (with no data).
    ///
    /// # Errors
    ///
    /// A load error the error handler chose to raise.
    pub async fn clear(&self) -> Result<()> {
        let mut state = self.loaded_for_change().await?;
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
    /// The move is one atomic write, and only if the session is still as this request read
    /// it (see [`SessionStore::renew`]); otherwise the request answers 409 and nothing moves.
    ///
    /// # Errors
    ///
    /// A load error the error handler chose to raise.
    pub async fn renew(&self) -> Result<()> {
        self.loaded_for_change().await?.renew = true;
        Ok(())
    }

    /// Deletes the session when the request ends and expires its cookie.
    ///
    /// Under optimistic or pessimistic concurrency the session is read first (and locked),
    /// so the delete happens only if nobody wrote since (or only while this request holds the
    /// lock); a lost race answers 409 and deletes nothing. Without concurrency control the
    /// delete needs no read.
    ///
    /// # Errors
    ///
    /// A load error the error handler chose to raise (guarded modes only).
    pub async fn destroy(&self) -> Result<()> {
        let mut state = match self.inner.store.config().concurrency {
            Concurrency::None => self.inner.state.lock().await,
            Concurrency::Optimistic | Concurrency::Pessimistic => self.loaded().await?,
        };
        self.mark_destroyed(&mut state).await
    }

    /// Marks the session to be deleted when the request ends, its cookie expired.
    async fn mark_destroyed(&self, state: &mut State) -> Result<()> {
        if state.closed {
            return state.fail(Error::SessionClosed);
        }
        self.identify(state).await;
        state.destroy = true;
        state.data.clear();
        Ok(())
    }

    /// Gives this session its own `max_stale` — "remember me": the session lives until it has
    /// been unused for `max_stale` (still within `max_age`), its item's `expire_at` follows,
    /// and its cookie becomes persistent (`Max-Age`) for this session only. `None` returns it
    /// to the configured limit.
    ///
    /// # Errors
    ///
    /// A load error the error handler chose to raise; [`Error::InvalidConfig`] for a zero
    /// limit.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn login(session: dynamodb_session_store::Session) -> dynamodb_session_store::Result<()> {
    /// use std::time::Duration;
    /// session.insert("user", "ann").await?;
    /// session.renew().await?;
    /// session.set_max_stale(Some(Duration::from_secs(30 * 24 * 3600))).await?;
    /// # Ok(()) }
    /// ```
    pub async fn set_max_stale(&self, max_stale: Option<Duration>) -> Result<()> {
        let mut state = self.loaded_for_change().await?;
        if max_stale == Some(Duration::ZERO) {
            return state.fail(Error::invalid(
                "Session::set_max_stale",
                "0",
                "must be positive (None returns to the configured limit)",
            ));
        }
        let current = state.stored.as_ref().and_then(|(_, r)| r.max_stale);
        if current != max_stale || state.max_stale.is_some() {
            state.max_stale = Some(max_stale);
            state.changed = true;
        }
        Ok(())
    }

    /// Binds the session to `user` (after a login): the session moves to a fresh id (as
    /// [`renew`](Self::renew) does, against session fixation) and can then be listed and
    /// revoked with the user's other sessions. The binding is kept across renewals. The table
    /// holds only a keyed hash of `user`; the id itself travels sealed in the session's data.
    ///
    /// # Errors
    ///
    /// A load error the error handler chose to raise.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn login(session: dynamodb_session_store::Session) -> dynamodb_session_store::Result<()> {
    /// session.set_user("user-42").await?;
    /// let devices = session.user_sessions(None).await?.expect("bound").sessions;
    /// assert!(devices.iter().any(|d| d.current));
    /// # Ok(()) }
    /// ```
    pub async fn set_user(&self, user: impl Into<String>) -> Result<()> {
        let user = user.into();
        let mut state = self.loaded_for_change().await?;
        if self.bound_user(&state).as_deref() != Some(user.as_str()) {
            state.user = Some(Some(user));
            state.changed = true;
        }
        state.renew = true;
        Ok(())
    }

    /// The user the session is bound to, if any.
    ///
    /// # Errors
    ///
    /// A load error the error handler chose to raise.
    pub async fn user(&self) -> Result<Option<String>> {
        let state = self.loaded().await?;
        Ok(self.bound_user(&state))
    }

    /// One page of the bound user's live sessions (this one marked `current`), or `None`
    /// when the session is bound to no user. Pass a page's `next` to read the following one.
    ///
    /// # Errors
    ///
    /// A load error the error handler chose to raise; as
    /// [`SessionStore::user_sessions`].
    pub async fn user_sessions(&self, cursor: Option<&str>) -> Result<Option<UserSessionPage>> {
        let mut state = self.loaded().await?;
        let Some((user, current)) = self.user_and_id(&state) else {
            return Ok(None);
        };
        let store = self.inner.work_store();
        match store.user_sessions(&user, current.as_ref(), cursor).await {
            Ok(page) => Ok(Some(page)),
            Err(e) => state.fail(e),
        }
    }

    /// Ends the bound user's other sessions ("sign out of all other devices"); returns how
    /// many. `None` when the session is bound to no user.
    ///
    /// # Errors
    ///
    /// A load error the error handler chose to raise; as
    /// [`SessionStore::revoke_user_sessions`].
    pub async fn revoke_other_sessions(&self) -> Result<Option<u64>> {
        let mut state = self.loaded().await?;
        let Some((user, current)) = self.user_and_id(&state) else {
            return Ok(None);
        };
        let store = self.inner.work_store();
        match store.revoke_user_sessions_at(&user, current.as_ref()).await {
            Ok((revoked, revoked_at)) => {
                // The store moved the kept item's binding past the marker; a renewal in this
                // request copies the binding from this record, so it must agree.
                if let Some((_, record)) = &mut state.stored {
                    record.keep_binding_past(revoked_at);
                }
                Ok(Some(revoked))
            }
            Err(e) => state.fail_explicit(e),
        }
    }

    /// Ends one of the bound user's sessions by the handle a listing showed. Returns whether
    /// it was one of the user's; the current session's handle destroys this session.
    ///
    /// # Errors
    ///
    /// A load error the error handler chose to raise; as
    /// [`SessionStore::revoke_user_session`].
    pub async fn revoke_session(&self, handle: &str) -> Result<bool> {
        let mut state = self.loaded().await?;
        let Some(user) = self.bound_user(&state) else {
            return Ok(false);
        };
        if let Some((id, _)) = &state.stored
            && self.inner.store.session_handle(id) == handle
        {
            return self.mark_destroyed(&mut state).await.map(|()| true);
        }
        match self
            .inner
            .work_store()
            .revoke_user_session(&user, handle)
            .await
        {
            Ok(found) => Ok(found),
            Err(e) => state.fail_explicit(e),
        }
    }

    /// The bound user and this session's stored id, when it is bound.
    fn user_and_id(&self, state: &State) -> Option<(String, Option<SessionId>)> {
        let user = self.bound_user(state)?;
        Some((user, state.stored.as_ref().map(|(id, _)| id.clone())))
    }

    fn bound_user(&self, state: &State) -> Option<String> {
        match &state.user {
            Some(user) => user.clone(),
            None => state.stored.as_ref().and_then(|(_, r)| r.user.clone()),
        }
    }

    /// The signed cookie value this session will have once the request ends: the request's
    /// own when the id stays, a fresh one when the session is new, renewed, or moving off a
    /// rotated-out secret (asking commits that move). `None` when the session is destroyed.
    ///
    /// With [`SessionLayer::with_defer`](crate::SessionLayer::with_defer) the layer sends no
    /// `Set-Cookie`; this is what the application sends instead. It is a bearer credential:
    /// log a hash of it, never the value.
    ///
    /// # Errors
    ///
    /// A load error the error handler chose to raise.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use dynamodb_session_store::RequestSessionExt;
    /// use http::{Response, header::SET_COOKIE};
    ///
    /// # async fn handler(req: http::Request<String>) -> Result<Response<String>, Box<dyn std::error::Error + Send + Sync>> {
    /// let session = req.session().expect("wrapped in SessionLayer");
    /// session.insert("seen", true).await?;
    /// let mut response = Response::new(String::from("ok"));
    /// if let Some(value) = session.cookie_value().await? {
    ///     // The layer was built `with_defer(true)`: the application sends the cookie, under
    ///     // the name the layer reads (`SessionLayer::cookie_name`; by default this one).
    ///     let cookie = cookie::Cookie::build(("__Host-session", value)).path("/").secure(true).http_only(true);
    ///     response.headers_mut().append(SET_COOKIE, cookie.to_string().parse()?);
    /// }
    /// # Ok(response) }
    /// ```
    pub async fn cookie_value(&self) -> Result<Option<String>> {
        let mut state = self.loaded().await?;
        if state.destroy {
            return Ok(None);
        }
        if state.load == Load::Failed {
            // Nothing is written after a failed read: the request's own cookie stays.
            let id = state.cookie_id.clone().flatten();
            return Ok(id.map(|id| self.inner.store.cookie_value(&id)));
        }
        let id = match &state.stored {
            Some((id, _)) if !state.renew && !id.signed_with_previous_key() => id.clone(),
            stored => {
                if stored.is_some() {
                    state.renew = true;
                }
                state
                    .next_id
                    .get_or_insert_with(|| self.inner.store.next_id())
                    .clone()
            }
        };
        Ok(Some(self.inner.store.cookie_value(&id)))
    }

    /// As [`loaded`](Self::loaded), for a change: refused once the layer has written the
    /// session, since it would never be stored.
    async fn loaded_for_change(&self) -> Result<MutexGuard<'_, State>> {
        let mut state = self.loaded().await?;
        if state.closed {
            tracing::warn!("a session change after the response's write was refused");
            return state.fail(Error::SessionClosed);
        }
        Ok(state)
    }

    /// Loads the session on first use and returns the locked state.
    async fn loaded(&self) -> Result<MutexGuard<'_, State>> {
        let mut state = self.inner.state.lock().await;
        if let Some(answer) = state.raised {
            state.returned = Some(answer);
            return Err(Error::SessionUnavailable);
        }
        if state.load != Load::NotLoaded {
            return Ok(state);
        }
        let Some(id) = self.identify(&mut state).await else {
            state.load = Load::Loaded;
            return Ok(state);
        };
        match self.inner.work_store().load(&id).await {
            Ok(Some(record)) => {
                state.data = record.data.clone();
                state.stored = Some((id, record));
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
                if self.inner.policy(&error) == ErrorAction::Raise {
                    state.raised = Some(Answer::for_error(&error));
                    state.fail(error)
                } else {
                    Ok(state)
                }
            }
        }
    }
}
