//! What is left of a collection pass, as plain data: each segment's progress and when the
//! pass began. Backends store it (versioned, see
//! [`CollectorBackend::save_checkpoint`](crate::backend::CollectorBackend::save_checkpoint)); it
//! knows nothing of how.

use serde::{Deserialize, Serialize};

/// Where one scan segment of a pass stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentProgress {
    /// Not finished: the next page starts after this table key (`None`: at the segment's
    /// start).
    Pending(Option<String>),
    /// Swept to its end.
    Done,
}

/// A collection pass in progress: what a backend stores between invocations. Its serde
/// encoding is for backends that keep it as one document; DynamoDB keeps the item layout
/// described on [`GarbageCollector`](crate::gc::GarbageCollector).
///
/// # Examples
///
/// ```
/// use dynamodb_session_store::gc::{Checkpoint, SegmentProgress};
///
/// let mut pass = Checkpoint::fresh(2, 1_700_000_000);
/// pass.segments[0] = SegmentProgress::Done;
/// assert_eq!((pass.segments_done(), pass.is_complete()), (1, false));
/// let stored = serde_json::to_string(&pass).unwrap();
/// assert_eq!(serde_json::from_str::<Checkpoint>(&stored).unwrap(), pass);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Unix seconds at which the pass began.
    pub pass_started_at: i64,
    /// Every segment's progress; their number is the pass's segment count.
    pub segments: Vec<SegmentProgress>,
}

impl Checkpoint {
    /// A pass of `segments` segments, none started, beginning at `now`.
    pub fn fresh(segments: u32, now: i64) -> Self {
        Checkpoint {
            pass_started_at: now,
            segments: vec![SegmentProgress::Pending(None); segments as usize],
        }
    }

    /// Whether every segment is done.
    pub fn is_complete(&self) -> bool {
        self.segments.iter().all(|s| *s == SegmentProgress::Done)
    }

    /// How many segments are done.
    pub fn segments_done(&self) -> u32 {
        self.segments
            .iter()
            .filter(|s| **s == SegmentProgress::Done)
            .count() as u32
    }

    /// The segments still to sweep, with the key each continues after.
    pub(super) fn pending(&self) -> Vec<(u32, Option<String>)> {
        self.segments
            .iter()
            .zip(0..)
            .filter_map(|(progress, segment)| match progress {
                SegmentProgress::Pending(start) => Some((segment, start.clone())),
                SegmentProgress::Done => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_segments_keep_their_place() {
        let pass = Checkpoint {
            pass_started_at: 1,
            segments: vec![
                SegmentProgress::Done,
                SegmentProgress::Pending(Some("k".into())),
                SegmentProgress::Pending(None),
            ],
        };
        assert_eq!(pass.pending(), [(1, Some("k".to_owned())), (2, None)]);
        assert_eq!(pass.segments_done(), 1);
        assert!(!pass.is_complete());
    }
}
