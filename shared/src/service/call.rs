//! One request through the layer: hand the handler a lazy session, bound the handler by the
//! deadline, then make the one write and adjust the response's headers.
//!
//! The handler's future is polled in place, never boxed, so the layer puts no bounds on the
//! wrapped service beyond `Service` itself, and its response body passes through untouched.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures::FutureExt as _;
use futures::future::{BoxFuture, CatchUnwind};
use http::header::{AUTHORIZATION, COOKIE, HeaderValue, PROXY_AUTHORIZATION, SET_COOKIE, VARY};
use http::{Request, Response};
use pin_project_lite::pin_project;

use super::SessionLayer;
use super::answer::{self, log_error};
use crate::deadline::Deadline;
use crate::session::{Failure, Outcome, Parts, Session};

/// The invocation's request id (feature `lambda`), for the log lines of its errors.
fn request_id_of<B>(request: &Request<B>) -> Option<String> {
    #[cfg(feature = "lambda")]
    if let Some(context) = request.extensions().get::<lambda_runtime::Context>() {
        return Some(context.request_id.clone());
    }
    let _ = request;
    None
}

/// Headers whose values the error handler never sees: they are credentials.
const REDACTED: [http::HeaderName; 4] = [COOKIE, AUTHORIZATION, PROXY_AUTHORIZATION, SET_COOKIE];

/// What shows in place of a redacted header value.
const REDACTION: &str = "<redacted>";

/// What shows in place of a redacted query value: plain letters, valid in any query.
const QUERY_REDACTION: &str = "redacted";

/// Whether a header's value may be a credential: the named ones, and any whose name says
/// key, token or secret (`x-api-key`, `x-amz-security-token`, `x-csrf-token`,
/// `x-client-secret`...). A deny-list by pattern, so an application's own credential
/// header is covered without being listed. `HeaderName`s are lower-case.
fn is_credential(name: &http::HeaderName) -> bool {
    let name = name.as_str();
    REDACTED.iter().any(|r| r.as_str() == name)
        || name == "api-key"
        || name == "apikey"
        || name.ends_with("-api-key")
        || name.ends_with("-apikey")
        || name.contains("token")
        || name.contains("secret")
}

/// The service [`SessionLayer`] produces.
#[derive(Debug, Clone)]
pub struct SessionService<S> {
    inner: S,
    layer: SessionLayer,
}

impl<S> SessionService<S> {
    pub(super) fn new(inner: S, layer: SessionLayer) -> Self {
        SessionService { inner, layer }
    }
}

impl<S, ReqBody, ResBody> tower::Service<Request<ReqBody>> for SessionService<S>
where
    S: tower::Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<String>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let layer = self.layer.clone();
        let deadline = layer.deadline_of(&request);
        let session = layer.session_for(&request, deadline);
        request.extensions_mut().insert(session.clone());
        let handler = AssertUnwindSafe(self.inner.call(request)).catch_unwind();
        // The handler is dropped if it is still running half the margin before the deadline;
        // what it holds is released by a quarter of the margin before.
        let timer = deadline.map(|d| {
            let until = d.less(layer.deadline_margin / 2).instant();
            Box::pin(tokio::time::sleep_until(until.into()))
        });
        ResponseFuture {
            stage: Stage::Handler {
                handler,
                timer,
                session: Some(session),
            },
            layer,
        }
    }
}

pin_project! {
    /// The response future of [`SessionService`].
    pub struct ResponseFuture<F: Future, B> {
        #[pin]
        stage: Stage<F, B>,
        layer: SessionLayer,
    }
}

