//! The tower layer that gives every request a [`Session`].
//!
//! Wrap any `Service<http::Request<B>>` answering `http::Response<R>` — a `lambda_http`
//! `service_fn`, an axum `Router`, a hyper service — and every request carries a lazy
//! [`Session`] in its extensions. The response body passes through untouched (streaming
//! works); only headers change. After the handler answers, the layer makes at most one write
//! (`finish`) and adds `Set-Cookie` only when the client's cookie must change.
//!
//! | request | DynamoDB calls (no locking) |
//! |---|---|
//! | handler never touches the session | 0 |
//! | no cookie, handler stores data | 1 write (PutItem) |
//! | cookie, handler only reads | 1 GetItem (+1 UpdateItem once per `touch_after`) |
//! | cookie, handler changes data | 1 GetItem + 1 UpdateItem |
//!
//! With pessimistic locking a request that touches an existing session makes exactly two
//! calls when uncontended: the UpdateItem that locks and reads, and the one that saves (or
//! only releases). The lock is released on every path: unchanged, emptied, renewed,
//! destroyed, a 5xx answer, a handler error, a panic, the deadline.

pub(crate) mod answer;
mod call;
mod cookie;
mod finish;

use std::sync::Arc;
use std::time::Duration;

use ::cookie::SameSite;

use crate::config::{ENV_PREFIX, TimeUnit, parse_bool, parse_time, warn_unknown_variables};
use crate::session::Session;
use crate::store::SessionStore;

pub use self::call::{ResponseFuture, SessionService};
use self::cookie::CookieConfig;
pub(crate) use self::cookie::{Sole, sole};

/// Time kept back from a request's deadline by default (see
/// [`SessionLayer::with_deadline_margin`]).
pub const DEFAULT_DEADLINE_MARGIN: Duration = Duration::from_secs(1);

/// Adds a [`Session`] to every request of the wrapped service.
///
/// Defaults: cookie `__Host-session`, `Path=/`, `Secure`, `HttpOnly`, `SameSite=Lax`, no `Domain`,
/// a browser-session cookie (no `Max-Age`) unless [`with_persistent_cookie`](Self::with_persistent_cookie)
/// or [`with_expire_after`](Self::with_expire_after). The session itself always ends
/// server-side after its `max_stale` (a day by default).
///
/// The wrapped service's response body type `B` must implement `From<String>`: the layer's
/// own error answers (503, 409, 413, 500) are small JSON bodies of that type. Every body type
/// `lambda_http`, axum and `http-body-util`'s `Full` use does.
///
/// # Examples
///
/// ```no_run
/// use dynamodb_session_store::{RequestSessionExt, SessionLayer, SessionStore};
/// use lambda_http::{Body, Error, Request, Response, service_fn, tower::ServiceBuilder};
/// use std::time::Duration;
///
/// #[tokio::main]
/// async fn main() -> Result<(), Error> {
///     let store = SessionStore::from_env().await?;
///     let app = ServiceBuilder::new()
///         .layer(SessionLayer::new(store).with_expire_after(Duration::from_secs(30 * 60)))
///         .service(service_fn(|req: Request| async move {
///             let session = req.session().expect("layer installed");
///             session.insert("seen", true).await?;
///             Ok::<_, Error>(Response::new(Body::from("hello")))
///         }));
///     lambda_http::run(app).await
/// }
/// ```
#[derive(Debug, Clone)]
pub struct SessionLayer {
    store: SessionStore,
    cookie: Arc<CookieConfig>,
    /// Whether the cookie settings were checked (and warned about) yet.
    cookie_checked: Arc<std::sync::OnceLock<()>>,
    deadline_margin: Duration,
}

impl SessionLayer {
    /// A layer storing sessions in `store`.
    pub fn new(store: SessionStore) -> Self {
        SessionLayer {
            store,
            cookie: Arc::new(CookieConfig::default()),
            cookie_checked: Arc::default(),
            deadline_margin: DEFAULT_DEADLINE_MARGIN,
        }
    }

    fn with_cookie(mut self, change: impl FnOnce(&mut CookieConfig)) -> Self {
        change(Arc::make_mut(&mut self.cookie));
        self.cookie_checked = Arc::default();
        self
    }

