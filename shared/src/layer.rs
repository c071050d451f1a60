//! The tower layer that gives every `lambda_http` request a [`Session`].
//!
//! Wrap any `Service<lambda_http::Request>` — a `service_fn`, an axum `Router` — and the
//! request carries a lazy [`Session`] in its extensions. After the handler answers, the layer
//! makes at most one write and adds `Set-Cookie` only when the client's cookie must change.
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
//! destroyed, a 5xx answer, a handler error.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use cookie::{Cookie, SameSite};
use http::header::{CONTENT_TYPE, COOKIE, HeaderValue, RETRY_AFTER, SET_COOKIE, VARY};
use http::{Response, StatusCode};
use lambda_http::tower::{Layer, Service};
use lambda_http::{Body, IntoResponse};

use crate::session::{CookieUpdate, Outcome, RaisedError, Session};
use crate::store::{SessionStore, now};

/// Cookie settings; the private default behind [`SessionLayer`]'s `with_*` methods.
#[derive(Debug, Clone)]
struct CookieConfig {
    name: String,
    domain: Option<String>,
    path: String,
    secure: bool,
    http_only: bool,
    same_site: SameSite,
    /// Persistent cookies (Max-Age) that follow the session's idle expiry.
    expire_after: Option<Duration>,
    defer: bool,
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
            expire_after: None,
            defer: false,
        }
    }
}

/// Adds a [`Session`] to every request of the wrapped service.
///
/// Defaults: cookie `session`, `Path=/`, `Secure`, `HttpOnly`, `SameSite=Lax`, no `Domain`,
/// a browser-session cookie (no `Max-Age`) unless [`with_expire_after`](Self::with_expire_after).
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
}

impl SessionLayer {
    /// A layer storing sessions in `store`.
    pub fn new(store: SessionStore) -> Self {
        SessionLayer {
            store,
            cookie: Arc::new(CookieConfig::default()),
        }
    }

    fn with_cookie(mut self, change: impl FnOnce(&mut CookieConfig)) -> Self {
        change(Arc::make_mut(&mut self.cookie));
        self
    }

    /// The cookie's name (default `session`).
    pub fn with_cookie_name(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.with_cookie(|c| c.name = name)
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

    /// The `Secure` attribute (default on; turn off only for plain-HTTP local development).
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

    /// Rack's `expire_after`: the session dies after this long without a write
    /// (server-side, overriding `max_stale`), and the cookie gets a matching `Max-Age`,
    /// re-sent whenever the expiry moves.
    pub fn with_expire_after(mut self, idle: Duration) -> Self {
        self.store = self.store.with_lifetimes(None, Some(idle));
        self.with_cookie(|c| c.expire_after = Some(idle))
    }

    /// Absolute lifetime counted from creation (server-side, overriding the configuration's
    /// `max_age`); a persistent cookie never outlives it.
    pub fn with_max_age(mut self, lifetime: Duration) -> Self {
        self.store = self.store.with_lifetimes(Some(lifetime), None);
        self
    }

    /// Rack's `defer`: never send `Set-Cookie` (the application sends the cookie itself, or
    /// the session is only read). Writes still happen.
    pub fn with_defer(self, defer: bool) -> Self {
        self.with_cookie(|c| c.defer = defer)
    }

    /// Reads cookie options from environment variables (`AWS_DYNAMO_DB_SESSION_` +
    /// `COOKIE_NAME`, `COOKIE_DOMAIN`, `COOKIE_PATH`, `COOKIE_SECURE`, `COOKIE_HTTP_ONLY`,
    /// `COOKIE_SAME_SITE` (`Strict`, `Lax`, `None`), `EXPIRE_AFTER` (seconds or `30m`) and
    /// `DEFER`); unset variables keep the current settings.
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
        use crate::config::{ENV_PREFIX, TimeUnit, parse_bool, parse_time};
        for (name, value) in vars {
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

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`SessionLayer`] produces.
#[derive(Debug, Clone)]
pub struct SessionService<S> {
    inner: S,
    layer: SessionLayer,
}

impl<S, B, R> Service<http::Request<B>> for SessionService<S>
where
    S: Service<http::Request<B>, Response = R> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: IntoResponse,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = lambda_http::BoxFuture<'static, Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let session = self.layer.session_for(&request);
        request.extensions_mut().insert(session.clone());
        // The clone that was polled ready is the one to call (tower's readiness contract).
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let layer = self.layer.clone();
        Box::pin(async move {
            // `R` need not be `Send`: turn it into the boxed response future at once.
            let converted = inner.call(request).await.map(IntoResponse::into_response);
            let response = match converted {
                Ok(response) => response.await,
                Err(error) => {
                    session.abandon().await;
                    return Err(error);
                }
            };
            let outcome = session.finish(response.status()).await;
            Ok(layer.apply(outcome, response))
        })
    }
}

