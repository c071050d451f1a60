//! The session layer and the session-api routes against a real DynamoDB-compatible server:
//! the gem's integration spec, the call counts per request kind, cookies, errors.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use dynamodb_session_store::{RequestSessionExt, SessionLayer, SessionStore};
use integration_tests::api::{self, Reply, decode};
use integration_tests::{CallCounter, FailOperations, OTHER_SECRET, SECRET, TestTable};
use lambda_http::http::{Method, StatusCode, header};
use lambda_http::tower::{Layer, Service, ServiceExt, service_fn};
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};

/// session-api's routes on a fresh table, with counted DynamoDB calls.
struct Api {
    table: TestTable,
    calls: CallCounter,
    faults: FailOperations,
    layer: SessionLayer,
}

impl Api {
    async fn new(test: &str, layer: impl FnOnce(SessionLayer) -> SessionLayer) -> Api {
        Self::with_store(test, |c| c, layer).await
    }

    async fn with_store(
        test: &str,
        config: impl FnOnce(
            dynamodb_session_store::ConfigBuilder,
        ) -> dynamodb_session_store::ConfigBuilder,
        layer: impl FnOnce(SessionLayer) -> SessionLayer,
    ) -> Api {
        let (table, calls, faults) = TestTable::instrumented(test).await;
        let layer = layer(SessionLayer::new(table.store(config)));
        Api {
            table,
            calls,
            faults,
            layer,
        }
    }

