//! Session data only the cookie can open and only the secret can seal: a table dump shows no
//! data, no user id and no cookie; sealed data copied to another item does not open; with
//! sealing on, data a table writer put in an item (plain, an unsealed frame, or sealed with
//! the old id-only key) does not open, and a stored user hash that disagrees with the sealed
//! user does not either; with `accept_unsealed`, items written in plain text load and are
//! sealed on their next write. Sealed data is stored as bytes (a Binary attribute); every text
//! form stored before opens as it did and is stored as bytes after its next data write.

use aws_sdk_dynamodb::types::AttributeValue;
use dynamodb_session_store::backend::{Changes, Guard, SessionBackend};
use dynamodb_session_store::ops::{self, StoreOps as _};
use dynamodb_session_store::testing::StoreTesting as _;
use dynamodb_session_store::{
    Config, ConfigBuilder, Error, MemoryStore, RequestSessionExt, SessionLayer, SessionStore,
};
use integration_tests::{SECRET, TestTable, data, incompressible};
use lambda_http::http::{Request, Response, header};
use lambda_http::tower::{Layer, ServiceExt, service_fn};
use serde_json::json;

#[tokio::test]
async fn a_table_dump_shows_no_data_no_user_and_no_cookie() {
    let table = TestTable::new("dump").await;
    let layer = SessionLayer::new(table.store(|c| c));
    let mut cookies = Vec::new();
    for n in 0..5 {
        let handler = service_fn(move |request: Request<String>| async move {
            let session = request.session().unwrap();
            session
                .insert("email", format!("marker-email-{n}@example.com"))
                .await?;
            session
                .insert("token", format!("marker-oauth-refresh-token-{n}"))
                .await?;
            // Large enough to be compressed before sealing.
            session
                .insert("cart", vec![format!("marker-item-{n}"); 200])
                .await?;
            session.set_user(format!("marker-user-{n}")).await?;
            Ok::<_, Error>(Response::new(String::new()))
        });
        let response = layer
            .clone()
            .layer(handler)
            .oneshot(Request::new(String::new()))
            .await
            .unwrap();
        let set_cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
        let value = set_cookie
            .split(';')
            .next()
            .unwrap()
            .strip_prefix("__Host-session=")
            .unwrap();
        cookies.push(value.to_owned());
    }

    let dump = format!("{:?}", table.items().await);
    assert!(!dump.contains("marker"), "no data or user id in the table");
    for cookie in &cookies {
        let (id, tag) = cookie.split_once('.').unwrap();
        for part in [cookie.as_str(), id, tag] {
            assert!(!dump.contains(part), "no cookie, id or tag in the table");
        }
    }
    // And the sessions still open with their cookies.
    let store = layer.store();
    let id = store.verify_cookie(&cookies[3]).unwrap();
    let record = store.load(&id).await.unwrap().unwrap();
    assert_eq!(record.data["email"], "marker-email-3@example.com");
    assert_eq!(record.user.as_deref(), Some("marker-user-3"));
}

