//! Garbage collection: a scheduled, resumable, race-safe sweep that deletes dead sessions.
//! The rules and the design are documented on [`GarbageCollector`]; the sweep itself is in
//! `sweep`, the checkpoint that carries a pass across invocations in `checkpoint`, and the
//! collector's own retry policy in `retry`.

mod checkpoint;
mod retry;
mod sweep;

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;

use crate::config::{self, Config};
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

type ProgressHook = Arc<dyn Fn(&GcProgress) + Send + Sync>;

/// A page of garbage as the test hook sees it, between the scan and the deletes (see
/// `GarbageCollector::on_page_scanned`, `testing` feature).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ScannedPage {
    /// The segment the page belongs to.
    pub segment: u32,
    /// The key the page was read after (`None` for a segment's first page).
    pub exclusive_start_key: Option<HashMap<String, AttributeValue>>,
    /// The garbage found: each item's key and timestamps.
    pub garbage: Vec<HashMap<String, AttributeValue>>,
}

#[cfg(feature = "testing")]
type PageHook =
    std::sync::Arc<dyn Fn(ScannedPage) -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

/// Deletes dead sessions on a schedule: a resumable, race-safe sweep.
///
/// DynamoDB's TTL deletes sessions whose `expire_at` has passed for free, but up to about
/// 48 hours late. The collector deletes them on a schedule (the `session-gc` Lambda runs it
/// from an EventBridge rule), and can apply caps of its own.
///
/// # What is garbage
///
/// With `now` fixed when [`collect`](Self::collect) starts, a session is garbage when **any**
/// of these holds:
///
/// * `expire_at <= now` — always, and by default the only rule. Every write of the store
///   (create, save, touch, renew) sets `expire_at` to the end of the session's life under
///   the lifetimes that write applied — the configuration's `max_age` and `max_stale`, the
///   layer's ([`SessionLayer::with_max_stale`](crate::SessionLayer::with_max_stale),
///   [`with_expire_after`](crate::SessionLayer::with_expire_after),
///   [`with_max_age`](crate::SessionLayer::with_max_age)) or the session's own
///   ([`Session::set_max_stale`](crate::Session::set_max_stale)) — and
///   [`SessionStore::load`](crate::SessionStore::load) treats a session as absent once its
///   `expire_at <= now`. So by default the collector never deletes a session the store would
///   still open, and needs no copy of the store's lifetimes. An item without `expire_at`
///   (written by the gem, or by a store with no limit) is never garbage by this rule;
/// * `created_at < now - max_age`, only with a [`GcLimits::max_age`] cap given explicitly;
/// * `updated_at < now - max_stale`, only with a [`GcLimits::max_stale`] cap given
///   explicitly, for sessions without an idle limit of their own (those are judged by their
///   `expire_at`, as the store judges them).
///
/// The caps are extra: they delete sessions the store may still open (a lifetime tightened
/// after the sessions were written, say). The [`Config`]'s `max_age` and `max_stale` are the
/// store's lifetimes, never caps of the collector's: the front ends read the caps from
/// their own variables, [`GC_MAX_AGE_VAR`] and [`GC_MAX_STALE_VAR`].
///
/// # How it differs from the Ruby gem
///
/// The gem's `GarbageCollection.collect_garbage` scans for `created_at < now - max_age`
/// **and** `updated_at < now - max_stale` (its README says *or*), compares the string it
/// stores against a number (so it very likely matches nothing), scans the whole table with
/// an empty filter when no limit is set, deletes with unconditional `BatchWriteItem` (a
/// session refreshed between the scan and the delete is lost), re-sends unprocessed items in
/// a tight loop, and has no notion of a deadline. This collector:
///
/// * goes by each session's `expire_at` and ORs the caps with it, on numbers (an empty
///   filter never scans the whole table as garbage);
/// * deletes each session with a `DeleteItem` whose `ConditionExpression` is the garbage rule
///   itself, evaluated by DynamoDB at delete time: a session refreshed after the scan no
///   longer matches and survives (counted in [`GcReport::skipped_refreshed`]);
/// * retries throttling and transient failures with bounded exponential backoff and jitter,
///   never sleeping past the deadline, and can cap its delete rate;
/// * stops cleanly before a deadline and resumes in the next invocation from a checkpoint.
///
/// # How a sweep runs
///
/// The table is scanned in `segments` parallel segments ([`DEFAULT_SEGMENTS`]), a page of at
/// most `page_size` evaluated items at a time, with the garbage rule as `FilterExpression` and
/// only the key and the three timestamps projected (`Select=SPECIFIC_ATTRIBUTES`). The garbage of a page is deleted
/// concurrently (at most `concurrency` deletes in flight, at most `rate_limit` per second),
/// then the segment reads its next page.
///
/// # Deadline and checkpoint
///
/// [`collect`](Self::collect) starts no page it expects to overrun the deadline,
/// abandons a page still running when the deadline nears (it is read again next time, so at
/// most one page per segment is read twice), and keeps what is left of the pass in a
/// checkpoint item in the session table itself, under the key [`CHECKPOINT_KEY`]: the
/// `LastEvaluatedKey` of every segment's last finished page (`gc_segments`, a list of maps),
/// when the pass started (`gc_pass_started_at`) and a version number (`gc_version`). Session
/// keys are 43-character base64url strings, so the checkpoint can never collide with one, and
/// it has no timestamps, so the garbage rule never matches it and TTL never deletes it. The
/// next invocation resumes from it; the invocation that finishes the last segment deletes it.
///
/// Every checkpoint write is conditional on the version it read, so two collectors running at
/// once cannot move it backwards: the one that loses stops with
/// [`PassStatus::Superseded`] (its deletes were conditional, so they stand). When the number
/// of segments changes between invocations the saved keys mean nothing any more and the pass
/// restarts from the beginning. Progress is also saved every [`CHECKPOINT_INTERVAL`], so a
/// crash loses little.
///
/// # Usage
///
/// Built from a [`Config`] (only its table, key and validity are used) and tuned with the
/// `with_*` methods; [`with_limits`](Self::with_limits) adds caps. It keeps its own copy of the client with the SDK's retries turned off, because it
/// retries itself (counted, and never past the deadline).
///
/// # Examples
///
/// ```no_run
/// use std::time::{Duration, Instant};
/// use dynamodb_session_store::Config;
/// use dynamodb_session_store::gc::GarbageCollector;
///
/// # async fn demo(client: aws_sdk_dynamodb::Client) -> Result<(), dynamodb_session_store::Error> {
/// let config = Config::builder().table_name("sessions").build()?;
/// // By default: the sessions whose expire_at has passed, whatever lifetime gave it.
/// let collector = GarbageCollector::new(client, &config)?
///     .with_segments(8)
///     .with_rate_limit(200);
///
/// // On Lambda: until shortly before the invocation's deadline, then the next one continues.
/// let report = collector.collect(Instant::now() + Duration::from_secs(60)).await?;
/// println!("deleted {}, pass {:?}", report.deleted, report.status);
///
/// // No deadline: until the pass is complete, like the gem's collect_garbage.
/// let report = collector.collect_all().await?;
/// assert!(report.is_complete());
/// # Ok(()) }
/// ```
pub struct GarbageCollector {
    pub(super) client: Client,
    pub(super) table: String,
    pub(super) key: String,
    pub(super) max_age: Option<Duration>,
    pub(super) max_stale: Option<Duration>,
    pub(super) segments: u32,
    pub(super) page_size: u32,
    pub(super) concurrency: usize,
    pub(super) rate_limit: Option<NonZeroU32>,
    pub(super) max_retries: usize,
    pub(super) dry_run: bool,
    pub(super) on_progress: Option<ProgressHook>,
    pub(super) stop_flag: Option<Arc<AtomicBool>>,
    #[cfg(feature = "testing")]
    pub(super) on_page_scanned: Option<PageHook>,
}

