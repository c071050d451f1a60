//! Creating and deleting the session table (the gem's `Table.create_table` and
//! `Table.delete_table`). The CloudFormation custom resource calls exactly this code.
//! Telling this code's tables from anyone else's is in `ownership`; TTL and the user index
//! every session table needs are in `schema`.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode as SdkBillingMode, KeySchemaElement, KeyType,
    ProvisionedThroughput, ScalarAttributeType,
};

mod ownership;
mod schema;

pub use self::ownership::{Deletion, ExistingTable, LOGICAL_ID_TAG, STACK_ID_TAG};

use crate::attributes::{EXPIRE_AT, USER_HASH};
use crate::config::{BillingMode, Config};
use crate::error::{Error, Result};

/// Longest wait for a table to become active or to disappear.
const DEFAULT_WAIT: Duration = Duration::from_secs(300);

/// The shape of a session table: a hash key of type S, a billing mode and the TTL attribute.
///
/// # Examples
///
/// ```no_run
/// use dynamodb_session_store::config::BillingMode;
/// use dynamodb_session_store::table::SessionTable;
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
    /// Tags written when this definition creates the table (never added to a table that
    /// already exists). They mark the table as made by whoever holds the same tags: see
    /// [`owns`](Self::owns) and [`delete_if_owned`](Self::delete_if_owned).
    pub tags: BTreeMap<String, String>,
}