/// Writes `value` as the `data` of the item under `key`, as a table writer would.
async fn set_data(table: &TestTable, key: AttributeValue, value: AttributeValue) {
    table
        .client
        .update_item()
        .table_name(&table.name)
        .key("session_id", key)
        .update_expression("SET #data = :data")
        .expression_attribute_names("#data", "data")
        .expression_attribute_values(":data", value)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn sealed_data_moved_to_another_item_does_not_open() {
    let table = TestTable::new("moved").await;
    let store = table.store(|c| c);
    let (a, _) = store.create(&data(json!({"owner": "a"}))).await.unwrap();
    let (b, _) = store.create(&data(json!({"owner": "b"}))).await.unwrap();
    let a_data = store.inspect(&a).await.unwrap().unwrap().data;
    let items = table.items().await;
    let is_a = |item: &&std::collections::HashMap<String, AttributeValue>| {
        ops::decode_item(item).unwrap().data == a_data
    };
    let a_raw = items.iter().find(is_a).expect("a's item")["data"].clone();
    assert!(a_raw.is_b(), "sealed data is stored as bytes");
    let b_key = items.iter().find(|item| !is_a(item)).expect("b's item")["session_id"].clone();
    set_data(&table, b_key.clone(), a_raw).await;
    assert_eq!(store.load(&b).await.unwrap(), None, "reads as absent");
    assert_eq!(store.refused_items(), 1, "and is counted");
    // And as sealed text, the form written before data was stored as bytes.
    set_data(&table, b_key, AttributeValue::S(a_data)).await;
    assert_eq!(store.load(&b).await.unwrap(), None, "reads as absent");
    assert_eq!(store.refused_items(), 2, "and is counted");
    assert_eq!(store.load(&a).await.unwrap().unwrap().data["owner"], "a");
}

#[tokio::test]
async fn plain_items_from_before_load_and_are_sealed_on_their_next_write() {
    let table = TestTable::new("plain_before").await;
    let before = table.store(|c| c.seal_data(false));
    let (id, _) = before
        .create(&data(json!({"cart": ["apple"]})))
        .await
        .unwrap();
    // The data as the store reads it: sealed bytes show as their `s1.` text.
    let raw = |items: Vec<std::collections::HashMap<String, AttributeValue>>| {
        ops::decode_item(&items[0]).unwrap().data
    };
    assert_eq!(raw(table.items().await), r#"{"cart":["apple"]}"#);

    assert_eq!(table.store(|c| c).load(&id).await.unwrap(), None);
    let sealing = table.store(|c| c.accept_unsealed(true));
    let mut record = sealing.load(&id).await.unwrap().unwrap();
    assert_eq!(record.data["cart"], json!(["apple"]));
    record.data.insert("cart".into(), json!(["apple", "pear"]));
    sealing.save(&id, &record).await.unwrap();
    let stored = raw(table.items().await);
    assert!(
        stored.starts_with("s1.") && !stored.contains("pear"),
        "{stored}"
    );
    assert!(table.items().await[0]["data"].is_b(), "sealed as bytes");
    assert_eq!(
        sealing.load(&id).await.unwrap().unwrap().data["cart"][1],
        "pear"
    );
}

#[tokio::test]
async fn large_sessions_are_stored_compressed() {
    let table = TestTable::new("compressed").await;
    let store = table.store(|c| c);
    // Typical JSON: repeated keys and similar values compress well; random text does not.
    let cart: Vec<_> = (0..300)
        .map(|n| json!({"sku": format!("SKU-{n:05}"), "quantity": n % 3 + 1, "currency": "EUR"}))
        .collect();
    let session = data(json!({ "cart": cart, "note": incompressible(100) }));
    let serialized = serde_json::to_string(&session).unwrap().len();
    let (id, _) = store.create(&session).await.unwrap();
    let stored = store.inspect(&id).await.unwrap().unwrap().data.len();
    assert!(
        stored * 3 < serialized,
        "stored {stored} bytes of {serialized}"
    );
    assert_eq!(store.load(&id).await.unwrap().unwrap().data, session);
}

/// Where one session's item can be written directly, as a table writer would.
enum Raw {
    Dynamo(TestTable),
    Memory(MemoryStore),
}

impl Raw {
    fn store(&self, configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> SessionStore {
        match self {
            Raw::Dynamo(table) => table.store(configure),
            Raw::Memory(memory) => SessionStore::with_backend(
                configure(Config::builder().secret_key(SECRET))
                    .build()
                    .unwrap(),
                memory.clone(),
            )
            .unwrap(),
        }
    }

    /// The only item's table key.
    async fn key(&self) -> String {
        match self {
            Raw::Dynamo(table) => {
                let items = table.items().await;
                assert_eq!(items.len(), 1);
                items[0]["session_id"].as_s().unwrap().clone()
            }
            Raw::Memory(memory) => {
                let items = memory.items_snapshot();
                assert_eq!(items.len(), 1);
                items[0].0.clone()
            }
        }
    }

    async fn set(&self, attribute: &str, value: &str) {
        let key = self.key().await;
        match self {
            Raw::Dynamo(table) => {
                table
                    .client
                    .update_item()
                    .table_name(&table.name)
                    .key("session_id", AttributeValue::S(key))
                    .update_expression("SET #a = :v")
                    .expression_attribute_names("#a", attribute)
                    .expression_attribute_values(":v", AttributeValue::S(value.to_owned()))
                    .send()
                    .await
                    .unwrap();
            }
            Raw::Memory(memory) => {
                let changes = match attribute {
                    "data" => Changes {
                        data: Some(value.to_owned()),
                        ..Changes::default()
                    },
                    "user_hash" => Changes {
                        user_hash: Some(Some(value.to_owned())),
                        ..Changes::default()
                    },
                    other => panic!("no raw write of {other}"),
                };
                memory.update(&key, &changes, &Guard::None).await.unwrap();
            }
        }
    }

    async fn data(&self) -> String {
        match self {
            Raw::Dynamo(table) => {
                let item = &table.items().await[0];
                assert!(item["data"].is_b(), "sealed data is stored as bytes");
                ops::decode_item(item).unwrap().data
            }
            Raw::Memory(memory) => memory.items_snapshot()[0].1.data.clone(),
        }
    }
}

/// The acceptance test: what a table writer puts in an item does not open with sealing on;
/// with `accept_unsealed` the unsealed forms open and the next write seals them.
async fn table_writers_cannot_forge(raw: Raw) {
    let strict = raw.store(|c| c);
    let migrating = raw.store(|c| c.accept_unsealed(true));
    let (id, _) = strict.create(&data(json!({"role": "user"}))).await.unwrap();
    // Compressible, so that compressing it pays.
    let forged = data(json!({"role": "admin", "note": "so long ".repeat(20)}));
    let plain = serde_json::to_string(&forged).unwrap();
    // Compressing whatever it shrinks makes an unsealed store write a `p1.` frame.
    let frame = raw
        .store(|c| c.seal_data(false).compress_above(Some(0)))
        .seal_data(&id, &forged, None)
        .unwrap();
    assert!(frame.starts_with("p1."), "{frame}");
    let id_only = strict
        .seal_data_with_id_only_key(&id, &forged, None)
        .unwrap();
    assert!(id_only.starts_with("s1."), "{id_only}");

    for (n, (form, text)) in [("plain", &plain), ("frame", &frame), ("id-only", &id_only)]
        .into_iter()
        .enumerate()
    {
        raw.set("data", text).await;
        assert_eq!(strict.load(&id).await.unwrap(), None, "{form}");
        assert_eq!(strict.refused_items(), n as u64 + 1, "{form} is counted");
    }
    // The old id-only key is the forgery path: no switch opens it.
    assert_eq!(migrating.load(&id).await.unwrap(), None);

    for (form, text) in [("plain", &plain), ("frame", &frame)] {
        raw.set("data", text).await;
        let mut record = migrating.load(&id).await.unwrap().expect(form);
        assert_eq!(record.data["role"], "admin", "{form}");
        record.data.insert("seen".into(), json!(form));
        migrating.save(&id, &record).await.unwrap();
        let stored = raw.data().await;
        assert!(
            stored.starts_with("s1.") && !stored.contains("admin"),
            "{form} re-sealed: {stored}"
        );
        assert_eq!(
            strict.load(&id).await.unwrap().expect(form).data["seen"],
            form
        );
    }
}

/// The user binding is in the sealed frame and in the indexed hash: a writer who changes the
/// hash (to another user's, say) makes the session not open.
async fn a_user_hash_that_disagrees_does_not_open(raw: Raw) {
    let store = raw.store(|c| c);
    let (id, mut record) = store.create(&data(json!({}))).await.unwrap();
    record.user = Some("ann".into());
    store.save(&id, &record).await.unwrap();
    assert_eq!(
        store.load(&id).await.unwrap().unwrap().user.as_deref(),
        Some("ann")
    );
    raw.set("user_hash", "another-users-hash").await;
    assert_eq!(store.load(&id).await.unwrap(), None);
    assert_eq!(store.refused_items(), 1);
}

#[tokio::test]
async fn table_writers_cannot_forge_on_dynamodb() {
    table_writers_cannot_forge(Raw::Dynamo(TestTable::new("forge").await)).await;
}

#[tokio::test]
async fn table_writers_cannot_forge_in_memory() {
    table_writers_cannot_forge(Raw::Memory(MemoryStore::new())).await;
}

#[tokio::test]
async fn a_user_hash_that_disagrees_does_not_open_on_dynamodb() {
    a_user_hash_that_disagrees_does_not_open(Raw::Dynamo(TestTable::new("user_hash").await)).await;
}

#[tokio::test]
async fn a_user_hash_that_disagrees_does_not_open_in_memory() {
    a_user_hash_that_disagrees_does_not_open(Raw::Memory(MemoryStore::new())).await;
}

/// Every text form `data` was stored in before opens (the unsealed ones with
/// `accept_unsealed`), and the next data write stores it as bytes.
#[tokio::test]
async fn text_items_from_before_open_and_are_bytes_after_their_next_write() {
    let table = TestTable::new("text_before").await;
    let strict = table.store(|c| c);
    let migrating = table.store(|c| c.accept_unsealed(true));
    let (id, _) = strict.create(&data(json!({"n": 0}))).await.unwrap();
    let only = |items: Vec<std::collections::HashMap<String, AttributeValue>>| {
        assert_eq!(items.len(), 1);
        items.into_iter().next().unwrap()
    };
    let key = only(table.items().await)["session_id"].clone();
    assert!(
        only(table.items().await)["data"].is_b(),
        "a new session's data is bytes"
    );
    let session = data(json!({"cart": vec!["apple"; 100], "n": 1}));
    let sealed = strict.seal_data(&id, &session, None).unwrap();
    let sealed_uncompressed = table
        .store(|c| c.compress_above(None))
        .seal_data(&id, &session, None)
        .unwrap();
    let frame = table
        .store(|c| c.seal_data(false).compress_above(Some(0)))
        .seal_data(&id, &session, None)
        .unwrap();
    assert!(frame.starts_with("p1."), "{frame}");
    let plain = serde_json::to_string(&session).unwrap();
    let forms = [
        ("sealed text, compressed", sealed, &strict),
        ("sealed text", sealed_uncompressed, &strict),
        ("framed", frame, &migrating),
        ("plain", plain, &migrating),
    ];
    for (n, (form, text, store)) in forms.into_iter().enumerate() {
        set_data(&table, key.clone(), AttributeValue::S(text)).await;
        assert!(only(table.items().await)["data"].is_s(), "{form}");
        let mut record = store.load(&id).await.unwrap().expect(form);
        assert_eq!(record.data, session, "{form} opens");
        record.data.insert("n".into(), json!(10 + n));
        store.save(&id, &record).await.unwrap();
        assert!(
            only(table.items().await)["data"].is_b(),
            "{form}: bytes after the next write"
        );
        assert_eq!(
            strict.load(&id).await.unwrap().expect(form).data["n"],
            10 + n,
            "{form}"
        );
    }
}
