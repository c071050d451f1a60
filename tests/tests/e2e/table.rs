//! Table management against a real DynamoDB-compatible server.

use aws_sdk_dynamodb::types::{BillingMode as SdkBillingMode, TimeToLiveStatus};

use dynamodb_session_store::Error;
use dynamodb_session_store::config::BillingMode;
use dynamodb_session_store::table::{Creation, Deletion, SessionTable};
use integration_tests::tables::{bare_table, describe, exists, tags, ttl};
use integration_tests::{client, table_name};

#[tokio::test]
async fn create_makes_an_active_on_demand_table_with_ttl_and_delete_removes_it() {
    let client = client().await;
    let name = table_name("create_delete");
    let table = SessionTable::new(&name);
    let arn = table.create(&client).await.unwrap();
    assert!(arn.ends_with(&format!("table/{name}")), "{arn}");

    let described = describe(&client, &name).await;
    assert_eq!(described.table_status.unwrap().as_str(), "ACTIVE");
    let key = &described.key_schema.unwrap()[0];
    assert_eq!(
        (key.attribute_name.as_str(), key.key_type.as_str()),
        ("session_id", "HASH")
    );
    let attribute = &described.attribute_definitions.unwrap()[0];
    assert_eq!(attribute.attribute_type.as_str(), "S");
    assert_eq!(
        described.billing_mode_summary.unwrap().billing_mode,
        Some(SdkBillingMode::PayPerRequest)
    );
    assert_eq!(
        ttl(&client, &name).await,
        (Some(TimeToLiveStatus::Enabled), Some("expire_at".into()))
    );

    // Idempotent.
    assert_eq!(table.create(&client).await.unwrap(), arn);

    table.delete(&client).await.unwrap();
    assert!(!exists(&client, &name).await);
    table
        .delete(&client)
        .await
        .expect("deleting a missing table is fine");
}

#[tokio::test]
async fn create_on_an_existing_table_without_ttl_turns_ttl_on() {
    let client = client().await;
    let name = table_name("existing_without_ttl");
    bare_table(&client, &name, &[]).await;
    assert_ne!(ttl(&client, &name).await.0, Some(TimeToLiveStatus::Enabled));

    SessionTable::new(&name).create(&client).await.unwrap();
    assert_eq!(
        ttl(&client, &name).await,
        (Some(TimeToLiveStatus::Enabled), Some("expire_at".into()))
    );
    SessionTable::new(&name).delete(&client).await.unwrap();
}

#[tokio::test]
async fn provisioned_tables_get_the_configured_capacity_and_can_switch_to_on_demand() {
    let client = client().await;
    let name = table_name("provisioned");
    let table = SessionTable::new(&name)
        .key("sid")
        .billing_mode(BillingMode::Provisioned, 7, 3);
    table.create(&client).await.unwrap();
    let described = describe(&client, &name).await;
    let throughput = described.provisioned_throughput.unwrap();
    assert_eq!(
        (
            throughput.read_capacity_units,
            throughput.write_capacity_units
        ),
        (Some(7), Some(3))
    );
    assert_eq!(described.key_schema.unwrap()[0].attribute_name, "sid");

    let on_demand = SessionTable::new(&name).key("sid");
    on_demand.update(&client).await.unwrap();
    let described = describe(&client, &name).await;
    assert_eq!(
        described.billing_mode_summary.and_then(|s| s.billing_mode),
        Some(SdkBillingMode::PayPerRequest)
    );
    on_demand.delete(&client).await.unwrap();
}

#[tokio::test]
async fn ttl_on_another_attribute_is_reported_not_overwritten() {
    let client = client().await;
    let name = table_name("ttl_conflict");
    SessionTable::new(&name)
        .ttl_attribute("gone_at")
        .create(&client)
        .await
        .unwrap();
    let err = SessionTable::new(&name).create(&client).await.unwrap_err();
    assert!(
        matches!(&err, Error::TtlConflict { enabled_on, .. } if enabled_on == "gone_at"),
        "{err:?}"
    );
    assert_eq!(ttl(&client, &name).await.1.as_deref(), Some("gone_at"));
    SessionTable::new(&name).delete(&client).await.unwrap();
}