/// What [`SessionTable::create_if_missing`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Creation {
    /// The table did not exist: it is being created now, with this definition's tags.
    Created,
    /// A table of that name already existed; nothing was changed.
    AlreadyExists,
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
            tags: BTreeMap::new(),
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

    /// Adds a tag to write when this definition creates the table (replacing an earlier
    /// value of the same key). DynamoDB allows keys of 1 to 128 characters and values of up
    /// to 256, made of letters, digits, white space and `+ - = . _ : /`; keys must not start
    /// with `aws:`. They are checked before the table is created.
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.insert(key.into(), value.into());
        self
    }

    /// Creates the table, waits until it is active and makes sure TTL is on. An existing
    /// table is not an error: it still gets TTL ensured (but not this definition's tags).
    /// Returns the table's ARN. The same as [`create_if_missing`](Self::create_if_missing)
    /// followed by [`prepare`](Self::prepare).
    ///
    /// # Errors
    ///
    /// [`Error::DynamoDb`] for refused requests, [`Error::TtlConflict`] when TTL is already
    /// on for another attribute, [`Error::TableKeyMismatch`] when an existing table has
    /// another hash key, [`Error::TableNotReady`] when the wait runs out,
    /// [`Error::InvalidConfig`] for a tag DynamoDB would refuse.
    pub async fn create(&self, client: &Client) -> Result<String> {
        self.create_if_missing(client).await?;
        self.prepare(client).await
    }

    /// Sends CreateTable with this definition's key, billing mode and tags, and says whether
    /// the table was created or already existed. Nothing else: the new table may still be
    /// `CREATING`, and an existing one is left exactly as it is (no tags, no TTL).
    /// [`prepare`](Self::prepare) waits for it and turns TTL on.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use dynamodb_session_store::table::{Creation, SessionTable};
    ///
    /// # async fn demo(client: aws_sdk_dynamodb::Client) -> Result<(), dynamodb_session_store::Error> {
    /// let table = SessionTable::new("sessions").tag("team", "web");
    /// match table.create_if_missing(&client).await? {
    ///     Creation::Created => println!("created, tagged team=web"),
    ///     Creation::AlreadyExists => println!("someone else's table: leaving it alone"),
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a tag DynamoDB would refuse (nothing is sent),
    /// [`Error::DynamoDb`] for refused requests.
    pub async fn create_if_missing(&self, client: &Client) -> Result<Creation> {
        let tags = self.sdk_tags()?;
        let mut request = client
            .create_table()
            .table_name(&self.name)
            .attribute_definitions(string_attribute(&self.key)?)
            .attribute_definitions(string_attribute(USER_HASH)?)
            .key_schema(hash_key(&self.key)?)
            .global_secondary_indexes(self.user_index()?)
            .billing_mode(SdkBillingMode::from(self.billing_mode.as_str()));
        if self.billing_mode == BillingMode::Provisioned {
            request = request.provisioned_throughput(self.throughput()?);
        }
        // An empty Tags list is not the same request as none; send the field only when set.
        let request = request.set_tags((!tags.is_empty()).then_some(tags));
        match request.send().await {
            Ok(_) => {
                tracing::info!(table = %self.name, tags = self.tags.len(), "creating session table");
                Ok(Creation::Created)
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_in_use_exception()) =>
            {
                tracing::info!(table = %self.name, "session table already exists");
                Ok(Creation::AlreadyExists)
            }
            Err(e) => Err(Error::from_sdk(&self.name, e)),
        }
    }

    /// Waits until the table is active, checks its hash key and makes sure TTL is on.
    /// Returns the table's ARN.
    ///
    /// # Errors
    ///
    /// [`Error::TableNotReady`] when the wait runs out (also for a missing table),
    /// [`Error::TableKeyMismatch`] when the table has another hash key,
    /// [`Error::TtlConflict`] when TTL is on for another attribute, [`Error::DynamoDb`] for
    /// refused requests.
    pub async fn prepare(&self, client: &Client) -> Result<String> {
        let arn = self.wait_until_active(client).await?;
        self.ensure_ttl(client).await?;
        self.ensure_user_index(client).await?;
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
        self.ensure_user_index(client).await?;
        Ok(arn)
    }

    /// Deletes the table and waits until it is gone. A missing table is not an error.
    ///
    /// # Errors
    ///
    /// [`Error::DynamoDb`] for refused requests, [`Error::TableNotReady`] when the wait
    /// runs out.
    pub async fn delete(&self, client: &Client) -> Result<()> {
        self.delete_table(client).await.map(|_| ())
    }

    /// Deletes the table and waits until it is gone; `false` when it was already missing.
    pub(super) async fn delete_table(&self, client: &Client) -> Result<bool> {
        match client.delete_table().table_name(&self.name).send().await {
            Ok(_) => tracing::info!(table = %self.name, "deleting session table"),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                tracing::info!(table = %self.name, "session table already gone");
                return Ok(false);
            }
            Err(e) => return Err(Error::from_sdk(&self.name, e)),
        }
        client
            .wait_until_table_not_exists()
            .table_name(&self.name)
            .wait(self.wait_timeout)
            .await
            .map_err(|e| self.not_ready(e))?;
        Ok(true)
    }

    /// A wait for the table that ran out (or failed).
    fn not_ready(&self, waited: impl std::fmt::Display) -> Error {
        Error::TableNotReady {
            table: self.name.clone(),
            reason: waited.to_string(),
        }
    }

    pub(super) fn throughput(&self) -> Result<ProvisionedThroughput> {
        ProvisionedThroughput::builder()
            .read_capacity_units(self.read_capacity)
            .write_capacity_units(self.write_capacity)
            .build()
            .map_err(build_error)
    }

    /// Waits until the table is active and returns its description.
    pub(super) async fn wait_until_active_raw(
        &self,
        client: &Client,
    ) -> Result<Option<aws_sdk_dynamodb::types::TableDescription>> {
        let waited = client
            .wait_until_table_exists()
            .table_name(&self.name)
            .wait(self.wait_timeout)
            .await
            .map_err(|e| self.not_ready(e))?;
        Ok(waited.into_result().ok().and_then(|out| out.table))
    }

    pub(super) async fn wait_until_active(&self, client: &Client) -> Result<String> {
        let table = self.wait_until_active_raw(client).await?;
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
}

/// A string attribute's definition, for a key.
fn string_attribute(name: &str) -> Result<AttributeDefinition> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(build_error)
}

/// A hash key on `name`.
fn hash_key(name: &str) -> Result<KeySchemaElement> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(KeyType::Hash)
        .build()
        .map_err(build_error)
}

fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> Error {
    Error::invalid("table definition", e.to_string(), "refused by the SDK")
}
