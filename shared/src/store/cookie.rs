//! Cookies: a session id signed into its cookie value and verified back, with the secrets
//! read again when a value fails (see [`SessionStore::with_secret_source`]).

use super::SessionStore;
use crate::keys::{self, SessionId};

impl SessionStore {
    /// Checks a cookie value's signature against the current and previous secret keys.
    /// Malformed, truncated and forged values give `None`.
    pub fn verify_cookie(&self, cookie_value: &str) -> Option<SessionId> {
        self.inner.keys.current().verify(cookie_value)
    }

    /// As [`verify_cookie`](Self::verify_cookie), but a value that fails verification makes
    /// the store read its secrets again (see [`with_secret_source`](Self::with_secret_source))
    /// and try once more — giving up on the read at this handle's deadline.
    pub(crate) async fn verify_cookie_refreshing(&self, cookie_value: &str) -> Option<SessionId> {
        let seen = self.inner.keys.current();
        if let Some(id) = seen.verify(cookie_value) {
            return Some(id);
        }
        let refresher = self.inner.refresher.as_ref()?;
        let refresh = refresher.refresh(&self.inner.keys, &seen);
        let refreshed = match self.deadline {
            Some(deadline) => tokio::time::timeout_at(deadline.instant().into(), refresh)
                .await
                .unwrap_or(false),
            None => refresh.await,
        };
        if refreshed {
            return self.verify_cookie(cookie_value);
        }
        None
    }

    /// The signed cookie value for `id`.
    pub fn cookie_value(&self, id: &SessionId) -> String {
        keys::cookie_value(id)
    }
}