#[tokio::test]
async fn an_existing_table_with_another_key_is_refused() {
    let client = client().await;
    let name = table_name("key_mismatch");
    SessionTable::new(&name)
        .key("sid")
        .create(&client)
        .await
        .unwrap();
    for attempt in ["create", "update"] {
        let table = SessionTable::new(&name);
        let result = match attempt {
            "create" => table.create(&client).await,
            _ => table.update(&client).await,
        };
        let err = result.unwrap_err();
        assert!(
            matches!(&err, Error::TableKeyMismatch { actual, expected, .. } if actual == "sid" && expected == "session_id"),
            "{attempt}: {err:?}"
        );
    }
    SessionTable::new(&name).delete(&client).await.unwrap();
}

#[tokio::test]
async fn tags_are_written_at_creation_and_read_back_by_inspect() {
    let client = client().await;
    let name = table_name("tagged");
    let stack = "arn:aws:cloudformation:us-east-1:123456789012:stack/sessions/5b9a8f70-a1b2-11ef";
    // More tags than one ListTagsOfResource page holds on moto (10): inspect reads them all.
    let table = (0..12).fold(
        SessionTable::new(&name).tag("dynamodb-session-store:stack-id", stack),
        |t, i| t.tag(format!("extra-{i:02}"), format!("value {i}")),
    );
    assert_eq!(
        table.create_if_missing(&client).await.unwrap(),
        Creation::Created
    );
    let arn = table.prepare(&client).await.unwrap();
    assert_eq!(tags(&client, &name).await, table.tags);

    let existing = table.inspect(&client).await.unwrap().expect("exists");
    assert_eq!(
        (existing.name.as_str(), existing.arn.as_str()),
        (name.as_str(), arn.as_str())
    );
    assert!(!existing.deleting);
    assert_eq!(existing.tags, table.tags);
    assert!(table.owns(&existing));
    assert!(
        !SessionTable::new(&name).owns(&existing),
        "untagged owns nothing"
    );
    let other_stack = SessionTable::new(&name).tag("dynamodb-session-store:stack-id", "other");
    assert!(!other_stack.owns(&existing));

    assert!(
        SessionTable::new(table_name("never_made"))
            .inspect(&client)
            .await
            .unwrap()
            .is_none()
    );
    table.delete(&client).await.unwrap();
}

#[tokio::test]
async fn create_if_missing_leaves_an_existing_table_exactly_as_it_is() {
    let client = client().await;
    let name = table_name("create_if_missing_existing");
    SessionTable::new(&name)
        .tag("owner", "someone-else")
        .create_if_missing(&client)
        .await
        .unwrap();
    let before = (ttl(&client, &name).await, tags(&client, &name).await);
    let ours = SessionTable::new(&name).tag("owner", "us");
    assert_eq!(
        ours.create_if_missing(&client).await.unwrap(),
        Creation::AlreadyExists
    );
    assert_eq!(
        (ttl(&client, &name).await, tags(&client, &name).await),
        before
    );
    assert_ne!(before.0.0, Some(TimeToLiveStatus::Enabled));
}

#[tokio::test]
async fn delete_if_owned_deletes_only_tables_carrying_the_tags() {
    let client = client().await;
    let ours = SessionTable::new(table_name("owned")).tag("owner", "us");
    let theirs_name = table_name("not_owned");
    SessionTable::new(&theirs_name)
        .tag("owner", "them")
        .create(&client)
        .await
        .unwrap();
    ours.create(&client).await.unwrap();

    let theirs = SessionTable::new(&theirs_name).tag("owner", "us");
    match theirs.delete_if_owned(&client).await.unwrap() {
        Deletion::NotOwned(existing) => {
            assert_eq!(existing.tags.get("owner").map(String::as_str), Some("them"))
        }
        other => panic!("{other:?}"),
    }
    assert!(exists(&client, &theirs_name).await);
    // Without tags, nothing is anyone's.
    assert!(matches!(
        SessionTable::new(&theirs_name)
            .delete_if_owned(&client)
            .await
            .unwrap(),
        Deletion::NotOwned(_)
    ));
    assert!(exists(&client, &theirs_name).await);

    assert_eq!(
        ours.delete_if_owned(&client).await.unwrap(),
        Deletion::Deleted
    );
    assert!(!exists(&client, &ours.name).await);
    assert_eq!(
        ours.delete_if_owned(&client).await.unwrap(),
        Deletion::Missing
    );
    SessionTable::new(&theirs_name)
        .delete(&client)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_tag_dynamodb_would_refuse_is_reported_before_anything_is_created() {
    let client = client().await;
    let name = table_name("bad_tag");
    let err = SessionTable::new(&name)
        .tag("owner", "stack|resource")
        .create(&client)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidConfig { origin, .. } if origin == "table tag \"owner\""),
        "{err:?}"
    );
    assert!(!exists(&client, &name).await);
}
