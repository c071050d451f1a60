//! The tower layer that gives every request a [`Session`].
//!
//! Wrap any `Service<http::Request<B>>` answering `http::Response<R>` — a `lambda_http`
//! `service_fn`, an axum `Router`, a hyper service — and every request carries a lazy
//! [`Session`] in its extensions. The response body passes through untouched (streaming
//! works); only headers change. After the handler answers, the layer makes at most one write
//! (`Session::finish`) and adds `Set-Cookie` only when the client's cookie must change.
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

use std::sync::Arc;
use std::time::Duration;

use ::cookie::SameSite;

use crate::session::Session;
use crate::store::SessionStore;

pub use self::call::{ResponseFuture, SessionService};
use self::cookie::CookieConfig;

/// Time kept back from a request's deadline by default (see
/// [`SessionLayer::with_deadline_margin`]).
pub const DEFAULT_DEADLINE_MARGIN: Duration = Duration::from_secs(1);

/// Adds a [`Session`] to every request of the wrapped service.
///
/// Its options come from the store's configuration ([`Config::layer`](crate::Config::layer):
/// the same builder, environment and file as the store's), over these defaults: cookie
/// `__Host-session`, `Path=/`, `Secure`, `HttpOnly`, `SameSite=Lax`, no `Domain`, a
/// browser-session cookie (no `Max-Age`) unless `persistent_cookie` or `expire_after`. The
/// `with_*` methods override them in code. The session itself always ends server-side after
/// its `max_stale` (a day by default), which only the configuration sets.
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
///
/// #[tokio::main]
/// async fn main() -> Result<(), Error> {
///     // AWS_DYNAMO_DB_SESSION_EXPIRE_AFTER=30m and friends configure store and layer alike.
///     let store = SessionStore::from_env().await?;
///     let app = ServiceBuilder::new()
///         .layer(SessionLayer::new(store))
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
    /// A layer storing sessions in `store`, with the options of its configuration
    /// ([`Config::layer`](crate::Config::layer)).
    pub fn new(store: SessionStore) -> Self {
        let options = &store.config().layer;
        let cookie = Arc::new(CookieConfig::from_options(options));
        let deadline_margin = options.deadline_margin.unwrap_or(DEFAULT_DEADLINE_MARGIN);
        SessionLayer {
            store,
            cookie,
            cookie_checked: Arc::default(),
            deadline_margin,
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

    /// Persistent cookies: every cookie carries `Max-Age` until its session's expiry (the
    /// earlier of `max_stale` and `max_age`), re-sent whenever the expiry moves. Off by
    /// default: the cookie dies with the browser, the session at its limit.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), dynamodb_session_store::Error> {
    /// use std::time::Duration;
    /// use dynamodb_session_store::{Config, MemoryStore, SessionLayer, SessionStore};
    ///
    /// // Sessions idle for two weeks end; until then the cookie survives browser restarts.
    /// let config = Config::builder()
    ///     .secret_key("0123456789abcdef0123456789abcdef")
    ///     .max_stale(Duration::from_secs(14 * 24 * 3600))
    ///     .build()?;
    /// let layer = SessionLayer::new(SessionStore::with_backend(config, MemoryStore::new())?)
    ///     .with_persistent_cookie(true);
    /// # Ok(()) }
    /// ```
    pub fn with_persistent_cookie(self, persistent: bool) -> Self {
        self.with_cookie(|c| c.persistent = persistent)
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

    /// The store this layer writes to.
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
