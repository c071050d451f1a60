//! What the handler asks for happens, or the answer says it did not (issue 18, items 1-2):
//! a login as the first request creates the session; an explicit operation whose write fails
//! (a logout, an emptying, a renewal, a binding, a revocation) is answered with the layer's
//! error, never the handler's 2xx, and sends no `Set-Cookie`. Every case runs under each
//! concurrency mode; the fault cases on the local DynamoDB, where a single operation can be
//! made to fail on every attempt.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dynamodb_session_store::{
    Concurrency, Config, Error, MemoryStore, RequestSessionExt, SessionLayer, SessionStore,
};
use integration_tests::api::{Reply, decode, request};
use integration_tests::{FailOperations, SECRET, TestTable};
use lambda_http::http::{Method, StatusCode, header};
use lambda_http::tower::{Layer, ServiceExt, service_fn};
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};

/// A user id no other test (or run) uses, so a listing counts only this test's sessions.
fn unique_user(test: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "user-{test}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn json_reply(value: Value) -> Response<Body> {
    let mut response = Response::new(Body::from(value.to_string()));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
    response
}

/// The handler: every session call goes through `?`, so a failing call returns `Err`.
/// `/swallow/...` paths call the same operation but ignore its error and answer 200, as a
/// careless handler would.
async fn handle(request: Request) -> Result<Response<Body>, Error> {
    let session = request.session().expect("behind the layer");
    let body: Value = serde_json::from_slice(request.body().as_ref()).unwrap_or(Value::Null);
    let path = request.uri().path().to_owned();
    let reply = match path.as_str() {
        "/put" => {
            session.insert("n", body["n"].clone()).await?;
            json!({ "ok": true })
        }
        "/get" => Value::Object(session.data().await?),
        "/login" => {
            session.set_user(body["user"].as_str().unwrap()).await?;
            json!({ "ok": true })
        }
        "/remember" => {
            session
                .set_max_stale(Some(Duration::from_secs(30 * 24 * 3600)))
                .await?;
            json!({ "ok": true })
        }
        "/sessions" => {
            let page = session.user_sessions(None).await?;
            let sessions = page.map(|p| p.sessions).unwrap_or_default();
            json!({
                "count": sessions.len(),
                "current": sessions.iter().filter(|s| s.current).count(),
            })
        }
        "/renew" => {
            session.renew().await?;
            json!({ "ok": true })
        }
        "/destroy" => {
            session.destroy().await?;
            json!({ "ok": true })
        }
        "/clear" => {
            session.clear().await?;
            json!({ "ok": true })
        }
        "/revoke-others" => json!({ "revoked": session.revoke_other_sessions().await? }),
        "/swallow/revoke-others" => {
            let _ignored = session.revoke_other_sessions().await;
            json!({ "ok": true })
        }
        other => panic!("no route {other}"),
    };
    Ok(json_reply(reply))
}

async fn send(layer: &SessionLayer, path: &str, cookie: Option<&str>, body: Value) -> Reply {
    let app = layer.layer(service_fn(handle));
    let response = app
        .oneshot(request(Method::POST, path, cookie, &body.to_string()))
        .await
        .unwrap_or_else(|e| panic!("{path}: the layer passed the handler's error on: {e}"));
    decode(response)
}

fn configure(
    mode: Concurrency,
) -> impl FnOnce(dynamodb_session_store::ConfigBuilder) -> dynamodb_session_store::ConfigBuilder {
    move |c| {
        c.concurrency(mode)
            .lock_max_wait_time(Duration::from_millis(300))
    }
}

fn memory_layer(mode: Concurrency) -> SessionLayer {
    let config = configure(mode)(Config::builder().secret_key(SECRET))
        .build()
        .unwrap();
    SessionLayer::new(SessionStore::with_backend(config, MemoryStore::new()).unwrap())
}

/// A layer on a fresh table whose operations can be made to fail.
async fn dynamodb_layer(
    test: &str,
    mode: Concurrency,
) -> (TestTable, FailOperations, SessionLayer) {
    let (table, _calls, faults) = TestTable::instrumented(test).await;
    let layer = SessionLayer::new(table.store(configure(mode)));
    (table, faults, layer)
}

fn assert_not_2xx_without_cookie(reply: &Reply, what: &str) {
    assert!(
        !reply.status.is_success(),
        "{what}: answered {} {:?}",
        reply.status,
        reply.body
    );
    assert_eq!(
        reply.set_cookie(),
        None,
        "{what}: a Set-Cookie claims it happened"
    );
}

// ---- item 1: a bound or own-lifetime session is never empty ------------------------------

