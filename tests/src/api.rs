//! Driving session-api (or any layered service) with plain `lambda_http` requests.

use lambda_http::http::{HeaderMap, Method, StatusCode, header};
use lambda_http::tower::ServiceExt;
use lambda_http::{Body, Request, Response};
use serde_json::Value;

use dynamodb_session_store::SessionLayer;
pub use session_api::routes::DemoRoutes;

/// One decoded response.
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The JSON body (`Null` when empty or not JSON).
    pub body: Value,
}

impl Reply {
    /// The `Set-Cookie` header, if any (asserting there is at most one).
    pub fn set_cookie(&self) -> Option<String> {
        let mut all = self.headers.get_all(header::SET_COOKIE).iter();
        let first = all.next().map(|v| v.to_str().unwrap().to_owned());
        assert!(all.next().is_none(), "at most one Set-Cookie");
        first
    }

    /// The `name=value` pair a browser would send back, if a cookie was set.
    pub fn cookie_pair(&self) -> Option<String> {
        self.set_cookie()
            .map(|c| c.split(';').next().unwrap().to_owned())
    }

    /// The `name=value` pair a browser would send back (there must be one).
    pub fn cookie(&self) -> String {
        self.cookie_pair().expect("a Set-Cookie header")
    }
}

/// `value` with its last character replaced by another one — never by itself, so the result
/// always differs from `value` (replacing it with a fixed character would reproduce the
/// genuine value whenever that was the character already there).
pub fn tamper_last(value: &str) -> String {
    let (head, last) = value.split_at(value.len() - 1);
    format!("{head}{}", if last == "A" { "B" } else { "A" })
}

/// A request with an optional `Cookie` header (after an unrelated cookie, as browsers send).
pub fn request(method: Method, path: &str, cookie: Option<&str>, body: &str) -> Request {
    let mut request = Request::new(Body::from(body));
    *request.method_mut() = method;
    *request.uri_mut() = path.parse().unwrap();
    if let Some(cookie) = cookie {
        request.headers_mut().insert(
            header::COOKIE,
            format!("other=1; {cookie}").parse().unwrap(),
        );
    }
    request
}

/// Decodes a response's status, headers and JSON body.
pub fn decode(response: Response<Body>) -> Reply {
    let (parts, body) = response.into_parts();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: serde_json::from_slice(body.as_ref()).unwrap_or(Value::Null),
    }
}

/// Sends one request through session-api wrapped in `layer`, with the demo routes on (as
/// `scripts/run` serves it).
pub async fn call(
    layer: &SessionLayer,
    method: Method,
    path: &str,
    cookie: Option<&str>,
    body: &str,
) -> Reply {
    call_with(DemoRoutes::On, layer, method, path, cookie, body).await
}

/// As [`call`], with the demo routes as given (`Off`: as the template deploys it by default).
pub async fn call_with(
    demo: DemoRoutes,
    layer: &SessionLayer,
    method: Method,
    path: &str,
    cookie: Option<&str>,
    body: &str,
) -> Reply {
    let response = session_api::app_with(layer.clone(), demo, session_api::FUNCTION_TIMEOUT)
        .oneshot(request(method, path, cookie, body))
        .await
        .unwrap();
    decode(response)
}

/// `GET path` through session-api.
pub async fn get(layer: &SessionLayer, path: &str, cookie: Option<&str>) -> Reply {
    call(layer, Method::GET, path, cookie, "").await
}
