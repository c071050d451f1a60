//! CPU cost of the session layer per request, without DynamoDB.
//!
//! * `codec`: what every request with a cookie pays — parse the Cookie header, verify the
//!   signed id, open a sealed 1 KB session, seal it again and build the Set-Cookie value
//!   (and the same with sealing off, for comparison).
//! * `seal/*`, `open/*`: sealing and opening alone, 1 KB and 64 KB.
//! * `layer/*`: the whole layer around a trivial handler, with the SDK answering from
//!   memory (aws-smithy-mocks), so the figure includes the SDK's request building.
//! * `metrics/*`: a read and a write on `MemoryStore` with no metrics recorder, then with the
//!   CloudWatch EMF recorder installed and flushed per request: what the metrics cost.
//!
//! Before the timings it prints, for typical JSON sessions of 1, 8 and 64 KB, the stored
//! `data` bytes, the whole item's bytes as DynamoDB counts them and the write units a write
//! costs, before (sealed text) and after (sealed bytes, compressed and padded), and what the
//! padding adds.
//!
//! Run: `cargo bench -p dynamodb-session-store --features emf --bench middleware`

use std::hint::black_box;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::put_item::PutItemOutput;
use aws_sdk_dynamodb::operation::update_item::UpdateItemOutput;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cookie::Cookie;
use criterion::{Criterion, criterion_group, criterion_main};
use dynamodb_session_store::attributes::item_size;
use dynamodb_session_store::metrics::emf::{EmfSettings, METRICS_VAR};
use dynamodb_session_store::ops::StoreOps as _;
use dynamodb_session_store::{
    Config, MemoryStore, RequestSessionExt, SessionData, SessionId, SessionLayer, SessionStore,
};
use lambda_http::tower::{Layer, Service, ServiceExt, service_fn};
use lambda_http::{Body, Request, Response};

mod sessions;

use sessions::typical_session;

const SECRET: &str = "benchmark-secret-0123456789abcdef0123456789";

/// A session whose JSON encoding is about 1 KB.
fn one_kilobyte_session() -> SessionData {
    let mut data = SessionData::new();
    data.insert("user_id".into(), 123_456.into());
    data.insert(
        "roles".into(),
        serde_json::json!(["reader", "writer", "admin"]),
    );
    for i in 0..12 {
        data.insert(format!("preference_{i:02}"), "x".repeat(60).into());
    }
    data
}

/// A store in memory with the given options, and a session id of it.
fn memory_store(
    configure: impl FnOnce(
        dynamodb_session_store::ConfigBuilder,
    ) -> dynamodb_session_store::ConfigBuilder,
) -> (SessionStore, SessionId) {
    let store = SessionStore::with_backend(
        configure(Config::builder().secret_key(SECRET))
            .build()
            .unwrap(),
        MemoryStore::default(),
    )
    .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (id, _) = runtime.block_on(store.create(&SessionData::new())).unwrap();
    (store, id)
}

/// Bytes and write units of typical sessions as DynamoDB counts them: the whole item the
/// store's PutItem sends (captured from a mocked client), and the same item with `data` in
/// the format this release replaced (`s1.` + base64 text, compressed only above 1 KB,
/// unpadded), whose size follows from the frame's.
fn sizes() {
    eprintln!(
        "| session JSON | before: `data` (S) | item | WCU | after: `data` (B) | item | WCU | of it, padding |"
    );
    eprintln!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let wcu = |bytes: usize| bytes.div_ceil(1024);
    for kb in [1, 8, 64] {
        let data = typical_session(kb * 1024);
        let json = serde_json::to_string(&data).unwrap().len();
        let sent = std::sync::Arc::new(std::sync::Mutex::new(None));
        let capture = sent.clone();
        let put = mock!(Client::put_item)
            .match_requests(move |input| {
                *capture.lock().unwrap() = input.item.clone();
                true
            })
            .then_output(|| PutItemOutput::builder().build());
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&put]);
        runtime.block_on(store(client).create(&data)).unwrap();
        let item = sent.lock().unwrap().take().expect("the create's PutItem");
        let after = item_size(&item);
        let stored = item["data"]
            .as_b()
            .expect("sealed data is binary")
            .as_ref()
            .len();
        // Nonce and tag around the frame; the frame is a flags byte and the body.
        let frame = stored - 12 - 16;
        let compressed_body =
            lz4_flex::compress_prepend_size(&serde_json::to_vec(&data).unwrap()).len();
        let padding = if frame == 1 + json {
            0
        } else {
            frame - 1 - compressed_body
        };
        let old_body = if json > 1024 { compressed_body } else { json };
        // base64url without padding: four characters per three bytes, rounded up.
        let old_stored = "s1.".len() + ((12 + 1 + old_body + 16) * 4).div_ceil(3);
        let before = after - stored + old_stored;
        eprintln!(
            "| {json} B | {old_stored} B | {before} B | {} | {stored} B | {after} B | {} | {padding} B |",
            wcu(before),
            wcu(after),
        );
    }
}

