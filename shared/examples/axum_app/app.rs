//! The application of the `axum_app` example: one axum `Router` with sessions, whichever
//! host serves it (`lambda_http` on Lambda, `axum::serve` on a local port, a test).
//!
//! `tests/tests/hosts.rs` includes this file, so the integration test drives exactly the
//! router the example serves.

use axum::routing::{get, post};
use axum::{Json, Router};
use dynamodb_session_store::{Error, Session, SessionLayer};
use serde_json::{Value, json};

/// The router, every route behind `layer`:
///
/// | route | what it does to the session | answer |
/// |---|---|---|
/// | `GET /counter` | adds one to `count` (a new session on the first call) | `{"count": n}` |
/// | `GET /session` | reads it, changes nothing | `{"count": n}` (0 without a session) |
/// | `POST /renew` | moves it to a new id, data kept (do this after a login) | `{"count": n}` |
/// | `POST /destroy` | deletes it and expires the cookie (a logout) | `{"destroyed": true}` |
///
/// Handlers take [`Session`] as an extractor and use `?` on the library's [`Error`], which
/// answers 503 with `Retry-After`, 409, 413 or 500 without details.
pub fn app(layer: SessionLayer) -> Router {
    Router::new()
        .route("/counter", get(counter))
        .route("/session", get(show))
        .route("/renew", post(renew))
        .route("/destroy", post(destroy))
        .layer(layer)
}

async fn counter(session: Session) -> Result<Json<Value>, Error> {
    let count: u64 = session.get("count").await?.unwrap_or(0) + 1;
    session.insert("count", count).await?;
    Ok(Json(json!({ "count": count })))
}

async fn show(session: Session) -> Result<Json<Value>, Error> {
    let count: u64 = session.get("count").await?.unwrap_or(0);
    Ok(Json(json!({ "count": count })))
}

async fn renew(session: Session) -> Result<Json<Value>, Error> {
    session.renew().await?;
    let count: u64 = session.get("count").await?.unwrap_or(0);
    Ok(Json(json!({ "count": count })))
}

async fn destroy(session: Session) -> Result<Json<Value>, Error> {
    session.destroy().await?;
    Ok(Json(json!({ "destroyed": true })))
}
