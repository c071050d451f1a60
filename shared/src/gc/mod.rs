//! Garbage collection: a scheduled, resumable, race-safe sweep that deletes dead sessions,
//! on any [`CollectorBackend`](crate::backend::CollectorBackend). The rules and the design are
//! documented on [`GarbageCollector`] (`collector`); one run's state and its sweep are in
//! `sweep`; the checkpoint that carries a pass across invocations, plain data, in
//! `checkpoint`. The requests themselves belong to the backends.

mod checkpoint;
mod collector;
mod counts;
mod sweep;

use std::time::Duration;

use serde::Serialize;

pub use self::checkpoint::{Checkpoint, SegmentProgress};
pub use self::collector::{GarbageCollector, collect_garbage};
use crate::backend::GarbageRule;
use crate::config;
use crate::error::{Error, Result};

/// Key value of the checkpoint item the collector keeps in the session table.
pub const CHECKPOINT_KEY: &str = "gc-checkpoint#v1";
/// Parallel scan segments unless [`GarbageCollector::with_segments`] says otherwise.
pub const DEFAULT_SEGMENTS: u32 = 4;
/// Most segments accepted: every segment's key must fit in the one checkpoint item.
pub const MAX_SEGMENTS: u32 = 1000;
/// Items a scan page evaluates unless [`GarbageCollector::with_page_size`] says otherwise.
pub const DEFAULT_PAGE_SIZE: u32 = 500;
/// Largest page the collector's front ends accept: DynamoDB returns at most 1 MB a page anyway.
pub const MAX_PAGE_SIZE: u32 = 10_000;
/// The variable the collector's front ends (the session-gc Lambda, `sessionctl gc`) read
/// the scan segments from (1 to [`MAX_SEGMENTS`]; default [`DEFAULT_SEGMENTS`]).
pub const GC_SEGMENTS_VAR: &str = "AWS_DYNAMO_DB_SESSION_GC_SEGMENTS";
/// The variable the collector's front ends read the scan page size from (1 to
/// [`MAX_PAGE_SIZE`]; default [`DEFAULT_PAGE_SIZE`]).
pub const GC_PAGE_SIZE_VAR: &str = "AWS_DYNAMO_DB_SESSION_GC_PAGE_SIZE";
/// The variable the collector's front ends read the most deletes per second from (`0` or
/// unset: no limit; see [`GarbageCollector::with_rate_limit`]).
pub const GC_RATE_LIMIT_VAR: &str = "AWS_DYNAMO_DB_SESSION_GC_RATE_LIMIT";
/// The variable the collector's front ends read its extra age cap from (see
/// [`GcLimits`]; unset, empty or `none`: no cap). Distinct from the store's
/// `AWS_DYNAMO_DB_SESSION_MAX_AGE`, which the collector ignores: the store's lifetime is
/// already in every session's `expire_at`.
pub const GC_MAX_AGE_VAR: &str = "AWS_DYNAMO_DB_SESSION_GC_MAX_AGE";
/// The variable the collector's front ends read its extra idle cap from (see
/// [`GcLimits`]; unset, empty or `none`: no cap). Distinct from the store's
/// `AWS_DYNAMO_DB_SESSION_MAX_STALE`, which the collector ignores, so that the layer's
/// `max_stale` never silently becomes the collector's cap.
pub const GC_MAX_STALE_VAR: &str = "AWS_DYNAMO_DB_SESSION_GC_MAX_STALE";
/// Deletes in flight unless [`GarbageCollector::with_concurrency`] says otherwise.
pub const DEFAULT_CONCURRENCY: usize = 16;
/// Retries of one request unless [`GarbageCollector::with_max_retries`] says otherwise.
pub const DEFAULT_MAX_RETRIES: usize = 8;
/// How often progress is saved while a long invocation runs, so a crash loses little.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(30);

/// Caps the collector applies on top of each session's `expire_at`, each one optional: the
/// gem's `max_age` and `max_stale`. None by default, so by default the collector deletes
/// exactly the sessions the store would no longer open by their `expire_at`.
///
/// A cap deletes sessions the store may still consider live (that is what it is for: a
/// lifetime tightened after sessions were written, or a table written by another store).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use dynamodb_session_store::gc::{GC_MAX_STALE_VAR, GcLimits};
///
/// let limits = GcLimits::from_env([(GC_MAX_STALE_VAR, "30d")])?;
/// assert_eq!(limits.max_stale, Some(Duration::from_secs(30 * 86_400)));
/// assert_eq!(limits.max_age, None);
///
/// // The store's variables are not the collector's.
/// let none = GcLimits::from_env([("AWS_DYNAMO_DB_SESSION_MAX_STALE", "1h")])?;
/// assert_eq!(none, GcLimits::default());
/// # Ok::<(), dynamodb_session_store::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcLimits {
    /// Delete sessions created longer ago than this, whatever their `expire_at`.
    pub max_age: Option<Duration>,
    /// Delete sessions not written for longer than this, except those with an idle limit of
    /// their own ([`Session::set_max_stale`](crate::Session::set_max_stale)), which are
    /// judged by their `expire_at` as the store judges them.
    pub max_stale: Option<Duration>,
}

