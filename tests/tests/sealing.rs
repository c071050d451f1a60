//! Session data only the cookie can open: a table dump shows no data, no user id and no
//! cookie; sealed data copied to another item does not open; items written in plain text
//! before sealing still load and are sealed on their next write.

use aws_sdk_dynamodb::types::AttributeValue;
use dynamodb_session_store::{Error, RequestSessionExt, SessionLayer};
use integration_tests::{TestTable, data, incompressible};
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

#[tokio::test]
async fn sealed_data_moved_to_another_item_does_not_open() {
    let table = TestTable::new("moved").await;
    let store = table.store(|c| c);
    let (a, _) = store.create(&data(json!({"owner": "a"}))).await.unwrap();
    let (b, _) = store.create(&data(json!({"owner": "b"}))).await.unwrap();
    let a_data = store.inspect(&a).await.unwrap().unwrap().data;
    let b_key = table
        .items()
        .await
        .into_iter()
        .find(|item| item["data"].as_s().unwrap() != &a_data)
        .expect("b's item")["session_id"]
        .clone();
    table
        .client
        .update_item()
        .table_name(&table.name)
        .key("session_id", b_key)
        .update_expression("SET #data = :data")
        .expression_attribute_names("#data", "data")
        .expression_attribute_values(":data", AttributeValue::S(a_data))
        .send()
        .await
        .unwrap();
    let err = store.load(&b).await.unwrap_err();
    assert!(matches!(err, Error::MalformedItem(_)), "{err:?}");
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
    let raw = |items: Vec<std::collections::HashMap<String, AttributeValue>>| {
        items[0]["data"].as_s().unwrap().clone()
    };
    assert_eq!(raw(table.items().await), r#"{"cart":["apple"]}"#);

    let sealing = table.store(|c| c);
    let mut record = sealing.load(&id).await.unwrap().unwrap();
    assert_eq!(record.data["cart"], json!(["apple"]));
    record.data.insert("cart".into(), json!(["apple", "pear"]));
    sealing.save(&id, &record).await.unwrap();
    let stored = raw(table.items().await);
    assert!(
        stored.starts_with("s1.") && !stored.contains("pear"),
        "{stored}"
    );
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
