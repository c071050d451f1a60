//! The demo routes — the function's contract. JSON in and out; errors as
//! `{"error": "..."}`. Session errors leave the handlers through `?`, as users write them:
//! the session layer answers them (503 with `Retry-After` when the lock or the deadline
//! cannot be met, 409 on a conflict, 413 when the session would be too large, 500 otherwise).
//!
//! Routes marked *demo* exist only when [`DemoRoutes::On`] (`SESSION_API_DEMO_ROUTES=true`,
//! the template's `DemoRoutes` parameter, off by default): `POST /login` binds any user
//! without a credential, and `hold_ms` holds the function for seconds per request. Off, `POST
//! /login` answers 404 like any unknown route and a request with `hold_ms` answers 400
//! before the session is touched (refused rather than ignored, so a caller relying on it
//! learns at once that it is not there).
//!
//! | route | effect |
//! |---|---|
//! | `GET /health` | 200, never touches the session |
//! | `GET /counter[?hold_ms=N]` | increments `count`, 200 `{"count": n}`; *demo*: waits `hold_ms` (0..=5000) between read and save |
//! | `GET /session` | 200 with the session data (`{}` when none), read-only |
//! | `PATCH /session` | merges a JSON object into the data, 200 with the new data; 400 if not an object; 413 if too large |
//! | `POST /session/renew` | new id, same data |
//! | `DELETE /session` | deletes the session and expires the cookie |
//! | `POST /login` (*demo*) | body `{"user": "<id>"}`: binds the session to the user and renews its id, 200 `{"user": "<id>"}`; 400 without a string `user` |
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

/// The environment variable that turns the demo-only routes on (`true`).
pub const DEMO_ROUTES_VARIABLE: &str = "SESSION_API_DEMO_ROUTES";

/// Whether the demo-only parts of the API are served: `POST /login` and `hold_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DemoRoutes {
    /// Not served: what a deployment gets unless it asks.
    #[default]
    Off,
    /// Served: local runs and tests.
    On,
}

impl DemoRoutes {
    /// From [`DEMO_ROUTES_VARIABLE`]'s value: `true` (any case) turns them on; unset or
    /// `false` leaves them off, and so does any other value, with a warning — a typo must not
    /// open a credential-free login.
    pub fn from_value(value: Option<&str>) -> Self {
        match value.map(str::trim) {
            Some(v) if v.eq_ignore_ascii_case("true") => DemoRoutes::On,
            None | Some("") => DemoRoutes::Off,
            Some(v) if v.eq_ignore_ascii_case("false") => DemoRoutes::Off,
            Some(other) => {
                tracing::warn!(
                    variable = DEMO_ROUTES_VARIABLE,
                    value = other,
                    "expected true or false; the demo routes stay off"
                );
                DemoRoutes::Off
            }
        }
    }

    /// From the process environment.
    pub fn from_env() -> Self {
        Self::from_value(std::env::var(DEMO_ROUTES_VARIABLE).ok().as_deref())
    }
}

