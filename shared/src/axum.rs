//! axum integration (feature `axum`): [`Session`] as an extractor, and [`Error`] as a
//! response, so `?` works in axum handlers with the same status codes as the layer's own
//! answers (503 with `Retry-After`, 409, 413, 500).

use axum_core::extract::FromRequestParts;
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::error::Error;
use crate::service::answer;
use crate::session::{Failure, Session};

/// Extracts the request's [`Session`]. Fails with 500 when the router is not wrapped in
/// [`SessionLayer`](crate::SessionLayer), a wiring mistake.
///
/// # Examples
///
/// ```no_run
/// use axum::{Router, routing::get};
/// use dynamodb_session_store::{Error, Session, SessionLayer, SessionStore};
///
/// async fn count(session: Session) -> Result<String, Error> {
///     let n: u64 = session.get("n").await?.unwrap_or(0) + 1;
///     session.insert("n", n).await?;
///     Ok(n.to_string())
/// }
///
/// # async fn demo() -> Result<(), lambda_http::Error> {
/// let store = SessionStore::from_env().await?;
/// let app = Router::new()
///     .route("/", get(count))
///     .layer(SessionLayer::new(store));
/// lambda_http::run(app).await
/// # }
/// ```
impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = (StatusCode, &'static str);

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Session>().cloned().ok_or((
            StatusCode::INTERNAL_SERVER_ERROR,
            "the service is not wrapped in SessionLayer",
        ))
    }
}

/// The same answer the layer gives: 503 with `Retry-After` for a lock wait timeout or a
/// passed deadline, 409 for a conflict, 413 for a session too large, 500 otherwise; a JSON
/// body `{"error": "..."}` without details.
impl IntoResponse for Error {
    fn into_response(self) -> Response {
        // The layer answers for the session too, so its Retry-After is the configured wait;
        // here, without the configuration, one second.
        answer::response(Failure::of(&self), std::time::Duration::from_secs(1))
    }
}
