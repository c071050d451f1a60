//! Reading a table's state straight from DynamoDB, and making tables behind the library's
//! back, for tests that check what the library (or the custom resource, or `sessionctl`) did.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TableDescription, Tag, TimeToLiveStatus,
};

/// The table's description (`DescribeTable`); panics if it cannot be read.
pub async fn describe(client: &Client, table: &str) -> TableDescription {
    client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .unwrap_or_else(|e| panic!("describe_table {table}: {e:?}"))
        .table
        .unwrap_or_else(|| panic!("describe_table {table}: no table in the answer"))
}

/// Whether the table exists: true when `DescribeTable` succeeds, false only when it answers
/// `ResourceNotFoundException`; any other error panics.
pub async fn exists(client: &Client, table: &str) -> bool {
    match client.describe_table().table_name(table).send().await {
        Ok(_) => true,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            false
        }
        Err(e) => panic!("describe_table {table}: {e:?}"),
    }
}

/// The table's TTL status and attribute (`DescribeTimeToLive`).
pub async fn ttl(client: &Client, table: &str) -> (Option<TimeToLiveStatus>, Option<String>) {
    let d = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .unwrap_or_else(|e| panic!("describe_time_to_live {table}: {e:?}"))
        .time_to_live_description
        .unwrap_or_else(|| panic!("describe_time_to_live {table}: no description"));
    (d.time_to_live_status, d.attribute_name)
}

/// The table's tags, every page of `ListTagsOfResource`.
pub async fn tags(client: &Client, table: &str) -> BTreeMap<String, String> {
    let arn = describe(client, table)
        .await
        .table_arn
        .unwrap_or_else(|| panic!("describe_table {table}: no ARN"));
    let mut tags = BTreeMap::new();
    let mut next = None;
    loop {
        let page = client
            .list_tags_of_resource()
            .resource_arn(&arn)
            .set_next_token(next)
            .send()
            .await
            .unwrap_or_else(|e| panic!("list_tags_of_resource {arn}: {e:?}"));
        tags.extend(
            page.tags
                .unwrap_or_default()
                .into_iter()
                .map(|t| (t.key, t.value)),
        );
        next = page.next_token;
        if next.is_none() {
            return tags;
        }
    }
}

/// A table made behind the library's back: key `session_id`, on demand, no TTL, and `tags`
/// (none when empty).
pub async fn bare_table(client: &Client, name: &str, tags: &[(&str, &str)]) {
    client
        .create_table()
        .table_name(name)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("session_id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("session_id")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .set_tags((!tags.is_empty()).then(|| {
            tags.iter()
                .map(|(k, v)| Tag::builder().key(*k).value(*v).build().unwrap())
                .collect()
        }))
        .send()
        .await
        .unwrap_or_else(|e| panic!("create_table {name}: {e:?}"));
}
