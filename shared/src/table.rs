//! Creating and deleting the session table (the gem's `Table.create_table` and
//! `Table.delete_table`). The CloudFormation custom resource calls exactly this code.

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode as SdkBillingMode, KeySchemaElement, KeyType,
    ProvisionedThroughput, ScalarAttributeType, TimeToLiveSpecification, TimeToLiveStatus,
};

use crate::attributes::EXPIRE_AT;
use crate::config::{BillingMode, Config};
use crate::error::{Error, Result};

/// Longest wait for a table to become active or to disappear.
const DEFAULT_WAIT: Duration = Duration::from_secs(300);

/// The shape of a session table: a hash key of type S, a billing mode and the TTL attribute.
///
/// # Examples
///
/// ```no_run
/// use dynamodb_session_store::{BillingMode, SessionTable};
///
/// # async fn demo(client: aws_sdk_dynamodb::Client) -> Result<(), dynamodb_session_store::Error> {
/// let arn = SessionTable::new("sessions")
///     .billing_mode(BillingMode::Provisioned, 10, 5)
///     .create(&client)
///     .await?;
/// println!("table {arn} is active with TTL on expire_at");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionTable {
    /// Table name.
    pub name: String,
    /// Hash key attribute name.
    pub key: String,
    /// On-demand or provisioned.
    pub billing_mode: BillingMode,
    /// Read capacity units (provisioned only).
    pub read_capacity: i64,
    /// Write capacity units (provisioned only).
    pub write_capacity: i64,
    /// The attribute DynamoDB's TTL reads.
    pub ttl_attribute: String,
    /// Longest wait for the table to become active or to be gone.
    pub wait_timeout: Duration,
}

impl SessionTable {
    /// An on-demand table named `name` with the default key (`session_id`) and TTL on
    /// `expire_at`.
    pub fn new(name: impl Into<String>) -> Self {
        SessionTable {
            name: name.into(),
            key: "session_id".into(),
            billing_mode: BillingMode::PayPerRequest,
            read_capacity: 10,
            write_capacity: 5,
            ttl_attribute: EXPIRE_AT.into(),
            wait_timeout: DEFAULT_WAIT,
        }
    }

    /// The table a store with this configuration uses.
    pub fn from_config(config: &Config) -> Self {
        SessionTable {
            key: config.table_key.clone(),
            read_capacity: config.read_capacity,
            write_capacity: config.write_capacity,
            billing_mode: config.billing_mode,
            ..SessionTable::new(&config.table_name)
        }
    }

