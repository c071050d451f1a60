//! The session's user: binding it after a login, listing the user's sessions and ending
//! them.

use super::{Session, State};
use crate::error::Result;
use crate::keys::SessionId;
use crate::ops::StoreOps as _;
use crate::store::users::UserSessionPage;

impl Session {
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
    /// [`SessionStore::user_sessions`](crate::SessionStore::user_sessions).
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
    /// [`SessionStore::revoke_user_sessions`](crate::SessionStore::revoke_user_sessions).
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
    /// [`SessionStore::revoke_user_session`](crate::SessionStore::revoke_user_session).
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
}