    /// The cookie's name, kept exactly as given. By default it follows the attributes:
    /// `__Host-session` while the cookie is `Secure` with `Path=/` and no `Domain` (so no
    /// sibling subdomain can set it), `session` otherwise.
    ///
    /// A `__Host-` name without those attributes, or a `__Secure-` name without `Secure`, is
    /// kept but warned about when the layer wraps a service: browsers drop such a cookie.
    pub fn with_cookie_name(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.with_cookie(|c| c.name = Some(name))
    }

    /// The cookie's name, as [`with_cookie_name`](Self::with_cookie_name) or the default
    /// gives it: what an application that sends the cookie itself (see
    /// [`with_defer`](Self::with_defer)) names it.
    pub fn cookie_name(&self) -> &str {
        self.cookie.name()
    }

    /// The cookie's `Domain` (default none: host-only).
    pub fn with_domain(self, domain: impl Into<String>) -> Self {
        let domain = domain.into();
        self.with_cookie(|c| c.domain = Some(domain))
    }

    /// The cookie's `Path` (default `/`).
    pub fn with_path(self, path: impl Into<String>) -> Self {
        let path = path.into();
        self.with_cookie(|c| c.path = path)
    }

    /// The `Secure` attribute (default on; turn off only for plain-HTTP local development:
    /// the layer warns when it wraps a service without it).
    pub fn with_secure(self, secure: bool) -> Self {
        self.with_cookie(|c| c.secure = secure)
    }

    /// The `HttpOnly` attribute (default on).
    pub fn with_http_only(self, http_only: bool) -> Self {
        self.with_cookie(|c| c.http_only = http_only)
    }

    /// The `SameSite` attribute (default `Lax`).
    pub fn with_same_site(self, same_site: SameSite) -> Self {
        self.with_cookie(|c| c.same_site = same_site)
    }

    /// `max_stale`: a session ends this long after its last write (server-side,
    /// overriding the configuration's `max_stale`).
    pub fn with_max_stale(mut self, idle: Duration) -> Self {
        self.store = self.store.with_lifetimes(None, Some(idle));
        self
    }

    /// Absolute lifetime counted from creation (server-side, overriding the configuration's
    /// `max_age`). A persistent cookie never outlives it.
    pub fn with_max_age(mut self, lifetime: Duration) -> Self {
        self.store = self.store.with_lifetimes(Some(lifetime), None);
        self
    }

    /// Persistent cookies: every cookie carries `Max-Age` until its session's expiry (the
    /// earlier of `max_stale` and `max_age`), re-sent whenever the expiry moves. Off by
    /// default: the cookie dies with the browser, the session at its limit.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), dynamodb_session_store::Error> {
    /// use std::time::Duration;
    /// use dynamodb_session_store::{SessionLayer, SessionStore};
    ///
    /// // Sessions idle for two weeks end; until then the cookie survives browser restarts.
    /// let layer = SessionLayer::new(SessionStore::from_env().await?)
    ///     .with_max_stale(Duration::from_secs(14 * 24 * 3600))
    ///     .with_persistent_cookie(true);
    /// # Ok(()) }
    /// ```
    pub fn with_persistent_cookie(self, persistent: bool) -> Self {
        self.with_cookie(|c| c.persistent = persistent)
    }

    /// Rack's `expire_after`: [`with_max_stale`](Self::with_max_stale)`(idle)` with a
    /// [persistent cookie](Self::with_persistent_cookie).
    pub fn with_expire_after(self, idle: Duration) -> Self {
        self.with_max_stale(idle).with_persistent_cookie(true)
    }

    /// Rack's `defer`: never send `Set-Cookie` (the application sends the cookie itself,
    /// from [`Session::cookie_value`], or the session is only read). Writes still happen.
    pub fn with_defer(self, defer: bool) -> Self {
        self.with_cookie(|c| c.defer = defer)
    }