async fn first_request_login(layer: SessionLayer, test: &str) {
    let user = unique_user(test);
    let login = send(&layer, "/login", None, json!({ "user": user })).await;
    assert_eq!(login.status, StatusCode::OK, "{:?}", login.body);
    let cookie = login.cookie();
    let listed = send(&layer, "/sessions", Some(&cookie), Value::Null).await;
    assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
    assert_eq!(listed.body, json!({ "count": 1, "current": 1 }));

    // Its own lifetime alone keeps a new, data-less session too.
    let remember = send(&layer, "/remember", None, Value::Null).await;
    assert_eq!(remember.status, StatusCode::OK);
    let cookie = remember.cookie();
    assert!(
        remember.set_cookie().unwrap().contains("Max-Age="),
        "its own lifetime makes the cookie persistent"
    );
    let read = send(&layer, "/get", Some(&cookie), Value::Null).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.set_cookie(), None, "the session exists: no new cookie");

    // Emptied only without data AND without a user: clearing a bound session keeps it.
    let user = unique_user(test);
    let cookie = send(&layer, "/login", None, json!({ "user": user }))
        .await
        .cookie();
    let put = send(&layer, "/put", Some(&cookie), json!({ "n": 1 })).await;
    assert_eq!(put.status, StatusCode::OK);
    let cleared = send(&layer, "/clear", Some(&cookie), Value::Null).await;
    assert_eq!(cleared.status, StatusCode::OK);
    assert_eq!(
        cleared.set_cookie(),
        None,
        "a bound session is not removed by clear"
    );
    let listed = send(&layer, "/sessions", Some(&cookie), Value::Null).await;
    assert_eq!(listed.body, json!({ "count": 1, "current": 1 }));
}

// ---- item 2: explicit operations whose write fails ---------------------------------------

/// A session with data `{"n": 1}`, its cookie.
async fn with_data(layer: &SessionLayer) -> String {
    let reply = send(layer, "/put", None, json!({ "n": 1 })).await;
    assert_eq!(reply.status, StatusCode::OK);
    reply.cookie()
}

async fn still_opens(layer: &SessionLayer, cookie: &str, what: &str) {
    let read = send(layer, "/get", Some(cookie), Value::Null).await;
    assert_eq!(read.status, StatusCode::OK, "{what}");
    assert_eq!(
        read.body,
        json!({ "n": 1 }),
        "{what}: the old id is alive with its data"
    );
    assert_eq!(read.set_cookie(), None, "{what}");
}

async fn destroy_whose_delete_fails(test: &str, mode: Concurrency) {
    let (_table, faults, layer) = dynamodb_layer(test, mode).await;
    let cookie = with_data(&layer).await;
    faults.set(&["DeleteItem"]);
    let reply = send(&layer, "/destroy", Some(&cookie), Value::Null).await;
    assert_eq!(
        reply.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{:?}",
        reply.body
    );
    assert_not_2xx_without_cookie(&reply, "destroy");
    faults.set(&[]);
    still_opens(&layer, &cookie, "destroy").await;
    // With the fault gone the logout happens.
    let reply = send(&layer, "/destroy", Some(&cookie), Value::Null).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.set_cookie().unwrap().contains("Max-Age=0"));
}

async fn clear_whose_delete_fails(test: &str, mode: Concurrency) {
    let (_table, faults, layer) = dynamodb_layer(test, mode).await;
    let cookie = with_data(&layer).await;
    faults.set(&["DeleteItem"]);
    let reply = send(&layer, "/clear", Some(&cookie), Value::Null).await;
    assert_not_2xx_without_cookie(&reply, "clear");
    faults.set(&[]);
    still_opens(&layer, &cookie, "clear").await;
}

async fn renew_whose_transaction_fails(test: &str, mode: Concurrency) {
    let (_table, faults, layer) = dynamodb_layer(test, mode).await;
    let cookie = with_data(&layer).await;
    faults.set(&["TransactWriteItems"]);
    let reply = send(&layer, "/renew", Some(&cookie), Value::Null).await;
    assert_eq!(
        reply.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{:?}",
        reply.body
    );
    assert_not_2xx_without_cookie(&reply, "renew");
    faults.set(&[]);
    still_opens(&layer, &cookie, "renew").await;
}

async fn login_whose_write_fails(test: &str, mode: Concurrency) {
    let (_table, faults, layer) = dynamodb_layer(test, mode).await;
    // On an existing session the binding moves it (a transaction).
    let cookie = with_data(&layer).await;
    faults.set(&["TransactWriteItems"]);
    let user = unique_user(test);
    let reply = send(&layer, "/login", Some(&cookie), json!({ "user": user })).await;
    assert_not_2xx_without_cookie(&reply, "login on an existing session");
    faults.set(&[]);
    still_opens(&layer, &cookie, "login on an existing session").await;
    let listed = send(&layer, "/sessions", Some(&cookie), Value::Null).await;
    assert_eq!(
        listed.body,
        json!({ "count": 0, "current": 0 }),
        "not bound"
    );

    // As the first request the binding creates the session (a put).
    faults.set(&["PutItem"]);
    let reply = send(&layer, "/login", None, json!({ "user": user })).await;
    assert_not_2xx_without_cookie(&reply, "login as the first request");
}

