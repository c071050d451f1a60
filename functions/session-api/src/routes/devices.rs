//! "Where am I signed in" and "sign out everywhere": logging in binds the session to a user;
//! the user's sessions are then listed by opaque handle and ended all, all but this one, or
//! one at a time.

use dynamodb_session_store::Session;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};

use super::{Failure, ok, query, session};

/// `POST /login` with `{"user": "<id>"}`.
pub(super) async fn login(request: &Request) -> Result<Response<Body>, Failure> {
    let body = serde_json::from_slice::<Value>(request.body().as_ref()).ok();
    let Some(user) = body
        .as_ref()
        .and_then(|b| b["user"].as_str())
        .filter(|u| !u.is_empty())
    else {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            r#"the body must be {"user": "<a non-empty string>"}"#,
        ));
    };
    session(request)?.set_user(user).await?;
    Ok(ok(json!({ "user": user })))
}

/// `GET /sessions[?cursor=C]`.
pub(super) async fn list(request: &Request) -> Result<Response<Body>, Failure> {
    let cursor = query(request).first("cursor").map(str::to_owned);
    // `None`: the session has no user.
    let Some(page) = session(request)?.user_sessions(cursor.as_deref()).await? else {
        return Err(no_user());
    };
    let mut body = json!({ "sessions": page.sessions });
    if let Some(next) = page.next {
        body["next"] = json!(next);
    }
    Ok(ok(body))
}

/// `DELETE /sessions`: the others, then this one (its cookie is expired).
pub(super) async fn revoke_all(request: &Request) -> Result<Response<Body>, Failure> {
    let session = session(request)?;
    let others = session.revoke_other_sessions().await?.ok_or_else(no_user)?;
    session.destroy().await?;
    Ok(ok(json!({ "revoked": others + 1 })))
}

/// `DELETE /sessions/others`.
pub(super) async fn revoke_others(request: &Request) -> Result<Response<Body>, Failure> {
    let revoked = session(request)?
        .revoke_other_sessions()
        .await?
        .ok_or_else(no_user)?;
    Ok(ok(json!({ "revoked": revoked })))
}

/// `DELETE /sessions/{handle}`.
pub(super) async fn revoke_one(request: &Request, handle: &str) -> Result<Response<Body>, Failure> {
    // Checked first: `revoke_session` answers `false` both for no user and for a handle that
    // is not the user's, and only the latter is a 404.
    let session = bound(request).await?;
    if !session.revoke_session(handle).await? {
        return Err(Failure::new(
            StatusCode::NOT_FOUND,
            "no such session of this user",
        ));
    }
    Ok(ok(json!({ "revoked": 1 })))
}

/// The request's session, if it is bound to a user.
async fn bound(request: &Request) -> Result<Session, Failure> {
    let session = session(request)?;
    match session.user().await? {
        Some(_) => Ok(session),
        None => Err(no_user()),
    }
}

fn no_user() -> Failure {
    Failure::new(
        StatusCode::UNAUTHORIZED,
        "log in first: the session has no user",
    )
}