    /// Time kept back from a request's deadline (default [`DEFAULT_DEADLINE_MARGIN`]).
    ///
    /// On Lambda (feature `lambda`) the deadline is the invocation's; elsewhere, insert a
    /// [`Deadline`](crate::deadline::Deadline) into the request's extensions. Session reads, writes and
    /// lock waits stop `margin` before it; a handler still running at `margin / 2` before it
    /// is dropped; either way the request answers 503 with `Retry-After` and releases its
    /// lock by `margin / 4` before the deadline — never a platform timeout.
    ///
    /// # Examples
    ///
    /// Off Lambda, a host gives each request its deadline as an extension:
    ///
    /// ```
    /// use std::time::Duration;
    /// use dynamodb_session_store::{Config, MemoryStore, SessionLayer, SessionStore};
    /// use dynamodb_session_store::deadline::Deadline;
    /// use tower::{Layer, ServiceExt, service_fn};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// let config = Config::builder().secret_key("0123456789abcdef0123456789abcdef").build()?;
    /// let layer = SessionLayer::new(SessionStore::with_backend(config, MemoryStore::new())?)
    ///     .with_deadline_margin(Duration::from_millis(200));
    /// let slow = layer.layer(service_fn(|_req: http::Request<String>| async {
    ///     tokio::time::sleep(Duration::from_secs(10)).await;
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    /// }));
    /// let mut request = http::Request::new(String::new());
    /// request.extensions_mut().insert(Deadline::after(Duration::from_millis(500)));
    /// let response = slow.oneshot(request).await?;
    /// assert_eq!(response.status(), 503, "answered before the deadline, not after 10 s");
    /// # Ok(()) }
    /// ```
    pub fn with_deadline_margin(mut self, margin: Duration) -> Self {
        self.deadline_margin = margin;
        self
    }

    /// Reads cookie options from environment variables (`AWS_DYNAMO_DB_SESSION_` +
    /// `COOKIE_NAME`, `COOKIE_DOMAIN`, `COOKIE_PATH`, `COOKIE_SECURE`, `COOKIE_HTTP_ONLY`,
    /// `COOKIE_SAME_SITE` (`Strict`, `Lax`, `None`), `PERSISTENT_COOKIE`, `EXPIRE_AFTER`
    /// (seconds or `30m`) and `DEFER`); unset variables keep the current settings. Unknown
    /// variables under the prefix are warned about, naming the closest option.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) naming the variable and value.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), dynamodb_session_store::Error> {
    /// use dynamodb_session_store::{SessionLayer, SessionStore};
    ///
    /// let layer = SessionLayer::new(SessionStore::from_env().await?)
    ///     .with_env(std::env::vars())?;
    /// # Ok(()) }
    /// ```
    pub fn with_env<K: AsRef<str>, V: AsRef<str>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> crate::Result<Self> {
        let vars: Vec<(K, V)> = vars.into_iter().collect();
        warn_unknown_variables(vars.iter().map(|(name, _)| name.as_ref()));
        for (name, value) in &vars {
            let (name, value) = (name.as_ref(), value.as_ref().trim());
            let Some(option) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            self = match option {
                "COOKIE_NAME" => self.with_cookie_name(value),
                "COOKIE_DOMAIN" => self.with_domain(value),
                "COOKIE_PATH" => self.with_path(value),
                "COOKIE_SECURE" => self.with_secure(parse_bool(value, name)?),
                "COOKIE_HTTP_ONLY" => self.with_http_only(parse_bool(value, name)?),
                "COOKIE_SAME_SITE" => {
                    self.with_same_site(match value.to_ascii_lowercase().as_str() {
                        "strict" => SameSite::Strict,
                        "lax" => SameSite::Lax,
                        "none" => SameSite::None,
                        _ => {
                            return Err(crate::Error::invalid(
                                name,
                                value,
                                "expected Strict, Lax or None",
                            ));
                        }
                    })
                }
                "PERSISTENT_COOKIE" => self.with_persistent_cookie(parse_bool(value, name)?),
                "EXPIRE_AFTER" => {
                    self.with_expire_after(parse_time(value, name, TimeUnit::Seconds)?)
                }
                "DEFER" => self.with_defer(parse_bool(value, name)?),
                _ => self,
            };
        }
        Ok(self)
    }

    /// The store this layer writes to (with the layer's lifetime overrides).
    pub fn store(&self) -> &SessionStore {
        &self.store
    }
}

impl<S> tower::Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        // Once per layer value, not per wrapped service: axum wraps every route.
        self.cookie_checked.get_or_init(|| {
            for warning in self.cookie.warnings() {
                tracing::warn!(cookie = self.cookie.name(), "{warning}");
            }
        });
        SessionService::new(inner, self.clone())
    }
}

/// Access to the [`Session`] the layer put in a request.
pub trait RequestSessionExt {
    /// The request's session, or `None` if the service is not wrapped in [`SessionLayer`].
    fn session(&self) -> Option<Session>;
}

impl<B> RequestSessionExt for http::Request<B> {
    fn session(&self) -> Option<Session> {
        self.extensions().get::<Session>().cloned()
    }
}
