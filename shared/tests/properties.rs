//! Property tests for everything a client controls: the Cookie header, the signed id, and
//! (through a compromised table) the stored session data. No input may panic, and no forged
//! cookie may verify.
//!
//! CI runs a short smoke (the proptest default, 256 cases per property, or `PROPTEST_CASES`).
//! The long run is `./scripts/fuzz` (1,000,000 cases per property, release build).

use std::sync::OnceLock;

use aws_sdk_dynamodb::config::{Credentials, Region};
use dynamodb_session_store::serializer::{JsonSerializer, SessionSerializer};
use dynamodb_session_store::{Config, SessionData, SessionLayer, SessionStore};
use lambda_http::tower::{Layer, ServiceExt, service_fn};
use lambda_http::{Body, Request, Response};
use proptest::prelude::*;

const SECRET: &str = "property-test-secret-0123456789abcdef0123";

/// A store whose client points at a closed port: verification never touches DynamoDB.
fn store() -> &'static SessionStore {
    static STORE: OnceLock<SessionStore> = OnceLock::new();
    STORE.get_or_init(|| {
        let client = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::Config::builder()
                .behavior_version_latest()
                .endpoint_url("http://127.0.0.1:9")
                .region(Region::new("us-east-1"))
                .credentials_provider(Credentials::new("x", "x", None, None, "tests"))
                .build(),
        );
        SessionStore::new(
            Config::builder()
                .secret_key(SECRET)
                .dynamo_db_client(client)
                .build()
                .unwrap(),
        )
        .unwrap()
    })
}

/// Cookie values this store issued: a fixed pool of genuine ones keeps the strategy cheap.
fn signed_cookie() -> impl Strategy<Value = String> {
    static POOL: OnceLock<Vec<String>> = OnceLock::new();
    let pool = POOL.get_or_init(|| (0..64).map(|_| mint()).collect());
    proptest::sample::select(pool.clone())
}

/// A genuine cookie value. Ids come only from the OS RNG inside `create`, so mint one with a
/// store whose client answers PutItem from memory.
fn mint() -> String {
    use aws_sdk_dynamodb::operation::put_item::PutItemOutput;
    use aws_smithy_mocks::{mock, mock_client};
    let rule =
        mock!(aws_sdk_dynamodb::Client::put_item).then_output(|| PutItemOutput::builder().build());
    let minting = SessionStore::new(
        Config::builder()
            .secret_key(SECRET)
            .dynamo_db_client(mock_client!(aws_sdk_dynamodb, [&rule]))
            .build()
            .unwrap(),
    )
    .unwrap();
    // A thread of its own: proptest may call this from inside another test's runtime.
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (id, _) = runtime
            .block_on(minting.create(&SessionData::new()))
            .unwrap();
        minting.cookie_value(&id)
    })
    .join()
    .unwrap()
}

proptest! {
    #[test]
    fn arbitrary_strings_never_verify(value in ".{0,200}") {
        prop_assert!(store().verify_cookie(&value).is_none());
    }

    #[test]
    fn cookie_shaped_strings_never_verify(value in "[A-Za-z0-9_-]{43}\\.[A-Za-z0-9_-]{43}") {
        prop_assert!(store().verify_cookie(&value).is_none());
    }

    #[test]
    fn genuine_cookies_verify_and_round_trip(cookie in signed_cookie()) {
        let id = store().verify_cookie(&cookie).expect("our own signature");
        prop_assert_eq!(store().cookie_value(&id), cookie);
    }

    #[test]
    fn any_change_to_a_genuine_cookie_is_refused(
        cookie in signed_cookie(),
        position in 0usize..87,
        replacement in proptest::char::range('!', '~'),
    ) {
        let mut bytes: Vec<char> = cookie.chars().collect();
        // Always a different character (no rejection sampling: it would starve long runs).
        bytes[position] = match replacement {
            r if r != bytes[position] => r,
            '~' => '!',
            r => char::from(r as u8 + 1),
        };
        let forged: String = bytes.into_iter().collect();
        prop_assert!(store().verify_cookie(&forged).is_none(), "{forged}");
    }

    #[test]
    fn truncated_or_extended_cookies_are_refused(cookie in signed_cookie(), cut in 0usize..87, extra in "[A-Za-z0-9_.-]{1,8}") {
        prop_assert!(store().verify_cookie(&cookie[..cut]).is_none());
        let extended = format!("{cookie}{extra}");
        prop_assert!(store().verify_cookie(&extended).is_none());
    }

    #[test]
    fn stored_data_of_any_shape_decodes_or_errors_without_panicking(text in ".{0,300}") {
        let _ = JsonSerializer.deserialize(&text);
    }

    #[test]
    fn json_objects_round_trip_through_the_serializer(
        map in proptest::collection::btree_map("[a-z]{1,8}", any::<i64>(), 0..16)
    ) {
        let data: SessionData = map.into_iter().map(|(k, v)| (k, v.into())).collect();
        let text = JsonSerializer.serialize(&data).unwrap();
        prop_assert_eq!(JsonSerializer.deserialize(&text).unwrap(), data);
    }

    #[test]
    fn any_cookie_header_gets_an_answer_and_opens_nothing(header in "[ -~]{0,300}") {
        // The handler reports whether the session it was given has any data: with no
        // DynamoDB reachable and no genuine cookie, it must be a fresh, empty session that
        // was never looked up (a lookup would fail against the closed port).
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let service = SessionLayer::new(store().clone()).layer(service_fn(|req: Request| async move {
            use dynamodb_session_store::RequestSessionExt;
            let data = req.session().unwrap().data().await;
            Ok::<_, std::convert::Infallible>(Response::new(Body::from(format!("{}", data.is_ok_and(|d| d.is_empty())))))
        }));
        let mut request = Request::default();
        if let Ok(value) = header.parse() {
            request.headers_mut().insert("cookie", value);
        }
        let response = runtime.block_on(service.oneshot(request)).unwrap();
        prop_assert_eq!(response.body().as_ref(), b"true");
    }
}