impl fmt::Debug for GarbageCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GarbageCollector")
            .field("table", &self.table)
            .field("key", &self.key)
            .field("max_age", &self.max_age)
            .field("max_stale", &self.max_stale)
            .field("segments", &self.segments)
            .field("page_size", &self.page_size)
            .field("concurrency", &self.concurrency)
            .field("rate_limit", &self.rate_limit)
            .field("max_retries", &self.max_retries)
            .field("dry_run", &self.dry_run)
            .field("on_progress", &self.on_progress.is_some())
            .field("stop_flag", &self.stop_flag.is_some())
            .finish_non_exhaustive()
    }
}

impl GarbageCollector {
    /// A collector for the table `config` describes, deleting the sessions whose
    /// `expire_at` has passed. `config`'s `max_age` and `max_stale` are not caps here: they
    /// are already in the `expire_at` each write set (see [`with_limits`](Self::with_limits)
    /// for caps).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for values a hand-edited [`Config`] got wrong.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use dynamodb_session_store::Config;
    /// use dynamodb_session_store::gc::GarbageCollector;
    ///
    /// # fn demo(client: aws_sdk_dynamodb::Client) {
    /// // The store's one-hour max_stale does not make the collector delete idle sessions.
    /// let config = Config::builder().max_stale(Duration::from_secs(3600)).build().unwrap();
    /// let collector = GarbageCollector::new(client, &config).unwrap();
    /// assert!(format!("{collector:?}").contains("max_stale: None"));
    /// # }
    /// ```
    pub fn new(client: Client, config: &Config) -> Result<Self> {
        config::validate(config, |option| format!("Config::{option}"))?;
        // The collector retries on its own terms (counted, never past the deadline); SDK
        // retries underneath would multiply the attempts and hide them.
        let client = Client::from_conf(
            client
                .config()
                .to_builder()
                .retry_config(RetryConfig::disabled())
                .build(),
        );
        Ok(GarbageCollector {
            client,
            table: config.table_name.clone(),
            key: config.table_key.clone(),
            max_age: None,
            max_stale: None,
            segments: DEFAULT_SEGMENTS,
            page_size: DEFAULT_PAGE_SIZE,
            concurrency: DEFAULT_CONCURRENCY,
            rate_limit: None,
            max_retries: DEFAULT_MAX_RETRIES,
            dry_run: false,
            on_progress: None,
            stop_flag: None,
            #[cfg(feature = "testing")]
            on_page_scanned: None,
        })
    }

