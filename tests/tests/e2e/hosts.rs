//! The layer off Lambda: the `axum_app` example's `Router` served by `axum::serve` on a
//! loopback port and driven over real HTTP by a client with a cookie jar, and a streamed
//! response that passes through the layer chunk by chunk.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use dynamodb_session_store::{Config, Error, MemoryStore, Session, SessionLayer, SessionStore};
use integration_tests::{SECRET, TestTable};
use reqwest::cookie::{CookieStore as _, Jar};
use reqwest::header::SET_COOKIE;
use serde_json::{Value, json};
use tokio::sync::Notify;

/// The example's router, exactly as the example serves it.
#[path = "../../../shared/examples/axum_app/app.rs"]
mod axum_app;

/// How long any one exchange may take before the test fails instead of hanging.
const LIMIT: Duration = Duration::from_secs(20);

/// Serves `router` with `axum::serve` on a free port of 127.0.0.1. The server task ends
/// with the test's runtime.
async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// A client that keeps cookies as a browser does (reqwest's cookie jar).
fn client_with_jar() -> (reqwest::Client, Arc<Jar>) {
    let jar = Arc::new(Jar::default());
    let client = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .timeout(LIMIT)
        .build()
        .unwrap();
    (client, jar)
}

/// The session cookie the jar would send to `url` (`session=...`), if any.
fn jar_cookie(jar: &Jar, url: &reqwest::Url) -> Option<String> {
    let header = jar.cookies(url)?;
    header
        .to_str()
        .unwrap()
        .split("; ")
        .find(|c| c.starts_with("session="))
        .map(str::to_owned)
}

/// One request: its status, `Set-Cookie` headers and JSON body.
async fn send(request: reqwest::RequestBuilder) -> (u16, Vec<String>, Value) {
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    let cookies = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let body = response.bytes().await.expect("the whole body");
    let body = serde_json::from_slice(&body).expect("a JSON body");
    (status, cookies, body)
}

/// Counter 1, 2, 3; renew (a new cookie, the count kept, the old cookie dead); destroy (the
/// cookie expired, the session deleted); then a fresh session counts from 1 again.
/// `stored` tells how many sessions the store holds.
async fn counter_renew_destroy<F, Fut>(layer: SessionLayer, stored: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    let base = format!("http://{}", serve(axum_app::app(layer)).await);
    let url: reqwest::Url = base.parse().unwrap();
    let (client, jar) = client_with_jar();
    let get = |path: &str| client.get(format!("{base}{path}"));
    let post = |path: &str| client.post(format!("{base}{path}"));

    // A new session: the cookie comes back with its attributes; plain HTTP, so not Secure.
    let (status, set_cookie, body) = send(get("/counter")).await;
    assert_eq!((status, body), (200, json!({"count": 1})));
    assert_eq!(set_cookie.len(), 1, "{set_cookie:?}");
    let attributes = &set_cookie[0];
    assert!(attributes.starts_with("session="), "{attributes}");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(attributes.contains(attribute), "{attributes}");
    }
    assert!(!attributes.contains("Secure"), "{attributes}");
    let first_cookie = jar_cookie(&jar, &url).expect("the jar keeps the session cookie");
    assert_eq!(stored().await, 1);

    // The jar sends it back; the cookie does not change, so no Set-Cookie.
    for expected in [2, 3] {
        let (status, set_cookie, body) = send(get("/counter")).await;
        assert_eq!((status, body), (200, json!({"count": expected})));
        assert!(set_cookie.is_empty(), "{set_cookie:?}");
    }
    assert_eq!(jar_cookie(&jar, &url).as_ref(), Some(&first_cookie));

    // Renew: a new id, so a new cookie; the data moves with it.
    let (status, set_cookie, body) = send(post("/renew")).await;
    assert_eq!((status, body), (200, json!({"count": 3})));
    assert_eq!(set_cookie.len(), 1, "{set_cookie:?}");
    let renewed = jar_cookie(&jar, &url).expect("the jar keeps the new cookie");
    assert_ne!(renewed, first_cookie, "renew must change the cookie");
    let (_, _, body) = send(get("/session")).await;
    assert_eq!(body, json!({"count": 3}), "the count survives the renewal");
    assert_eq!(
        stored().await,
        1,
        "the old session is gone, the new one stored"
    );
    // The old cookie names no session any more (a fixed id dies with the renewal).
    let (_, _, body) = send(
        reqwest::Client::new()
            .get(format!("{base}/session"))
            .header("cookie", &first_cookie),
    )
    .await;
    assert_eq!(
        body,
        json!({"count": 0}),
        "the pre-renewal cookie still worked"
    );

    let (_, _, body) = send(get("/counter")).await;
    assert_eq!(body, json!({"count": 4}));

    // Destroy: the item is deleted and the cookie expired, so the jar drops it.
    let (status, set_cookie, body) = send(post("/destroy")).await;
    assert_eq!((status, body), (200, json!({"destroyed": true})));
    assert_eq!(set_cookie.len(), 1, "{set_cookie:?}");
    assert!(
        set_cookie[0].contains("Max-Age=0") || set_cookie[0].contains("Expires="),
        "the cookie must be expired: {}",
        set_cookie[0]
    );
    assert_eq!(
        jar_cookie(&jar, &url),
        None,
        "the jar still holds the cookie"
    );
    assert_eq!(stored().await, 0);

    // The next counter starts a fresh session.
    let (_, set_cookie, body) = send(get("/counter")).await;
    assert_eq!(body, json!({"count": 1}));
    assert_eq!(set_cookie.len(), 1);
    let fresh = jar_cookie(&jar, &url).unwrap();
    assert!(fresh != first_cookie && fresh != renewed);
    assert_eq!(stored().await, 1);
}

