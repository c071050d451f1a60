//! One write unit for a typical 1 KB session: the bench's session of a user, a locale and a
//! cart (957 bytes of JSON) is stored, as DynamoDB counts the whole item, in at most 1,024
//! bytes — on its first write, bound to a user, and while its lock is held — because its
//! sealed data is stored as bytes, compressed and padded to the 64-byte bucket.

use dynamodb_session_store::attributes::item_size;
use dynamodb_session_store::{Concurrency, SessionData};
use integration_tests::TestTable;
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
