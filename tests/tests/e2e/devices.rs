//! "Sign out everywhere" through session-api on the local DynamoDB: three clients log in as
//! one user and one as another; the device list, revoking the others, one by handle, and all.

use dynamodb_session_store::{SessionLayer, SessionStore};
use integration_tests::{TestTable, api};
use lambda_http::http::{Method, StatusCode};
use serde_json::{Value, json};

/// Logs a fresh client in as `user` (after it stored something) and returns its cookie.
async fn log_in(layer: &SessionLayer, user: &str) -> String {
    let before = api::call(
        layer,
        Method::PATCH,
        "/session",
        None,
        &json!({"device": user}).to_string(),
    )
    .await;
    let cookie = before.cookie();
    let reply = api::call(
        layer,
        Method::POST,
        "/login",
        Some(&cookie),
        &json!({ "user": user }).to_string(),
    )
    .await;
    assert_eq!(
        (reply.status, &reply.body),
        (StatusCode::OK, &json!({ "user": user }))
    );
    let renewed = reply.cookie();
    assert_ne!(renewed, cookie, "logging in renews the id");
    renewed
}

async fn devices(layer: &SessionLayer, cookie: &str) -> (StatusCode, Vec<Value>) {
    let reply = api::get(layer, "/sessions", Some(cookie)).await;
    let sessions = reply.body["sessions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    (reply.status, sessions)
}

async fn data(layer: &SessionLayer, cookie: &str) -> Value {
    api::get(layer, "/session", Some(cookie)).await.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_sees_and_ends_their_sessions_and_no_one_elses() {
    let table = TestTable::new("devices").await;
    let layer = SessionLayer::new(table.store(|c| c));
    let ann = [
        log_in(&layer, "ann").await,
        log_in(&layer, "ann").await,
        log_in(&layer, "ann").await,
    ];
    let bob = log_in(&layer, "bob").await;

    // The device list: three, each seen as current from its own cookie only.
    let (status, first) = devices(&layer, &ann[0]).await;
    assert_eq!((status, first.len()), (StatusCode::OK, 3));
    let current = |list: &[Value]| -> Vec<String> {
        list.iter()
            .filter(|d| d["current"] == true)
            .map(|d| d["handle"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, second) = devices(&layer, &ann[1]).await;
    assert_eq!(current(&first).len(), 1);
    assert_eq!(current(&second).len(), 1);
    assert_ne!(current(&first), current(&second));
    for device in &first {
        for field in ["created_at", "updated_at", "expire_at"] {
            assert!(device[field].is_i64(), "{field} in {device}");
        }
        let handle = device["handle"].as_str().unwrap();
        assert!(
            ann.iter().all(|c| !c.contains(handle)),
            "a handle is not a cookie"
        );
    }

    // Another user's handle: 404, and it stays.
    let (_, bobs) = devices(&layer, &bob).await;
    let bob_handle = bobs[0]["handle"].as_str().unwrap();
    let reply = api::call(
        &layer,
        Method::DELETE,
        &format!("/sessions/{bob_handle}"),
        Some(&ann[0]),
        "",
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
    assert_eq!(devices(&layer, &bob).await.1.len(), 1);

    // One by handle.
    let third = first
        .iter()
        .find(|d| d["current"] == false)
        .and_then(|d| d["handle"].as_str())
        .unwrap()
        .to_owned();
    let reply = api::call(
        &layer,
        Method::DELETE,
        &format!("/sessions/{third}"),
        Some(&ann[0]),
        "",
    )
    .await;
    assert_eq!(
        (reply.status, &reply.body),
        (StatusCode::OK, &json!({"revoked": 1}))
    );
    assert_eq!(devices(&layer, &ann[0]).await.1.len(), 2);

    // All but this one.
    let reply = api::call(
        &layer,
        Method::DELETE,
        "/sessions/others",
        Some(&ann[0]),
        "",
    )
    .await;
    assert_eq!(
        (reply.status, &reply.body),
        (StatusCode::OK, &json!({"revoked": 1}))
    );
    let (_, left) = devices(&layer, &ann[0]).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["current"], true);
    assert_eq!(
        data(&layer, &ann[0]).await,
        json!({"device": "ann"}),
        "this one kept its data"
    );

    // All, this one included: its cookie is expired.
    let reply = api::call(&layer, Method::DELETE, "/sessions", Some(&ann[0]), "").await;
    assert_eq!(
        (reply.status, &reply.body),
        (StatusCode::OK, &json!({"revoked": 1}))
    );
    let removal = reply.set_cookie().expect("the cookie is expired");
    assert!(removal.contains("Max-Age=0"), "{removal}");
    for cookie in &ann {
        assert_eq!(
            data(&layer, cookie).await,
            json!({}),
            "a revoked cookie opens a fresh session"
        );
        assert_eq!(devices(&layer, cookie).await.0, StatusCode::UNAUTHORIZED);
    }

    // The other user is untouched.
    let (_, bobs) = devices(&layer, &bob).await;
    assert_eq!(bobs.len(), 1);
    assert_eq!(data(&layer, &bob).await, json!({"device": "bob"}));
    // Ann's sign-out left its revocation marker, an item that is not a session.
    let sessions = table
        .items()
        .await
        .into_iter()
        .filter(|item| {
            !item["session_id"]
                .as_s()
                .unwrap()
                .starts_with(SessionStore::REVOCATION_MARKER_PREFIX)
        })
        .count();
    assert_eq!(sessions, 1, "only bob's session is left");
}

#[tokio::test]
async fn logging_in_needs_a_user_and_listing_needs_a_login() {
    let table = TestTable::new("devices_input").await;
    let layer = SessionLayer::new(table.store(|c| c));
    for body in ["", "{}", r#"{"user": 7}"#, r#"{"user": ""}"#, "[]"] {
        let reply = api::call(&layer, Method::POST, "/login", None, body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body:?}");
        assert!(reply.set_cookie().is_none(), "nothing created for {body:?}");
    }
    let cookie = api::get(&layer, "/counter", None).await.cookie();
    for (method, path) in [
        (Method::GET, "/sessions"),
        (Method::DELETE, "/sessions"),
        (Method::DELETE, "/sessions/others"),
        (Method::DELETE, "/sessions/some-handle"),
    ] {
        let reply = api::call(&layer, method.clone(), path, Some(&cookie), "").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{method} {path}");
    }
    assert_eq!(
        data(&layer, &cookie).await,
        json!({"count": 1}),
        "nothing ended"
    );
}