#[tokio::test]
async fn the_axum_app_served_by_axum_serve_keeps_sessions_in_dynamodb() {
    let table = TestTable::new("hosts-axum-serve").await;
    let layer = SessionLayer::new(table.store(|c| c)).with_secure(false);
    let table = &table;
    tokio::time::timeout(
        Duration::from_secs(120),
        counter_renew_destroy(layer, || async move { table.items().await.len() }),
    )
    .await
    .expect("the exchange finishes");
}

#[tokio::test]
async fn the_axum_app_served_by_axum_serve_keeps_sessions_in_memory() {
    let memory = MemoryStore::new();
    let config = Config::builder().secret_key(SECRET).build().unwrap();
    let store = SessionStore::with_backend(config, memory.clone()).unwrap();
    let layer = SessionLayer::new(store).with_secure(false);
    let memory = &memory;
    tokio::time::timeout(
        Duration::from_secs(60),
        counter_renew_destroy(layer, || async move { memory.len() }),
    )
    .await
    .expect("the exchange finishes");
}

/// What the streaming handler shares with the test.
#[derive(Clone, Default)]
struct Gate {
    /// Notified by the test once it holds the first chunk.
    release: Arc<Notify>,
    /// Set when the handler produces the last chunk.
    last_produced: Arc<AtomicBool>,
}

/// Writes the session, then streams a first chunk and — only once the test says so — the
/// last one.
async fn gated_stream(State(gate): State<Gate>, session: Session) -> Result<Response, Error> {
    session.insert("streamed", true).await?;
    let chunks = futures::stream::unfold(0, move |step| {
        let gate = gate.clone();
        async move {
            let chunk: &'static [u8] = match step {
                0 => b"first chunk\n",
                1 => {
                    gate.release.notified().await;
                    gate.last_produced.store(true, Ordering::SeqCst);
                    b"last chunk\n"
                }
                _ => return None,
            };
            Some((Ok::<_, Infallible>(Bytes::from_static(chunk)), step + 1))
        }
    });
    Ok(Body::from_stream(chunks).into_response())
}

