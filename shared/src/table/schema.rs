//! What a table needs besides its key to hold sessions: TTL on the expiry attribute, and the
//! user index (a keys-only global secondary index on the user hash, so a user's sessions can
//! be listed and revoked). Both are ensured on tables being prepared, new or existing.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    CreateGlobalSecondaryIndexAction, GlobalSecondaryIndex, GlobalSecondaryIndexUpdate, Projection,
    ProjectionType, TimeToLiveSpecification, TimeToLiveStatus,
};

use super::{SessionTable, build_error, hash_key, string_attribute};
use crate::attributes::{USER_HASH, USER_INDEX};
use crate::config::BillingMode;
use crate::error::{Error, Result};

impl SessionTable {
    pub(super) async fn ensure_ttl(&self, client: &Client) -> Result<()> {
        let described = client
            .describe_time_to_live()
            .table_name(&self.name)
            .send()
            .await
            .map_err(|e| Error::from_sdk(&self.name, e))?;
        let current = described.time_to_live_description;
        let enabled = matches!(
            current
                .as_ref()
                .and_then(|c| c.time_to_live_status.as_ref()),
            Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
        );
        match current.and_then(|c| c.attribute_name) {
            Some(ref attribute) if enabled && *attribute == self.ttl_attribute => return Ok(()),
            Some(attribute) if enabled => {
                return Err(Error::TtlConflict {
                    table: self.name.clone(),
                    enabled_on: attribute,
                });
            }
            _ => {}
        }
        client
            .update_time_to_live()
            .table_name(&self.name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(&self.ttl_attribute)
                    .enabled(true)
                    .build()
                    .map_err(build_error)?,
            )
            .send()
            .await
            .map_err(|e| Error::from_sdk(&self.name, e))?;
        tracing::info!(table = %self.name, attribute = %self.ttl_attribute, "enabled TTL");
        Ok(())
    }

    /// The user index for CreateTable: keys only (the store reads the items it lists in one
    /// batch), with the table's capacity when provisioned.
    pub(super) fn user_index(&self) -> Result<GlobalSecondaryIndex> {
        let mut index = GlobalSecondaryIndex::builder()
            .index_name(USER_INDEX)
            .key_schema(hash_key(USER_HASH)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::KeysOnly)
                    .build(),
            );
        if self.billing_mode == BillingMode::Provisioned {
            index = index.provisioned_throughput(self.throughput()?);
        }
        index.build().map_err(build_error)
    }

    /// Adds the user index to a table that lacks it (a table made before the index existed,
    /// or adopted). It is not waited for: a large table's backfill can take long, and until
    /// it is active only listing a user's sessions fails.
    pub(super) async fn ensure_user_index(&self, client: &Client) -> Result<()> {
        let described = client
            .describe_table()
            .table_name(&self.name)
            .send()
            .await
            .map_err(|e| Error::from_sdk(&self.name, e))?;
        let has_index = described
            .table
            .as_ref()
            .map(|t| t.global_secondary_indexes())
            .is_some_and(|indexes| {
                indexes
                    .iter()
                    .any(|i| i.index_name.as_deref() == Some(USER_INDEX))
            });
        if has_index {
            return Ok(());
        }
        // The same index CreateTable makes, as an update.
        let index = self.user_index()?;
        let create = CreateGlobalSecondaryIndexAction::builder()
            .index_name(index.index_name)
            .set_key_schema(Some(index.key_schema))
            .set_projection(index.projection)
            .set_provisioned_throughput(index.provisioned_throughput)
            .build()
            .map_err(build_error)?;
        client
            .update_table()
            .table_name(&self.name)
            .attribute_definitions(string_attribute(USER_HASH)?)
            .global_secondary_index_updates(
                GlobalSecondaryIndexUpdate::builder().create(create).build(),
            )
            .send()
            .await
            .map_err(|e| Error::from_sdk(&self.name, e))?;
        tracing::info!(table = %self.name, index = USER_INDEX, "adding the user index");
        self.wait_until_active(client).await.map(drop)
    }
}
