//! A tour of the store against whatever DynamoDB the environment points at.
//!
//! `./scripts/run` starts a local DynamoDB and runs it with
//! `AWS_DYNAMO_DB_SESSION_SECRET_KEY` set.

use dynamodb_session_store::ops::StoreOps as _;
use dynamodb_session_store::{SessionData, SessionStore};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = SessionStore::from_env().await?;
    let arn = store.create_table().await?;
    println!("table ready: {arn} (TTL on expire_at)");

    let mut data = SessionData::new();
    data.insert("user_id".into(), json!(42));
    let (id, record) = store.create(&data).await?;
    let cookie = store.cookie_value(&id);
    println!("new session, cookie value: {cookie}");
    println!(
        "  created_at={} expire_at={:?}",
        record.created_at, record.expire_at
    );

    // A later request presents the cookie.
    let id = store
        .verify_cookie(&cookie)
        .ok_or("our own cookie must verify")?;
    let mut record = store.load(&id).await?.ok_or("the session must be there")?;
    record.data.insert("cart".into(), json!(["apple", "pear"]));
    let record = store.save(&id, &record).await?;
    println!("saved: {}", serde_json::to_string(&record.data)?);

    // A forged cookie opens nothing.
    let forged = format!("{}x", &cookie[..cookie.len() - 1]);
    println!(
        "forged cookie verifies: {}",
        store.verify_cookie(&forged).is_some()
    );

    // After a login, move the session to a fresh id.
    let (new_id, _) = store.renew(&id, &record).await?;
    println!(
        "renewed; old cookie still opens a session: {}",
        store.load(&id).await?.is_some()
    );

    store.delete(&new_id).await?;
    println!(
        "deleted; session present: {}",
        store.load(&new_id).await?.is_some()
    );
    Ok(())
}
