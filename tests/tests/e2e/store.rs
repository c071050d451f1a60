//! The session store against a real DynamoDB-compatible server, one table per test: what only
//! DynamoDB shows — the item's layout, timestamps edited in the table, a missing table. What
//! every backend must do is the conformance suite's (`integration_tests::conformance`).

use aws_sdk_dynamodb::types::AttributeValue;
use dynamodb_session_store::{Config, Error, SessionData, SessionStore};
use integration_tests::{SECRET, TestTable, data, now};
use serde_json::json;

fn number(item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> i64 {
    item[name]
        .as_n()
        .unwrap_or_else(|_| panic!("{name} is N"))
        .parse()
        .unwrap()
}

/// The TTL attribute as stored: a whole number of seconds when no limit is configured, none
/// when explicitly unlimited. The lifetimes themselves are the conformance suite's
/// `round_trip_with_a_lifetime_by_default`.
#[tokio::test]
async fn every_session_has_a_lifetime_unless_explicitly_unlimited() {
    let table = TestTable::new("default_lifetime").await;
    let store = table.store(|c| c);
    let (_, record) = store.create(&data(json!({"k": 1}))).await.unwrap();
    let items = table.items().await;
    let expire_at = items[0]["expire_at"]
        .as_n()
        .expect("an integer expire_at, with no limit configured");
    let expire_at: i64 = expire_at.parse().expect("a whole number of seconds");
    assert!(expire_at > now(), "in the future");
    assert_eq!(
        expire_at,
        record.created_at + dynamodb_session_store::config::DEFAULT_MAX_STALE.as_secs() as i64
    );

    let table = TestTable::new("explicitly_unlimited").await;
    let store = table.store(|c| c.max_stale(dynamodb_session_store::Lifetime::Unlimited));
    store.create(&data(json!({"k": 1}))).await.unwrap();
    assert!(!table.items().await[0].contains_key("expire_at"));
}

#[tokio::test]
async fn item_layout_uses_a_keyed_hash_never_the_cookie() {
    let table = TestTable::new("item_layout").await;
    let store = table.store(|c| c.max_stale(std::time::Duration::from_secs(600)));
    let (id, record) = store.create(&data(json!({"k": "v"}))).await.unwrap();
    let cookie = store.cookie_value(&id);

    let items = table.items().await;
    assert_eq!(items.len(), 1);
    let item = &items[0];
    let key = item["session_id"].as_s().expect("hash key is S");
    assert_ne!(key, &cookie);
    assert!(!cookie.contains(key.as_str()) && !key.contains(cookie.split('.').next().unwrap()));
    assert!(
        store.verify_cookie(key).is_none(),
        "the table key is not a cookie"
    );
    assert!(item["data"].is_b(), "sealed data is stored as bytes");
    let sealed = dynamodb_session_store::ops::decode_item(item).unwrap().data;
    assert!(
        sealed.starts_with("s1.") && !sealed.contains('"'),
        "sealed, not JSON: {sealed}"
    );
    let created = number(item, "created_at");
    assert_eq!(number(item, "updated_at"), created);
    assert_eq!(number(item, "expire_at"), created + 600);
    assert_eq!(record.expire_at, Some(created + 600));
    let mut names: Vec<_> = item.keys().cloned().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "created_at",
            "data",
            "expire_at",
            "session_id",
            "updated_at",
            "version"
        ]
    );
    assert_eq!(store.load(&id).await.unwrap().unwrap().data["k"], "v");
}

