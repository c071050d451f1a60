//! The demo routes — the function's contract. JSON in and out; errors as
//! `{"error": "..."}`. Session errors leave the handlers through `?`, as users write them:
//! the session layer answers them (503 with `Retry-After` when the lock or the deadline
//! cannot be met, 409 on a conflict, 413 when the session would be too large, 500 otherwise).
//!
//! | route | effect |
//! |---|---|
//! | `GET /health` | 200, never touches the session |
//! | `GET /counter[?hold_ms=N]` | increments `count`, 200 `{"count": n}`; waits `hold_ms` (0..=5000) between read and save |
//! | `GET /session` | 200 with the session data (`{}` when none), read-only |
//! | `PATCH /session` | merges a JSON object into the data, 200 with the new data; 400 if not an object; 413 if too large |
//! | `POST /session/renew` | new id, same data |
//! | `DELETE /session` | deletes the session and expires the cookie |
//! | `POST /login` | body `{"user": "<id>"}`: binds the session to the user and renews its id, 200 `{"user": "<id>"}`; 400 without a string `user` |
//! | `GET /sessions[?cursor=C]` | the current user's live sessions: 200 `{"sessions": [{"handle", "current", "created_at", "updated_at", "expire_at"}], "next": C?}`; 401 without a user |
//! | `DELETE /sessions` | ends every session of the current user, this one included (cookie expired): 200 `{"revoked": n}`; 401 without a user |
//! | `DELETE /sessions/others` | ends the user's other sessions, keeps this one: 200 `{"revoked": n}`; 401 without a user |
//! | `DELETE /sessions/{handle}` | ends one of the user's sessions: 200 `{"revoked": 1}`; 404 when it is not the user's; 401 without a user |

mod devices;

use std::time::Duration;

use dynamodb_session_store::{RequestSessionExt, Session};
use lambda_http::http::{Method, StatusCode, header::CONTENT_TYPE};
use lambda_http::{Body, Error, Request, RequestExt, Response};
use serde_json::{Value, json};

/// Longest `hold_ms` accepted.
pub const MAX_HOLD_MS: u64 = 5_000;

/// Answers one request. Bad input and unknown routes become JSON responses; session errors
/// are returned for the layer to answer.
///
/// # Errors
///
/// The session's errors, unchanged.
pub async fn handle(request: Request) -> Result<Response<Body>, Error> {
    match route(request).await {
        Ok(response) => Ok(response),
        Err(Failure::Refused(refused)) => Ok(refused.into_response()),
        Err(Failure::Session(error)) => Err(error.into()),
    }
}

/// Why a request was not served.
enum Failure {
    /// Bad input, an unknown route, a wiring mistake: answered here.
    Refused(Refused),
    /// The session store's error: the layer answers it.
    Session(dynamodb_session_store::Error),
}

impl From<dynamodb_session_store::Error> for Failure {
    fn from(error: dynamodb_session_store::Error) -> Self {
        Failure::Session(error)
    }
}

/// A request refused before the session, with its status and message.
#[derive(Debug)]
struct Refused {
    status: StatusCode,
    message: String,
}

impl Failure {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Failure::Refused(Refused {
            status,
            message: message.into(),
        })
    }
}

impl Refused {
    fn into_response(self) -> Response<Body> {
        json_response(self.status, &json!({ "error": self.message }))
    }
}

