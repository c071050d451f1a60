//! The session header (`SessionLayer::with_header_name`, `..._HEADER_NAME`) through the
//! layer, on the local DynamoDB and on `MemoryStore`: a client that keeps no cookies keeps
//! its session by the header alone; a cookie wins when both come; a forged value is refused
//! as a forged cookie is; destroy answers an empty header.

use dynamodb_session_store::{RequestSessionExt, SessionLayer};
use http::header::{SET_COOKIE, VARY};
use http::{HeaderName, HeaderValue, Request, Response};
use integration_tests::api::tamper_last;
use integration_tests::conformance::{Backend, DynamoDb, Memory};
use tower::{Layer, ServiceExt, service_fn};

type HandlerError = Box<dyn std::error::Error + Send + Sync>;

const HEADER: &str = "x-session";

/// Increments `n`; `/destroy` destroys the session instead.
async fn handler(request: Request<String>) -> Result<Response<String>, HandlerError> {
    let session = request.session().expect("behind the layer");
    if request.uri().path() == "/destroy" {
        session.destroy().await?;
        return Ok(Response::new("destroyed".into()));
    }
    let n: u64 = session.get("n").await?.unwrap_or(0) + 1;
    session.insert("n", n).await?;
    Ok(Response::new(n.to_string()))
}

/// One request through `layer` with the given headers (name, value).
async fn send(layer: &SessionLayer, path: &str, headers: &[(&str, &str)]) -> Response<String> {
    let mut request = Request::new(String::new());
    *request.uri_mut() = path.parse().unwrap();
    for (name, value) in headers {
        request.headers_mut().append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    layer
        .layer(service_fn(handler))
        .oneshot(request)
        .await
        .expect("the layer answers")
}

/// The session header's value in a response, if it has one.
fn header_of(response: &Response<String>) -> Option<String> {
    let mut all = response.headers().get_all(HEADER).iter();
    let value = all.next().map(|v| v.to_str().unwrap().to_owned());
    assert!(all.next().is_none(), "at most one session header");
    value
}

/// The `name=value` pair of the response's `Set-Cookie`.
fn cookie_of(response: &Response<String>) -> String {
    let set_cookie = response.headers()[SET_COOKIE].to_str().unwrap();
    set_cookie.split(';').next().unwrap().to_owned()
}

/// Configured through the environment key, a header-only client counts 1, 2, 3 in one
/// session: the value comes back only when it is new, and a response that read the session
/// varies on the header. With `defer` no `Set-Cookie` is sent, but the header still is.
async fn a_header_only_client_keeps_its_session<B: Backend>() {
    let backend = B::new("header_only").await;
    let store = backend.store(|c| c.env([("AWS_DYNAMO_DB_SESSION_HEADER_NAME", "X-Session")]));
    for defer in [false, true] {
        let layer = SessionLayer::new(store.clone()).with_defer(defer);
        let first = send(&layer, "/", &[]).await;
        assert_eq!(first.body(), "1");
        let value = header_of(&first).expect("a new session's value in the header");
        assert_eq!(first.headers().contains_key(SET_COOKIE), !defer);
        if !defer {
            assert_eq!(cookie_of(&first), format!("__Host-session={value}"));
        }
        for expected in ["2", "3"] {
            let next = send(&layer, "/", &[(HEADER, &value)]).await;
            assert_eq!(next.body(), expected);
            assert_eq!(header_of(&next), None, "an unchanged id is not sent again");
            assert!(!next.headers().contains_key(SET_COOKIE));
            let vary: Vec<_> = next
                .headers()
                .get_all(VARY)
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect();
            assert_eq!(vary, ["Cookie", HEADER], "{vary:?}");
        }
    }
    assert_eq!(backend.count().await, 2, "one session per pass");
}

/// With a cookie of the session's name and the header both in a request, the cookie's
/// session is the one used, even when the cookie does not verify.
async fn a_cookie_wins_over_the_header<B: Backend>() {
    let backend = B::new("header_cookie_wins").await;
    let layer =
        SessionLayer::new(backend.store(|c| c)).with_header_name(HeaderName::from_static(HEADER));
    let by_cookie = cookie_of(&send(&layer, "/", &[]).await);
    let by_header = header_of(&send(&layer, "/", &[]).await).unwrap();
    let both = send(&layer, "/", &[("cookie", &by_cookie), (HEADER, &by_header)]).await;
    assert_eq!(both.body(), "2", "the cookie's session counted");
    assert_eq!(send(&layer, "/", &[(HEADER, &by_header)]).await.body(), "2");
    let (name, value) = by_cookie.split_once('=').unwrap();
    let forged_cookie = format!("{name}={}", tamper_last(value));
    let forged = send(
        &layer,
        "/",
        &[("cookie", &forged_cookie), (HEADER, &by_header)],
    )
    .await;
    assert_eq!(
        forged.body(),
        "1",
        "a cookie that does not verify still hides the header"
    );
    assert_eq!(send(&layer, "/", &[(HEADER, &by_header)]).await.body(), "3");
    assert_eq!(backend.count().await, 3);
}

/// A forged or garbage header value opens nothing, as a forged cookie: the request gets a
/// fresh session and the real one is untouched.
async fn a_forged_header_is_refused<B: Backend>() {
    let backend = B::new("header_forged").await;
    let layer =
        SessionLayer::new(backend.store(|c| c)).with_header_name(HeaderName::from_static(HEADER));
    let value = header_of(&send(&layer, "/", &[]).await).unwrap();
    let (name, _) = cookie_of(&send(&layer, "/", &[]).await)
        .split_once('=')
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .unwrap();
    for bad in [tamper_last(&value), "garbage".to_owned(), String::new()] {
        let by_header = send(&layer, "/", &[(HEADER, &bad)]).await;
        assert_eq!(by_header.body(), "1", "{bad:?} opened a session");
        let fresh = header_of(&by_header).expect("a fresh session's value");
        assert_ne!(fresh, value);
        let as_cookie = format!("{name}={bad}");
        let by_cookie = send(&layer, "/", &[("cookie", &as_cookie)]).await;
        assert_eq!(by_cookie.body(), "1", "refused as the header was");
    }
    assert_eq!(send(&layer, "/", &[(HEADER, &value)]).await.body(), "2");
    assert_eq!(backend.count().await, 8, "two to start, two per forgery");
}

/// Destroy answers an empty header (and the cookie's removal); the old value then opens
/// nothing.
async fn destroy_answers_an_empty_header<B: Backend>() {
    let backend = B::new("header_destroy").await;
    let layer =
        SessionLayer::new(backend.store(|c| c)).with_header_name(HeaderName::from_static(HEADER));
    let value = header_of(&send(&layer, "/", &[]).await).unwrap();
    assert_eq!(send(&layer, "/", &[(HEADER, &value)]).await.body(), "2");
    let destroyed = send(&layer, "/destroy", &[(HEADER, &value)]).await;
    assert_eq!(destroyed.body(), "destroyed");
    assert_eq!(header_of(&destroyed).as_deref(), Some(""), "an empty value");
    assert!(
        cookie_of(&destroyed).ends_with('='),
        "the cookie removed too"
    );
    assert_eq!(backend.count().await, 0);
    let after = send(&layer, "/", &[(HEADER, &value)]).await;
    assert_eq!(after.body(), "1", "the old value opens nothing");
    assert_ne!(header_of(&after).unwrap(), value);
}

on_both!(
    a_header_only_client_keeps_its_session,
    a_cookie_wins_over_the_header,
    a_forged_header_is_refused,
    destroy_answers_an_empty_header,
);