    /// Caps on top of `expire_at` (see [`GcLimits`]): a session older than `max_age`, or idle
    /// longer than `max_stale` without an idle limit of its own, is garbage too. A zero cap
    /// counts as one second. [`GcLimits::default`] removes them.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use dynamodb_session_store::Config;
    /// use dynamodb_session_store::gc::{GarbageCollector, GcLimits};
    ///
    /// # async fn demo(client: aws_sdk_dynamodb::Client) -> Result<(), dynamodb_session_store::Error> {
    /// // What the front ends do: the caps come from the collector's own variables.
    /// let collector = GarbageCollector::new(client, &Config::from_env()?)?
    ///     .with_limits(GcLimits::from_env(std::env::vars())?);
    /// collector.collect_all().await?;
    /// # Ok(()) }
    /// ```
    pub fn with_limits(mut self, limits: GcLimits) -> Self {
        let at_least_a_second = |cap: Duration| cap.max(Duration::from_secs(1));
        self.max_age = limits.max_age.map(at_least_a_second);
        self.max_stale = limits.max_stale.map(at_least_a_second);
        self
    }

    /// Parallel scan segments, clamped to `1..=`[`MAX_SEGMENTS`]. Changing it between
    /// invocations restarts the pass.
    pub fn with_segments(mut self, segments: u32) -> Self {
        self.segments = segments.clamp(1, MAX_SEGMENTS);
        self
    }

    /// Items a scan page evaluates (the scan's `Limit`), at least 1.
    pub fn with_page_size(mut self, page_size: u32) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    /// Most deletes in flight at once, across all segments; at least 1.
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// Most deletes per second, so the collector never starves the live application on a
    /// provisioned table; `0` removes the limit. Bursts of up to one second's worth.
    pub fn with_rate_limit(mut self, deletes_per_second: u32) -> Self {
        self.rate_limit = NonZeroU32::new(deletes_per_second);
        self
    }

    /// Most retries of one request after throttling or a transient failure.
    pub fn with_max_retries(mut self, retries: usize) -> Self {
        self.max_retries = retries;
        self
    }