fn sealing(c: &mut Criterion) {
    sizes();
    for kb in [1, 64] {
        let data = typical_session(kb * 1024);
        let (store, id) = memory_store(|c| c);
        let sealed = store.seal_data(&id, &data, None).unwrap();
        c.bench_function(&format!("seal/{kb} KB"), |b| {
            b.iter(|| store.seal_data(&id, black_box(&data), None).unwrap())
        });
        c.bench_function(&format!("open/{kb} KB"), |b| {
            b.iter(|| store.open_data(&id, black_box(&sealed)).unwrap())
        });
    }
    // What compression costs: the 64 KB session never compressed.
    let data = typical_session(64 * 1024);
    let (store, id) = memory_store(|c| c.compress_above(None));
    let sealed = store.seal_data(&id, &data, None).unwrap();
    c.bench_function("seal/64 KB, never compressed", |b| {
        b.iter(|| store.seal_data(&id, black_box(&data), None).unwrap())
    });
    c.bench_function("open/64 KB, never compressed", |b| {
        b.iter(|| store.open_data(&id, black_box(&sealed)).unwrap())
    });
}

fn store(client: Client) -> SessionStore {
    SessionStore::new(
        Config::builder()
            .secret_key(SECRET)
            .max_stale(std::time::Duration::from_secs(1800))
            .dynamo_db_client(client)
            .build()
            .unwrap(),
    )
    .unwrap()
}

fn codec(c: &mut Criterion) {
    let data = one_kilobyte_session();
    let json = serde_json::to_string(&data).unwrap();
    assert!((900..1200).contains(&json.len()), "{}", json.len());
    for (name, seal) in [("sealed", true), ("plain", false)] {
        let (store, id) = memory_store(|c| c.seal_data(seal));
        let stored = store.seal_data(&id, &data, None).unwrap();
        let header = format!(
            "theme=dark; _ga=GA1.2.3.4; session={}; lang=en",
            store.cookie_value(&id)
        );
        c.bench_function(
            &format!("codec ({name}): parse+verify cookie, open+seal 1 KB, Set-Cookie"),
            |b| {
                b.iter(|| {
                    let value = Cookie::split_parse(black_box(header.as_str()))
                        .filter_map(Result::ok)
                        .find(|c| c.name() == "session")
                        .unwrap();
                    let id = store.verify_cookie(value.value()).unwrap();
                    let (opened, _) = store.open_data(&id, black_box(&stored)).unwrap();
                    let resealed = store.seal_data(&id, &opened, None).unwrap();
                    let mut set_cookie = Cookie::new("session", store.cookie_value(&id));
                    set_cookie.set_http_only(true);
                    set_cookie.set_secure(true);
                    set_cookie.set_path("/");
                    black_box((resealed.len(), set_cookie.to_string()))
                })
            },
        );
    }
}

