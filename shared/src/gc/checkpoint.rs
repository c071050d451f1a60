//! The checkpoint item that carries a pass across invocations: each segment's progress,
//! versioned so that two collectors never move it backwards.

use std::collections::HashMap;
use std::time::Instant;

use aws_sdk_dynamodb::types::AttributeValue;

use super::sweep::{Counts, Item, Progress};
use super::{CHECKPOINT_KEY, GarbageCollector, PassStatus};
use crate::attributes::GC_PASS_STARTED_AT;
use crate::error::{Error, Result};
use crate::store::number;

const VERSION_ATTR: &str = "gc_version";
const SEGMENTS_ATTR: &str = "gc_segments";
const DONE_FIELD: &str = "done";
const RESUME_AFTER_FIELD: &str = "resume_after";

impl GarbageCollector {
    /// The saved pass to resume, or a fresh one.
    pub(super) async fn starting_point(
        &self,
        counts: &Counts,
        deadline: Option<Instant>,
        now: i64,
    ) -> Result<Checkpoint> {
        let stored = self
            .send(counts, deadline, || {
                self.client
                    .get_item()
                    .table_name(&self.table)
                    .key(&self.key, checkpoint_key())
                    .consistent_read(true)
                    .send()
            })
            .await
            .map_err(|e| Error::from_sdk(&self.table, e))?
            .item;
        let Some(item) = stored else {
            return Ok(Checkpoint::fresh(self.segments, now, 0));
        };
        let version = read_u64(&item, VERSION_ATTR).ok_or_else(|| {
            Error::MalformedItem(format!(
                "garbage collection checkpoint {CHECKPOINT_KEY:?} has no readable \
                 {VERSION_ATTR}; delete the item to restart collection"
            ))
        })?;
        match Checkpoint::from_item(&item, version) {
            Ok(saved) if saved.segments.len() == self.segments as usize => {
                tracing::info!(
                    pass_started_at = saved.pass_started_at,
                    segments = self.segments,
                    segments_done = saved.segments_done(),
                    "resuming a garbage collection pass"
                );
                Ok(saved)
            }
            Ok(saved) => {
                tracing::info!(
                    saved_segments = saved.segments.len(),
                    segments = self.segments,
                    "segment count changed since the saved pass; restarting the pass"
                );
                Ok(Checkpoint::fresh(self.segments, now, version))
            }
            Err(reason) => {
                tracing::warn!(
                    reason,
                    "unreadable garbage collection checkpoint; restarting the pass"
                );
                Ok(Checkpoint::fresh(self.segments, now, version))
            }
        }
    }

    /// Writes the checkpoint if it still holds the version this run read or last wrote.
    pub(super) async fn save_checkpoint(
        &self,
        counts: &Counts,
        deadline: Option<Instant>,
        progress: &mut Progress,
    ) -> Result<PassStatus> {
        let expected = progress.checkpoint.version;
        let item = progress.checkpoint.to_item(&self.key, expected + 1);
        let written = self
            .send(counts, deadline, || {
                let request = self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(item.clone()));
                if expected == 0 {
                    request
                        .condition_expression("attribute_not_exists(#key)")
                        .expression_attribute_names("#key", &self.key)
                        .send()
                } else {
                    request
                        .condition_expression("#version = :expected")
                        .expression_attribute_names("#version", VERSION_ATTR)
                        .expression_attribute_values(":expected", number_u64(expected))
                        .send()
                }
            })
            .await;
        match written {
            Ok(_) => {
                progress.checkpoint.version = expected + 1;
                progress.saved_at = Instant::now();
                progress.dirty = false;
                Ok(PassStatus::Continuing)
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                tracing::warn!(
                    "another garbage collector moved the checkpoint; leaving the pass to it"
                );
                Ok(PassStatus::Superseded)
            }
            Err(e) => Err(Error::from_sdk(&self.table, e)),
        }
    }

    /// Deletes the checkpoint of a finished pass, if it still holds `version`.
    pub(super) async fn clear_checkpoint(
        &self,
        counts: &Counts,
        deadline: Option<Instant>,
        version: u64,
    ) -> Result<PassStatus> {
        if version == 0 {
            return Ok(PassStatus::Complete);
        }
        let cleared = self
            .send(counts, deadline, || {
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .key(&self.key, checkpoint_key())
                    .condition_expression("#version = :expected")
                    .expression_attribute_names("#version", VERSION_ATTR)
                    .expression_attribute_values(":expected", number_u64(version))
                    .send()
            })
            .await;
        match cleared {
            Ok(_) => Ok(PassStatus::Complete),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                tracing::warn!(
                    "another garbage collector moved the checkpoint of this finished pass"
                );
                Ok(PassStatus::Superseded)
            }
            Err(e) => Err(Error::from_sdk(&self.table, e)),
        }
    }
}

/// Where one segment of the pass stands.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum SegmentProgress {
    /// Not finished: the next page starts after this key (`None`: at the segment's start).
    Pending(Option<Item>),
    /// Swept to its end.
    Done,
}