async fn route(request: Request) -> Result<Response<Body>, Failure> {
    let path = match request.raw_http_path() {
        "" => request.uri().path().to_owned(),
        raw => raw.to_owned(),
    };
    let method = request.method().clone();
    match (path.trim_end_matches('/'), method) {
        ("/health", Method::GET) => Ok(json_response(StatusCode::OK, &json!({ "status": "ok" }))),
        ("/counter", Method::GET) => counter(&request).await,
        ("/session", Method::GET) => Ok(ok(Value::Object(session(&request)?.data().await?))),
        ("/session", Method::PATCH) => patch(&request).await,
        ("/session/renew", Method::POST) => {
            let session = session(&request)?;
            session.renew().await?;
            Ok(ok(Value::Object(session.data().await?)))
        }
        ("/session", Method::DELETE) => {
            session(&request)?.destroy().await?;
            Ok(ok(json!({ "deleted": true })))
        }
        ("/login", Method::POST) => devices::login(&request).await,
        ("/sessions", Method::GET) => devices::list(&request).await,
        ("/sessions", Method::DELETE) => devices::revoke_all(&request).await,
        ("/sessions/others", Method::DELETE) => devices::revoke_others(&request).await,
        (path, Method::DELETE) if path.starts_with("/sessions/") => {
            devices::revoke_one(&request, &path["/sessions/".len()..]).await
        }
        ("/health" | "/counter" | "/session" | "/session/renew" | "/login" | "/sessions", _) => {
            Err(Failure::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed",
            ))
        }
        _ => Err(Failure::new(StatusCode::NOT_FOUND, "no such route")),
    }
}

fn session(request: &Request) -> Result<Session, Failure> {
    request.session().ok_or_else(|| {
        Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the handler is not wrapped in SessionLayer",
        )
    })
}

/// The request's query parameters: Lambda events carry them parsed; a plain request (tests,
/// emulators) only in its URI.
fn query(request: &Request) -> lambda_http::aws_lambda_events::query_map::QueryMap {
    match request.query_string_parameters_ref() {
        Some(query) => query.clone(),
        None => request
            .uri()
            .query()
            .unwrap_or_default()
            .parse()
            .unwrap_or_default(),
    }
}

async fn counter(request: &Request) -> Result<Response<Body>, Failure> {
    let query = query(request);
    let hold_ms = match query.first("hold_ms") {
        None => 0,
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|ms| *ms <= MAX_HOLD_MS)
            .ok_or_else(|| {
                Failure::new(
                    StatusCode::BAD_REQUEST,
                    format!("hold_ms must be an integer from 0 to {MAX_HOLD_MS}"),
                )
            })?,
    };
    let session = session(request)?;
    let count = session.get::<i64>("count").await?.unwrap_or(0) + 1;
    if hold_ms > 0 {
        tokio::time::sleep(Duration::from_millis(hold_ms)).await;
    }
    session.insert("count", count).await?;
    Ok(ok(json!({ "count": count })))
}

async fn patch(request: &Request) -> Result<Response<Body>, Failure> {
    let Ok(Value::Object(changes)) = serde_json::from_slice::<Value>(request.body().as_ref())
    else {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "the body must be a JSON object",
        ));
    };
    let session = session(request)?;
    session.extend(changes).await?;
    Ok(ok(Value::Object(session.data().await?)))
}

fn ok(body: Value) -> Response<Body> {
    json_response(StatusCode::OK, &body)
}

fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        "application/json".parse().expect("static header"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn call(method: Method, uri: &str, body: &str) -> (StatusCode, Value) {
        let request = lambda_http::http::Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::from(body))
            .unwrap();
        let response = handle(request).await.unwrap();
        let status = response.status();
        (
            status,
            serde_json::from_slice(response.body().as_ref()).unwrap(),
        )
    }

    #[tokio::test]
    async fn health_answers_without_a_session_layer() {
        assert_eq!(
            call(Method::GET, "/health", "").await,
            (StatusCode::OK, json!({"status": "ok"}))
        );
    }

    #[tokio::test]
    async fn unknown_routes_and_methods_get_json_errors() {
        let (status, body) = call(Method::GET, "/nope", "").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body["error"].is_string());
        let (status, _) = call(Method::PUT, "/session", "").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    }

    #[tokio::test]
    async fn bad_input_is_refused_before_the_session_is_touched() {
        // No layer is installed: reaching the session would answer 500, not 400.
        let (status, body) = call(Method::PATCH, "/session", "[1, 2]").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let (status, _) = call(Method::PATCH, "/session", "not json").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, body) = call(Method::GET, "/counter?hold_ms=5001", "").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let (status, _) = call(Method::GET, "/counter?hold_ms=-1", "").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn a_missing_layer_is_a_server_error() {
        let (status, body) = call(Method::GET, "/session", "").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(body["error"].as_str().unwrap().contains("SessionLayer"));
    }
}
