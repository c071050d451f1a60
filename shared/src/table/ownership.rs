//! Telling a table this code created from anyone else's: the tags a definition writes at
//! creation, read back and compared, and a delete that only ever removes a table carrying
//! them.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{TableStatus, Tag};

use super::{SessionTable, build_error};
use crate::error::{Error, Result};

/// The tag the session-table custom resource puts on every table it creates: the stack's id
/// (its ARN). With [`LOGICAL_ID_TAG`] it tells a stack's own tables from adopted and foreign
/// ones, and the template's IAM policy lets the function delete only tables carrying it.
pub const STACK_ID_TAG: &str = "dynamodb-session-store:stack-id";

/// The tag the session-table custom resource puts on every table it creates: the resource's
/// logical id in the template.
pub const LOGICAL_ID_TAG: &str = "dynamodb-session-store:logical-id";

/// DynamoDB's tag limits: keys of 1 to 128 characters, values of up to 256, at most 50 tags.
const MAX_TAG_KEY_CHARS: usize = 128;
const MAX_TAG_VALUE_CHARS: usize = 256;
const MAX_TAGS: usize = 50;

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
    /// DynamoDB's estimate of the items in the table (updated about every six hours).
    pub item_count: Option<u64>,
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
    /// The table of this name as it exists now, with its tags; `None` when there is none.
    /// Changes nothing. A table being created or updated is waited for first (up to
    /// [`wait_timeout`](Self::wait_timeout)): DynamoDB may refuse to list the tags of a
    /// table that is not active yet, and refuses to delete one that is being updated.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use dynamodb_session_store::table::SessionTable;
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
        let item_count = described
            .as_ref()
            .and_then(|t| t.item_count)
            .and_then(|n| u64::try_from(n).ok());
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
            item_count,
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
    /// use dynamodb_session_store::table::{Deletion, SessionTable};
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
    pub(super) fn sdk_tags(&self) -> Result<Vec<Tag>> {
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
            item_count: None,
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
