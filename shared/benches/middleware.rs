//! CPU cost of the session layer per request, without DynamoDB.
//!
//! * `codec`: what every request with a cookie pays — parse the Cookie header, verify the
//!   signed id, decode a 1 KB session, encode it again and build the Set-Cookie value.
//! * `layer/*`: the whole layer around a trivial handler, with the SDK answering from
//!   memory (aws-smithy-mocks), so the figure includes the SDK's request building.
//!
//! Run: `cargo bench -p dynamodb-session-store --bench middleware`

use std::hint::black_box;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::update_item::UpdateItemOutput;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use cookie::Cookie;
use criterion::{Criterion, criterion_group, criterion_main};
use dynamodb_session_store::{
    Config, JsonSerializer, RequestSessionExt, SessionData, SessionLayer, SessionSerializer,
    SessionStore,
};
use lambda_http::tower::{Layer, Service, ServiceExt, service_fn};
use lambda_http::{Body, Request, Response};

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
    let encoded = JsonSerializer.serialize(&data).unwrap();
    assert!((900..1200).contains(&encoded.len()), "{}", encoded.len());
    let rule = mock!(Client::get_item).then_output(|| GetItemOutput::builder().build());
    let store = store(mock_client!(aws_sdk_dynamodb, [&rule]));
    // Any id will do: verification cost does not depend on it.
    let cookie_value = {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let create = mock!(Client::put_item).then_output(|| {
            aws_sdk_dynamodb::operation::put_item::PutItemOutput::builder().build()
        });
        let creator = self::store(mock_client!(aws_sdk_dynamodb, [&create]));
        let (id, _) = runtime.block_on(creator.create(&data)).unwrap();
        creator.cookie_value(&id)
    };
    let header = format!("theme=dark; _ga=GA1.2.3.4; session={cookie_value}; lang=en");

    c.bench_function(
        "codec: parse+verify cookie, decode+encode 1 KB, Set-Cookie",
        |b| {
            b.iter(|| {
                let value = Cookie::split_parse(black_box(header.as_str()))
                    .filter_map(Result::ok)
                    .find(|c| c.name() == "session")
                    .unwrap();
                let id = store.verify_cookie(value.value()).unwrap();
                let decoded = JsonSerializer.deserialize(black_box(&encoded)).unwrap();
                let reencoded = JsonSerializer.serialize(&decoded).unwrap();
                let mut set_cookie = Cookie::new("session", store.cookie_value(&id));
                set_cookie.set_http_only(true);
                set_cookie.set_secure(true);
                set_cookie.set_path("/");
                black_box((reencoded.len(), set_cookie.to_string()))
            })
        },
    );
}

fn layer(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let data = one_kilobyte_session();
    let encoded = JsonSerializer.serialize(&data).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let get = mock!(Client::get_item).then_output(move || {
        GetItemOutput::builder()
            .item("data", AttributeValue::S(encoded.clone()))
            .item("created_at", AttributeValue::N(now.clone()))
            .item("updated_at", AttributeValue::N(now.clone()))
            .build()
    });
    let update = mock!(Client::update_item).then_output(|| UpdateItemOutput::builder().build());
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&get, &update]);
    let store = store(client);
    let cookie = format!("session={}", {
        let create = mock!(Client::put_item).then_output(|| {
            aws_sdk_dynamodb::operation::put_item::PutItemOutput::builder().build()
        });
        let creator = self::store(mock_client!(aws_sdk_dynamodb, [&create]));
        let (id, _) = runtime.block_on(creator.create(&data)).unwrap();
        creator.cookie_value(&id)
    });
    let layer = SessionLayer::new(store);

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
    let request = || {
        let mut request = Request::default();
        request
            .headers_mut()
            .insert("cookie", cookie.parse().unwrap());
        request
    };

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

criterion_group!(benches, codec, layer);
criterion_main!(benches);
