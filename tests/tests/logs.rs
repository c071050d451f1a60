//! No session id, cookie value or secret ever reaches a log line — at any level, from the
//! library, session-api or the AWS SDK — across every route, forged cookies, a failing
//! DynamoDB and lock timeouts.

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use dynamodb_session_store::error_handler::{ErrorAction, ErrorHandler};
use dynamodb_session_store::{Concurrency, Config, Error, SessionLayer, SessionStore};
use integration_tests::capture::Captured;
use integration_tests::fault_proxy::{FaultProxy, FaultRates};
use integration_tests::{Endpoint, SECRET, TestTable, api, client_config, endpoint};
use lambda_http::http::{Method, header};
use lambda_http::tower::ServiceExt;

/// A bearer token the requests carry: no log line may show it either.
const TOKEN: &str = "bearer-token-0123456789";

/// An error handler that logs everything it is given, as an application's might.
#[derive(Debug)]
struct LogsEverything;

impl ErrorHandler for LogsEverything {
    fn handle_error(
        &self,
        error: &Error,
        request: &lambda_http::http::request::Parts,
    ) -> ErrorAction {
        tracing::error!(%error, ?request, "the error handler was shown");
        ErrorAction::Raise
    }
}

async fn call(
    layer: &SessionLayer,
    method: Method,
    path: &str,
    cookie: Option<&str>,
    body: &str,
) -> Option<String> {
    api::call(layer, method, path, cookie, body)
        .await
        .cookie_pair()
}

