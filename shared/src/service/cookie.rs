//! The session cookie: reading the id from `Cookie`, and the `Set-Cookie` an outcome calls for.

use cookie::{Cookie, SameSite};
use http::HeaderMap;
use http::header::COOKIE;

/// Cookie settings; the private default behind [`SessionLayer`](super::SessionLayer)'s
/// `with_*` methods.
#[derive(Debug, Clone)]
pub(crate) struct CookieConfig {
    pub(crate) name: String,
    pub(crate) domain: Option<String>,
    pub(crate) path: String,
    pub(crate) secure: bool,
    pub(crate) http_only: bool,
    pub(crate) same_site: SameSite,
    /// Every session's cookie carries `Max-Age` until the session's expiry.
    pub(crate) persistent: bool,
    pub(crate) defer: bool,
}

impl Default for CookieConfig {
    fn default() -> Self {
        CookieConfig {
            name: "session".into(),
            domain: None,
            path: "/".into(),
            secure: true,
            http_only: true,
            same_site: SameSite::Lax,
            persistent: false,
            defer: false,
        }
    }
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
        /// When the write behind this cookie happened (Unix seconds): `Max-Age` counts from
        /// the same clock reading as `expire_at`, so it is exact.
        written_at: i64,
        /// The id is new to the client (new or renewed session): the cookie must be sent.
        /// Otherwise it only needs re-sending when it carries a lifetime that moved.
        new_id: bool,
        /// The session has its own `max_stale` ("remember me"): its cookie is persistent.
        own_lifetime: bool,
    },
    /// The session is gone: expire the client's cookie.
    Remove,
}

impl CookieConfig {
    /// The values of the request's cookies with our name, in order.
    pub(crate) fn values<'h>(&self, headers: &'h HeaderMap) -> impl Iterator<Item = String> + 'h {
        let name = self.name.clone();
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|header| header.to_str().ok())
            .flat_map(Cookie::split_parse)
            .filter_map(Result::ok)
            .filter(move |cookie| cookie.name() == name)
            .map(|cookie| cookie.value().to_owned())
    }

    /// The `Set-Cookie` an update calls for, or `None` when nothing needs sending.
    pub(crate) fn set_cookie(&self, update: CookieUpdate) -> Option<Cookie<'static>> {
        if self.defer {
            return None;
        }
        let mut cookie = match update {
            CookieUpdate::Remove => {
                let mut cookie = Cookie::new(self.name.clone(), "");
                cookie.make_removal();
                cookie
            }
            CookieUpdate::Issue {
                value,
                expire_at,
                written_at,
                new_id,
                own_lifetime,
            } => {
                let persistent = self.persistent || own_lifetime;
                if !new_id && !persistent {
                    return None;
                }
                let mut cookie = Cookie::new(self.name.clone(), value);
                if let (true, Some(expire_at)) = (persistent, expire_at) {
                    let remaining = expire_at.saturating_sub(written_at).max(0);
                    cookie.set_max_age(cookie::time::Duration::seconds(remaining));
                }
                cookie
            }
        };
        cookie.set_path(self.path.clone());
        if let Some(domain) = &self.domain {
            cookie.set_domain(domain.clone());
        }
        cookie.set_secure(self.secure);
        cookie.set_http_only(self.http_only);
        cookie.set_same_site(self.same_site);
        Some(cookie)
    }
}
