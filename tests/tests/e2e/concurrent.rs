//! Lambda's concurrent mode: one session-api process, started exactly as its `main` starts
//! it (`session_api::start`) with `AWS_LAMBDA_MAX_CONCURRENCY=4`, polls a local Runtime API
//! (the emulator below) and serves several invocations at once — on different sessions and
//! on one session, under each concurrency mode — against the local DynamoDB.
//!
//! The function runs in a child process (rusty-fork): the runtime reads its configuration
//! from the process environment, which a test must not change under the other tests.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::io::{Read as _, Seek as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use integration_tests::{Endpoint, SECRET, TestTable, endpoint};
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc, oneshot};

/// Invocations the function serves at once.
const MAX_CONCURRENCY: usize = 4;

/// One queued invocation: its event, ids, and where its answer goes.
struct Invocation {
    id: String,
    trace: String,
    event: Value,
    answer: oneshot::Sender<Value>,
}

/// A Lambda Runtime API on loopback: `/next` hands out queued invocations (waiting for one
/// when there is none), `/response` and `/error` answer them.
struct Emulator {
    queue: mpsc::UnboundedSender<Invocation>,
    next: Mutex<mpsc::UnboundedReceiver<Invocation>>,
    open: Mutex<HashMap<String, oneshot::Sender<Value>>>,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    served: AtomicUsize,
}

impl Emulator {
    fn new() -> Arc<Emulator> {
        let (queue, next) = mpsc::unbounded_channel();
        Arc::new(Emulator {
            queue,
            next: Mutex::new(next),
            open: Mutex::default(),
            in_flight: AtomicUsize::new(0),
            most_in_flight: AtomicUsize::new(0),
            served: AtomicUsize::new(0),
        })
    }

    async fn serve(self: Arc<Self>) -> std::net::SocketAddr {
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .with_state(self);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    /// Invokes the function with a Function URL event and waits for its answer.
    async fn invoke(&self, path_and_query: &str, cookie: Option<&str>) -> Value {
        let n = self.served.fetch_add(1, Ordering::Relaxed);
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let event = json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": path,
            "rawQueryString": query,
            "cookies": cookie.into_iter().collect::<Vec<_>>(),
            "headers": {"host": "localhost", "x-forwarded-proto": "https"},
            "requestContext": {
                "accountId": "anonymous", "apiId": "local", "domainName": "localhost",
                "domainPrefix": "local", "requestId": format!("url-{n}"),
                "routeKey": "$default", "stage": "$default",
                "time": "26/Nov/2026:07:00:00 +0000", "timeEpoch": 1795660800000_i64,
                "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1",
                         "sourceIp": "127.0.0.1", "userAgent": "e2e"}
            },
            "isBase64Encoded": false
        });
        let (answer, answered) = oneshot::channel();
        let invocation = Invocation {
            id: format!("invocation-{n}"),
            trace: format!("Root=1-00000000-{n:024x};Sampled=0"),
            event,
            answer,
        };
        self.queue.send(invocation).map_err(drop).unwrap();
        tokio::time::timeout(Duration::from_secs(30), answered)
            .await
            .expect("the function answers within 30 s")
            .expect("an answer")
    }
}

async fn next(State(emulator): State<Arc<Emulator>>) -> (HeaderMap, String) {
    let invocation = emulator.next.lock().await.recv().await.expect("queue open");
    let deadline = std::time::SystemTime::now() + Duration::from_secs(30);
    let deadline = deadline
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let mut headers = HeaderMap::new();
    let arn = "arn:aws:lambda:us-east-1:123456789012:function:session-api";
    for (name, value) in [
        ("lambda-runtime-aws-request-id", invocation.id.clone()),
        ("lambda-runtime-deadline-ms", deadline.to_string()),
        ("lambda-runtime-invoked-function-arn", arn.to_owned()),
        ("lambda-runtime-trace-id", invocation.trace.clone()),
    ] {
        headers.insert(name, value.parse().unwrap());
    }
    emulator
        .open
        .lock()
        .await
        .insert(invocation.id, invocation.answer);
    let now = emulator.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    emulator.most_in_flight.fetch_max(now, Ordering::SeqCst);
    (headers, invocation.event.to_string())
}

async fn response(State(emulator): State<Arc<Emulator>>, Path(id): Path<String>, body: Bytes) {
    answer(
        &emulator,
        &id,
        serde_json::from_slice(&body).expect("a JSON answer"),
    )
    .await;
}

