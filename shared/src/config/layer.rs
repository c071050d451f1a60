//! The layer's options: read by the same loader as the store's, so that one
//! [`ConfigBuilder`](super::ConfigBuilder) (code, environment, file) configures both.

use std::time::Duration;

use cookie::SameSite;
use http::HeaderName;

use crate::error::{Error, Result};

/// The [`SessionLayer`](crate::SessionLayer)'s options as the configuration sources gave
/// them; `None` leaves the layer's default. [`SessionLayer::new`](crate::SessionLayer::new)
/// takes them from its store's [`Config::layer`](super::Config::layer).
///
/// Each is an option of the loader (`AWS_DYNAMO_DB_SESSION_<OPTION>`, a YAML key, a
/// [`ConfigBuilder`](super::ConfigBuilder) method of the same name). `expire_after` is not
/// here: it is Rack's name for `max_stale` with a persistent cookie, so the loader sets
/// [`Config::max_stale`](super::Config::max_stale) and `persistent_cookie` from it.
///
/// # Examples
///
/// ```
/// use dynamodb_session_store::Config;
///
/// let config = Config::builder()
///     .env([
///         ("AWS_DYNAMO_DB_SESSION_COOKIE_NAME", "sid"),
///         ("AWS_DYNAMO_DB_SESSION_EXPIRE_AFTER", "15m"),
///     ])
///     .build()?;
/// assert_eq!(config.layer.cookie_name.as_deref(), Some("sid"));
/// assert_eq!(config.layer.persistent_cookie, Some(true));
/// assert_eq!(config.max_stale, Some(std::time::Duration::from_secs(900)));
/// # Ok::<(), dynamodb_session_store::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LayerOptions {
    /// The cookie's name (`cookie_name`); default `__Host-session` while the attributes
    /// allow the prefix, `session` otherwise.
    pub cookie_name: Option<String>,
    /// The cookie's `Domain` (`cookie_domain`); default none (host-only).
    pub cookie_domain: Option<String>,
    /// The cookie's `Path` (`cookie_path`); default `/`.
    pub cookie_path: Option<String>,
    /// The `Secure` attribute (`cookie_secure`); default on.
    pub cookie_secure: Option<bool>,
    /// The `HttpOnly` attribute (`cookie_http_only`); default on.
    pub cookie_http_only: Option<bool>,
    /// The `SameSite` attribute (`cookie_same_site`: `Strict`, `Lax` or `None`); default
    /// `Lax`.
    pub cookie_same_site: Option<SameSite>,
    /// Every cookie carries `Max-Age` until its session's expiry (`persistent_cookie`);
    /// default off, on when `expire_after` is set.
    pub persistent_cookie: Option<bool>,
    /// Rack's `defer`: never send `Set-Cookie` (`defer`); default off.
    pub defer: Option<bool>,
    /// Time kept back from a request's deadline (`deadline_margin`); default
    /// [`DEFAULT_DEADLINE_MARGIN`](crate::service::DEFAULT_DEADLINE_MARGIN).
    pub deadline_margin: Option<Duration>,
    /// A request header that carries the signed id when no cookie does, and the response
    /// header it comes back in (`header_name`); default none (see
    /// [`SessionLayer::with_header_name`](crate::SessionLayer::with_header_name)).
    pub header_name: Option<HeaderName>,
}

/// A `SameSite` value as text.
///
/// # Errors
///
/// [`Error::InvalidConfig`] naming `origin` for anything but `Strict`, `Lax` or `None`.
pub(super) fn parse_same_site(value: &str, origin: &str) -> Result<SameSite> {
    match value.to_ascii_lowercase().as_str() {
        "strict" => Ok(SameSite::Strict),
        "lax" => Ok(SameSite::Lax),
        "none" => Ok(SameSite::None),
        _ => Err(Error::invalid(
            origin,
            value,
            "expected Strict, Lax or None",
        )),
    }
}

