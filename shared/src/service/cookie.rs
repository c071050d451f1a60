//! The session cookie: reading the id from `Cookie`, and the `Set-Cookie` an outcome calls for;
//! and the opt-in session header, which carries the same signed value for clients that keep
//! no cookies.
//!
//! The name defaults to [`HOST_NAME`] whenever the attributes allow the `__Host-` prefix
//! (`Secure`, `Path=/`, no `Domain`): a browser then refuses the cookie from anyone but this
//! host over HTTPS, so a sibling subdomain cannot plant one (cookie tossing). Otherwise it is
//! [`PLAIN_NAME`], and the session's duplicate-cookie rule (`session::sole`) is what keeps a tossed cookie from being used.

use cookie::{Cookie, SameSite};
use http::header::COOKIE;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::config::LayerOptions;
use crate::session::CookieUpdate;

/// The default name when the attributes allow the `__Host-` prefix.
pub(crate) const HOST_NAME: &str = "__Host-session";
/// The default name otherwise.
pub(crate) const PLAIN_NAME: &str = "session";

/// Cookie settings; the private default behind [`SessionLayer`](super::SessionLayer)'s
/// `with_*` methods.
#[derive(Debug, Clone)]
pub(crate) struct CookieConfig {
    /// The configured name; `None` takes the default the attributes allow (see [`Self::name`]).
    pub(crate) name: Option<String>,
    pub(crate) domain: Option<String>,
    pub(crate) path: String,
    pub(crate) secure: bool,
    pub(crate) http_only: bool,
    pub(crate) same_site: SameSite,
    /// Every session's cookie carries `Max-Age` until the session's expiry.
    pub(crate) persistent: bool,
    pub(crate) defer: bool,
    /// The session header: read when no cookie of the name comes, answered whenever a
    /// cookie would be sent (`defer` or not).
    pub(crate) header: Option<HeaderName>,
}

impl Default for CookieConfig {
    fn default() -> Self {
        CookieConfig {
            name: None,
            domain: None,
            path: "/".into(),
            secure: true,
            http_only: true,
            same_site: SameSite::Lax,
            persistent: false,
            defer: false,
            header: None,
        }
    }
}

impl CookieConfig {
    /// The defaults, with what the configuration sets.
    pub(crate) fn from_options(options: &LayerOptions) -> CookieConfig {
        let default = CookieConfig::default();
        CookieConfig {
            name: options.cookie_name.clone(),
            domain: options.cookie_domain.clone(),
            path: options.cookie_path.clone().unwrap_or(default.path),
            secure: options.cookie_secure.unwrap_or(default.secure),
            http_only: options.cookie_http_only.unwrap_or(default.http_only),
            same_site: options.cookie_same_site.unwrap_or(default.same_site),
            persistent: options.persistent_cookie.unwrap_or(default.persistent),
            defer: options.defer.unwrap_or(default.defer),
            header: options.header_name.clone(),
        }
    }

    /// The cookie's name: the configured one, else [`HOST_NAME`] when the attributes meet the
    /// `__Host-` prefix's rules and [`PLAIN_NAME`] when they do not.
    pub(crate) fn name(&self) -> &str {
        match &self.name {
            Some(name) => name,
            None if self.allows_host_prefix() => HOST_NAME,
            None => PLAIN_NAME,
        }
    }

    /// What browsers require of a `__Host-` cookie before they store it.
    fn allows_host_prefix(&self) -> bool {
        self.secure && self.path == "/" && self.domain.is_none()
    }

