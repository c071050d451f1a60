//! `Session` as an axum extractor (feature `axum`), for axum routers served through
//! `lambda_http` and wrapped in [`SessionLayer`](crate::SessionLayer).

use axum_core::extract::FromRequestParts;
use http::StatusCode;
use http::request::Parts;

use crate::session::Session;

/// Extracts the request's [`Session`]. Fails with 500 when the router is not wrapped in
/// [`SessionLayer`](crate::SessionLayer), a wiring mistake.
///
/// # Examples
///
/// ```no_run
/// use axum::{Router, routing::get};
/// use dynamodb_session_store::{Session, SessionLayer, SessionStore};
///
/// async fn count(session: Session) -> String {
///     let n: u64 = session.get("n").await.ok().flatten().unwrap_or(0) + 1;
///     let _ = session.insert("n", n).await;
///     n.to_string()
/// }
///
/// # async fn demo() -> Result<(), lambda_http::Error> {
/// let store = SessionStore::from_env().await?;
/// let app = Router::new().route("/", get(count));
/// let app = lambda_http::tower::ServiceBuilder::new()
///     .layer(SessionLayer::new(store))
///     .service(app);
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
