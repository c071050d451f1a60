//! The benchmark's typical sessions, shared with the test that holds the 1 KB one to one
//! write unit (`tests/tests/e2e/item_size.rs` includes this file), so both measure the same
//! session.

use dynamodb_session_store::SessionData;

/// A typical session of about `bytes` of JSON: a user, some preferences and a cart.
pub fn typical_session(bytes: usize) -> SessionData {
    let mut data = SessionData::new();
    data.insert("user_id".into(), 123_456.into());
    data.insert("locale".into(), "en-GB".into());
    let mut cart = Vec::new();
    let mut n = 0;
    while serde_json::to_string(&data).unwrap().len() + 100 < bytes {
        cart.push(serde_json::json!({
            "sku": format!("SKU-{:05}", n * 7919 % 100_000),
            "name": format!("Product {n}"),
            "quantity": n % 4 + 1,
            "price_cents": 499 + n * 37 % 5000,
        }));
        n += 1;
        data.insert("cart".into(), serde_json::json!(cart));
    }
    data
}
