//! One write unit for a typical 1 KB session: the bench's session of a user, a locale and a
//! cart (957 bytes of JSON) is stored, as DynamoDB counts the whole item, in at most 1,024
//! bytes — on its first write, bound to a user, and while its lock is held — because its
//! sealed data is stored as bytes, compressed and padded to the 64-byte bucket. And the size
//! limit counts sealed data as DynamoDB does, by its raw length.

use dynamodb_session_store::attributes::item_size;
use dynamodb_session_store::ops::StoreOps as _;
use dynamodb_session_store::store::MAX_ITEM_BYTES;
use dynamodb_session_store::{Concurrency, Config, Error, MemoryStore, SessionData, SessionStore};
use integration_tests::{SECRET, TestTable, data};
use serde_json::json;

#[path = "../../../shared/benches/sessions/mod.rs"]
mod sessions;

/// Nonce and tag around the sealed frame.
const SEAL_OVERHEAD: usize = 12 + 16;
const ONE_WRITE_UNIT: usize = 1024;

async fn only_item(
    table: &TestTable,
) -> std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
    let mut items = table.items().await;
    assert_eq!(items.len(), 1);
    items.remove(0)
}

fn typical() -> SessionData {
    let session = sessions::typical_session(1024);
    let json = serde_json::to_string(&session).unwrap().len();
    assert!(
        (900..=1024).contains(&json),
        "the bench's 1 KB session: {json} B"
    );
    session
}

#[tokio::test]
async fn a_typical_1_kb_session_is_stored_in_one_write_unit() {
    let table = TestTable::new("one_unit").await;
    let store = table.store(|c| c);
    let session = typical();
    let (id, mut record) = store.create(&session).await.unwrap();
    let item = only_item(&table).await;
    let size = item_size(&item);
    assert!(size <= ONE_WRITE_UNIT, "first write: {size} B");
    let stored = item["data"]
        .as_b()
        .expect("sealed data is bytes")
        .as_ref()
        .len();
    let json = serde_json::to_string(&session).unwrap().len();
    assert!(stored < json, "compressed: {stored} B of {json} B");
    assert_eq!(
        (stored - SEAL_OVERHEAD) % 64,
        0,
        "padded to the bucket: {stored} B"
    );

    // Bound to a user: `user_hash` and `bound_at` join the item.
    record.user = Some("user-123456".into());
    record.data.insert("locale".into(), json!("fr-FR"));
    store.save(&id, &record).await.unwrap();
    let item = only_item(&table).await;
    assert!(item.contains_key("user_hash"));
    let size = item_size(&item);
    assert!(size <= ONE_WRITE_UNIT, "bound: {size} B");
    assert_eq!(
        store.load(&id).await.unwrap().unwrap().data["locale"],
        "fr-FR"
    );
}

#[tokio::test]
async fn a_typical_1_kb_session_with_its_lock_held_is_one_write_unit() {
    let table = TestTable::new("one_unit_locked").await;
    let store = table.store(|c| c.concurrency(Concurrency::Pessimistic));
    let (id, _) = store.create(&typical()).await.unwrap();
    // A pessimistic load takes the lock: `locked_at` and `lock_owner` join the item.
    let record = store.load(&id).await.unwrap().unwrap();
    let item = only_item(&table).await;
    assert!(item.contains_key("lock_owner"));
    let size = item_size(&item);
    assert!(size <= ONE_WRITE_UNIT, "locked: {size} B");
    store.save(&id, &record).await.unwrap();
    assert!(
        !only_item(&table).await.contains_key("lock_owner"),
        "released"
    );
}

/// The largest sealed session a save accepts, and one byte more, under a store that never
/// compresses (so that sizes add up): the limit counts the sealed bytes (nonce, flags byte,
/// data, tag), not a text encoding of them. Returns what was saved at the limit.
async fn sealed_data_is_limited_by_its_raw_length(store: &SessionStore) {
    let (id, mut record) = store.create(&data(json!({"n": "original"}))).await.unwrap();
    // Nonce, flags byte and tag around `{"n":"…"}`, 8 bytes of JSON around the string.
    let json_limit = store.max_data_len() - SEAL_OVERHEAD - 1;
    let fits = data(json!({"n": "x".repeat(json_limit - 8)}));
    assert_eq!(serde_json::to_string(&fits).unwrap().len(), json_limit);
    let one_over = data(json!({"n": "x".repeat(json_limit - 7)}));
    match store.check_size(&one_over) {
        Err(Error::SessionTooLarge { size, limit }) => assert_eq!(size, limit + 1),
        other => panic!("one byte over: {other:?}"),
    }
    record.data = one_over;
    assert!(
        matches!(
            store.save(&id, &record).await,
            Err(Error::SessionTooLarge { .. })
        ),
        "refused before any write"
    );
    record.data = fits.clone();
    store.save(&id, &record).await.expect("at the limit");
    assert_eq!(store.load(&id).await.unwrap().unwrap().data, fits);
}

#[tokio::test]
async fn sealed_data_is_limited_by_its_raw_length_on_dynamodb() {
    let table = TestTable::new("raw_limit").await;
    let store = table.store(|c| c.compress_above(None));
    sealed_data_is_limited_by_its_raw_length(&store).await;
    // And the item at the limit is within DynamoDB's count of the limit.
    let size = item_size(&only_item(&table).await);
    assert!(size <= MAX_ITEM_BYTES, "{size} B");
}

#[tokio::test]
async fn sealed_data_is_limited_by_its_raw_length_in_memory() {
    let config = Config::builder()
        .secret_key(SECRET)
        .compress_above(None)
        .build()
        .unwrap();
    let store = SessionStore::with_backend(config, MemoryStore::new()).unwrap();
    sealed_data_is_limited_by_its_raw_length(&store).await;
}