pin_project! {
    #[project = StageProjection]
    enum Stage<F: Future, B> {
        /// The handler runs.
        Handler {
            #[pin]
            handler: CatchUnwind<AssertUnwindSafe<F>>,
            timer: Option<Pin<Box<tokio::time::Sleep>>>,
            session: Option<Session>,
        },
        /// The handler answered: the session's one write, then the response's headers.
        Finishing {
            write: BoxFuture<'static, Outcome>,
            response: Option<Response<B>>,
        },
        /// The handler failed or ran out of time: the lock is released, then the session's
        /// error (if any) is answered, or the failure passed on.
        Abandoning {
            release: BoxFuture<'static, Option<Failure>>,
            // The handler's `Err`; `None` when the deadline came first.
            failure: Option<F::Output>,
        },
        /// The handler panicked: the lock is released, then the panic resumes.
        Unwinding {
            release: BoxFuture<'static, Option<Failure>>,
            panic: Option<Box<dyn std::any::Any + Send>>,
        },
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: From<String>,
{
    type Output = Result<Response<B>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let this = self.as_mut().project();
            let next = match this.stage.project() {
                StageProjection::Handler {
                    handler,
                    timer,
                    session,
                } => match handler.poll(cx) {
                    Poll::Ready(ended) => {
                        let session = session.take().expect("polled after completion");
                        match ended {
                            Ok(Ok(response)) => {
                                let status = response.status();
                                Stage::Finishing {
                                    write: Box::pin(async move {
                                        session.finish(status.is_server_error()).await
                                    }),
                                    response: Some(response),
                                }
                            }
                            Ok(Err(error)) => Stage::Abandoning {
                                release: Box::pin(async move { session.abandon().await }),
                                failure: Some(Err(error)),
                            },
                            Err(panic) => Stage::Unwinding {
                                release: Box::pin(async move { session.abandon().await }),
                                panic: Some(panic),
                            },
                        }
                    }
                    Poll::Pending => {
                        let out_of_time = timer
                            .as_mut()
                            .is_some_and(|timer| timer.as_mut().poll(cx).is_ready());
                        if !out_of_time {
                            return Poll::Pending;
                        }
                        let session = session.take().expect("polled after completion");
                        Stage::Abandoning {
                            release: Box::pin(async move {
                                session.abandon().await;
                                session
                                    .report(
                                        &crate::Error::DeadlineExceeded,
                                        "the handler did not answer before the deadline; answering 503",
                                    )
                                    .await;
                                Some(Failure::Busy)
                            }),
                            failure: None,
                        }
                    }
                },
                StageProjection::Finishing { write, response } => {
                    let outcome = ready!(write.as_mut().poll(cx));
                    let response = response.take().expect("polled after completion");
                    return Poll::Ready(Ok(this.layer.apply(outcome, response)));
                }
                StageProjection::Abandoning { release, failure } => {
                    let met = ready!(release.as_mut().poll(cx));
                    return Poll::Ready(match (met, failure.take()) {
                        (Some(answer), _) => Ok(this.layer.answer(answer)),
                        (None, Some(failed)) => failed,
                        (None, None) => Ok(this.layer.answer(Failure::Busy)),
                    });
                }
                StageProjection::Unwinding { release, panic } => {
                    ready!(release.as_mut().poll(cx));
                    std::panic::resume_unwind(panic.take().expect("polled after completion"));
                }
            };
            self.as_mut().project().stage.set(next);
        }
    }
}

impl SessionLayer {
    /// The request's deadline: a [`Deadline`] in its extensions, else (feature `lambda`) the
    /// Lambda invocation's.
    fn deadline_of<B>(&self, request: &Request<B>) -> Option<Deadline> {
        if let Some(deadline) = request.extensions().get::<Deadline>() {
            return Some(*deadline);
        }
        #[cfg(feature = "lambda")]
        if let Some(context) = request.extensions().get::<lambda_runtime::Context>() {
            return Deadline::from_lambda_millis(context.deadline);
        }
        None
    }

    /// A lazy session: its cookies are verified, and it is read, when the handler first
    /// touches it.
    fn session_for<B>(&self, request: &Request<B>, deadline: Option<Deadline>) -> Session {
        let margin = self.deadline_margin;
        Session::new(Parts {
            store: self.store.clone(),
            cookies: self.cookie.values(request.headers()).collect(),
            request: self.cookie.redact(redacted(request), REDACTION),
            work_until: deadline.map(|d| d.less(margin)),
            cleanup_until: deadline.map(|d| d.less(margin / 4)),
            request_id: request_id_of(request),
            report: log_error,
        })
    }

    /// Adds what the outcome requires to the handler's response.
    fn apply<B: From<String>>(&self, outcome: Outcome, mut response: Response<B>) -> Response<B> {
        if let Some(failure) = outcome.failure {
            response = self.answer(failure);
        }
        if outcome.read {
            for vary in self.cookie.vary() {
                response.headers_mut().append(VARY, vary);
            }
        }
        if let Some((name, value)) = outcome
            .cookie
            .as_ref()
            .and_then(|u| self.cookie.header_for(u))
        {
            response.headers_mut().insert(name, value);
        }
        let cookie = outcome
            .cookie
            .and_then(|update| self.cookie.set_cookie(update));
        // Our values are base64url and the attributes are validated by the cookie crate, so
        // the header value is always valid.
        if let Some(value) = cookie.and_then(|c| HeaderValue::try_from(c.to_string()).ok()) {
            response.headers_mut().append(SET_COOKIE, value);
        }
        response
    }