    /// A dry run: a fresh full pass that deletes nothing and neither reads nor writes the
    /// checkpoint (a pass another invocation left is neither resumed nor disturbed). It scans
    /// with the same filter as a real run, so [`GcReport::garbage_found`] is what a real run
    /// starting at the same instant would try to delete; `deleted` and `skipped_refreshed`
    /// stay 0 and [`GcReport::dry_run`] is set.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use dynamodb_session_store::Config;
    /// use dynamodb_session_store::gc::GarbageCollector;
    ///
    /// # async fn demo(client: aws_sdk_dynamodb::Client) -> Result<(), dynamodb_session_store::Error> {
    /// let collector = GarbageCollector::new(client, &Config::from_env()?)?.with_dry_run(true);
    /// let report = collector.collect_all().await?;
    /// println!("{} sessions would be deleted", report.garbage_found);
    /// assert_eq!(report.deleted, 0);
    /// # Ok(()) }
    /// ```
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Calls `hook` after each finished page with the invocation's running counts (a progress
    /// bar, a log line). Calls never overlap and their counts never go backwards; keep the
    /// hook quick, because the segments wait for it.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use dynamodb_session_store::Config;
    /// use dynamodb_session_store::gc::GarbageCollector;
    ///
    /// # async fn demo(client: aws_sdk_dynamodb::Client) -> Result<(), dynamodb_session_store::Error> {
    /// let collector = GarbageCollector::new(client, &Config::from_env()?)?.on_progress(|p| {
    ///     eprintln!("scanned {}, deleted {}", p.scanned, p.deleted);
    /// });
    /// collector.collect_all().await?;
    /// # Ok(()) }
    /// ```
    pub fn on_progress<F>(mut self, hook: F) -> Self
    where
        F: Fn(&GcProgress) + Send + Sync + 'static,
    {
        self.on_progress = Some(Arc::new(hook));
        self
    }

    /// Stops cleanly once `stop` is set (by a Ctrl-C handler, say): no segment starts another
    /// page, the pages already running finish, and the progress is saved in the checkpoint
    /// as when a deadline comes, so the invocation ends with [`PassStatus::Continuing`] and
    /// the next one resumes. Set before the run starts, it reads no page at all.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use dynamodb_session_store::Config;
    /// use dynamodb_session_store::gc::GarbageCollector;
    ///
    /// # async fn demo(client: aws_sdk_dynamodb::Client) -> Result<(), dynamodb_session_store::Error> {
    /// let stop = Arc::new(AtomicBool::new(false));
    /// let collector =
    ///     GarbageCollector::new(client, &Config::from_env()?)?.with_stop_flag(stop.clone());
    /// // Elsewhere, a Ctrl-C handler (sessionctl's uses tokio::signal::ctrl_c):
    /// let stopper = tokio::spawn(async move {
    ///     tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    ///     stop.store(true, Ordering::Relaxed);
    /// });
    /// let report = collector.collect_all().await?;
    /// println!("{:?}", report.status); // Continuing if it was stopped
    /// # stopper.abort();
    /// # Ok(()) }
    /// ```
    pub fn with_stop_flag(mut self, stop: Arc<AtomicBool>) -> Self {
        self.stop_flag = Some(stop);
        self
    }

    /// Runs `hook` after each page is scanned and before its garbage is deleted (test builds
    /// only: it lets a test refresh a session at exactly that moment).
    #[cfg(feature = "testing")]
    pub fn on_page_scanned<F>(mut self, hook: F) -> Self
    where
        F: Fn(ScannedPage) -> futures::future::BoxFuture<'static, ()> + Send + Sync + 'static,
    {
        self.on_page_scanned = Some(std::sync::Arc::new(hook));
        self
    }

    /// Sweeps until the pass is complete or `deadline` is near, and returns by `deadline`
    /// provided the last checkpoint write is quick (the time kept for it is the smaller of
    /// one second and a tenth of the budget). Resumes the pass a previous invocation left.
    ///
    /// # Errors
    ///
    /// [`Error::TableNotFound`]; [`Error::DynamoDb`] when a request fails for good (not
    /// retryable, or still failing after the retries). Progress made before the failure is
    /// saved when possible. [`Error::MalformedItem`] when the checkpoint item's version is
    /// unreadable (delete the item to reset).
    pub async fn collect(&self, deadline: Instant) -> Result<GcReport> {
        self.run(Some(deadline)).await
    }

    /// Sweeps with no deadline until the pass is complete (resuming a saved one), like the
    /// gem's `collect_garbage`. Meant for scripts and small tables; on Lambda use
    /// [`collect`](Self::collect).
    ///
    /// # Errors
    ///
    /// As [`collect`](Self::collect).
    pub async fn collect_all(&self) -> Result<GcReport> {
        self.run(None).await
    }
}