impl GcLimits {
    /// Reads [`GC_MAX_AGE_VAR`] and [`GC_MAX_STALE_VAR`] from `vars` (the last occurrence
    /// wins), in the forms the store's lifetimes take: whole seconds, `30m`, `7d`, `1h 30m`,
    /// or `none`; empty counts as unset. No other variable is read.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the variable and its value when it does not parse or
    /// is zero.
    pub fn from_env<K: AsRef<str>, V: AsRef<str>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Result<GcLimits> {
        let mut limits = GcLimits::default();
        for (name, raw) in vars {
            let slot = match name.as_ref() {
                GC_MAX_AGE_VAR => &mut limits.max_age,
                GC_MAX_STALE_VAR => &mut limits.max_stale,
                _ => continue,
            };
            *slot = parse_cap(name.as_ref(), raw.as_ref())?;
        }
        Ok(limits)
    }
}

/// One cap as text; `origin` names where it came from, for the error.
fn parse_cap(origin: &str, raw: &str) -> Result<Option<Duration>> {
    let value = raw.trim();
    if value.is_empty() {
        return Ok(None);
    }
    match config::parse_lifetime(value, origin)?.duration() {
        Some(Duration::ZERO) => Err(Error::invalid(
            origin,
            raw,
            "must be positive (`none`, or unset, means no cap)",
        )),
        cap => Ok(cap),
    }
}

/// How an invocation of the collector ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PassStatus {
    /// Every segment was swept: the pass is over and its checkpoint deleted. The next
    /// invocation starts a new pass.
    Complete,
    /// The deadline came first: progress is saved and the next invocation continues.
    Continuing,
    /// Another collector moved the checkpoint meanwhile; this one stopped and left the pass
    /// to it.
    Superseded,
}

/// What one invocation of the collector did. Logged through `tracing` and returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct GcReport {
    /// Whether the pass is complete, continuing or taken over. A dry run is `Complete` when
    /// it read the whole table and `Continuing` when a deadline or the stop flag came first
    /// (it saves nothing: the next dry run starts again).
    pub status: PassStatus,
    /// Items the scans evaluated (DynamoDB's `ScannedCount`).
    pub scanned: u64,
    /// Items the scans returned as garbage. In a dry run: what a real run would have tried
    /// to delete at the instant the dry run started.
    pub garbage_found: u64,
    /// Sessions deleted.
    pub deleted: u64,
    /// Garbage found by the scan that no longer matched the rule at delete time: refreshed
    /// since the scan, or already deleted (by TTL, the application or another collector).
    pub skipped_refreshed: u64,
    /// Scan pages read.
    pub pages: u64,
    /// Requests sent again after throttling or a transient failure.
    pub retries: u64,
    /// Wall time of the invocation (serialized as `duration_ms`).
    #[serde(rename = "duration_ms", serialize_with = "as_millis")]
    pub duration: Duration,
    /// Segments of the pass.
    pub segments: u32,
    /// Segments of the pass finished so far, this invocation and earlier ones.
    pub segments_done: u32,
    /// Unix seconds at which the pass began (an earlier invocation's, when resumed).
    pub pass_started_at: i64,
    /// Whether this was a dry run ([`GarbageCollector::with_dry_run`]): nothing was deleted
    /// (`deleted` and `skipped_refreshed` are 0), the checkpoint was neither read nor written,
    /// and `garbage_found` counts what would have been deleted.
    pub dry_run: bool,
}

impl GcReport {
    /// Whether the pass finished in this invocation.
    pub fn is_complete(&self) -> bool {
        self.status == PassStatus::Complete
    }
}

fn as_millis<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

/// The running counts of an invocation, handed to the progress hook
/// ([`GarbageCollector::on_progress`]) after each page. Every count only grows from one call
/// to the next; the final figures are in the [`GcReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct GcProgress {
    /// Items the scans evaluated so far in this invocation.
    pub scanned: u64,
    /// Items the scans returned as garbage so far (in a dry run: what would be deleted).
    pub garbage_found: u64,
    /// Sessions deleted so far.
    pub deleted: u64,
    /// Garbage that no longer matched the rule at delete time, so far.
    pub skipped_refreshed: u64,
    /// Scan pages finished so far.
    pub pages: u64,
    /// Requests sent again so far.
    pub retries: u64,
    /// Time since the invocation started (serialized as `elapsed_ms`).
    #[serde(rename = "elapsed_ms", serialize_with = "as_millis")]
    pub elapsed: Duration,
    /// Segments of the pass.
    pub segments: u32,
    /// Segments of the pass finished so far, this invocation and earlier ones.
    pub segments_done: u32,
    /// Whether this is a dry run.
    pub dry_run: bool,
}

/// A page of garbage as the test hook sees it, between the scan and the deletes (see
/// `GarbageCollector::on_page_scanned`, `testing` feature).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ScannedPage {
    /// The segment the page belongs to.
    pub segment: u32,
    /// The table key the page was read after (`None` for a segment's first page).
    pub exclusive_start_key: Option<String>,
    /// The garbage found: each item's table key.
    pub garbage: Vec<String>,
}

/// The garbage rule at `now` under the caps `max_age` and `max_stale`.
pub(crate) fn rule_at(
    max_age: Option<Duration>,
    max_stale: Option<Duration>,
    now: i64,
) -> GarbageRule {
    let before =
        |limit: Duration| now.saturating_sub(i64::try_from(limit.as_secs()).unwrap_or(i64::MAX));
    GarbageRule {
        now,
        created_before: max_age.map(before),
        updated_before: max_stale.map(before),
    }
}