/// A header name as text, for the session header.
///
/// # Errors
///
/// [`Error::InvalidConfig`] naming `origin` for a name HTTP does not allow, or one the
/// layer or browsers already give a meaning (`Cookie`, `Set-Cookie`).
pub(super) fn parse_header_name(value: &str, origin: &str) -> Result<HeaderName> {
    let name = HeaderName::from_bytes(value.trim().as_bytes())
        .map_err(|_| Error::invalid(origin, value, "expected an HTTP header name"))?;
    if name == http::header::COOKIE || name == http::header::SET_COOKIE {
        return Err(Error::invalid(
            origin,
            value,
            "the cookie headers already carry the session",
        ));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, DEFAULT_MAX_STALE};

    #[test]
    fn the_header_name_is_read_from_the_environment_and_checked() {
        let config = Config::builder()
            .env([("AWS_DYNAMO_DB_SESSION_HEADER_NAME", "X-Session")])
            .build()
            .unwrap();
        assert_eq!(
            config.layer.header_name,
            Some(HeaderName::from_static("x-session"))
        );
        assert_eq!(Config::builder().build().unwrap().layer.header_name, None);
        for bad in ["not a header", "Set-Cookie"] {
            let err = Config::builder()
                .env([("AWS_DYNAMO_DB_SESSION_HEADER_NAME", bad)])
                .build()
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("AWS_DYNAMO_DB_SESSION_HEADER_NAME") && err.contains(bad),
                "{err}"
            );
        }
    }

    #[test]
    fn layer_options_are_read_by_every_source_with_the_builder_first() {
        let config = Config::builder()
            .cookie_name("from-code")
            .env([
                ("AWS_DYNAMO_DB_SESSION_COOKIE_NAME", "from-env"),
                ("AWS_DYNAMO_DB_SESSION_COOKIE_SAME_SITE", "strict"),
                ("AWS_DYNAMO_DB_SESSION_DEFER", "true"),
                ("AWS_DYNAMO_DB_SESSION_DEADLINE_MARGIN", "250ms"),
            ])
            .build()
            .unwrap();
        assert_eq!(config.layer.cookie_name.as_deref(), Some("from-code"));
        assert_eq!(config.layer.cookie_same_site, Some(SameSite::Strict));
        assert_eq!(config.layer.defer, Some(true));
        assert_eq!(
            config.layer.deadline_margin,
            Some(Duration::from_millis(250))
        );
        assert_eq!(config.layer.persistent_cookie, None);
        assert_eq!(config.max_stale, Some(DEFAULT_MAX_STALE));
    }

    #[test]
    fn expire_after_sets_the_one_max_stale_and_a_persistent_cookie() {
        let config = Config::builder()
            .max_stale(Duration::from_secs(3600))
            .env([("AWS_DYNAMO_DB_SESSION_EXPIRE_AFTER", "15m")])
            .build()
            .unwrap();
        assert_eq!(config.max_stale, Some(Duration::from_secs(900)));
        assert_eq!(config.layer.persistent_cookie, Some(true));

        let session_cookie = Config::builder()
            .persistent_cookie(false)
            .expire_after(Duration::from_secs(60))
            .build()
            .unwrap();
        assert_eq!(session_cookie.layer.persistent_cookie, Some(false));

        let err = Config::builder()
            .env([("AWS_DYNAMO_DB_SESSION_EXPIRE_AFTER", "0")])
            .build()
            .unwrap_err()
            .to_string();
        assert!(err.contains("AWS_DYNAMO_DB_SESSION_EXPIRE_AFTER"), "{err}");
    }

    #[test]
    fn a_bad_same_site_names_the_variable_and_the_value() {
        let err = Config::builder()
            .env([("AWS_DYNAMO_DB_SESSION_COOKIE_SAME_SITE", "sometimes")])
            .build()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("AWS_DYNAMO_DB_SESSION_COOKIE_SAME_SITE")
                && err.contains("sometimes")
                && err.contains("expected Strict, Lax or None"),
            "{err}"
        );
    }
}