async fn error(State(emulator): State<Arc<Emulator>>, Path(id): Path<String>, body: Bytes) {
    let text = String::from_utf8_lossy(&body).into_owned();
    answer(&emulator, &id, json!({ "invocation_error": text })).await;
}

async fn answer(emulator: &Emulator, id: &str, answer: Value) {
    emulator.in_flight.fetch_sub(1, Ordering::SeqCst);
    if let Some(waiter) = emulator.open.lock().await.remove(id) {
        let _ = waiter.send(answer);
    }
}

/// An answer's status, `count` and session cookie (`name=value`).
fn read(answer: &Value) -> (u64, Option<i64>, Option<String>) {
    assert!(answer.get("invocation_error").is_none(), "{answer}");
    let status = answer["statusCode"].as_u64().expect("a status");
    let body: Value = answer["body"]
        .as_str()
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    let cookie = answer["cookies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find(|c| c.starts_with("__Host-session="))
        .map(|c| c.split(';').next().unwrap().to_owned());
    (status, body["count"].as_i64(), cookie)
}

/// What the parent keeps between starting the child and driving it.
struct Parent {
    runtime: tokio::runtime::Runtime,
    emulator: Arc<Emulator>,
    _table: TestTable,
}

/// Starts session-api in a child process in concurrency `mode` and drives it.
fn serve_concurrently(test: &str, mode: &'static str) {
    let parent = RefCell::new(None);
    let started = rusty_fork::fork(
        test,
        rusty_fork::rusty_fork_id!(),
        |command| {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            let (table, addr, emulator) = runtime.block_on(async {
                let table = TestTable::new(&format!("concurrent-{mode}")).await;
                let emulator = Emulator::new();
                let addr = emulator.clone().serve().await;
                (table, addr, emulator)
            });
            if let Endpoint::Moto(url) = endpoint() {
                command
                    .env("AWS_ENDPOINT_URL_DYNAMODB", url)
                    .env("AWS_ACCESS_KEY_ID", "test")
                    .env("AWS_SECRET_ACCESS_KEY", "test")
                    .env("AWS_REGION", "us-east-1");
            }
            command
                .env("AWS_LAMBDA_RUNTIME_API", format!("http://{addr}"))
                .env("AWS_LAMBDA_MAX_CONCURRENCY", MAX_CONCURRENCY.to_string())
                .env("AWS_LAMBDA_FUNCTION_NAME", "session-api")
                .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
                .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
                .env("RUST_LOG", "info,lambda_runtime=debug")
                // JSON log lines, as on Lambda: plain fields, no terminal colours.
                .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
                .env("AWS_DYNAMO_DB_SESSION_TABLE_NAME", &table.name)
                .env("AWS_DYNAMO_DB_SESSION_SECRET_KEY", SECRET)
                .env("AWS_DYNAMO_DB_SESSION_CONCURRENCY", mode)
                // Pessimistic waiters queue behind three 300 ms holds, and no lock is old
                // enough to break (the default 500 ms is less than a hold plus its calls on
                // a loaded machine).
                .env("AWS_DYNAMO_DB_SESSION_LOCK_MAX_WAIT_TIME", "5s")
                .env("AWS_DYNAMO_DB_SESSION_LOCK_EXPIRY_TIME", "5s")
                .env("AWS_DYNAMO_DB_SESSION_LOCK_RETRY_DELAY", "50ms")
                .env("SESSION_API_DEMO_ROUTES", "true")
                .env("SESSION_METRICS", "on");
            *parent.borrow_mut() = Some(Parent {
                runtime,
                emulator,
                _table: table,
            });
        },
        |_child, output| {
            let parent = parent.borrow_mut().take().expect("set up before the fork");
            parent.runtime.block_on(drive(&parent.emulator, mode));
            let mut printed = String::new();
            output.rewind().unwrap();
            output.read_to_string(&mut printed).unwrap();
            check_output(&printed);
        },
        || {
            // The child: what session-api's main does, until the parent kills it.
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async {
                lambda_http::tracing::init_default_subscriber();
                session_api::start().await.expect("session-api runs");
            });
        },
    );
    started.expect("fork the function's process");
}

