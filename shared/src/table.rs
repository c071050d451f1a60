//! Creating and deleting the session table (the gem's `Table.create_table` and
//! `Table.delete_table`), and telling a table this code created from anyone else's by the
//! tags it wrote at creation. The CloudFormation custom resource calls exactly this code.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode as SdkBillingMode, KeySchemaElement, KeyType,
    ProvisionedThroughput, ScalarAttributeType, TableStatus, Tag, TimeToLiveSpecification,
    TimeToLiveStatus,
};

use crate::attributes::EXPIRE_AT;
use crate::config::{BillingMode, Config};
use crate::error::{Error, Result};

/// Longest wait for a table to become active or to disappear.
const DEFAULT_WAIT: Duration = Duration::from_secs(300);

/// DynamoDB's tag limits: keys of 1 to 128 characters, values of up to 256, at most 50 tags.
const MAX_TAG_KEY_CHARS: usize = 128;
const MAX_TAG_VALUE_CHARS: usize = 256;
const MAX_TAGS: usize = 50;

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

/// A table as DynamoDB describes it, with its tags.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExistingTable {
    /// The table's name.
    pub name: String,
    /// The table's ARN.
    pub arn: String,
    /// Whether the table is being deleted. Its tags are not read then (DynamoDB may already
    /// refuse to list them), so [`tags`](Self::tags) is empty.
    pub deleting: bool,
    /// Every tag on the table.
    pub tags: BTreeMap<String, String>,
}