    fn answer<B: From<String>>(&self, failure: Failure) -> Response<B> {
        answer::response(failure, self.store.config().lock_max_wait_time)
    }
}

/// What the error handler is shown of a request: method, URI, version and headers, with
/// credentials' values replaced.
fn redacted<B>(request: &Request<B>) -> http::request::Parts {
    let mut parts = Request::new(()).into_parts().0;
    parts.method = request.method().clone();
    parts.uri = redacted_uri(request.uri());
    parts.version = request.version();
    parts.headers = request.headers().clone();
    let credentials: Vec<_> = parts
        .headers
        .keys()
        .filter(|name| is_credential(name))
        .cloned()
        .collect();
    for name in credentials {
        if let http::header::Entry::Occupied(mut entry) = parts.headers.entry(name) {
            let count = entry.iter().count();
            entry.insert(HeaderValue::from_static(REDACTION));
            for _ in 1..count {
                entry.append(HeaderValue::from_static(REDACTION));
            }
        }
    }
    parts
}

/// The URI with every query value replaced (names kept): a query can carry a token, a
/// password reset code or a session id.
fn redacted_uri(uri: &http::Uri) -> http::Uri {
    let Some(query) = uri.query() else {
        return uri.clone();
    };
    let query = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) => format!("{name}={QUERY_REDACTION}"),
            None => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&");
    let path_and_query = format!("{}?{query}", uri.path());
    let mut parts = uri.clone().into_parts();
    // The names come from a valid query and the value is plain letters, so this parses;
    // if it ever did not, the path alone still shows no value.
    parts.path_and_query = Some(
        path_and_query
            .parse()
            .unwrap_or_else(|_| http::uri::PathAndQuery::from_static("/")),
    );
    http::Uri::from_parts(parts).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_reach_the_error_handler() {
        let request = Request::builder()
            .uri("/login?next=/home")
            .header(COOKIE, "session=secret-value")
            .header(COOKIE, "other=also-secret")
            .header(AUTHORIZATION, "Bearer token-value")
            .header("x-request-id", "r-1")
            .body(())
            .unwrap();
        let parts = redacted(&request);
        let shown = format!("{:?}", parts.headers);
        for secret in ["secret-value", "also-secret", "token-value"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert_eq!(parts.headers.get_all(COOKIE).iter().count(), 2);
        assert_eq!(parts.headers["x-request-id"], "r-1");
        assert_eq!(parts.uri.path(), "/login");
    }

    #[test]
    fn credential_headers_by_pattern_and_query_values_are_redacted() {
        let request = Request::builder()
            .uri("https://example.com/reset?code=reset-code-1&user=ann-id&flag&empty=")
            .header("x-api-key", "api-key-value")
            .header("X-Goog-Api-Key", "goog-key-value")
            .header("x-amz-security-token", "sts-token-value")
            .header("x-csrf-token", "csrf-value")
            .header("x-client-secret", "client-secret-value")
            .header(PROXY_AUTHORIZATION, "Basic proxy-value")
            .header(SET_COOKIE, "a=set-cookie-value")
            .header("accept", "application/json")
            .header("user-agent", "curl/8")
            .body(())
            .unwrap();
        let parts = redacted(&request);
        let shown = format!("{parts:?}");
        for secret in [
            "api-key-value",
            "goog-key-value",
            "sts-token-value",
            "csrf-value",
            "client-secret-value",
            "proxy-value",
            "set-cookie-value",
            "reset-code-1",
            "ann-id",
        ] {
            assert!(!shown.contains(secret), "{secret} shown in {shown}");
        }
        for name in [
            "x-api-key",
            "x-goog-api-key",
            "x-amz-security-token",
            "x-csrf-token",
            "x-client-secret",
        ] {
            assert_eq!(parts.headers[name], REDACTION, "{name}");
        }
        assert_eq!(parts.headers["accept"], "application/json");
        assert_eq!(parts.headers["user-agent"], "curl/8");
        assert_eq!(parts.uri.path(), "/reset");
        assert_eq!(parts.uri.host(), Some("example.com"));
        assert_eq!(
            parts.uri.query(),
            Some("code=redacted&user=redacted&flag&empty=redacted")
        );
    }

    #[test]
    fn a_uri_without_query_is_unchanged() {
        let request = Request::builder().uri("/a/b").body(()).unwrap();
        assert_eq!(redacted(&request).uri, "/a/b");
    }
}