#[tokio::test]
async fn save_replaces_data_and_keeps_created_at() {
    let table = TestTable::new("save").await;
    let store = table.store(|c| c.max_stale(std::time::Duration::from_secs(600)));
    let (id, mut record) = store.create(&data(json!({"n": 1}))).await.unwrap();
    // Make the first write visibly older so the second one's timestamps must move.
    rewind(&table, &store, &id, 100).await;
    let before = store.load(&id).await.unwrap().unwrap();

    record.data = data(json!({"n": 2}));
    record.created_at = before.created_at;
    let saved = store.save(&id, &record).await.unwrap();
    let loaded = store.load(&id).await.unwrap().unwrap();
    assert_eq!(loaded, saved);
    assert_eq!(loaded.data["n"], 2);
    assert_eq!(
        loaded.created_at, before.created_at,
        "created_at never changes"
    );
    assert!(loaded.updated_at >= before.updated_at + 100);
    assert_eq!(loaded.expire_at, Some(loaded.updated_at + 600));
}

#[tokio::test]
async fn touch_moves_expiry_without_rewriting_data() {
    let table = TestTable::new("touch").await;
    let store = table.store(|c| c.max_stale(std::time::Duration::from_secs(300)));
    let (id, _) = store.create(&data(json!({"n": 1}))).await.unwrap();
    rewind(&table, &store, &id, 100).await;
    let before = store.load(&id).await.unwrap().unwrap();

    // Pass stale data: touch must not write it.
    let mut stale = before.clone();
    stale.data = data(json!({"n": 999}));
    let touched = store.touch(&id, &stale).await.unwrap();
    let loaded = store.load(&id).await.unwrap().unwrap();
    assert_eq!(loaded.data["n"], 1, "touch leaves data alone");
    assert_eq!(loaded.updated_at, touched.updated_at);
    assert!(loaded.updated_at >= before.updated_at + 100);
    assert_eq!(loaded.expire_at, Some(loaded.updated_at + 300));
    assert_eq!(loaded.created_at, before.created_at);
}

#[tokio::test]
async fn renew_moves_data_and_created_at_to_a_new_id() {
    let table = TestTable::new("renew").await;
    let store = table.store(|c| c);
    let (old, _) = store.create(&data(json!({"cart": [1, 2]}))).await.unwrap();
    rewind(&table, &store, &old, 50).await;
    let record = store.load(&old).await.unwrap().unwrap();

    let (new, renewed) = store.renew(&old, &record).await.unwrap();
    assert_ne!(store.cookie_value(&new), store.cookie_value(&old));
    assert_eq!(
        store.load(&old).await.unwrap(),
        None,
        "old id no longer opens it"
    );
    let loaded = store.load(&new).await.unwrap().unwrap();
    assert_eq!(loaded, renewed);
    assert_eq!(loaded.data, record.data);
    assert_eq!(loaded.created_at, record.created_at);
    assert_eq!(table.items().await.len(), 1);
}

#[tokio::test]
async fn expired_items_count_as_absent_before_ttl_deletes_them() {
    let table = TestTable::new("expired_on_read").await;
    let store = table.store(|c| c);
    let (id, _) = store.create(&data(json!({"n": 1}))).await.unwrap();
    let now = now();
    set_number(&table, "expire_at", now - 1).await;
    assert_eq!(
        store.load(&id).await.unwrap(),
        None,
        "expire_at in the past"
    );
    assert_eq!(
        table.items().await.len(),
        1,
        "the item is still there, as under TTL lag"
    );

    set_number(&table, "expire_at", now + 3600).await;
    assert!(
        store.load(&id).await.unwrap().is_some(),
        "expire_at in the future"
    );

    // Limits tightened after the write also apply on read.
    set_number(&table, "updated_at", now - 120).await;
    let strict = table.store(|c| c.max_stale(std::time::Duration::from_secs(60)));
    assert_eq!(
        strict.load(&id).await.unwrap(),
        None,
        "idle longer than max_stale"
    );
    set_number(&table, "created_at", now - 7200).await;
    let absolute = table.store(|c| c.max_age(std::time::Duration::from_secs(3600)));
    assert_eq!(
        absolute.load(&id).await.unwrap(),
        None,
        "older than max_age"
    );
}