/// A pass in progress, as stored in the checkpoint item.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Checkpoint {
    /// The stored item's version this state was read as or last written as; 0: none stored.
    pub(super) version: u64,
    pub(super) pass_started_at: i64,
    pub(super) segments: Vec<SegmentProgress>,
}

impl Checkpoint {
    pub(super) fn fresh(segments: u32, now: i64, version: u64) -> Self {
        Checkpoint {
            version,
            pass_started_at: now,
            segments: vec![SegmentProgress::Pending(None); segments as usize],
        }
    }

    pub(super) fn is_complete(&self) -> bool {
        self.segments.iter().all(|s| *s == SegmentProgress::Done)
    }

    pub(super) fn segments_done(&self) -> u32 {
        self.segments
            .iter()
            .filter(|s| **s == SegmentProgress::Done)
            .count() as u32
    }

    /// The item that stores this state as `version`. Keys are kept as DynamoDB maps, so they
    /// round-trip exactly whatever their attribute types.
    pub(super) fn to_item(&self, key_attribute: &str, version: u64) -> Item {
        let segments = self
            .segments
            .iter()
            .map(|progress| {
                let mut fields = HashMap::new();
                fields.insert(
                    DONE_FIELD.to_owned(),
                    AttributeValue::Bool(*progress == SegmentProgress::Done),
                );
                if let SegmentProgress::Pending(Some(key)) = progress {
                    fields.insert(
                        RESUME_AFTER_FIELD.to_owned(),
                        AttributeValue::M(key.clone()),
                    );
                }
                AttributeValue::M(fields)
            })
            .collect();
        HashMap::from([
            (key_attribute.to_owned(), checkpoint_key()),
            (VERSION_ATTR.to_owned(), number_u64(version)),
            (GC_PASS_STARTED_AT.to_owned(), number(self.pass_started_at)),
            (SEGMENTS_ATTR.to_owned(), AttributeValue::L(segments)),
        ])
    }

    pub(super) fn from_item(item: &Item, version: u64) -> Result<Checkpoint, String> {
        let pass_started_at = read_u64(item, GC_PASS_STARTED_AT)
            .and_then(|t| i64::try_from(t).ok())
            .ok_or_else(|| format!("no readable {GC_PASS_STARTED_AT}"))?;
        let Some(AttributeValue::L(stored)) = item.get(SEGMENTS_ATTR) else {
            return Err(format!("no {SEGMENTS_ATTR} list"));
        };
        let segments = stored
            .iter()
            .map(|entry| {
                let AttributeValue::M(fields) = entry else {
                    return Err(format!("an entry of {SEGMENTS_ATTR} is not a map"));
                };
                match (fields.get(DONE_FIELD), fields.get(RESUME_AFTER_FIELD)) {
                    (Some(AttributeValue::Bool(true)), _) => Ok(SegmentProgress::Done),
                    (Some(AttributeValue::Bool(false)), Some(AttributeValue::M(key))) => {
                        Ok(SegmentProgress::Pending(Some(key.clone())))
                    }
                    (Some(AttributeValue::Bool(false)), None) => Ok(SegmentProgress::Pending(None)),
                    _ => Err(format!("an entry of {SEGMENTS_ATTR} is malformed")),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        if segments.is_empty() {
            return Err(format!("{SEGMENTS_ATTR} is empty"));
        }
        Ok(Checkpoint {
            version,
            pass_started_at,
            segments,
        })
    }
}

pub(super) fn checkpoint_key() -> AttributeValue {
    AttributeValue::S(CHECKPOINT_KEY.to_owned())
}

pub(super) fn number_u64(n: u64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

pub(super) fn read_u64(item: &Item, name: &str) -> Option<u64> {
    match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attributes::{EXPIRE_AT, UPDATED_AT};

    #[test]
    fn checkpoints_round_trip_through_their_item() {
        let key = HashMap::from([("session_id".to_owned(), AttributeValue::S("k".into()))]);
        let checkpoint = Checkpoint {
            version: 7,
            pass_started_at: 1_700_000_000,
            segments: vec![
                SegmentProgress::Done,
                SegmentProgress::Pending(Some(key)),
                SegmentProgress::Pending(None),
            ],
        };
        let item = checkpoint.to_item("session_id", 7);
        assert_eq!(item["session_id"], checkpoint_key());
        assert!(!item.contains_key(EXPIRE_AT) && !item.contains_key(UPDATED_AT));
        assert_eq!(read_u64(&item, VERSION_ATTR), Some(7));
        assert_eq!(Checkpoint::from_item(&item, 7), Ok(checkpoint.clone()));
        assert_eq!(checkpoint.segments_done(), 1);
        assert!(!checkpoint.is_complete());

        let mut broken = item;
        broken.insert(SEGMENTS_ATTR.into(), AttributeValue::S("?".into()));
        assert!(Checkpoint::from_item(&broken, 7).is_err());
    }
}
