//! DynamoDB calls per request, by request kind and concurrency mode, against the local
//! DynamoDB (moto, started by the test harness, or `AWS_ENDPOINT_URL_DYNAMODB`).
//!
//! Run: `cargo bench -p integration-tests --bench calls`
//!
//! Counts are exact (an SDK interceptor counts every operation); they do not depend on the
//! machine's speed, except the contended rows, where waiting costs one call per retry.

use std::time::Duration;

use dynamodb_session_store::{SessionLayer, SessionStore};
use integration_tests::{CallCounter, TestTable, api};
use lambda_http::http::Method;

async fn call(
    layer: &SessionLayer,
    method: Method,
    path: &str,
    cookie: Option<&str>,
    body: &str,
) -> Option<String> {
    let reply = api::call(layer, method, path, cookie, body).await;
    assert!(reply.status.is_success(), "{path}: {}", reply.status);
    reply.cookie_pair()
}

async fn setup(name: &str, env: &[(&str, &str)]) -> (TestTable, CallCounter, SessionLayer) {
    let (table, calls, _) = TestTable::instrumented(name).await;
    let config = table.config().env(env.iter().copied()).build().unwrap();
    let layer = SessionLayer::new(SessionStore::new(config).unwrap());
    (table, calls, layer)
}

fn describe(calls: &[String]) -> String {
    if calls.is_empty() {
        "0".into()
    } else {
        format!("{} ({})", calls.len(), calls.join(" + "))
    }
}

async fn per_kind(mode: &str, env: &[(&str, &str)]) {
    let (_table, calls, layer) = setup(&format!("calls-{mode}"), env).await;
    let mut rows = Vec::new();
    call(&layer, Method::GET, "/health", None, "").await;
    rows.push(("untouched", describe(&calls.take())));
    let cookie = call(&layer, Method::GET, "/counter", None, "")
        .await
        .unwrap();
    rows.push(("new session (no cookie, write)", describe(&calls.take())));
    call(&layer, Method::GET, "/session", Some(&cookie), "").await;
    rows.push(("read-only with cookie", describe(&calls.take())));
    call(&layer, Method::GET, "/counter", Some(&cookie), "").await;
    rows.push(("change with cookie", describe(&calls.take())));
    let renewed = call(&layer, Method::POST, "/session/renew", Some(&cookie), "")
        .await
        .unwrap();
    rows.push(("renew", describe(&calls.take())));
    call(&layer, Method::DELETE, "/session", Some(&renewed), "").await;
    rows.push(("destroy", describe(&calls.take())));
    for (kind, count) in rows {
        println!("| {mode} | {kind} | {count} |");
    }
}

async fn contended(contenders: usize) -> f64 {
    let (_table, calls, layer) = setup(
        &format!("calls-contended-{contenders}"),
        &[
            ("AWS_DYNAMO_DB_SESSION_ENABLE_LOCKING", "true"),
            ("AWS_DYNAMO_DB_SESSION_LOCK_EXPIRY_TIME", "5000"),
            ("AWS_DYNAMO_DB_SESSION_LOCK_RETRY_DELAY", "50"),
            ("AWS_DYNAMO_DB_SESSION_LOCK_MAX_WAIT_TIME", "60"),
        ],
    )
    .await;
    let cookie = call(&layer, Method::GET, "/counter", None, "")
        .await
        .unwrap();
    calls.take();
    const ROUNDS: usize = 5;
    for _ in 0..ROUNDS {
        let tasks: Vec<_> = (0..contenders)
            .map(|_| {
                let (layer, cookie) = (layer.clone(), cookie.clone());
                tokio::spawn(async move {
                    call(
                        &layer,
                        Method::GET,
                        "/counter?hold_ms=50",
                        Some(&cookie),
                        "",
                    )
                    .await;
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    }
    calls.take().len() as f64 / (ROUNDS * contenders) as f64
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    println!("| mode | request | DynamoDB calls |");
    println!("|---|---|---|");
    per_kind("none", &[]).await;
    per_kind(
        "optimistic",
        &[("AWS_DYNAMO_DB_SESSION_CONCURRENCY", "optimistic")],
    )
    .await;
    per_kind(
        "pessimistic",
        &[("AWS_DYNAMO_DB_SESSION_ENABLE_LOCKING", "true")],
    )
    .await;
    println!();
    println!("Pessimistic locking, GET /counter?hold_ms=50 on one session, retry delay 50 ms:");
    println!("| concurrent requests | calls per request (mean of 5 rounds) |");
    println!("|---|---|");
    for contenders in [1, 2, 10] {
        let mean = contended(contenders).await;
        println!("| {contenders} | {mean:.2} |");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