impl SessionLayer {
    /// A lazy session for `request`, from the first of its cookies that verifies.
    fn session_for<B>(&self, request: &http::Request<B>) -> Session {
        let mut had_cookie = false;
        let cookie_id = request
            .headers()
            .get_all(COOKIE)
            .iter()
            .filter_map(|header| header.to_str().ok())
            .flat_map(Cookie::split_parse)
            .filter_map(Result::ok)
            .filter(|cookie| cookie.name() == self.cookie.name)
            .find_map(|cookie| {
                had_cookie = true;
                self.store.verify_cookie(cookie.value())
            });
        if had_cookie && cookie_id.is_none() {
            tracing::debug!("session cookie failed verification; a fresh session will be issued");
        }
        let mut parts = http::Request::new(()).into_parts().0;
        parts.method = request.method().clone();
        parts.uri = request.uri().clone();
        parts.version = request.version();
        parts.headers = request.headers().clone();
        Session::new(self.store.clone(), cookie_id, parts)
    }

    /// Adds what the outcome requires to the handler's response.
    fn apply(&self, outcome: Outcome, mut response: Response<Body>) -> Response<Body> {
        if let Some(raised) = outcome.raised {
            response = error_response(raised, self.store.config().lock_max_wait_time);
        }
        if outcome.read {
            response
                .headers_mut()
                .append(VARY, HeaderValue::from_static("Cookie"));
        }
        let cookie = outcome.cookie.and_then(|update| self.set_cookie(update));
        // Our values are base64url and the attributes are validated by the cookie crate, so
        // the header value is always valid.
        if let Some(value) = cookie.and_then(|c| HeaderValue::try_from(c.to_string()).ok()) {
            response.headers_mut().append(SET_COOKIE, value);
        }
        response
    }

    /// The `Set-Cookie` an update calls for, or `None` when nothing needs sending.
    fn set_cookie(&self, update: CookieUpdate) -> Option<Cookie<'static>> {
        let config = &self.cookie;
        if config.defer {
            return None;
        }
        let mut cookie = match update {
            CookieUpdate::Remove => {
                let mut cookie = Cookie::new(config.name.clone(), "");
                cookie.make_removal();
                cookie
            }
            CookieUpdate::Issue {
                value,
                expire_at,
                new_id,
            } => {
                let persistent = config.expire_after.is_some();
                if !new_id && !persistent {
                    return None;
                }
                let mut cookie = Cookie::new(config.name.clone(), value);
                if let (true, Some(expire_at)) = (persistent, expire_at) {
                    let remaining = expire_at.saturating_sub(now()).max(0);
                    cookie.set_max_age(cookie::time::Duration::seconds(remaining));
                }
                cookie
            }
        };
        cookie.set_path(config.path.clone());
        if let Some(domain) = &config.domain {
            cookie.set_domain(domain.clone());
        }
        cookie.set_secure(config.secure);
        cookie.set_http_only(config.http_only);
        cookie.set_same_site(config.same_site);
        Some(cookie)
    }
}

fn error_response(raised: RaisedError, lock_wait: Duration) -> Response<Body> {
    let (status, message) = match raised {
        RaisedError::LockTimeout => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the session is busy with another request; retry shortly",
        ),
        RaisedError::Conflict => (
            StatusCode::CONFLICT,
            "the session was changed by a concurrent request; retry",
        ),
        RaisedError::Failure => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the session store failed",
        ),
    };
    let body = serde_json::json!({ "error": message }).to_string();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if raised == RaisedError::LockTimeout {
        let seconds = lock_wait.as_secs().max(1);
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
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