#[tokio::test]
async fn a_streamed_response_passes_through_the_layer_chunk_by_chunk() {
    let config = Config::builder().secret_key(SECRET).build().unwrap();
    let memory = MemoryStore::new();
    let store = SessionStore::with_backend(config, memory.clone()).unwrap();
    let gate = Gate::default();
    let router = Router::new()
        .route("/stream", get(gated_stream))
        .layer(SessionLayer::new(store).with_secure(false))
        .with_state(gate.clone());
    let addr = serve(router).await;

    let exchange = async {
        let mut response = reqwest::get(format!("http://{addr}/stream")).await.unwrap();
        assert_eq!(response.status(), 200);
        // The head left before the body's end: the session is already written.
        assert!(
            response.headers().contains_key(SET_COOKIE),
            "no Set-Cookie with the head"
        );
        assert_eq!(
            memory.len(),
            1,
            "the session is written before the body streams"
        );

        let mut received = Vec::new();
        while !received.ends_with(b"first chunk\n") {
            let chunk = response.chunk().await.unwrap().expect("more body");
            received.extend_from_slice(&chunk);
        }
        assert_eq!(received, b"first chunk\n");
        assert!(
            !gate.last_produced.load(Ordering::SeqCst),
            "the last chunk exists already"
        );

        // Only now may the handler produce its last chunk.
        gate.release.notify_one();
        while let Some(chunk) = response.chunk().await.unwrap() {
            received.extend_from_slice(&chunk);
        }
        assert_eq!(received, b"first chunk\nlast chunk\n");
        assert!(gate.last_produced.load(Ordering::SeqCst));
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect(
            "the first chunk never reached the client: the response was buffered \
             (the handler sends its last chunk only after the client has the first)",
        );
}

/// Over real HTTP, through hyper: a `Cookie` header carrying a byte that is not valid in a
/// header string (Latin-1 `é` from another app on the domain) still carries the session, and
/// a second valid session cookie (tossed by a sibling domain) opens neither session.
#[tokio::test]
async fn raw_cookie_headers_over_http_keep_the_session_and_refuse_a_tossed_one() {
    let config = Config::builder().secret_key(SECRET).build().unwrap();
    let memory = MemoryStore::new();
    let store = SessionStore::with_backend(config, memory.clone()).unwrap();
    let layer = SessionLayer::new(store).with_secure(false);
    let base = format!("http://{}", serve(axum_app::app(layer)).await);
    let client = reqwest::Client::builder().timeout(LIMIT).build().unwrap();
    let counter = |cookie: Option<Vec<u8>>| {
        let mut request = client.get(format!("{base}/counter"));
        if let Some(raw) = cookie {
            let value = reqwest::header::HeaderValue::from_bytes(&raw).unwrap();
            request = request.header(reqwest::header::COOKIE, value);
        }
        send(request)
    };
    let pair = |set_cookie: &[String]| set_cookie[0].split(';').next().unwrap().to_owned();

    let (_, set_cookie, body) = counter(None).await;
    assert_eq!(body, json!({"count": 1}));
    let victim = pair(&set_cookie);
    assert!(victim.starts_with("session="), "{victim}");
    let raw = [b"theme=caf\xe9; ".as_slice(), victim.as_bytes()].concat();
    let (status, set_cookie, body) = counter(Some(raw)).await;
    assert_eq!((status, body), (200, json!({"count": 2})));
    assert!(set_cookie.is_empty(), "the same session: {set_cookie:?}");

    let (_, set_cookie, _) = counter(None).await;
    let attacker = pair(&set_cookie);
    let tossed = format!("{attacker}; {victim}").into_bytes();
    let (_, _, body) = counter(Some(tossed)).await;
    assert_eq!(
        body,
        json!({"count": 1}),
        "neither the attacker's nor the victim's"
    );
    let (_, _, body) = counter(Some(victim.into_bytes())).await;
    assert_eq!(
        body,
        json!({"count": 3}),
        "the victim's session is untouched"
    );
    assert_eq!(memory.len(), 3, "victim, attacker and the fresh one");
}