    async fn call(&self, method: Method, path: &str, cookie: Option<&str>, body: &str) -> Reply {
        api::call(&self.layer, method, path, cookie, body).await
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> Reply {
        self.call(Method::GET, path, cookie, "").await
    }

    async fn only_item(&self) -> std::collections::HashMap<String, AttributeValue> {
        let mut items = self.table.items().await;
        assert_eq!(items.len(), 1, "exactly one session item");
        items.pop().unwrap()
    }

    /// Moves the only item's `updated_at` (and `created_at`) `seconds` into the past.
    async fn rewind(&self, seconds: i64) {
        let item = self.only_item().await;
        let shift = |name: &str| {
            let n: i64 = item[name].as_n().unwrap().parse().unwrap();
            AttributeValue::N((n - seconds).to_string())
        };
        self.table
            .client
            .update_item()
            .table_name(&self.table.name)
            .key("session_id", item["session_id"].clone())
            .update_expression("SET updated_at = :u, created_at = :c")
            .expression_attribute_values(":u", shift("updated_at"))
            .expression_attribute_values(":c", shift("created_at"))
            .send()
            .await
            .unwrap();
        self.calls.take();
    }
}

fn number(item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> i64 {
    item[name].as_n().unwrap().parse().unwrap()
}

#[tokio::test]
async fn set_cookie_on_the_first_response_and_not_on_the_second() {
    let api = Api::new("first_second", |l| l).await;
    let first = api.get("/counter", None).await;
    assert_eq!(
        (first.status, &first.body),
        (StatusCode::OK, &json!({"count": 1}))
    );
    let set_cookie = first.set_cookie().expect("new session sets a cookie");
    for attribute in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(
            set_cookie.contains(attribute),
            "{set_cookie} lacks {attribute}"
        );
    }
    assert!(
        !set_cookie.contains("Max-Age"),
        "a browser-session cookie by default"
    );
    assert_eq!(
        api.calls.take(),
        ["PutItem"],
        "a new session is one write, no read"
    );

    let second = api.get("/counter", Some(&first.cookie())).await;
    assert_eq!(second.body, json!({"count": 2}));
    assert_eq!(second.set_cookie(), None, "unchanged cookie is not re-sent");
    assert_eq!(second.headers[header::VARY], "Cookie");
    assert_eq!(
        api.calls.take(),
        ["GetItem", "UpdateItem"],
        "a change is one read and one write"
    );
}

#[tokio::test]
async fn calls_per_request_kind() {
    let api = Api::with_store(
        "call_counts",
        |c| c.max_stale(Duration::from_secs(3600)),
        |l| l,
    )
    .await;
    // Untouched: no call, no cookie, no Vary.
    let health = api.get("/health", None).await;
    assert_eq!(health.status, StatusCode::OK);
    assert!(health.set_cookie().is_none() && !health.headers.contains_key(header::VARY));
    assert!(api.calls.take().is_empty());

    let cookie = api.get("/counter", None).await.cookie();
    assert_eq!(api.calls.take(), ["PutItem"]);

    // Untouched with a cookie: still nothing.
    api.get("/health", Some(&cookie)).await;
    assert!(api.calls.take().is_empty());

    // Read-only: one GetItem.
    let read = api.get("/session", Some(&cookie)).await;
    assert_eq!(read.body, json!({"count": 1}));
    assert_eq!(api.calls.take(), ["GetItem"]);

    // A change: one GetItem and one UpdateItem.
    api.get("/counter", Some(&cookie)).await;
    assert_eq!(api.calls.take(), ["GetItem", "UpdateItem"]);

    // Writing the same value again is no change.
    api.call(Method::PATCH, "/session", Some(&cookie), r#"{"count": 2}"#)
        .await;
    assert_eq!(api.calls.take(), ["GetItem"]);

    // A read-only request after touch_after (60 s) pushes the expiry with one touch.
    api.rewind(120).await;
    let before = api.only_item().await;
    let rewound = number(&before, "updated_at");
    api.calls.take();
    let touched = api.get("/session", Some(&cookie)).await;
    assert_eq!(api.calls.take(), ["GetItem", "UpdateItem"]);
    assert!(
        touched.set_cookie().is_none(),
        "browser-session cookie: nothing to re-send"
    );
    let item = api.only_item().await;
    let updated = number(&item, "updated_at");
    assert!(updated >= rewound + 120, "last activity moved forward");
    assert_eq!(
        number(&item, "expire_at"),
        updated + 3600,
        "and the expiry with it"
    );
    assert_eq!(
        item["data"], before["data"],
        "touch leaves data alone (sealed data is never rewritten the same)"
    );
}

#[tokio::test]
async fn forged_cookie_gets_a_new_session_and_a_different_cookie() {
    let api = Api::new("forged", |l| l).await;
    let genuine = api.get("/counter", None).await.cookie();
    api.get("/counter", Some(&genuine)).await;
    api.calls.take();

    let value = genuine.strip_prefix("__Host-session=").unwrap();
    let forged = format!("__Host-session={}", api::tamper_last(value));
    assert_ne!(
        forged, genuine,
        "the forgery always differs from the genuine cookie"
    );
    let reply = api.get("/counter", Some(&forged)).await;
    assert_eq!(reply.body, json!({"count": 1}), "a fresh session");
    let issued = reply.cookie();
    assert_ne!(issued, forged, "never the client's id");
    assert_ne!(issued, genuine);
    assert_eq!(
        api.calls.take(),
        ["PutItem"],
        "a forged cookie is not even looked up"
    );
    assert_eq!(
        api.get("/session", Some(&genuine)).await.body,
        json!({"count": 2})
    );
}

#[tokio::test]
async fn unknown_and_expired_sessions_get_a_fresh_id() {
    let api = Api::with_store(
        "expire_after",
        |c| c.expire_after(Duration::from_secs(60)),
        |l| l,
    )
    .await;
    let first = api.get("/counter", None).await;
    let set_cookie = first.set_cookie().unwrap();
    assert!(set_cookie.contains("Max-Age=60"), "{set_cookie}");

    // Idle past expire_after: the cookie no longer opens the session.
    api.rewind(61).await;
    let after = api.get("/counter", Some(&first.cookie())).await;
    assert_eq!(after.body, json!({"count": 1}), "expired: a new session");
    assert_ne!(after.cookie(), first.cookie(), "a new cookie is issued");
    assert_eq!(
        api.table.items().await.len(),
        2,
        "the expired item waits for TTL or the collector"
    );

    // A cookie for a deleted session is treated the same way.
    let api = Api::new("unknown_session", |l| l).await;
    let cookie = api.get("/counter", None).await.cookie();
    api.call(Method::DELETE, "/session", Some(&cookie), "")
        .await;
    let reply = api.get("/counter", Some(&cookie)).await;
    assert_eq!(reply.body, json!({"count": 1}));
    assert_ne!(reply.cookie(), cookie);
}

#[tokio::test]
async fn persistent_cookies_are_resent_only_when_their_expiry_moves() {
    let api = Api::with_store(
        "persistent_cookie",
        |c| c.expire_after(Duration::from_secs(600)),
        |l| l,
    )
    .await;
    let cookie = api.get("/counter", None).await.cookie();
    // Read-only within touch_after: no write, no cookie.
    let read = api.get("/session", Some(&cookie)).await;
    assert!(read.set_cookie().is_none());
    // A save moves the expiry: the cookie is re-sent with the new Max-Age, same value.
    let changed = api.get("/counter", Some(&cookie)).await;
    let set_cookie = changed.set_cookie().expect("expiry moved");
    assert!(
        set_cookie.starts_with(&format!("{cookie};")),
        "{set_cookie}"
    );
    assert!(set_cookie.contains("Max-Age=600"), "{set_cookie}");
}

#[tokio::test]
async fn created_at_is_set_once_and_never_changed() {
    let api = Api::new("created_at", |l| l).await;
    let cookie = api.get("/counter", None).await.cookie();
    let item = api.only_item().await;
    let created = number(&item, "created_at");
    assert_eq!(number(&item, "updated_at"), created);
    api.rewind(30).await;
    api.get("/counter", Some(&cookie)).await;
    let item = api.only_item().await;
    assert_eq!(
        number(&item, "created_at"),
        created - 30,
        "unchanged by the save"
    );
    assert!(
        number(&item, "updated_at") >= created,
        "updated by the save"
    );
}

#[tokio::test]
async fn defer_sends_no_set_cookie_but_still_writes() {
    let api = Api::new("defer", |l| l.with_defer(true)).await;
    let reply = api.get("/counter", None).await;
    assert_eq!(reply.body, json!({"count": 1}));
    assert_eq!(reply.set_cookie(), None);
    assert_eq!(api.table.items().await.len(), 1);
}

#[tokio::test]
async fn patch_merges_objects_and_refuses_the_rest() {
    let api = Api::new("patch", |l| l).await;
    let first = api
        .call(Method::PATCH, "/session", None, r#"{"a": 1, "b": [true]}"#)
        .await;
    assert_eq!(
        (first.status, &first.body),
        (StatusCode::OK, &json!({"a": 1, "b": [true]}))
    );
    let cookie = first.cookie();
    let merged = api
        .call(
            Method::PATCH,
            "/session",
            Some(&cookie),
            r#"{"b": null, "c": "x"}"#,
        )
        .await;
    assert_eq!(merged.body, json!({"a": 1, "b": null, "c": "x"}));
    assert_eq!(api.get("/session", Some(&cookie)).await.body, merged.body);

    api.calls.take();
    for bad in ["[1]", "\"text\"", "{not json", ""] {
        let reply = api
            .call(Method::PATCH, "/session", Some(&cookie), bad)
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad:?}");
        assert!(reply.body["error"].is_string());
    }
    assert!(
        api.calls.take().is_empty(),
        "bad input never reaches DynamoDB"
    );
}

#[tokio::test]
async fn too_large_is_413_and_the_stored_session_is_unchanged() {
    let api = Api::new("too_large", |l| l).await;
    let cookie = api
        .call(Method::PATCH, "/session", None, r#"{"keep": "me"}"#)
        .await
        .cookie();
    let stored = api.only_item().await["data"].clone();

    let huge = json!({ "blob": integration_tests::incompressible(410_000) }).to_string();
    let reply = api
        .call(Method::PATCH, "/session", Some(&cookie), &huge)
        .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(reply.body["error"].as_str().unwrap().contains("limit"));
    assert_eq!(api.only_item().await["data"], stored);
    assert_eq!(
        api.get("/session", Some(&cookie)).await.body,
        json!({"keep": "me"})
    );

    // Also for a brand-new session: nothing is created.
    let api = Api::new("too_large_new", |l| l).await;
    let reply = api.call(Method::PATCH, "/session", None, &huge).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(reply.set_cookie().is_none());
    assert!(api.table.items().await.is_empty());
}

#[tokio::test]
async fn renew_moves_the_session_to_a_new_id() {
    let api = Api::new("renew", |l| l).await;
    let old = api
        .call(Method::PATCH, "/session", None, r#"{"user": "ann"}"#)
        .await
        .cookie();
    let created = number(&api.only_item().await, "created_at");
    let renewed = api
        .call(Method::POST, "/session/renew", Some(&old), "")
        .await;
    assert_eq!(renewed.body, json!({"user": "ann"}));
    let new = renewed.cookie();
    assert_ne!(new, old);
    assert_eq!(
        api.get("/session", Some(&new)).await.body,
        json!({"user": "ann"})
    );
    assert_eq!(
        api.get("/session", Some(&old)).await.body,
        json!({}),
        "old cookie opens nothing"
    );
    let item = api.only_item().await;
    assert_eq!(number(&item, "created_at"), created, "created_at kept");
}

#[tokio::test]
async fn delete_removes_the_item_and_expires_the_cookie() {
    let api = Api::new("delete", |l| l).await;
    let cookie = api.get("/counter", None).await.cookie();
    let reply = api
        .call(Method::DELETE, "/session", Some(&cookie), "")
        .await;
    assert_eq!(reply.body, json!({"deleted": true}));
    let removal = reply.set_cookie().expect("removal cookie");
    assert!(
        removal.starts_with("__Host-session=;") && removal.contains("Max-Age=0"),
        "{removal}"
    );
    assert!(api.table.items().await.is_empty());
    assert_eq!(api.get("/session", Some(&cookie)).await.body, json!({}));
}

#[tokio::test]
async fn a_session_emptied_by_the_handler_is_deleted_and_its_cookie_removed() {
    let (table, calls, _) = TestTable::instrumented("emptied").await;
    let store = table.store(|c| c);
    let layer = SessionLayer::new(store.clone());
    let (id, _) = store
        .create(&json!({"k": 1}).as_object().unwrap().clone())
        .await
        .unwrap();
    calls.take();
    let service = layer.layer(service_fn(|req: Request| async move {
        req.session().unwrap().clear().await.unwrap();
        Ok::<_, std::convert::Infallible>(Response::new(Body::Empty))
    }));
    let mut request = Request::default();
    let cookie = format!("__Host-session={}", store.cookie_value(&id));
    request
        .headers_mut()
        .insert(header::COOKIE, cookie.parse().unwrap());
    let response = service.oneshot(request).await.unwrap();
    let removal = response.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(removal.contains("Max-Age=0"), "{removal}");
    assert_eq!(calls.take(), ["GetItem", "DeleteItem"]);
    assert!(table.items().await.is_empty());
}

/// A handler that changes the session and then answers `status`.
async fn change_then_answer(
    table: &TestTable,
    layer: SessionLayer,
    cookie: &str,
    status: StatusCode,
) -> Response<Body> {
    let _ = table;
    let service = layer.layer(service_fn(move |req: Request| async move {
        let session = req.session().unwrap();
        let _ = session.insert("count", 1000).await;
        let mut response = Response::new(Body::from("{}"));
        *response.status_mut() = status;
        Ok::<_, std::convert::Infallible>(response)
    }));
    let mut request = Request::default();
    request
        .headers_mut()
        .insert(header::COOKIE, cookie.parse().unwrap());
    service.oneshot(request).await.unwrap()
}

#[tokio::test]
async fn nothing_is_saved_when_the_handler_answers_5xx() {
    let api = Api::new("no_save_on_5xx", |l| l).await;
    let cookie = api.get("/counter", None).await.cookie();
    api.calls.take();
    let response = change_then_answer(
        &api.table,
        api.layer.clone(),
        &cookie,
        StatusCode::BAD_GATEWAY,
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(api.calls.take(), ["GetItem"], "read, never written");
    assert_eq!(
        api.get("/session", Some(&cookie)).await.body,
        json!({"count": 1})
    );
    // A 4xx still saves.
    change_then_answer(
        &api.table,
        api.layer.clone(),
        &cookie,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(
        api.get("/session", Some(&cookie)).await.body,
        json!({"count": 1000})
    );
}

#[tokio::test]
async fn a_failed_read_is_never_followed_by_a_write() {
    // raise_errors off (the default): the handler carries on with an empty session, and the
    // stored one is left alone.
    let api = Api::new("failed_read_lenient", |l| l).await;
    let cookie = api.get("/counter", None).await.cookie();
    api.get("/counter", Some(&cookie)).await;
    api.faults.set(&["GetItem"]);
    api.calls.take();
    let reply = api.get("/counter", Some(&cookie)).await;
    assert_eq!(
        (reply.status, &reply.body),
        (StatusCode::OK, &json!({"count": 1}))
    );
    assert!(reply.set_cookie().is_none(), "no new id handed out either");
    assert_eq!(
        api.calls.take(),
        ["GetItem"],
        "no write after the failed read"
    );
    let reply = api
        .call(Method::PATCH, "/session", Some(&cookie), r#"{"x": 1}"#)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(api.calls.take(), ["GetItem"]);
    api.faults.set(&[]);
    assert_eq!(
        api.get("/session", Some(&cookie)).await.body,
        json!({"count": 2}),
        "intact"
    );

    // raise_errors on: the request fails with 500, and nothing is written either.
    let api = Api::with_store("failed_read_strict", |c| c.raise_errors(true), |l| l).await;
    let cookie = api.get("/counter", None).await.cookie();
    api.faults.set(&["GetItem"]);
    api.calls.take();
    let reply = api.get("/counter", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(reply.body["error"].is_string());
    assert_eq!(api.calls.take(), ["GetItem"]);
    api.faults.set(&[]);
    assert_eq!(
        api.get("/session", Some(&cookie)).await.body,
        json!({"count": 1})
    );
}

#[tokio::test]
/// A data save is something the handler asked for (issue 18): unlike the gem, its failure is
/// answered even with `raise_errors` off, and the stored session is left as it was.
async fn a_failed_data_save_is_answered_whatever_the_policy() {
    let api = Api::new("failed_write_lenient", |l| l).await;
    let cookie = api.get("/counter", None).await.cookie();
    api.faults.set(&["UpdateItem"]);
    let reply = api.get("/counter", Some(&cookie)).await;
    assert_eq!(
        reply.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "a lost save is never answered 200"
    );
    assert_eq!(reply.set_cookie(), None);
    api.faults.set(&[]);
    assert_eq!(
        api.get("/session", Some(&cookie)).await.body,
        json!({"count": 1})
    );

    let api = Api::with_store("failed_write_strict", |c| c.raise_errors(true), |l| l).await;
    let cookie = api.get("/counter", None).await.cookie();
    api.faults.set(&["UpdateItem"]);
    let reply = api.get("/counter", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn hard_errors_surface_even_with_raise_errors_off() {
    let api = Api::new("hard_error", |l| l).await;
    let cookie = api.get("/counter", None).await.cookie();
    integration_tests::client()
        .await
        .delete_table()
        .table_name(&api.table.name)
        .send()
        .await
        .unwrap();
    let reply = api.get("/counter", Some(&cookie)).await;
    assert_eq!(
        reply.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "table missing is hard"
    );
    let reply = api.get("/counter", None).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn sessions_signed_with_a_rotated_out_secret_move_to_the_new_secret() {
    let (table, _, _) = TestTable::instrumented("rotation_layer").await;
    let old_store = table.store(|c| c);
    let (id, _) = old_store
        .create(&json!({"count": 5}).as_object().unwrap().clone())
        .await
        .unwrap();
    let old_cookie = format!("__Host-session={}", old_store.cookie_value(&id));

    let rotated = table.store(|c| c.secret_key(OTHER_SECRET).previous_secret_keys([SECRET]));
    let layer = SessionLayer::new(rotated);
    let reply = decode(
        session_api::app(layer.clone())
            .oneshot(get_with_cookie("/counter", &old_cookie))
            .await
            .unwrap(),
    );
    assert_eq!(reply.body, json!({"count": 6}));
    let new_cookie = reply.cookie();
    assert_ne!(
        new_cookie, old_cookie,
        "moved to an id signed with the current secret"
    );
    assert_eq!(table.items().await.len(), 1, "the old item is gone");

    let current_only = SessionLayer::new(table.store(|c| c.secret_key(OTHER_SECRET)));
    let reply = decode(
        session_api::app(current_only)
            .oneshot(get_with_cookie("/session", &new_cookie))
            .await
            .unwrap(),
    );
    assert_eq!(reply.body, json!({"count": 6}));
}

fn get_with_cookie(path: &str, cookie: &str) -> Request {
    let mut request = Request::default();
    *request.uri_mut() = path.parse().unwrap();
    request
        .headers_mut()
        .insert(header::COOKIE, cookie.parse().unwrap());
    request
}

#[tokio::test]
async fn cookie_attributes_follow_the_layer_settings() {
    let api = Api::new("cookie_settings", |l| {
        l.with_cookie_name("sid")
            .with_domain("example.com")
            .with_path("/app")
            .with_secure(false)
            .with_http_only(false)
            .with_same_site(dynamodb_session_store::SameSite::Strict)
    })
    .await;
    let reply = api.get("/counter", None).await;
    let set_cookie = reply.set_cookie().unwrap();
    assert!(set_cookie.starts_with("sid="), "{set_cookie}");
    for expected in ["Domain=example.com", "Path=/app", "SameSite=Strict"] {
        assert!(
            set_cookie.contains(expected),
            "{set_cookie} lacks {expected}"
        );
    }
    assert!(
        !set_cookie.contains("Secure") && !set_cookie.contains("HttpOnly"),
        "{set_cookie}"
    );
    let cookie = reply.cookie();
    assert_eq!(
        api.get("/counter", Some(&cookie)).await.body,
        json!({"count": 2})
    );
    // The default-named cookie is someone else's now.
    let value = cookie.strip_prefix("sid=").unwrap();
    assert_eq!(
        api.get("/session", Some(&format!("__Host-session={value}")))
            .await
            .body,
        json!({})
    );
}

#[tokio::test]
async fn layer_options_come_from_the_environment() {
    let (table, _, _) = TestTable::instrumented("layer_env").await;
    let layer = SessionLayer::new(table.store(|c| {
        c.env([
            ("AWS_DYNAMO_DB_SESSION_COOKIE_NAME", "envsid"),
            ("AWS_DYNAMO_DB_SESSION_COOKIE_SECURE", "false"),
            ("AWS_DYNAMO_DB_SESSION_EXPIRE_AFTER", "15m"),
        ])
    }));
    let mut request = Request::default();
    *request.uri_mut() = "/counter".parse().unwrap();
    let reply = decode(session_api::app(layer).oneshot(request).await.unwrap());
    let set_cookie = reply.set_cookie().unwrap();
    assert!(
        set_cookie.starts_with("envsid=") && set_cookie.contains("Max-Age=900"),
        "{set_cookie}"
    );
    assert!(!set_cookie.contains("Secure"));

    let err = table
        .config()
        .env([("AWS_DYNAMO_DB_SESSION_COOKIE_SECURE", "sometimes")])
        .build()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("AWS_DYNAMO_DB_SESSION_COOKIE_SECURE"),
        "{err}"
    );
}

#[tokio::test]
async fn the_session_is_an_axum_extractor() {
    use axum::routing::get;
    let (table, _, _) = TestTable::instrumented("axum").await;
    async fn visits(session: dynamodb_session_store::Session) -> String {
        let n: u64 = session.get("n").await.unwrap().unwrap_or(0) + 1;
        session.insert("n", n).await.unwrap();
        n.to_string()
    }
    let router = axum::Router::new().route("/", get(visits));
    let mut app = SessionLayer::new(table.store(|c| c)).layer(router);

    // As lambda_http::run does: the axum body becomes a Lambda body.
    let response = Service::<Request>::call(
        ServiceExt::<Request>::ready(&mut app).await.unwrap(),
        Request::default(),
    )
    .await
    .unwrap();
    let reply = decode(lambda_http::IntoResponse::into_response(response).await);
    let cookie = reply.cookie();
    assert_eq!(reply.body, json!(1), "the body is the visit count");
    let mut request = Request::default();
    request
        .headers_mut()
        .insert(header::COOKIE, cookie.parse().unwrap());
    let response = Service::<Request>::call(
        ServiceExt::<Request>::ready(&mut app).await.unwrap(),
        request,
    )
    .await
    .unwrap();
    let response = lambda_http::IntoResponse::into_response(response).await;
    assert_eq!(response.into_body().as_ref(), b"2");
}

/// Runs a fixture event through lambda_http's adapter — exactly what the runtime does —
/// and returns the serialized Lambda response.
async fn through_adapter(layer: SessionLayer, fixture: &str, cookie: Option<&str>) -> Value {
    let event = fixture.replace("__SESSION_COOKIE__", cookie.unwrap_or("unrelated=1"));
    let event: lambda_http::request::LambdaRequest = serde_json::from_str(&event).unwrap();
    let mut adapter = lambda_http::Adapter::from(session_api::app(layer));
    let context = lambda_http::Context::default();
    let response = adapter
        .ready()
        .await
        .unwrap()
        .call(lambda_http::LambdaEvent::new(event, context))
        .await
        .unwrap();
    serde_json::to_value(response).unwrap()
}

/// The session cookie from a serialized Lambda response, wherever the source puts it.
fn set_cookie_in(response: &Value) -> Option<String> {
    let found: Vec<String> = [
        &response["cookies"],
        &response["multiValueHeaders"]["set-cookie"],
    ]
    .into_iter()
    .filter_map(Value::as_array)
    .flatten()
    .filter_map(|v| v.as_str().map(str::to_owned))
    .chain(
        response["headers"]["set-cookie"]
            .as_str()
            .map(str::to_owned),
    )
    .collect();
    found.into_iter().find(|c| c.starts_with("__Host-session="))
}

#[tokio::test]
async fn all_four_lambda_http_sources_work() {
    for (source, fixture) in [
        (
            "API Gateway REST (v1)",
            include_str!("../../data/apigw-rest.json"),
        ),
        (
            "API Gateway HTTP API (v2)",
            include_str!("../../data/apigw-http.json"),
        ),
        ("ALB", include_str!("../../data/alb.json")),
        ("Function URL", include_str!("../../data/function-url.json")),
    ] {
        let (table, _, _) = TestTable::instrumented("sources").await;
        let layer = SessionLayer::new(table.store(|c| c));
        let first = through_adapter(layer.clone(), fixture, None).await;
        assert_eq!(first["statusCode"], 200, "{source}: {first}");
        let body: Value = serde_json::from_str(first["body"].as_str().unwrap()).unwrap();
        assert_eq!(body, json!({"count": 1}), "{source}");
        let set_cookie =
            set_cookie_in(&first).unwrap_or_else(|| panic!("{source}: no cookie in {first}"));
        if source.contains("v2") || source.contains("Function URL") {
            assert!(
                first["cookies"].as_array().is_some_and(|c| c.len() == 1),
                "{source}: cookies[]"
            );
            assert!(first["headers"].get("set-cookie").is_none(), "{source}");
        }
        let cookie = set_cookie.split(';').next().unwrap();
        let second = through_adapter(layer, fixture, Some(cookie)).await;
        let body: Value = serde_json::from_str(second["body"].as_str().unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"count": 2}),
            "{source}: the cookie came back in: {second}"
        );
        assert_eq!(set_cookie_in(&second), None, "{source}");
    }
}

#[tokio::test]
async fn store_errors_never_leak_details_to_clients() {
    let api = Api::with_store("no_leaks", |c| c.raise_errors(true), |l| l).await;
    api.faults.set(&["PutItem"]);
    let reply = api.get("/counter", None).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    let text = reply.body.to_string();
    assert!(
        !text.contains("injected") && !text.contains(&api.table.name),
        "{text}"
    );
    let _: SessionStore = api.layer.store().clone();
}

#[tokio::test]
async fn the_signing_key_comes_from_secrets_manager_and_survives_its_rotation() {
    let Some(aws) = integration_tests::secrets::moto_sdk_config() else {
        eprintln!("skipped: needs the local moto server for Secrets Manager");
        return;
    };
    let table = TestTable::new("secrets_manager").await;
    let secrets = aws_sdk_secretsmanager::Client::new(&aws);
    let arn = secrets
        .create_secret()
        .name(&table.name)
        .secret_string("first-generated-secret-0123456789abcdef0123456789")
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    let env = vec![
        (
            "AWS_DYNAMO_DB_SESSION_TABLE_NAME".to_owned(),
            table.name.clone(),
        ),
        (session_api::SECRET_ARN_VARIABLE.to_owned(), arn.clone()),
    ];
    let layer = session_api::layer_from_env(&aws, env.clone())
        .await
        .unwrap();
    let cookie = api::get(&layer, "/counter", None).await.cookie();

    // Rotation: the new value becomes AWSCURRENT, the old one AWSPREVIOUS.
    secrets
        .put_secret_value()
        .secret_id(&arn)
        .secret_string("second-generated-secret-0123456789abcdef012345678")
        .send()
        .await
        .unwrap();
    let rotated = session_api::layer_from_env(&aws, env).await.unwrap();
    let reply = api::get(&rotated, "/counter", Some(&cookie)).await;
    assert_eq!(
        reply.body,
        json!({"count": 2}),
        "the old cookie still opens the session"
    );
    let moved = reply.cookie();
    assert_ne!(
        moved, cookie,
        "and the session moved to an id signed with the new secret"
    );
    assert_eq!(
        api::get(&rotated, "/session", Some(&moved)).await.body,
        json!({"count": 2})
    );

    let missing = vec![(
        session_api::SECRET_ARN_VARIABLE.to_owned(),
        format!("{arn}-missing"),
    )];
    let err = session_api::layer_from_env(&aws, missing)
        .await
        .unwrap_err();
    assert!(
        matches!(err, session_api::StartupError::Secret(_)),
        "{err:?}"
    );
}

/// `request` with `cookie` as the raw bytes of its only `Cookie` header.
fn with_raw_cookie(path: &str, cookie: &[u8]) -> Request {
    let mut request = Request::default();
    *request.uri_mut() = path.parse().unwrap();
    request.headers_mut().insert(
        header::COOKIE,
        header::HeaderValue::from_bytes(cookie).unwrap(),
    );
    request
}

#[tokio::test]
async fn a_bad_byte_in_another_cookie_leaves_the_session_open() {
    let api = Api::new("bad_byte", |l| l).await;
    let cookie = api.get("/counter", None).await.cookie();
    assert!(cookie.starts_with("__Host-session="), "{cookie}");
    let headers: [Vec<u8>; 3] = [
        // Latin-1 `é`, as an old app on the domain may set it.
        [b"theme=caf\xe9; ".as_slice(), cookie.as_bytes()].concat(),
        format!("theme=café; {cookie}").into_bytes(),
        // After ours too, and with API Gateway v2's `cookies[]` joined as lambda_http joins them.
        [cookie.as_bytes(), b"; lang=\xff\xfe; x=1".as_slice()].concat(),
    ];
    for (n, raw) in headers.iter().enumerate() {
        let reply = decode(
            session_api::app_with(
                api.layer.clone(),
                api::DemoRoutes::On,
                session_api::FUNCTION_TIMEOUT,
            )
            .oneshot(with_raw_cookie("/counter", raw))
            .await
            .unwrap(),
        );
        assert_eq!(reply.body, json!({"count": n + 2}), "header {n}");
        assert_eq!(reply.set_cookie(), None, "the same session, no new cookie");
    }
    assert_eq!(
        api.table.items().await.len(),
        1,
        "no fresh session was made"
    );
}

/// A session holding `{"owner": owner}` on `api`, and its `name=value` cookie.
async fn owned_session(api: &Api, owner: &str) -> String {
    let body = json!({ "owner": owner }).to_string();
    let reply = api.call(Method::PATCH, "/session", None, &body).await;
    assert_eq!(reply.status, StatusCode::OK);
    reply.cookie()
}

/// Cookie tossing: a sibling subdomain sets `session=<its own valid cookie>;
/// Domain=example.com; Path=/longer`, which browsers send before the victim's. Two cookies
/// that verify and name different sessions open neither; cookies that do not verify are
/// ignored; the same session twice is that session.
#[tokio::test]
async fn a_tossed_session_cookie_is_never_used() {
    // A parent-domain cookie: the plain name, which a sibling can set.
    let api = Api::new("tossing", |l| l.with_domain("example.com")).await;
    let victim = owned_session(&api, "victim").await;
    let attacker = owned_session(&api, "attacker").await;
    assert!(victim.starts_with("session=") && attacker.starts_with("session="));
    assert_ne!(victim, attacker);
    let value = victim.strip_prefix("session=").unwrap();
    let forged = format!("session={}", api::tamper_last(value));

    let api = &api;
    let session_with =
        |cookies: String| async move { api.get("/session", Some(&cookies)).await.body };
    assert_eq!(
        session_with(victim.clone()).await,
        json!({"owner": "victim"})
    );
    assert_eq!(
        session_with(format!("{attacker}; {victim}")).await,
        json!({}),
        "the tossed cookie first, as browsers send it: no session"
    );
    assert_eq!(
        session_with(format!("{victim}; {attacker}")).await,
        json!({}),
        "in either order"
    );
    assert_eq!(
        session_with(format!("{forged}; {victim}")).await,
        json!({"owner": "victim"}),
        "a cookie that does not verify locks nobody out"
    );
    assert_eq!(
        session_with(format!("{victim}; {victim}")).await,
        json!({"owner": "victim"}),
        "one session named twice"
    );

    // A write under both cookies goes to a fresh session: neither stored session changes.
    let reply = api
        .call(
            Method::PATCH,
            "/session",
            Some(&format!("{attacker}; {victim}")),
            r#"{"cart": "victim's card"}"#,
        )
        .await;
    assert_eq!(reply.body, json!({"cart": "victim's card"}));
    let fresh = reply.cookie();
    assert!(fresh != victim && fresh != attacker, "a new id");
    assert_eq!(session_with(attacker).await, json!({"owner": "attacker"}));
    assert_eq!(session_with(victim).await, json!({"owner": "victim"}));
    assert_eq!(api.table.items().await.len(), 3);
}

#[tokio::test]
async fn two_host_prefixed_cookies_naming_different_sessions_open_neither() {
    let api = Api::new("tossing_host", |l| l).await;
    let first = owned_session(&api, "first").await;
    let second = owned_session(&api, "second").await;
    assert!(first.starts_with("__Host-session="), "{first}");
    let both = format!("{first}; {second}");
    assert_eq!(api.get("/session", Some(&both)).await.body, json!({}));
    assert_eq!(
        api.get("/session", Some(&second)).await.body,
        json!({"owner": "second"})
    );
}

#[tokio::test]
async fn the_default_cookie_is_host_prefixed_and_the_plain_name_otherwise() {
    type Configure = fn(SessionLayer) -> SessionLayer;
    let cases: [(&str, Configure, &str); 4] = [
        ("defaults", |l| l, "__Host-session="),
        ("not_secure", |l| l.with_secure(false), "session="),
        ("a_path", |l| l.with_path("/app"), "session="),
        ("a_domain", |l| l.with_domain("example.com"), "session="),
    ];
    for (name, layer, prefix) in cases {
        let api = Api::new(&format!("cookie_default_{name}"), layer).await;
        let set_cookie = api.get("/counter", None).await.set_cookie().unwrap();
        assert!(set_cookie.starts_with(prefix), "{name}: {set_cookie}");
        assert_eq!(api.layer.cookie_name(), prefix.trim_end_matches('='));
    }
    let api = Api::new("cookie_default_attrs", |l| l).await;
    let set_cookie = api.get("/counter", None).await.set_cookie().unwrap();
    for attribute in ["Secure", "HttpOnly", "Path=/", "SameSite=Lax"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Domain"), "{set_cookie}");
}

#[test]
fn weak_cookie_settings_are_warned_about_once_when_the_layer_wraps_a_service() {
    let logs = integration_tests::capture::Captured::default();
    let store = SessionStore::with_backend(
        dynamodb_session_store::Config::builder()
            .secret_key(SECRET)
            .build()
            .unwrap(),
        dynamodb_session_store::MemoryStore::new(),
    )
    .unwrap();
    tracing::subscriber::with_default(logs.subscriber(), || {
        let quiet = SessionLayer::new(store.clone());
        let _ = quiet.layer(service_fn(|_: Request| async {
            Ok::<_, lambda_http::Error>(Response::new(Body::Empty))
        }));
        assert!(!logs.text().contains("WARN"), "{}", logs.text());

        let plain = SessionLayer::new(store.clone()).with_secure(false);
        for _ in 0..3 {
            let _ = plain.layer(service_fn(|_: Request| async {
                Ok::<_, lambda_http::Error>(Response::new(Body::Empty))
            }));
        }
        assert_eq!(
            logs.text().matches("is not Secure").count(),
            1,
            "{}",
            logs.text()
        );

        let dropped = SessionLayer::new(store)
            .with_cookie_name("__Host-sid")
            .with_path("/app");
        let _ = dropped.layer(service_fn(|_: Request| async {
            Ok::<_, lambda_http::Error>(Response::new(Body::Empty))
        }));
        assert_eq!(dropped.cookie_name(), "__Host-sid", "kept as given");
        assert!(
            logs.text().contains("browsers will drop it"),
            "{}",
            logs.text()
        );
    });
}

#[tokio::test]
async fn without_demo_routes_login_is_not_found_and_hold_ms_is_refused() {
    use api::DemoRoutes::{Off, On};
    let api = Api::new("demo_off", |l| l).await;
    let layer = &api.layer;
    let reply = api::call_with(
        Off,
        layer,
        Method::POST,
        "/login",
        None,
        r#"{"user":"alice"}"#,
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
    assert_eq!(reply.set_cookie(), None);
    let started = std::time::Instant::now();
    let reply = api::call_with(Off, layer, Method::GET, "/counter?hold_ms=3000", None, "").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    assert!(started.elapsed() < Duration::from_secs(2), "not held");
    assert!(
        api.table.items().await.is_empty(),
        "refused before the session"
    );

    // The other routes work as before.
    let cookie = api::call_with(Off, layer, Method::GET, "/counter", None, "")
        .await
        .cookie();
    let reply = api::call_with(Off, layer, Method::GET, "/counter", Some(&cookie), "").await;
    assert_eq!(reply.body, json!({"count": 2}));
    let reply = api::call_with(Off, layer, Method::GET, "/sessions", Some(&cookie), "").await;
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "no user, and no way to claim one"
    );

    // With them on, the same calls are served.
    let reply = api::call_with(
        On,
        layer,
        Method::POST,
        "/login",
        Some(&cookie),
        r#"{"user":"alice"}"#,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let cookie = reply.cookie();
    let reply = api::call_with(
        On,
        layer,
        Method::GET,
        "/counter?hold_ms=10",
        Some(&cookie),
        "",
    )
    .await;
    assert_eq!(reply.body, json!({"count": 3}));
    let reply = api::call_with(Off, layer, Method::GET, "/sessions", Some(&cookie), "").await;
    assert_eq!(
        reply.body["sessions"].as_array().map(Vec::len),
        Some(1),
        "{}",
        reply.body
    );
}

// ---- issue 18: what the handler asks for happens, or the answer says it did not ----------

#[tokio::test]
async fn a_login_as_the_first_request_sets_a_cookie_and_lists_one_session() {
    let api = Api::new("first_login", |l| l).await;
    let user = format!("first-login-{}", std::process::id());
    let login = api
        .call(
            Method::POST,
            "/login",
            None,
            &json!({ "user": user }).to_string(),
        )
        .await;
    assert_eq!(login.status, StatusCode::OK, "{:?}", login.body);
    let cookie = login.cookie();
    let listed = api.get("/sessions", Some(&cookie)).await;
    assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
    let sessions = listed.body["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0]["current"], true);
}

#[tokio::test]
async fn a_logout_or_renewal_whose_write_fails_is_not_a_2xx() {
    let api = Api::new("explicit_fails", |l| l).await;
    let cookie = api.get("/counter", None).await.cookie();

    api.faults.set(&["DeleteItem"]);
    let reply = api
        .call(Method::DELETE, "/session", Some(&cookie), "")
        .await;
    assert_eq!(
        reply.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{:?}",
        reply.body
    );
    assert_eq!(
        reply.set_cookie(),
        None,
        "no cookie claims the logout happened"
    );

    api.faults.set(&["TransactWriteItems"]);
    let reply = api
        .call(Method::POST, "/session/renew", Some(&cookie), "")
        .await;
    assert_eq!(
        reply.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{:?}",
        reply.body
    );
    assert_eq!(reply.set_cookie(), None, "no new cookie");

    // Both said they failed, and the old id still opens the session.
    api.faults.set(&[]);
    let read = api.get("/session", Some(&cookie)).await;
    assert_eq!(read.body, json!({ "count": 1 }));
    assert_eq!(read.set_cookie(), None);
}

/// Issue 18 item 5: under an emulator that reports a 600 s budget, a waiter behind a lock
/// whose holder died answers 503 with `Retry-After` within the function's own Timeout (here
/// 3 s), and the wait ends by then less the layer's margin.
#[tokio::test]
async fn the_budget_is_the_functions_own_timeout_when_the_invocation_reports_longer() {
    use dynamodb_session_store::Concurrency;
    let locking = |c: dynamodb_session_store::ConfigBuilder| {
        c.concurrency(Concurrency::Pessimistic)
            .lock_expiry_time(Duration::from_secs(60))
            .lock_max_wait_time(Duration::from_secs(30))
            // The waiter gives up when its next retry (at most 1.25 delays) would pass the
            // budget: a short delay keeps that within the slack below.
            .lock_retry_delay(Duration::from_millis(100))
    };
    let api = Api::with_store("own_timeout", locking, |l| l).await;
    let cookie = api.get("/counter", None).await.cookie();
    // The dead holder: a lock taken and never released, that expires only in 60 s.
    let elsewhere = api.table.store(locking);
    let id = elsewhere
        .verify_cookie(cookie.split_once('=').unwrap().1)
        .unwrap();
    assert!(elsewhere.load(&id).await.unwrap().unwrap().is_locked());

    let timeout = Duration::from_secs(3);
    let mut request = api::request(Method::GET, "/counter", Some(&cookie), "");
    let mut context = lambda_http::Context::default();
    context.deadline = 600_000; // `cargo lambda watch`'s budget
    request.extensions_mut().insert(context);
    let started = std::time::Instant::now();
    let reply = decode(
        session_api::app_with(api.layer.clone(), api::DemoRoutes::On, timeout)
            .oneshot(request)
            .await
            .unwrap(),
    );
    let took = started.elapsed();
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        reply.body
    );
    assert!(reply.headers.contains_key(header::RETRY_AFTER));
    assert!(took < timeout, "answered after {took:?}, past the Timeout");
    assert!(
        took >= timeout
            - dynamodb_session_store::service::DEFAULT_DEADLINE_MARGIN
            - Duration::from_millis(300),
        "the wait used the budget, not less: {took:?}"
    );
}