#[tokio::test]
async fn expire_at_is_the_earlier_of_idle_and_absolute_limits() {
    let table = TestTable::new("expire_at").await;
    let store = table.store(|c| {
        c.max_stale(std::time::Duration::from_secs(600))
            .max_age(std::time::Duration::from_secs(1000))
    });
    let (id, record) = store.create(&SessionData::new()).await.unwrap();
    assert_eq!(record.expire_at, Some(record.created_at + 600));
    // 500 s later, the absolute limit (created + 1000) comes before idle (now + 600).
    set_number(&table, "created_at", record.created_at - 500).await;
    let record = store.load(&id).await.unwrap().unwrap();
    let saved = store.save(&id, &record).await.unwrap();
    assert_eq!(saved.expire_at, Some(record.created_at + 1000));
    assert_eq!(
        store.load(&id).await.unwrap().unwrap().expire_at,
        saved.expire_at
    );
}

#[tokio::test]
async fn missing_table_is_a_hard_error() {
    let client = integration_tests::client().await;
    let store = SessionStore::new(
        Config::builder()
            .table_name(integration_tests::table_name("never-created"))
            .secret_key(SECRET)
            .dynamo_db_client(client)
            .build()
            .unwrap(),
    )
    .unwrap();
    let err = store.create(&SessionData::new()).await.unwrap_err();
    assert!(matches!(err, Error::TableNotFound { .. }), "{err:?}");
    assert!(err.is_hard());
    assert!(
        std::error::Error::source(&err).is_some(),
        "SDK error kept as source"
    );
}

#[tokio::test]
async fn missing_secret_fails_when_the_store_is_built() {
    let client = integration_tests::client().await;
    let config = Config::builder().dynamo_db_client(client).build().unwrap();
    assert!(matches!(
        SessionStore::new(config),
        Err(Error::MissingSecretKey)
    ));
}

/// Sets a numeric attribute on the table's only item.
async fn set_number(table: &TestTable, name: &str, value: i64) {
    let items = table.items().await;
    assert_eq!(items.len(), 1, "set_number needs exactly one item");
    table
        .client
        .update_item()
        .table_name(&table.name)
        .key("session_id", items[0]["session_id"].clone())
        .update_expression("SET #a = :v")
        .expression_attribute_names("#a", name)
        .expression_attribute_values(":v", AttributeValue::N(value.to_string()))
        .send()
        .await
        .unwrap();
}

/// Moves the only item's timestamps `seconds` into the past.
async fn rewind(
    table: &TestTable,
    store: &SessionStore,
    id: &dynamodb_session_store::SessionId,
    seconds: i64,
) {
    let record = store.load(id).await.unwrap().unwrap();
    set_number(table, "created_at", record.created_at - seconds).await;
    set_number(table, "updated_at", record.updated_at - seconds).await;
}

/// The functions' HTTPS client (`sdk::load`), on either trust store, carries the store's
/// calls: its embedded roots parse where the SDK parses them (when the connector is built),
/// and against an account (`AWS_ENDPOINT_URL_DYNAMODB` unset) the Amazon roots verify
/// DynamoDB's real certificate.
#[tokio::test]
async fn the_functions_http_client_carries_the_calls_on_either_trust_store() {
    use dynamodb_session_store::sdk::TrustRoots;
    for roots in [TrustRoots::Amazon, TrustRoots::System] {
        let client = aws_sdk_dynamodb::Client::from_conf(
            integration_tests::client_config()
                .await
                .http_client(roots.http_client())
                .build(),
        );
        let table = TestTable::new(&format!("trust_roots_{roots:?}")).await;
        let store = table.store(|c| c.dynamo_db_client(client));
        let (id, _) = store
            .create(&data(json!({"roots": format!("{roots:?}")})))
            .await
            .unwrap();
        let loaded = store
            .load(&id)
            .await
            .unwrap()
            .expect("the session just created");
        assert_eq!(
            loaded.data["roots"],
            json!(format!("{roots:?}")),
            "{roots:?}"
        );
    }
}