/// What the function printed: the concurrent runtime at work, no warning, EMF records.
fn check_output(printed: &str) {
    assert!(
        !printed.contains("concurrency-tokio feature is not enabled"),
        "{printed}"
    );
    assert!(
        printed.contains("runtime_worker_pool_initializing")
            && printed.contains(&format!("\"worker_count\":{MAX_CONCURRENCY}")),
        "the runtime starts {MAX_CONCURRENCY} workers:\n{printed}"
    );
    let records: Vec<Value> = printed
        .lines()
        .filter(|line| line.starts_with("{\"_aws\""))
        .map(|line| serde_json::from_str(line).expect("an EMF record is one JSON line"))
        .collect();
    let created: i64 = records
        .iter()
        .filter_map(|r| r["SessionsCreated"].as_i64())
        .sum();
    assert_eq!(created, MAX_CONCURRENCY as i64, "{printed}");
}

async fn drive(emulator: &Emulator, mode: &str) {
    // Different sessions, held 1 s each: all at once, or the emulator would see fewer in
    // flight and the round would take 4 s.
    let begun = Instant::now();
    let first = futures::future::join_all(
        (0..MAX_CONCURRENCY).map(|_| emulator.invoke("/counter?hold_ms=1000", None)),
    )
    .await;
    let took = begun.elapsed();
    assert_eq!(
        emulator.most_in_flight.load(Ordering::SeqCst),
        MAX_CONCURRENCY,
        "invocations in flight at once"
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
    let mut cookies = Vec::new();
    for answer in &first {
        let (status, count, cookie) = read(answer);
        assert_eq!((status, count), (200, Some(1)), "{answer}");
        cookies.push(cookie.expect("a new session's cookie"));
    }
    assert_eq!(
        cookies.iter().collect::<HashSet<_>>().len(),
        MAX_CONCURRENCY,
        "one session each"
    );
    // Each session again, concurrently: each sees its own count.
    let second = futures::future::join_all(
        cookies
            .iter()
            .map(|cookie| emulator.invoke("/counter?hold_ms=200", Some(cookie))),
    )
    .await;
    for answer in &second {
        assert_eq!(read(answer).0, 200, "{answer}");
        assert_eq!(read(answer).1, Some(2), "{answer}");
    }

    // One session, four requests at once.
    let shared = &cookies[0];
    let contended = futures::future::join_all(
        (0..MAX_CONCURRENCY).map(|_| emulator.invoke("/counter?hold_ms=300", Some(shared))),
    )
    .await;
    let answers: Vec<_> = contended.iter().map(read).collect();
    let done: Vec<i64> = answers
        .iter()
        .filter(|(status, ..)| *status == 200)
        .map(|(_, count, _)| count.expect("a count"))
        .collect();
    let (_, last, _) = read(&emulator.invoke("/counter", Some(shared)).await);
    let last = last.expect("a count");
    match mode {
        // Serialized by the lock: every increment lands, one after another.
        "pessimistic" => {
            assert!(answers.iter().all(|a| a.0 == 200), "{answers:?}");
            let mut sorted = done.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, [3, 4, 5, 6], "{answers:?}");
            assert_eq!(last, 7);
        }
        // The first write wins, the others are refused and change nothing.
        "optimistic" => {
            assert!(
                answers.iter().all(|a| a.0 == 200 || a.0 == 409),
                "{answers:?}"
            );
            assert!(!done.is_empty(), "at least one write succeeds: {answers:?}");
            assert_eq!(last, 2 + done.len() as i64 + 1, "{answers:?}");
        }
        // No guard: every write succeeds and the last one is what stays.
        _ => {
            assert!(answers.iter().all(|a| a.0 == 200), "{answers:?}");
            assert!(done.contains(&(last - 1)), "{answers:?} then {last}");
        }
    }
}

#[test]
fn one_process_serves_concurrent_invocations_without_locking() {
    serve_concurrently(
        rusty_fork::rusty_fork_test_name!(
            one_process_serves_concurrent_invocations_without_locking
        ),
        "none",
    );
}

#[test]
fn one_process_serves_concurrent_invocations_optimistic() {
    serve_concurrently(
        rusty_fork::rusty_fork_test_name!(one_process_serves_concurrent_invocations_optimistic),
        "optimistic",
    );
}

#[test]
fn one_process_serves_concurrent_invocations_pessimistic() {
    serve_concurrently(
        rusty_fork::rusty_fork_test_name!(one_process_serves_concurrent_invocations_pessimistic),
        "pessimistic",
    );
}