/// Answers one request. Bad input and unknown routes become JSON responses; session errors
/// are returned for the layer to answer.
///
/// # Errors
///
/// The session's errors, unchanged.
pub async fn handle(request: Request, demo: DemoRoutes) -> Result<Response<Body>, Error> {
    match route(request, demo).await {
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

async fn route(request: Request, demo: DemoRoutes) -> Result<Response<Body>, Failure> {
    let path = match request.raw_http_path() {
        "" => request.uri().path().to_owned(),
        raw => raw.to_owned(),
    };
    let method = request.method().clone();
    match (path.trim_end_matches('/'), method) {
        ("/health", Method::GET) => Ok(json_response(StatusCode::OK, &json!({ "status": "ok" }))),
        ("/counter", Method::GET) => counter(&request, demo).await,
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
        ("/login", Method::POST) if demo == DemoRoutes::On => devices::login(&request).await,
        ("/sessions", Method::GET) => devices::list(&request).await,
        ("/sessions", Method::DELETE) => devices::revoke_all(&request).await,
        ("/sessions/others", Method::DELETE) => devices::revoke_others(&request).await,
        (path, Method::DELETE) if path.starts_with("/sessions/") => {
            devices::revoke_one(&request, &path["/sessions/".len()..]).await
        }
        ("/login", _) if demo == DemoRoutes::Off => {
            Err(Failure::new(StatusCode::NOT_FOUND, "no such route"))
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

async fn counter(request: &Request, demo: DemoRoutes) -> Result<Response<Body>, Failure> {
    let query = query(request);
    let hold_ms = match query.first("hold_ms") {
        None => 0,
        Some(_) if demo == DemoRoutes::Off => {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                format!("hold_ms is a demo parameter ({DEMO_ROUTES_VARIABLE}=true)"),
            ));
        }
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
        call_with(DemoRoutes::On, method, uri, body).await
    }

    async fn call_with(
        demo: DemoRoutes,
        method: Method,
        uri: &str,
        body: &str,
    ) -> (StatusCode, Value) {
        let request = lambda_http::http::Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::from(body))
            .unwrap();
        let response = handle(request, demo).await.unwrap();
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
    async fn without_demo_routes_login_is_not_found_and_hold_ms_is_refused() {
        // No layer is installed: reaching the session would answer 500.
        let off = DemoRoutes::Off;
        let (status, body) = call_with(off, Method::POST, "/login", r#"{"user":"alice"}"#).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        let (status, _) = call_with(off, Method::GET, "/login", "").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "no 405 hinting it exists");
        for uri in [
            "/counter?hold_ms=0",
            "/counter?hold_ms=5000",
            "/counter?hold_ms=x",
        ] {
            let (status, body) = call_with(off, Method::GET, uri, "").await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
            assert!(body["error"].as_str().unwrap().contains("demo"), "{body}");
        }
        // With them on, the same requests reach the session (500 here: no layer).
        let on = DemoRoutes::On;
        let (status, _) = call_with(on, Method::POST, "/login", r#"{"user":"alice"}"#).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let (status, _) = call_with(on, Method::GET, "/counter?hold_ms=0", "").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let (status, _) = call_with(off, Method::GET, "/counter", "").await;
        assert_eq!(
            status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "the counter itself stays"
        );
    }

    /// The deployed shape: the template's default for `DemoRoutes`, passed to the function
    /// as `SESSION_API_DEMO_ROUTES`, leaves the demo routes off.
    #[tokio::test]
    async fn the_templates_defaults_deploy_without_demo_routes() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml");
        let text = std::fs::read_to_string(path).expect("template.yaml at the workspace root");
        let template: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("valid YAML");
        let default = template["Parameters"]["DemoRoutes"]["Default"]
            .as_str()
            .expect("a DemoRoutes parameter with a default");
        let variables =
            &template["Resources"]["SessionApiFunction"]["Properties"]["Environment"]["Variables"];
        let serde_yaml_ng::Value::Tagged(set) = &variables[DEMO_ROUTES_VARIABLE] else {
            panic!("{DEMO_ROUTES_VARIABLE} is not set from a parameter");
        };
        assert_eq!(set.tag, "Ref");
        assert_eq!(set.value.as_str(), Some("DemoRoutes"));
        let deployed = DemoRoutes::from_value(Some(default));
        assert_eq!(deployed, DemoRoutes::Off);
        let (status, _) = call_with(deployed, Method::POST, "/login", r#"{"user":"a"}"#).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = call_with(deployed, Method::GET, "/counter?hold_ms=5000", "").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn demo_routes_are_on_only_when_asked_for() {
        assert_eq!(DemoRoutes::from_value(None), DemoRoutes::Off);
        assert_eq!(DemoRoutes::from_value(Some("")), DemoRoutes::Off);
        assert_eq!(DemoRoutes::from_value(Some("false")), DemoRoutes::Off);
        assert_eq!(
            DemoRoutes::from_value(Some("yes")),
            DemoRoutes::Off,
            "typos stay off"
        );
        assert_eq!(DemoRoutes::from_value(Some("1")), DemoRoutes::Off);
        assert_eq!(DemoRoutes::from_value(Some("true")), DemoRoutes::On);
        assert_eq!(DemoRoutes::from_value(Some(" TRUE ")), DemoRoutes::On);
    }

    #[tokio::test]
    async fn a_missing_layer_is_a_server_error() {
        let (status, body) = call(Method::GET, "/session", "").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(body["error"].as_str().unwrap().contains("SessionLayer"));
    }
}