fn layer(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let data = one_kilobyte_session();
    let (creator_store, id) = memory_store(|c| c.max_stale(std::time::Duration::from_secs(1800)));
    // The same secret derives the same keys: what this store seals, the layer's store opens.
    let encoded = creator_store.seal_data(&id, &data, None).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    // As DynamoDB returns it: the sealed bytes, without the text form's prefix and base64.
    let encoded = aws_smithy_types::Blob::new(
        URL_SAFE_NO_PAD
            .decode(encoded.strip_prefix("s1.").unwrap())
            .unwrap(),
    );
    let get = mock!(Client::get_item).then_output(move || {
        GetItemOutput::builder()
            .item("data", AttributeValue::B(encoded.clone()))
            .item("created_at", AttributeValue::N(now.clone()))
            .item("updated_at", AttributeValue::N(now.clone()))
            .build()
    });
    let update = mock!(Client::update_item).then_output(|| UpdateItemOutput::builder().build());
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&get, &update]);
    let store = store(client);
    let layer = SessionLayer::new(store);
    // `__Host-session` by default: a cookie of another name opens no session.
    let cookie = format!(
        "{}={}",
        layer.cookie_name(),
        creator_store.cookie_value(&id)
    );

    let untouched = layer.layer(service_fn(|_req: Request| async {
        Ok::<_, std::convert::Infallible>(Response::new(Body::Empty))
    }));
    let reading = layer.layer(service_fn(|req: Request| async move {
        let n: Option<u64> = req.session().unwrap().get("user_id").await.unwrap();
        Ok::<_, std::convert::Infallible>(Response::new(Body::from(n.unwrap().to_string())))
    }));
    let writing = layer.layer(service_fn(|req: Request| async move {
        let session = req.session().unwrap();
        let n: u64 = session.get("user_id").await.unwrap().unwrap();
        session.insert("user_id", n + 1).await.unwrap();
        Ok::<_, std::convert::Infallible>(Response::new(Body::Empty))
    }));
    let request = || with_cookie(&cookie);

    let mut group = c.benchmark_group("layer");
    group.bench_function("untouched (cookie parsed, no call)", |b| {
        b.iter(|| {
            runtime
                .block_on(untouched.clone().oneshot(request()))
                .unwrap()
        })
    });
    group.bench_function("read 1 KB (mocked GetItem)", |b| {
        b.iter(|| {
            runtime
                .block_on(reading.clone().oneshot(request()))
                .unwrap()
        })
    });
    group.bench_function("read+write 1 KB (mocked GetItem+UpdateItem)", |b| {
        b.iter(|| {
            let mut service = writing.clone();
            runtime.block_on(async {
                service.ready().await.unwrap();
                service.call(request()).await.unwrap()
            })
        })
    });
    group.finish();
}

/// What the metrics cost: a request that reads and writes its session (on `MemoryStore`, so
/// the figure is the layer's CPU and the metrics'), first with no recorder installed — every
/// metric the facade's no-op — then with the CloudWatch EMF recorder installed and its
/// records written (to a sink) after each request, as session-api does.
fn metrics(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (store, id) = memory_store(|c| c);
    let layer = SessionLayer::new(store.clone());
    // The layer's own cookie name (`__Host-session` by default): any other opens nothing, and
    // the bench would measure a request without a session.
    let cookie = format!("{}={}", layer.cookie_name(), store.cookie_value(&id));
    let writing = layer.layer(service_fn(|req: Request| async move {
        let session = req.session().unwrap();
        let n: u64 = session.get("n").await.unwrap().unwrap_or(0);
        session.insert("n", n + 1).await.unwrap();
        Ok::<_, std::convert::Infallible>(Response::new(Body::Empty))
    }));
    let request = || with_cookie(&cookie);
    let mut group = c.benchmark_group("metrics");
    group.bench_function("read+write (MemoryStore), no recorder", |b| {
        b.iter(|| {
            runtime
                .block_on(writing.clone().oneshot(request()))
                .unwrap()
        })
    });
    let settings = EmfSettings::from_env([(METRICS_VAR, "on")]).unwrap();
    let emf = settings.expect("on").install().unwrap();
    group.bench_function("read+write (MemoryStore), EMF recorder, flushed", |b| {
        b.iter(|| {
            let response = runtime
                .block_on(writing.clone().oneshot(request()))
                .unwrap();
            emf.flush_to(std::io::sink()).unwrap();
            response
        })
    });
    group.finish();
}

criterion_group!(benches, codec, sealing, layer, metrics);
criterion_main!(benches);

/// A request carrying `cookie` as its Cookie header.
fn with_cookie(cookie: &str) -> Request {
    let mut request = Request::default();
    request
        .headers_mut()
        .insert("cookie", cookie.parse().unwrap());
    request
}