async fn revocation_whose_query_fails(test: &str, mode: Concurrency) {
    let (_table, faults, layer) = dynamodb_layer(test, mode).await;
    let user = unique_user(test);
    let cookie = send(&layer, "/login", None, json!({ "user": user }))
        .await
        .cookie();
    let other = send(&layer, "/login", None, json!({ "user": user }))
        .await
        .cookie();
    faults.set(&["Query"]);
    // Through `?`: the handler's Err becomes the layer's answer.
    let reply = send(&layer, "/revoke-others", Some(&cookie), Value::Null).await;
    assert_eq!(
        reply.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{:?}",
        reply.body
    );
    assert_not_2xx_without_cookie(&reply, "revoke_other_sessions through ?");
    // Swallowed: the handler answers 200, the layer still says it failed.
    let reply = send(&layer, "/swallow/revoke-others", Some(&cookie), Value::Null).await;
    assert_eq!(
        reply.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{:?}",
        reply.body
    );
    assert_not_2xx_without_cookie(&reply, "revoke_other_sessions swallowed");
    faults.set(&[]);
    // A sign-out writes its revocation markers before it reads the index, so the failed
    // one already ended the other session (failing safe: the answer said it did not finish,
    // and a retry does) but never the kept one.
    let listed = send(&layer, "/sessions", Some(&cookie), Value::Null).await;
    assert_eq!(listed.body, json!({ "count": 1, "current": 1 }));
    let reply = send(&layer, "/revoke-others", Some(&cookie), Value::Null).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let listed = send(&layer, "/sessions", Some(&other), Value::Null).await;
    assert_eq!(listed.body, json!({ "count": 0, "current": 0 }), "ended");
    let listed = send(&layer, "/sessions", Some(&cookie), Value::Null).await;
    assert_eq!(listed.body, json!({ "count": 1, "current": 1 }), "kept");
}

/// A data save is something the handler asked for: its failure is answered (500, no cookie)
/// whatever the policy, and the stored session is left as it was. Under pessimistic locking
/// the lock is taken with UpdateItem too, so there the read fails first, and a failed read
/// is implicit work: the policy's (`raise_errors` off lets the answer through) and nothing
/// is written over the stored session.
async fn data_save_failure_is_answered(test: &str, mode: Concurrency) {
    let (_table, faults, layer) = dynamodb_layer(test, mode).await;
    let cookie = with_data(&layer).await;
    faults.set(&["UpdateItem"]);
    let reply = send(&layer, "/put", Some(&cookie), json!({ "n": 2 })).await;
    let expected = match mode {
        Concurrency::Pessimistic => StatusCode::OK,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    assert_eq!(reply.status, expected, "{mode:?}: {:?}", reply.body);
    assert_eq!(reply.set_cookie(), None, "{mode:?}");
    faults.set(&[]);
    still_opens(&layer, &cookie, "failed save").await;
}

macro_rules! per_mode {
    ($($name:ident => $body:ident;)*) => {
        $(
            mod $name {
                use super::*;

                #[tokio::test]
                async fn none() {
                    $body(concat!(stringify!($name), "-none"), Concurrency::None).await;
                }

                #[tokio::test]
                async fn optimistic() {
                    $body(concat!(stringify!($name), "-optimistic"), Concurrency::Optimistic).await;
                }

                #[tokio::test]
                async fn pessimistic() {
                    $body(concat!(stringify!($name), "-pessimistic"), Concurrency::Pessimistic).await;
                }
            }
        )*
    };
}

async fn first_request_login_on_memory(test: &str, mode: Concurrency) {
    first_request_login(memory_layer(mode), test).await;
}

async fn first_request_login_on_dynamodb(test: &str, mode: Concurrency) {
    let (_table, _faults, layer) = dynamodb_layer(test, mode).await;
    first_request_login(layer, test).await;
}

per_mode! {
    first_request_login_memory => first_request_login_on_memory;
    first_request_login_dynamodb => first_request_login_on_dynamodb;
    destroy_delete_fails => destroy_whose_delete_fails;
    clear_delete_fails => clear_whose_delete_fails;
    renew_transaction_fails => renew_whose_transaction_fails;
    login_write_fails => login_whose_write_fails;
    revocation_query_fails => revocation_whose_query_fails;
    data_save_failure => data_save_failure_is_answered;
}