fn layer_on(
    client: Client,
    table: &str,
    raise_errors: bool,
    concurrency: Concurrency,
) -> SessionLayer {
    SessionLayer::new(
        SessionStore::new(
            Config::builder()
                .table_name(table)
                .secret_key(SECRET)
                .raise_errors(raise_errors)
                .concurrency(concurrency)
                .lock_max_wait_time(Duration::from_millis(200))
                .lock_expiry_time(Duration::from_secs(30))
                .max_stale(Duration::from_secs(600))
                .dynamo_db_client(client)
                .build()
                .unwrap(),
        )
        .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_session_id_cookie_or_secret_appears_in_any_log_line() {
    let logs = Captured::default();
    tracing::subscriber::set_global_default(logs.subscriber()).unwrap();

    let table = TestTable::new("logs").await;
    let mut cookies = Vec::new();
    for (raise_errors, concurrency) in [
        (false, Concurrency::None),
        (true, Concurrency::Optimistic),
        (false, Concurrency::Pessimistic),
    ] {
        let layer = layer_on(table.client.clone(), &table.name, raise_errors, concurrency);
        let cookie = call(&layer, Method::GET, "/counter", None, "")
            .await
            .unwrap();
        call(&layer, Method::GET, "/counter", Some(&cookie), "").await;
        call(&layer, Method::GET, "/session", Some(&cookie), "").await;
        call(
            &layer,
            Method::PATCH,
            "/session",
            Some(&cookie),
            r#"{"user":"ann"}"#,
        )
        .await;
        let huge = format!(
            r#"{{"blob":"{}"}}"#,
            integration_tests::incompressible(410_000)
        );
        call(&layer, Method::PATCH, "/session", Some(&cookie), &huge).await;
        // A forged cookie: same id, broken signature.
        let forged = api::tamper_last(&cookie);
        assert_ne!(forged, cookie);
        if let Some(issued) = call(&layer, Method::GET, "/counter", Some(&forged), "").await {
            cookies.push(issued);
        }
        cookies.push(forged);
        let renewed = call(&layer, Method::POST, "/session/renew", Some(&cookie), "")
            .await
            .unwrap();
        if concurrency == Concurrency::Pessimistic {
            // A lock wait timeout: hold the session in one request, hit it with another.
            let holder = tokio::spawn({
                let (layer, renewed) = (layer.clone(), renewed.clone());
                async move {
                    call(
                        &layer,
                        Method::GET,
                        "/counter?hold_ms=800",
                        Some(&renewed),
                        "",
                    )
                    .await
                }
            });
            tokio::time::sleep(Duration::from_millis(200)).await;
            call(&layer, Method::GET, "/counter", Some(&renewed), "").await;
            holder.await.unwrap();
        }
        call(&layer, Method::DELETE, "/session", Some(&renewed), "").await;
        cookies.extend([cookie, renewed]);
    }

    // DynamoDB failing: every error path logs, none may leak.
    if let Endpoint::Moto(upstream) = endpoint() {
        let rates = FaultRates {
            throttle: 0.3,
            server_error: 0.3,
            drop_before: 0.1,
            drop_after: 0.1,
        };
        let proxy = FaultProxy::start(&upstream, rates, 3).await;
        let faulty = Client::from_conf(client_config().await.endpoint_url(&proxy.url).build());
        for raise_errors in [false, true] {
            let layer = layer_on(faulty.clone(), &table.name, raise_errors, Concurrency::None);
            for _ in 0..10 {
                if let Some(cookie) = call(&layer, Method::GET, "/counter", None, "").await {
                    call(&layer, Method::GET, "/counter", Some(&cookie), "").await;
                    cookies.push(cookie);
                }
            }
        }

        // An error handler that logs its whole request sees no credentials.
        let shown = SessionLayer::new(
            SessionStore::new(
                Config::builder()
                    .table_name(&table.name)
                    .secret_key(SECRET)
                    .error_handler(LogsEverything)
                    .dynamo_db_client(faulty.clone())
                    .build()
                    .unwrap(),
            )
            .unwrap(),
        );
        let healthy = layer_on(table.client.clone(), &table.name, false, Concurrency::None);
        let cookie = call(&healthy, Method::GET, "/counter", None, "")
            .await
            .unwrap();
        for _ in 0..8 {
            let mut request = api::request(Method::GET, "/counter", Some(&cookie), "");
            request.headers_mut().insert(
                header::AUTHORIZATION,
                format!("Bearer {TOKEN}").parse().unwrap(),
            );
            let _ = session_api::app_with(
                shown.clone(),
                api::DemoRoutes::On,
                session_api::FUNCTION_TIMEOUT,
            )
            .oneshot(request)
            .await;
        }
        cookies.push(cookie);
    }

    let text = logs.text();
    // The capture works, and saw the paths that matter.
    let mut expected = vec![
        "session cookie failed verification",
        "session error",
        "session lock wait timed out",
    ];
    if matches!(endpoint(), Endpoint::Moto(_)) {
        expected.extend(["the error handler was shown", "<redacted>"]);
    }
    for expected in expected {
        assert!(text.contains(expected), "no log line mentions {expected:?}");
    }
    assert!(cookies.len() >= 10);
    let lines = text.lines().count();
    for cookie in &cookies {
        let value = cookie.split_once('=').unwrap().1;
        let (id, tag) = value.split_once('.').unwrap();
        for secret in [value, id, tag] {
            assert!(
                !text.contains(secret),
                "a log line contains a session id, tag or cookie"
            );
        }
    }
    assert!(!text.contains(SECRET), "a log line contains the secret key");
    assert!(
        !text.contains(TOKEN),
        "a log line contains an Authorization value"
    );
    eprintln!(
        "checked {lines} log lines against {} cookies",
        cookies.len()
    );
}

// ---- issue 18 item 3: every error answer leaves its cause in the log, once ---------------

/// A request through session-api with a Lambda context carrying `request_id`.
async fn call_as(
    layer: &SessionLayer,
    method: Method,
    path: &str,
    cookie: Option<&str>,
    body: &str,
    request_id: &str,
) -> api::Reply {
    let mut request = api::request(method, path, cookie, body);
    let mut context = lambda_http::Context::default();
    context.request_id = request_id.to_owned();
    request.extensions_mut().insert(context);
    api::decode(
        session_api::app_with(
            layer.clone(),
            api::DemoRoutes::On,
            session_api::FUNCTION_TIMEOUT,
        )
        .oneshot(request)
        .await
        .unwrap(),
    )
}

/// The captured lines that name `request_id`.
fn lines_of(text: &str, request_id: &str) -> Vec<String> {
    text.lines()
        .filter(|line| line.contains(request_id))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn each_error_answer_is_logged_once_with_kind_chain_and_request_id() {
    let logs = Captured::default();
    // This thread only: the other test in this binary owns the global subscriber.
    let _guard = tracing::subscriber::set_default(logs.subscriber());
    let tag = std::process::id();
    let user = format!("log-user-{tag}-secretive");

    for concurrency in [
        Concurrency::None,
        Concurrency::Optimistic,
        Concurrency::Pessimistic,
    ] {
        let (table, _calls, faults) = TestTable::instrumented("logs-once").await;
        let layer = layer_on(table.client.clone(), &table.name, false, concurrency);
        let login = call_as(
            &layer,
            Method::POST,
            "/login",
            None,
            &format!(r#"{{"user":"{user}"}}"#),
            "req-login",
        )
        .await;
        let cookie = login.cookie();

        // A logout whose DeleteItem fails: 500, one ERROR line.
        faults.set(&["DeleteItem"]);
        let logout_id = format!("req-logout-{tag}-{concurrency:?}");
        let reply = call_as(
            &layer,
            Method::DELETE,
            "/session",
            Some(&cookie),
            "",
            &logout_id,
        )
        .await;
        assert_eq!(reply.status, 500, "{:?}", reply.body);
        // A renewal whose transaction fails: 500, one ERROR line.
        faults.set(&["TransactWriteItems"]);
        let renew_id = format!("req-renew-{tag}-{concurrency:?}");
        let reply = call_as(
            &layer,
            Method::POST,
            "/session/renew",
            Some(&cookie),
            "",
            &renew_id,
        )
        .await;
        assert_eq!(reply.status, 500, "{:?}", reply.body);
        faults.set(&[]);

        let text = logs.text();
        for (request_id, operation) in [
            (&logout_id, "DeleteItem"),
            (&renew_id, "TransactWriteItems"),
        ] {
            let lines = lines_of(&text, request_id);
            assert_eq!(
                lines.len(),
                1,
                "exactly one line for {request_id}: {lines:#?}"
            );
            let line = &lines[0];
            assert!(line.contains("ERROR"), "{line}");
            assert!(line.contains("DynamoDb"), "the kind: {line}");
            assert!(line.contains("status=500"), "{line}");
            assert!(
                line.contains(&format!("injected failure of {operation}")),
                "the source chain: {line}"
            );
        }
        let value = cookie.split_once('=').unwrap().1;
        let (id, signature) = value.split_once('.').unwrap();
        for secret in [value, id, signature, user.as_str()] {
            assert!(!text.contains(secret), "a log line shows {secret}");
        }
    }

    // A handler's error through `?` (no user index: `GET /sessions` answers 500), logged
    // once, by the layer, though the handler's `Err` then becomes the layer's answer.
    let client = integration_tests::client().await;
    let bare = integration_tests::table_name("logs-no-index");
    integration_tests::tables::bare_table(&client, &bare, &[]).await;
    let layer = layer_on(client.clone(), &bare, false, Concurrency::None);
    let cookie = call_as(
        &layer,
        Method::POST,
        "/login",
        None,
        &format!(r#"{{"user":"{user}"}}"#),
        "req-login-bare",
    )
    .await
    .cookie();
    let list_id = format!("req-list-{tag}");
    let reply = call_as(
        &layer,
        Method::GET,
        "/sessions",
        Some(&cookie),
        "",
        &list_id,
    )
    .await;
    assert_eq!(reply.status, 500, "{:?}", reply.body);
    let lines = lines_of(&logs.text(), &list_id);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].contains("ERROR") && lines[0].contains("UserIndexMissing"),
        "{}",
        lines[0]
    );
    assert!(!lines[0].contains(&user));

    // A 503 (the lock is held past the wait) is a WARN.
    let table = TestTable::new("logs-busy").await;
    let layer = layer_on(
        table.client.clone(),
        &table.name,
        false,
        Concurrency::Pessimistic,
    );
    let cookie = call(&layer, Method::GET, "/counter", None, "")
        .await
        .unwrap();
    let holder = tokio::spawn({
        let (layer, cookie) = (layer.clone(), cookie.clone());
        async move {
            call(
                &layer,
                Method::GET,
                "/counter?hold_ms=800",
                Some(&cookie),
                "",
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let busy_id = format!("req-busy-{tag}");
    let reply = call_as(&layer, Method::GET, "/counter", Some(&cookie), "", &busy_id).await;
    holder.await.unwrap();
    assert_eq!(reply.status, 503, "{:?}", reply.body);
    let lines = lines_of(&logs.text(), &busy_id);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].contains("WARN") && lines[0].contains("LockWaitTimeout"),
        "{}",
        lines[0]
    );
}