/// Deletes the garbage in the table `config` describes with the client it carries, in one
/// pass with no deadline: the gem's `GarbageCollection.collect_garbage`, without its bugs
/// (see [`GarbageCollector`]).
///
/// # Errors
///
/// [`Error::MissingClient`] when `config` has no client; otherwise as
/// [`GarbageCollector::collect`]. Only `expire_at` decides, as for
/// [`GarbageCollector::new`].
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> Result<(), dynamodb_session_store::Error> {
/// let aws = aws_config::load_from_env().await;
/// let config = dynamodb_session_store::Config::builder()
///    .env_from_process()
///    .dynamo_db_client(aws_sdk_dynamodb::Client::new(&aws))
///    .build()?;
/// let report = dynamodb_session_store::gc::collect_garbage(&config).await?;
/// println!("deleted {} sessions", report.deleted);
/// # Ok(()) }
/// ```
pub async fn collect_garbage(config: &Config) -> Result<GcReport> {
    let client = config
        .dynamo_db_client
        .clone()
        .ok_or(Error::MissingClient)?;
    GarbageCollector::new(client, config)?.collect_all().await
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::operation::delete_item::{DeleteItemError, DeleteItemOutput};
    use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
    use aws_sdk_dynamodb::operation::scan::ScanOutput;
    use aws_sdk_dynamodb::types::error::ProvisionedThroughputExceededException;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::checkpoint::{Checkpoint, SegmentProgress, checkpoint_key};
    use super::sweep::Item;
    use super::*;
    use crate::store::number;

    fn config(configure: impl FnOnce(crate::ConfigBuilder) -> crate::ConfigBuilder) -> Config {
        configure(Config::builder().table_name("sessions"))
            .build()
            .unwrap()
    }

    #[test]
    fn the_stores_lifetimes_are_not_caps_and_caps_are_explicit() {
        let client = mock_client!(aws_sdk_dynamodb, []);
        for store_config in [
            config(|c| c),
            config(|c| {
                c.max_age(Duration::from_secs(60))
                    .max_stale(Duration::from_secs(60))
            }),
            config(|c| c.max_stale(crate::Lifetime::Unlimited)),
        ] {
            let collector = GarbageCollector::new(client.clone(), &store_config).unwrap();
            assert_eq!((collector.max_age, collector.max_stale), (None, None));
        }
        let limits = GcLimits::from_env([
            ("AWS_DYNAMO_DB_SESSION_MAX_STALE", "60"),
            (GC_MAX_AGE_VAR, "7d"),
            (GC_MAX_STALE_VAR, "1h"),
            (GC_MAX_STALE_VAR, " 30m "),
        ])
        .unwrap();
        assert_eq!(
            (limits.max_age, limits.max_stale),
            (
                Some(Duration::from_secs(7 * 86_400)),
                Some(Duration::from_secs(1800))
            ),
            "the last occurrence wins; the store's variable is not read"
        );
        let capped = GarbageCollector::new(client, &config(|c| c))
            .unwrap()
            .with_limits(limits);
        assert_eq!(capped.max_stale, Some(Duration::from_secs(1800)));
        let removed = capped.with_limits(GcLimits::default());
        assert_eq!((removed.max_age, removed.max_stale), (None, None));

        for (empty, expected) in [("", None), ("none", None)] {
            let limits = GcLimits::from_env([(GC_MAX_AGE_VAR, empty)]).unwrap();
            assert_eq!(limits.max_age, expected, "{empty:?}");
        }
        for bad in ["0", "soon", "-5"] {
            let err = GcLimits::from_env([(GC_MAX_STALE_VAR, bad)]).unwrap_err();
            let message = err.to_string();
            assert!(
                matches!(err, Error::InvalidConfig { .. })
                    && message.contains(GC_MAX_STALE_VAR)
                    && message.contains(bad),
                "{message}"
            );
        }
    }

    #[tokio::test]
    async fn a_throttled_delete_is_retried_and_counted() {
        let no_checkpoint =
            mock!(Client::get_item).then_output(|| GetItemOutput::builder().build());
        // The default rule and the projection a role limited to those attributes allows.
        let one_page = mock!(Client::scan)
            .match_requests(|r| {
                r.filter_expression() == Some("#expire <= :now")
                    && r.select() == Some(&aws_sdk_dynamodb::types::Select::SpecificAttributes)
                    && r.projection_expression() == Some("#key, #created, #updated, #expire")
            })
            .then_output(|| {
                ScanOutput::builder()
                    .items(HashMap::from([(
                        "session_id".to_owned(),
                        AttributeValue::S("dead".into()),
                    )]))
                    .scanned_count(1)
                    .count(1)
                    .build()
            });
        let throttled = mock!(Client::delete_item)
            .match_requests(|r| r.condition_expression().is_some())
            .sequence()
            .error(|| {
                DeleteItemError::ProvisionedThroughputExceededException(
                    ProvisionedThroughputExceededException::builder()
                        .message("slow down")
                        // As the SDK's deserializer records it: retries go by the code.
                        .meta(
                            aws_sdk_dynamodb::error::ErrorMetadata::builder()
                                .code("ProvisionedThroughputExceededException")
                                .build(),
                        )
                        .build(),
                )
            })
            .output(|| DeleteItemOutput::builder().build())
            .build();
        let client = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::MatchAny,
            [&no_checkpoint, &one_page, &throttled]
        );
        let collector = GarbageCollector::new(client, &config(|c| c))
            .unwrap()
            .with_segments(1);

        let report = collector.collect_all().await.unwrap();
        assert_eq!(report.status, PassStatus::Complete);
        assert_eq!((report.deleted, report.retries, report.pages), (1, 1, 1));
        assert_eq!(throttled.num_calls(), 2);
    }

    fn saved_checkpoint(segments: Vec<SegmentProgress>) -> Item {
        Checkpoint {
            version: 3,
            pass_started_at: 1_700_000_000,
            segments,
        }
        .to_item("session_id", 3)
    }

    fn resume_key() -> Item {
        HashMap::from([("session_id".to_owned(), AttributeValue::S("k".into()))])
    }

    #[tokio::test]
    async fn a_saved_pass_resumes_and_a_moved_checkpoint_supersedes_it() {
        let saved = mock!(Client::get_item).then_output(|| {
            GetItemOutput::builder()
                .set_item(Some(saved_checkpoint(vec![
                    SegmentProgress::Done,
                    SegmentProgress::Pending(Some(resume_key())),
                ])))
                .build()
        });
        // Only segment 1 is read, and from the saved key on.
        let resumed = mock!(Client::scan)
            .match_requests(|r| {
                r.segment() == Some(1)
                    && r.total_segments() == Some(2)
                    && r.exclusive_start_key() == Some(&resume_key())
            })
            .then_output(|| ScanOutput::builder().build());
        // Meanwhile another collector wrote version 4: clearing version 3 is refused.
        let moved = mock!(Client::delete_item)
            .match_requests(|r| {
                r.key().and_then(|k| k.get("session_id")) == Some(&checkpoint_key())
            })
            .then_error(|| {
                DeleteItemError::ConditionalCheckFailedException(
                    aws_sdk_dynamodb::types::error::ConditionalCheckFailedException::builder()
                        .build(),
                )
            });
        let client = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::MatchAny,
            [&saved, &resumed, &moved]
        );
        let collector = GarbageCollector::new(client, &config(|c| c))
            .unwrap()
            .with_segments(2);

        let report = collector.collect_all().await.unwrap();
        assert_eq!(report.status, PassStatus::Superseded);
        assert_eq!(report.pass_started_at, 1_700_000_000);
        assert_eq!((report.pages, report.segments_done), (1, 2));
        assert_eq!((resumed.num_calls(), moved.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn a_changed_segment_count_restarts_the_pass() {
        let saved = mock!(Client::get_item).then_output(|| {
            GetItemOutput::builder()
                .set_item(Some(saved_checkpoint(vec![
                    SegmentProgress::Pending(Some(resume_key())),
                    SegmentProgress::Done,
                ])))
                .build()
        });
        let from_the_start = mock!(Client::scan)
            .match_requests(|r| r.total_segments() == Some(1) && r.exclusive_start_key().is_none())
            .then_output(|| ScanOutput::builder().build());
        let cleared = mock!(Client::delete_item)
            .match_requests(|r| {
                r.expression_attribute_values()
                    .and_then(|v| v.get(":expected"))
                    == Some(&number(3))
            })
            .then_output(|| DeleteItemOutput::builder().build());
        let client = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::MatchAny,
            [&saved, &from_the_start, &cleared]
        );
        let collector = GarbageCollector::new(client, &config(|c| c))
            .unwrap()
            .with_segments(1);

        let report = collector.collect_all().await.unwrap();
        assert_eq!(report.status, PassStatus::Complete);
        assert_eq!((from_the_start.num_calls(), cleared.num_calls()), (1, 1));
    }

    fn garbage_item(key: &str) -> Item {
        HashMap::from([("session_id".to_owned(), AttributeValue::S(key.into()))])
    }

    #[tokio::test]
    async fn a_dry_run_counts_the_garbage_and_writes_nothing() {
        // A pass in progress that the dry run must neither read nor disturb.
        let saved = mock!(Client::get_item).then_output(|| GetItemOutput::builder().build());
        let filtered = mock!(Client::scan)
            .match_requests(|r| {
                r.filter_expression()
                    .is_some_and(|f| f.contains("#expire <= :now"))
                    && r.exclusive_start_key().is_none()
            })
            .then_output(|| {
                ScanOutput::builder()
                    .items(garbage_item("dead-1"))
                    .items(garbage_item("dead-2"))
                    .scanned_count(5)
                    .count(2)
                    .build()
            });
        let deleted =
            mock!(Client::delete_item).then_output(|| DeleteItemOutput::builder().build());
        let saved_checkpoint = mock!(Client::put_item).then_output(|| {
            aws_sdk_dynamodb::operation::put_item::PutItemOutput::builder().build()
        });
        let client = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::MatchAny,
            [&saved, &filtered, &deleted, &saved_checkpoint]
        );
        let collector = GarbageCollector::new(client, &config(|c| c))
            .unwrap()
            .with_segments(1)
            .with_dry_run(true);

        let report = collector.collect_all().await.unwrap();
        assert_eq!(report.status, PassStatus::Complete);
        assert!(report.dry_run);
        assert_eq!(
            (
                report.scanned,
                report.garbage_found,
                report.deleted,
                report.skipped_refreshed
            ),
            (5, 2, 0, 0)
        );
        assert_eq!(filtered.num_calls(), 1);
        assert_eq!(
            (
                saved.num_calls(),
                deleted.num_calls(),
                saved_checkpoint.num_calls()
            ),
            (0, 0, 0),
            "a dry run neither reads the checkpoint, nor deletes, nor saves"
        );
    }

    #[tokio::test]
    async fn the_progress_hook_sees_every_page_with_growing_counts() {
        let no_checkpoint =
            mock!(Client::get_item).then_output(|| GetItemOutput::builder().build());
        let first = mock!(Client::scan)
            .match_requests(|r| r.exclusive_start_key().is_none())
            .then_output(|| {
                ScanOutput::builder()
                    .items(garbage_item("dead-1"))
                    .scanned_count(3)
                    .set_last_evaluated_key(Some(resume_key()))
                    .build()
            });
        let second = mock!(Client::scan)
            .match_requests(|r| r.exclusive_start_key() == Some(&resume_key()))
            .then_output(|| {
                ScanOutput::builder()
                    .items(garbage_item("dead-2"))
                    .items(garbage_item("dead-3"))
                    .scanned_count(4)
                    .build()
            });
        let deleted =
            mock!(Client::delete_item).then_output(|| DeleteItemOutput::builder().build());
        let client = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::MatchAny,
            [&no_checkpoint, &first, &second, &deleted]
        );
        let seen = Arc::new(std::sync::Mutex::new(Vec::<GcProgress>::new()));
        let hook_seen = seen.clone();
        let collector = GarbageCollector::new(client, &config(|c| c))
            .unwrap()
            .with_segments(1)
            .on_progress(move |p| hook_seen.lock().unwrap().push(p.clone()));

        let report = collector.collect_all().await.unwrap();
        let seen = seen.lock().unwrap().clone();
        let counts = |p: &GcProgress| {
            (
                p.pages,
                p.scanned,
                p.garbage_found,
                p.deleted,
                p.segments_done,
            )
        };
        assert_eq!(
            seen.iter().map(counts).collect::<Vec<_>>(),
            [(1, 3, 1, 1, 0), (2, 7, 3, 3, 1)]
        );
        assert!(seen.iter().all(|p| p.segments == 1 && !p.dry_run));
        assert!(seen[0].elapsed <= seen[1].elapsed);
        let last = &seen[1];
        assert_eq!(
            (
                report.pages,
                report.scanned,
                report.garbage_found,
                report.deleted
            ),
            (last.pages, last.scanned, last.garbage_found, last.deleted)
        );
    }

    #[tokio::test]
    async fn the_stop_flag_finishes_the_page_and_saves_the_checkpoint() {
        let no_checkpoint =
            mock!(Client::get_item).then_output(|| GetItemOutput::builder().build());
        let first = mock!(Client::scan)
            .match_requests(|r| r.exclusive_start_key().is_none())
            .then_output(|| {
                ScanOutput::builder()
                    .items(garbage_item("dead-1"))
                    .scanned_count(1)
                    .set_last_evaluated_key(Some(resume_key()))
                    .build()
            });
        let never = mock!(Client::scan)
            .match_requests(|r| r.exclusive_start_key().is_some())
            .then_output(|| ScanOutput::builder().build());
        let deleted =
            mock!(Client::delete_item).then_output(|| DeleteItemOutput::builder().build());
        // The checkpoint saved: segment 0 resumes after the first page's last key.
        let saved = mock!(Client::put_item)
            .match_requests(|r| {
                let item = r.item().cloned().unwrap_or_default();
                Checkpoint::from_item(&item, 1)
                    .is_ok_and(|c| c.segments == [SegmentProgress::Pending(Some(resume_key()))])
            })
            .then_output(|| {
                aws_sdk_dynamodb::operation::put_item::PutItemOutput::builder().build()
            });
        let client = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::MatchAny,
            [&no_checkpoint, &first, &never, &deleted, &saved]
        );
        let stop = Arc::new(AtomicBool::new(false));
        let stop_after_first_page = stop.clone();
        let collector = GarbageCollector::new(client, &config(|c| c))
            .unwrap()
            .with_segments(1)
            .with_stop_flag(stop)
            .on_progress(move |_| {
                stop_after_first_page.store(true, std::sync::atomic::Ordering::Relaxed)
            });

        let report = collector.collect_all().await.unwrap();
        assert_eq!(report.status, PassStatus::Continuing);
        assert_eq!(
            (report.pages, report.deleted, report.segments_done),
            (1, 1, 0)
        );
        assert_eq!(
            (first.num_calls(), never.num_calls(), saved.num_calls()),
            (1, 0, 1)
        );
    }

    #[tokio::test]
    async fn a_stop_flag_set_before_the_run_reads_no_page() {
        let no_checkpoint =
            mock!(Client::get_item).then_output(|| GetItemOutput::builder().build());
        let scan = mock!(Client::scan).then_output(|| ScanOutput::builder().build());
        let client = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::MatchAny,
            [&no_checkpoint, &scan]
        );
        let collector = GarbageCollector::new(client, &config(|c| c))
            .unwrap()
            .with_stop_flag(Arc::new(AtomicBool::new(true)));

        let report = collector.collect_all().await.unwrap();
        assert_eq!(report.status, PassStatus::Continuing);
        assert_eq!((report.pages, scan.num_calls()), (0, 0));
    }

    #[tokio::test]
    async fn a_refused_delete_is_not_retried() {
        let no_checkpoint =
            mock!(Client::get_item).then_output(|| GetItemOutput::builder().build());
        let one_page = mock!(Client::scan).then_output(|| {
            ScanOutput::builder()
                .items(HashMap::from([(
                    "session_id".to_owned(),
                    AttributeValue::S("dead".into()),
                )]))
                .build()
        });
        let denied = mock!(Client::delete_item).then_error(|| {
            DeleteItemError::generic(
                aws_sdk_dynamodb::error::ErrorMetadata::builder()
                    .code("AccessDeniedException")
                    .build(),
            )
        });
        let client = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::MatchAny,
            [&no_checkpoint, &one_page, &denied]
        );
        let collector = GarbageCollector::new(client, &config(|c| c))
            .unwrap()
            .with_limits(GcLimits {
                max_age: Some(Duration::from_secs(60)),
                max_stale: None,
            })
            .with_segments(1);

        let err = collector.collect_all().await.unwrap_err();
        assert!(matches!(err, Error::DynamoDb(_)), "{err:?}");
        assert_eq!(denied.num_calls(), 1);
    }
}