    /// Sets the hash key attribute name.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = key.into();
        self
    }

    /// Sets the billing mode and, for provisioned tables, the capacity.
    pub fn billing_mode(
        mut self,
        mode: BillingMode,
        read_capacity: i64,
        write_capacity: i64,
    ) -> Self {
        self.billing_mode = mode;
        self.read_capacity = read_capacity;
        self.write_capacity = write_capacity;
        self
    }

    /// Sets the TTL attribute name.
    pub fn ttl_attribute(mut self, attribute: impl Into<String>) -> Self {
        self.ttl_attribute = attribute.into();
        self
    }

    /// Creates the table, waits until it is active and makes sure TTL is on. An existing
    /// table is not an error: it still gets TTL ensured. Returns the table's ARN.
    ///
    /// # Errors
    ///
    /// [`Error::DynamoDb`] for refused requests, [`Error::TtlConflict`] when TTL is already
    /// on for another attribute, [`Error::TableKeyMismatch`] when an existing table has
    /// another hash key, [`Error::TableNotReady`] when the wait runs out.
    pub async fn create(&self, client: &Client) -> Result<String> {
        let mut request = client
            .create_table()
            .table_name(&self.name)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(&self.key)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(build_error)?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(&self.key)
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(build_error)?,
            )
            .billing_mode(SdkBillingMode::from(self.billing_mode.as_str()));
        if self.billing_mode == BillingMode::Provisioned {
            request = request.provisioned_throughput(self.throughput()?);
        }
        match request.send().await {
            Ok(_) => tracing::info!(table = %self.name, "creating session table"),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_in_use_exception()) =>
            {
                tracing::info!(table = %self.name, "session table already exists");
            }
            Err(e) => return Err(Error::from_sdk(&self.name, e)),
        }
        let arn = self.wait_until_active(client).await?;
        self.ensure_ttl(client).await?;
        Ok(arn)
    }

    /// Updates billing mode and capacity in place when they differ from the table's, and
    /// makes sure TTL is on.
    ///
    /// # Errors
    ///
    /// As [`create`](Self::create), and [`Error::TableNotFound`] for a missing table.
    pub async fn update(&self, client: &Client) -> Result<String> {
        let described = client
            .describe_table()
            .table_name(&self.name)
            .send()
            .await
            .map_err(|e| Error::from_sdk(&self.name, e))?;
        let table = described.table;
        let current_mode = table
            .as_ref()
            .and_then(|t| t.billing_mode_summary.as_ref())
            .and_then(|s| s.billing_mode.clone())
            .unwrap_or(SdkBillingMode::Provisioned);
        let current_throughput = table
            .as_ref()
            .and_then(|t| t.provisioned_throughput.as_ref())
            .map(|t| {
                (
                    t.read_capacity_units.unwrap_or_default(),
                    t.write_capacity_units.unwrap_or_default(),
                )
            });
        let wanted_mode = SdkBillingMode::from(self.billing_mode.as_str());
        let throughput_differs = self.billing_mode == BillingMode::Provisioned
            && current_throughput != Some((self.read_capacity, self.write_capacity));
        if current_mode != wanted_mode || throughput_differs {
            let mut request = client
                .update_table()
                .table_name(&self.name)
                .billing_mode(wanted_mode);
            if self.billing_mode == BillingMode::Provisioned {
                request = request.provisioned_throughput(self.throughput()?);
            }
            request
                .send()
                .await
                .map_err(|e| Error::from_sdk(&self.name, e))?;
            tracing::info!(table = %self.name, mode = self.billing_mode.as_str(), "updated billing");
        }
        let arn = self.wait_until_active(client).await?;
        self.ensure_ttl(client).await?;
        Ok(arn)
    }

    /// Deletes the table and waits until it is gone. A missing table is not an error.
    ///
    /// # Errors
    ///
    /// [`Error::DynamoDb`] for refused requests, [`Error::TableNotReady`] when the wait
    /// runs out.
    pub async fn delete(&self, client: &Client) -> Result<()> {
        match client.delete_table().table_name(&self.name).send().await {
            Ok(_) => tracing::info!(table = %self.name, "deleting session table"),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                tracing::info!(table = %self.name, "session table already gone");
                return Ok(());
            }
            Err(e) => return Err(Error::from_sdk(&self.name, e)),
        }
        client
            .wait_until_table_not_exists()
            .table_name(&self.name)
            .wait(self.wait_timeout)
            .await
            .map_err(|e| Error::TableNotReady {
                table: self.name.clone(),
                reason: e.to_string(),
            })?;
        Ok(())
    }

    fn throughput(&self) -> Result<ProvisionedThroughput> {
        ProvisionedThroughput::builder()
            .read_capacity_units(self.read_capacity)
            .write_capacity_units(self.write_capacity)
            .build()
            .map_err(build_error)
    }

    async fn wait_until_active(&self, client: &Client) -> Result<String> {
        let waited = client
            .wait_until_table_exists()
            .table_name(&self.name)
            .wait(self.wait_timeout)
            .await
            .map_err(|e| Error::TableNotReady {
                table: self.name.clone(),
                reason: e.to_string(),
            })?;
        let table = waited.into_result().ok().and_then(|out| out.table);
        let hash_key = table
            .as_ref()
            .and_then(|t| t.key_schema.as_ref())
            .and_then(|schema| schema.iter().find(|k| k.key_type == KeyType::Hash))
            .map(|k| k.attribute_name.clone());
        if let Some(actual) = hash_key.filter(|actual| *actual != self.key) {
            return Err(Error::TableKeyMismatch {
                table: self.name.clone(),
                expected: self.key.clone(),
                actual,
            });
        }
        Ok(table.and_then(|t| t.table_arn).unwrap_or_default())
    }

    async fn ensure_ttl(&self, client: &Client) -> Result<()> {
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
}

fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> Error {
    Error::invalid("table definition", e.to_string(), "refused by the SDK")
}