/// What [`SessionTable::delete_if_owned`] did. Exhaustive on purpose: a caller deciding
/// what a deletion meant should hear about every case at compile time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deletion {
    /// The table carried this definition's tags and is gone.
    Deleted,
    /// There was no table of that name.
    Missing,
    /// The table was already being deleted (by an earlier attempt, or by someone else).
    AlreadyDeleting,
    /// The table does not carry this definition's tags: it was left in place.
    NotOwned(ExistingTable),
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
    /// use dynamodb_session_store::{Creation, SessionTable};
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
        Ok(arn)
    }

    /// The table of this name as it exists now, with its tags; `None` when there is none.
    /// Changes nothing. A table being created or updated is waited for first (up to
    /// [`wait_timeout`](Self::wait_timeout)): DynamoDB may refuse to list the tags of a
    /// table that is not active yet, and refuses to delete one that is being updated.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use dynamodb_session_store::SessionTable;
    ///
    /// # async fn demo(client: aws_sdk_dynamodb::Client) -> Result<(), dynamodb_session_store::Error> {
    /// let mine = SessionTable::new("sessions").tag("owner", "stack-a");
    /// match mine.inspect(&client).await? {
    ///     None => println!("no such table"),
    ///     Some(table) if mine.owns(&table) => println!("{} is ours", table.arn),
    ///     Some(table) => println!("{} belongs to someone else: {:?}", table.arn, table.tags),
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::DynamoDb`] for refused requests, [`Error::TableNotReady`] when a table being
    /// created does not become active within the wait.
    pub async fn inspect(&self, client: &Client) -> Result<Option<ExistingTable>> {
        let described = match client.describe_table().table_name(&self.name).send().await {
            Ok(out) => out.table,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(Error::from_sdk(&self.name, e)),
        };
        let mut status = described.as_ref().and_then(|t| t.table_status.clone());
        let mut arn = described.and_then(|t| t.table_arn).unwrap_or_default();
        if matches!(status, Some(TableStatus::Creating | TableStatus::Updating)) {
            let waited = self.wait_until_active_raw(client).await?;
            status = waited.as_ref().and_then(|t| t.table_status.clone());
            arn = waited.and_then(|t| t.table_arn).unwrap_or(arn);
        }
        let deleting = status == Some(TableStatus::Deleting);
        let tags = if deleting {
            BTreeMap::new()
        } else {
            match self.list_tags(client, &arn).await? {
                Some(tags) => tags,
                // Deleted between the two calls.
                None => return Ok(None),
            }
        };
        Ok(Some(ExistingTable {
            name: self.name.clone(),
            arn,
            deleting,
            tags,
        }))
    }

    /// Whether `table` carries every one of this definition's tags with the same value,
    /// that is, whether it was created by a definition holding these tags (see
    /// [`inspect`](Self::inspect) for an example). Always `false` for a definition without
    /// tags: an untagged definition cannot tell its tables from anyone else's, so it owns
    /// none.
    pub fn owns(&self, table: &ExistingTable) -> bool {
        !self.tags.is_empty()
            && self
                .tags
                .iter()
                .all(|(key, value)| table.tags.get(key) == Some(value))
    }

    /// Deletes the table only when it carries this definition's tags (see
    /// [`owns`](Self::owns)), and waits until it is gone. A missing table, one already being
    /// deleted and one without these tags are left alone and reported as such; none is an
    /// error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use dynamodb_session_store::{Deletion, SessionTable};
    ///
    /// # async fn demo(client: aws_sdk_dynamodb::Client) -> Result<(), dynamodb_session_store::Error> {
    /// let mine = SessionTable::new("sessions").tag("owner", "stack-a");
    /// match mine.delete_if_owned(&client).await? {
    ///     Deletion::NotOwned(table) => println!("kept {}: not ours", table.name),
    ///     done => println!("{done:?}"),
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::DynamoDb`] for refused requests, [`Error::TableNotReady`] when the wait
    /// runs out.
    pub async fn delete_if_owned(&self, client: &Client) -> Result<Deletion> {
        let Some(existing) = self.inspect(client).await? else {
            tracing::info!(table = %self.name, "session table already gone");
            return Ok(Deletion::Missing);
        };
        if existing.deleting {
            tracing::info!(table = %self.name, "session table already being deleted");
            return Ok(Deletion::AlreadyDeleting);
        }
        if !self.owns(&existing) {
            tracing::warn!(
                table = %self.name,
                "not deleting the table: it does not carry this definition's tags"
            );
            return Ok(Deletion::NotOwned(existing));
        }
        // The table was this definition's a moment ago; if it vanished since, it is gone.
        Ok(if self.delete_table(client).await? {
            Deletion::Deleted
        } else {
            Deletion::Missing
        })
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
        self.delete_table(client).await.map(|_| ())
    }

    /// Deletes the table and waits until it is gone; `false` when it was already missing.
    async fn delete_table(&self, client: &Client) -> Result<bool> {
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
            .map_err(|e| Error::TableNotReady {
                table: self.name.clone(),
                reason: e.to_string(),
            })?;
        Ok(true)
    }

    fn throughput(&self) -> Result<ProvisionedThroughput> {
        ProvisionedThroughput::builder()
            .read_capacity_units(self.read_capacity)
            .write_capacity_units(self.write_capacity)
            .build()
            .map_err(build_error)
    }

    /// The tags on the table `arn` (every page); `None` when the table is gone.
    async fn list_tags(
        &self,
        client: &Client,
        arn: &str,
    ) -> Result<Option<BTreeMap<String, String>>> {
        let mut tags = BTreeMap::new();
        let mut next = None;
        loop {
            let page = match client
                .list_tags_of_resource()
                .resource_arn(arn)
                .set_next_token(next)
                .send()
                .await
            {
                Ok(page) => page,
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_resource_not_found_exception()) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(Error::from_sdk(&self.name, e)),
            };
            tags.extend(page.tags().iter().map(|t| (t.key.clone(), t.value.clone())));
            next = page.next_token;
            if next.is_none() {
                return Ok(Some(tags));
            }
        }
    }

    /// This definition's tags for CreateTable, checked against DynamoDB's rules so that a
    /// bad tag is reported by name rather than as a refused request.
    fn sdk_tags(&self) -> Result<Vec<Tag>> {
        if self.tags.len() > MAX_TAGS {
            return Err(Error::invalid(
                "table tags",
                self.tags.len().to_string(),
                format!("DynamoDB allows at most {MAX_TAGS} tags per table"),
            ));
        }
        let allowed = |c: char| c.is_alphanumeric() || c.is_whitespace() || "+-=._:/".contains(c);
        self.tags
            .iter()
            .map(|(key, value)| {
                let origin = || format!("table tag {key:?}");
                let key_chars = key.chars().count();
                if key_chars == 0 || key_chars > MAX_TAG_KEY_CHARS {
                    return Err(Error::invalid(
                        origin(),
                        key,
                        format!("tag keys are 1 to {MAX_TAG_KEY_CHARS} characters long"),
                    ));
                }
                if key.to_ascii_lowercase().starts_with("aws:") {
                    return Err(Error::invalid(origin(), key, "the aws: prefix is reserved"));
                }
                if value.chars().count() > MAX_TAG_VALUE_CHARS {
                    return Err(Error::invalid(
                        origin(),
                        value,
                        format!("tag values are at most {MAX_TAG_VALUE_CHARS} characters long"),
                    ));
                }
                if let Some(bad) = key.chars().chain(value.chars()).find(|c| !allowed(*c)) {
                    return Err(Error::invalid(
                        origin(),
                        format!("{key}={value}"),
                        format!(
                            "{bad:?} is not allowed in tags (letters, digits, white space and \
                             + - = . _ : / are)"
                        ),
                    ));
                }
                Tag::builder()
                    .key(key)
                    .value(value)
                    .build()
                    .map_err(build_error)
            })
            .collect()
    }

    /// Waits until the table is active and returns its description.
    async fn wait_until_active_raw(
        &self,
        client: &Client,
    ) -> Result<Option<aws_sdk_dynamodb::types::TableDescription>> {
        let waited = client
            .wait_until_table_exists()
            .table_name(&self.name)
            .wait(self.wait_timeout)
            .await
            .map_err(|e| Error::TableNotReady {
                table: self.name.clone(),
                reason: e.to_string(),
            })?;
        Ok(waited.into_result().ok().and_then(|out| out.table))
    }

    async fn wait_until_active(&self, client: &Client) -> Result<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn existing(tags: &[(&str, &str)]) -> ExistingTable {
        ExistingTable {
            name: "sessions".into(),
            arn: "arn:aws:dynamodb:us-east-1:123456789012:table/sessions".into(),
            deleting: false,
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn a_table_is_owned_when_it_carries_every_tag() {
        let mine = SessionTable::new("sessions")
            .tag("owner", "stack-a")
            .tag("part", "table");
        assert!(mine.owns(&existing(&[("owner", "stack-a"), ("part", "table")])));
        assert!(mine.owns(&existing(&[
            ("owner", "stack-a"),
            ("part", "table"),
            ("team", "web")
        ])));
        assert!(!mine.owns(&existing(&[("owner", "stack-a")])));
        assert!(!mine.owns(&existing(&[("owner", "stack-b"), ("part", "table")])));
        assert!(!mine.owns(&existing(&[])));
    }

    #[test]
    fn an_untagged_definition_owns_nothing() {
        let untagged = SessionTable::new("sessions");
        assert!(!untagged.owns(&existing(&[])));
        assert!(!untagged.owns(&existing(&[("owner", "stack-a")])));
    }

    #[test]
    fn tags_are_checked_against_dynamodbs_rules() {
        let stack = "arn:aws:cloudformation:us-east-1:123456789012:stack/s-1/5b9a8f70-a1b2";
        let fine = SessionTable::new("t")
            .tag("dynamodb-session-store:stack-id", stack)
            .tag("empty", "")
            .tag("k".repeat(128), "v".repeat(256));
        assert_eq!(fine.sdk_tags().unwrap().len(), 3);

        for (key, value) in [
            (String::new(), "v".to_owned()),
            ("k".repeat(129), "v".to_owned()),
            ("k".to_owned(), "v".repeat(257)),
            ("aws:cloudformation:stack-id".to_owned(), "v".to_owned()),
            ("k".to_owned(), "stack|logical".to_owned()),
            ("k@".to_owned(), "v".to_owned()),
        ] {
            let err = SessionTable::new("t")
                .tag(key.clone(), value.clone())
                .sdk_tags()
                .unwrap_err();
            assert!(
                matches!(&err, Error::InvalidConfig { origin, .. } if origin.contains("table tag")),
                "{key:?}={value:?}: {err:?}"
            );
        }
        let too_many =
            (0..=MAX_TAGS).fold(SessionTable::new("t"), |t, i| t.tag(format!("k{i}"), "v"));
        assert!(too_many.sdk_tags().is_err());
    }
}