    /// Settings that weaken the cookie or that browsers reject, as startup warnings. A
    /// configured `__Host-`/`__Secure-` name that its attributes do not allow is warned about
    /// rather than refused: the builder's options are infallible and may come in any order,
    /// and the warning names the fix.
    pub(crate) fn warnings(&self) -> Vec<&'static str> {
        let mut warnings = Vec::new();
        if !self.secure {
            warnings.push(
                "the session cookie is not Secure: it travels over plain HTTP and a network \
                 attacker can read or set it; turn Secure off only for local development",
            );
        }
        let name = self.name();
        let has_prefix = |prefix: &str| {
            name.get(..prefix.len())
                .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
        };
        if has_prefix("__Host-") && !self.allows_host_prefix() {
            warnings.push(
                "the session cookie's name starts with __Host- but it is not Secure with \
                 Path=/ and no Domain: browsers will drop it and every request will start a \
                 fresh session",
            );
        } else if has_prefix("__Secure-") && !self.secure {
            warnings.push(
                "the session cookie's name starts with __Secure- but it is not Secure: \
                 browsers will drop it and every request will start a fresh session",
            );
        }
        warnings
    }

    /// The values that may carry the session id, in order: the request's cookies with our
    /// name, else (when one is configured) the session header's values. A cookie wins even
    /// when it does not verify: the header is for clients that send no cookie at all, and
    /// the session's duplicate rule applies to several header values as to cookies.
    ///
    /// Each `;`-separated pair is parsed on its own, from bytes: a byte that is not valid in
    /// a header string (`theme=caf\xe9`, which lambda_http joins into the one `Cookie`
    /// header from API Gateway's `cookies[]`) loses only the pair it is in.
    pub(crate) fn values<'h>(&self, headers: &'h HeaderMap) -> impl Iterator<Item = String> + 'h {
        let name = self.name().to_owned();
        let cookies: Vec<String> = headers
            .get_all(COOKIE)
            .iter()
            .flat_map(|header| header.as_bytes().split(|byte| *byte == b';'))
            .filter_map(|pair| std::str::from_utf8(pair).ok())
            .filter_map(|pair| Cookie::parse(pair.trim()).ok())
            .filter(move |cookie| cookie.name() == name)
            .map(|cookie| cookie.value().to_owned())
            .collect();
        let from_header: Vec<String> = match &self.header {
            Some(header) if cookies.is_empty() => headers
                .get_all(header)
                .iter()
                .filter_map(|value| value.to_str().ok())
                .map(|value| value.trim().to_owned())
                .collect(),
            _ => Vec::new(),
        };
        cookies.into_iter().chain(from_header)
    }

    /// Whether an issued id must reach the client: it is new to it, or its cookie carries a
    /// lifetime that moved.
    fn must_send(&self, new_id: bool, own_lifetime: bool) -> bool {
        new_id || self.persistent || own_lifetime
    }

    /// The session header an update calls for: the signed value whenever a cookie would be
    /// sent for it (whatever `defer` says: it is about `Set-Cookie` only), an empty value
    /// when the session is gone, which tells the client to drop what it keeps.
    pub(crate) fn header_for(&self, update: &CookieUpdate) -> Option<(HeaderName, HeaderValue)> {
        let name = self.header.clone()?;
        let value = match update {
            CookieUpdate::Remove => HeaderValue::from_static(""),
            CookieUpdate::Issue {
                value,
                new_id,
                own_lifetime,
                ..
            } => {
                if !self.must_send(*new_id, *own_lifetime) {
                    return None;
                }
                // Signed ids are base64url and a dot: always a valid header value.
                HeaderValue::from_str(value).ok()?
            }
        };
        Some((name, value))
    }

    /// The `Vary` values a response that read the session carries: it depends on the
    /// cookie, and on the session header when there is one.
    pub(crate) fn vary(&self) -> impl Iterator<Item = HeaderValue> + '_ {
        std::iter::once(HeaderValue::from_static("Cookie")).chain(
            self.header
                .iter()
                .map(|name| HeaderValue::from(name.clone())),
        )
    }

    /// `parts` with the session header's values replaced by `redaction`: the header is a
    /// credential whatever its name says, so the error handler never sees it.
    pub(crate) fn redact(
        &self,
        mut parts: http::request::Parts,
        redaction: &'static str,
    ) -> http::request::Parts {
        if let Some(name) = &self.header {
            let count = parts.headers.get_all(name).iter().count();
            parts.headers.remove(name);
            for _ in 0..count {
                parts
                    .headers
                    .append(name, HeaderValue::from_static(redaction));
            }
        }
        parts
    }

    /// The `Set-Cookie` an update calls for, or `None` when nothing needs sending.
    pub(crate) fn set_cookie(&self, update: CookieUpdate) -> Option<Cookie<'static>> {
        if self.defer {
            return None;
        }
        let mut cookie = match update {
            CookieUpdate::Remove => {
                let mut cookie = Cookie::new(self.name().to_owned(), "");
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
                if !self.must_send(new_id, own_lifetime) {
                    return None;
                }
                let mut cookie = Cookie::new(self.name().to_owned(), value);
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

impl super::SessionLayer {
    /// Also carries the session in the header `name` (opt-in; the configuration's
    /// `header_name`, `AWS_DYNAMO_DB_SESSION_HEADER_NAME`), for clients that keep no
    /// cookies, such as native and mobile apps. A request with no cookie of the session's
    /// name is read from this header; the response carries the signed value in the same
    /// header whenever a cookie would be sent (a new or renewed session, a moved persistent
    /// expiry), even with [`with_defer`](Self::with_defer), and an empty value when the
    /// session is destroyed. The value is verified exactly as a cookie's.
    ///
    /// Browsers never send such a header on their own, so a cross-site request cannot ride
    /// on it (no `SameSite` needed); but a token kept in JavaScript storage is open to any
    /// script injected into the page, which an `HttpOnly` cookie is not. Cross-origin
    /// browser clients also need it in `Access-Control-Expose-Headers`.
    ///
    /// # Examples
    ///
    /// ```
    /// use dynamodb_session_store::{Config, MemoryStore, SessionLayer, SessionStore};
    ///
    /// let config = Config::builder().secret_key("0123456789abcdef0123456789abcdef").build()?;
    /// let layer = SessionLayer::new(SessionStore::with_backend(config, MemoryStore::new())?)
    ///     .with_header_name(http::HeaderName::from_static("x-session"));
    /// # Ok::<(), dynamodb_session_store::Error>(())
    /// ```
    pub fn with_header_name(self, name: HeaderName) -> Self {
        self.with_cookie(|c| c.header = Some(name))
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(COOKIE, HeaderValue::from_bytes(value).unwrap());
        }
        headers
    }

    fn values(config: &CookieConfig, raw: &[&[u8]]) -> Vec<String> {
        config.values(&headers(raw)).collect()
    }

    #[test]
    fn the_default_name_is_host_prefixed_exactly_when_browsers_allow_it() {
        let mut config = CookieConfig::default();
        assert_eq!(config.name(), "__Host-session");
        assert!(config.warnings().is_empty());

        config.path = "/app".into();
        assert_eq!(
            config.name(),
            "session",
            "a Path other than / forbids __Host-"
        );
        config = CookieConfig {
            domain: Some("example.com".into()),
            ..CookieConfig::default()
        };
        assert_eq!(config.name(), "session", "a Domain forbids __Host-");
        assert!(config.warnings().is_empty());
        config = CookieConfig {
            secure: false,
            ..CookieConfig::default()
        };
        assert_eq!(config.name(), "session", "plain HTTP forbids __Host-");
        assert_eq!(config.warnings().len(), 1);
        assert!(config.warnings()[0].contains("not Secure"));
    }

    #[test]
    fn a_configured_name_is_kept_and_a_prefix_it_cannot_have_is_warned_about() {
        let mut config = CookieConfig {
            name: Some("sid".into()),
            domain: Some("example.com".into()),
            ..CookieConfig::default()
        };
        assert_eq!(config.name(), "sid");
        assert!(config.warnings().is_empty());

        config.name = Some("__Host-sid".into());
        assert_eq!(config.name(), "__Host-sid", "kept as given");
        let warnings = config.warnings();
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("browsers will drop it"),
            "{warnings:?}"
        );

        config.name = Some("__host-sid".into());
        assert_eq!(
            config.warnings().len(),
            1,
            "browsers match the prefix in any case"
        );

        config = CookieConfig {
            name: Some("__Secure-sid".into()),
            secure: false,
            ..CookieConfig::default()
        };
        assert_eq!(
            config.warnings().len(),
            2,
            "not Secure, and the prefix needs it"
        );
        config.secure = true;
        config.domain = Some("example.com".into());
        assert!(config.warnings().is_empty(), "__Secure- allows a Domain");

        config = CookieConfig {
            name: Some("__Host-sid".into()),
            ..CookieConfig::default()
        };
        assert!(
            config.warnings().is_empty(),
            "the defaults meet __Host-'s rules"
        );
    }

    #[test]
    fn an_invalid_byte_in_another_cookie_drops_nothing() {
        let config = CookieConfig::default();
        // Latin-1 `é`: not UTF-8, and not a visible ASCII character either.
        assert_eq!(
            values(&config, &[b"theme=caf\xe9; __Host-session=abc.def; x=1"]),
            ["abc.def"]
        );
        // UTF-8 `é`, which `HeaderValue::to_str` refuses just the same.
        assert_eq!(
            values(&config, &["theme=café; __Host-session=abc.def".as_bytes()]),
            ["abc.def"]
        );
        assert_eq!(
            values(&config, &[b"\xff\xfe", b"a=1;__Host-session=abc.def;;"]),
            ["abc.def"],
            "a broken header of its own, no space after ';', empty pairs"
        );
        assert!(
            values(&config, &[b"__Host-session=ab\xe9c"]).is_empty(),
            "our own cookie with a bad byte is not ours"
        );
    }

    #[test]
    fn every_cookie_of_the_name_is_returned_in_order_and_no_other() {
        let config = CookieConfig {
            name: Some("session".into()),
            ..CookieConfig::default()
        };
        assert_eq!(
            values(
                &config,
                &[
                    b"session=one; Session=no; session_x=no; xsession=no",
                    b"session=two"
                ]
            ),
            ["one", "two"]
        );
        assert!(values(&config, &[b"__Host-session=no"]).is_empty());
    }

    #[test]
    fn the_session_header_is_read_only_without_a_cookie_and_redacted() {
        let config = CookieConfig {
            header: Some(HeaderName::from_static("x-session")),
            ..CookieConfig::default()
        };
        let mut headers = headers(&[b"a=1"]);
        headers.append("x-session", HeaderValue::from_static(" abc.def "));
        assert_eq!(config.values(&headers).collect::<Vec<_>>(), ["abc.def"]);
        headers.append(COOKIE, HeaderValue::from_static("__Host-session=ghi.jkl"));
        assert_eq!(
            config.values(&headers).collect::<Vec<_>>(),
            ["ghi.jkl"],
            "the cookie wins"
        );
        assert_eq!(
            CookieConfig::default().values(&headers).count(),
            1,
            "no header without the option"
        );

        let mut request = http::Request::new(());
        *request.headers_mut() = headers;
        let parts = config.redact(request.into_parts().0, "<redacted>");
        assert_eq!(parts.headers["x-session"], "<redacted>");
        assert_eq!(parts.headers.get_all("x-session").iter().count(), 1);
    }

    #[test]
    fn the_session_header_follows_the_cookie_and_ignores_defer() {
        let config = CookieConfig {
            header: Some(HeaderName::from_static("x-session")),
            defer: true,
            ..CookieConfig::default()
        };
        let issue = |new_id| CookieUpdate::Issue {
            value: "abc.def".into(),
            expire_at: Some(100),
            written_at: 10,
            new_id,
            own_lifetime: false,
        };
        assert_eq!(config.set_cookie(issue(true)), None, "defer: no Set-Cookie");
        let (name, value) = config.header_for(&issue(true)).unwrap();
        assert_eq!(
            (name.as_str(), value.to_str().unwrap()),
            ("x-session", "abc.def")
        );
        assert_eq!(config.header_for(&issue(false)), None, "unchanged id");
        let (_, removed) = config.header_for(&CookieUpdate::Remove).unwrap();
        assert!(removed.is_empty());
        assert_eq!(CookieConfig::default().header_for(&issue(true)), None);
    }

    #[test]
    fn set_cookie_uses_the_resolved_name() {
        let config = CookieConfig::default();
        let removal = config.set_cookie(CookieUpdate::Remove).unwrap();
        assert_eq!(removal.name(), "__Host-session");
        assert_eq!(removal.path(), Some("/"));
        assert_eq!(removal.secure(), Some(true));
        assert_eq!(removal.domain(), None);
    }

    #[test]
    fn the_configuration_sets_the_cookie_over_the_defaults() {
        let options = LayerOptions {
            cookie_path: Some("/app".into()),
            cookie_secure: Some(false),
            ..LayerOptions::default()
        };
        let config = CookieConfig::from_options(&options);
        assert_eq!(
            config.name(),
            PLAIN_NAME,
            "no __Host- name without Secure and /"
        );
        assert_eq!((config.path.as_str(), config.secure), ("/app", false));
        assert!(config.http_only && !config.persistent && !config.defer);
        assert_eq!(config.same_site, SameSite::Lax);
        assert_eq!(
            CookieConfig::from_options(&LayerOptions::default()).name(),
            HOST_NAME
        );
    }
}
