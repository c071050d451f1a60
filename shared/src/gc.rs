//! Garbage collection: a scheduled, resumable, race-safe sweep that deletes dead sessions.
//! The rules and the design are documented on [`GarbageCollector`].

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use backon::{ExponentialBuilder, Retryable};
use futures::stream::{self, TryStreamExt};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::Serialize;

use crate::config::{self, Config};
use crate::error::{Error, Result};
use crate::expression::Expression;
use crate::store::{CREATED_AT, EXPIRE_AT, UPDATED_AT, now, number};

/// Key value of the checkpoint item the collector keeps in the session table.
pub const CHECKPOINT_KEY: &str = "gc-checkpoint#v1";
/// Parallel scan segments unless [`GarbageCollector::with_segments`] says otherwise.
pub const DEFAULT_SEGMENTS: u32 = 4;
/// Most segments accepted: every segment's key must fit in the one checkpoint item.
pub const MAX_SEGMENTS: u32 = 1000;
/// Items a scan page evaluates unless [`GarbageCollector::with_page_size`] says otherwise.
pub const DEFAULT_PAGE_SIZE: u32 = 500;
/// Deletes in flight unless [`GarbageCollector::with_concurrency`] says otherwise.
pub const DEFAULT_CONCURRENCY: usize = 16;
/// Retries of one request unless [`GarbageCollector::with_max_retries`] says otherwise.
pub const DEFAULT_MAX_RETRIES: usize = 8;
/// How often progress is saved while a long invocation runs, so a crash loses little.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(30);

/// Most time kept back from the deadline to write the checkpoint (a tenth of the budget for
/// short budgets).
const CHECKPOINT_RESERVE: Duration = Duration::from_secs(1);
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(50);
const LONGEST_RETRY_DELAY: Duration = Duration::from_secs(5);

const VERSION_ATTR: &str = "gc_version";
const PASS_STARTED_AT_ATTR: &str = "gc_pass_started_at";
const SEGMENTS_ATTR: &str = "gc_segments";
const DONE_FIELD: &str = "done";
const RESUME_AFTER_FIELD: &str = "resume_after";

type Item = HashMap<String, AttributeValue>;

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
    /// Whether the pass is complete, continuing or taken over.
    pub status: PassStatus,
    /// Items the scans evaluated (DynamoDB's `ScannedCount`).
    pub scanned: u64,
    /// Items the scans returned as garbage.
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
/// 48 hours late, and it knows nothing of `max_age` or `max_stale` limits tightened after a
/// session was written. The collector deletes them on a schedule (the `session-gc`
/// Lambda runs it from an EventBridge rule).
///
/// # What is garbage
///
/// With `now` fixed when [`collect`](Self::collect) starts, a session is garbage when **any**
/// of these holds:
///
/// * `created_at < now - max_age` (when `max_age` is set),
/// * `updated_at < now - max_stale` (when `max_stale` is set),
/// * `expire_at <= now` (always: the rule [`SessionStore::load`](crate::SessionStore::load)
///   already applies on read).
///
/// An item without these attributes never matches. With neither `max_age` nor `max_stale`
/// set, [`new`](Self::new) refuses with [`Error::NoGarbageLimits`] and nothing is
/// deleted: TTL alone already covers `expire_at`.
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
/// * ORs the rules, on numbers, and refuses to run without a limit;
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
/// only the key and the three timestamps projected. The garbage of a page is deleted
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
/// Built from a [`Config`] (table, key, `max_age`, `max_stale`) and tuned with the `with_*`
/// methods. It keeps its own copy of the client with the SDK's retries turned off, because it
/// retries itself (counted, and never past the deadline).
///
/// # Examples
///
/// ```no_run
/// use std::time::{Duration, Instant};
/// use dynamodb_session_store::{Config, GarbageCollector};
///
/// # async fn demo(client: aws_sdk_dynamodb::Client) -> Result<(), dynamodb_session_store::Error> {
/// let config = Config::builder()
///     .table_name("sessions")
///     .max_age(Duration::from_secs(7 * 24 * 3600))
///     .max_stale(Duration::from_secs(30 * 60))
///     .build()?;
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
    client: Client,
    table: String,
    key: String,
    max_age: Option<Duration>,
    max_stale: Option<Duration>,
    segments: u32,
    page_size: u32,
    concurrency: usize,
    rate_limit: Option<NonZeroU32>,
    max_retries: usize,
    #[cfg(feature = "testing")]
    on_page_scanned: Option<PageHook>,
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
            .finish_non_exhaustive()
    }
}

impl GarbageCollector {
    /// A collector for the table `config` describes, with its `max_age` and `max_stale`.
    ///
    /// # Errors
    ///
    /// [`Error::NoGarbageLimits`] when neither `max_age` nor `max_stale` is set;
    /// [`Error::InvalidConfig`] for values a hand-edited [`Config`] got wrong.
    ///
    /// # Examples
    ///
    /// ```
    /// use dynamodb_session_store::{Config, Error, GarbageCollector};
    ///
    /// # fn demo(client: aws_sdk_dynamodb::Client) {
    /// let no_limits = Config::builder().build().unwrap();
    /// let err = GarbageCollector::new(client, &no_limits).unwrap_err();
    /// assert!(matches!(err, Error::NoGarbageLimits));
    /// # }
    /// ```
    pub fn new(client: Client, config: &Config) -> Result<Self> {
        config::validate(config, |option| format!("Config::{option}"))?;
        if config.max_age.is_none() && config.max_stale.is_none() {
            return Err(Error::NoGarbageLimits);
        }
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
            max_age: config.max_age,
            max_stale: config.max_stale,
            segments: DEFAULT_SEGMENTS,
            page_size: DEFAULT_PAGE_SIZE,
            concurrency: DEFAULT_CONCURRENCY,
            rate_limit: None,
            max_retries: DEFAULT_MAX_RETRIES,
            #[cfg(feature = "testing")]
            on_page_scanned: None,
        })
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

    async fn run(&self, deadline: Option<Instant>) -> Result<GcReport> {
        let started = Instant::now();
        let now = now();
        // No delete starts after `work_until`; a page still running at `hard_stop` (a
        // request that hangs) is dropped; the rest of the reserve is for the checkpoint.
        let (work_until, hard_stop) = match deadline {
            Some(deadline) => {
                let reserve =
                    CHECKPOINT_RESERVE.min(deadline.saturating_duration_since(started) / 10);
                let before = |margin| deadline.checked_sub(margin).unwrap_or(deadline);
                (Some(before(reserve)), Some(before(reserve / 2)))
            }
            None => (None, None),
        };
        let counts = Counts::default();
        let checkpoint = self.starting_point(&counts, deadline, now).await?;
        let pending: Vec<(u32, Option<Item>)> = checkpoint
            .segments
            .iter()
            .zip(0..)
            .filter_map(|(progress, segment)| match progress {
                SegmentProgress::Pending(start) => Some((segment, start.clone())),
                SegmentProgress::Done => None,
            })
            .collect();
        let run = Run {
            rule: garbage_rule(self.max_age, self.max_stale, now),
            deadline,
            work_until,
            hard_stop,
            stop: AtomicBool::new(false),
            superseded: AtomicBool::new(false),
            slowest_page_micros: AtomicU64::new(0),
            counts,
            progress: tokio::sync::Mutex::new(Progress {
                checkpoint,
                saved_at: Instant::now(),
                dirty: false,
            }),
            limiter: self
                .rate_limit
                .map(|rate| RateLimiter::direct(Quota::per_second(rate))),
            in_flight: tokio::sync::Semaphore::new(self.concurrency),
        };

        let sweeps = pending
            .into_iter()
            .map(|(segment, start)| self.sweep_segment(&run, segment, start));
        let failure = futures::future::join_all(sweeps)
            .await
            .into_iter()
            .find_map(Result::err);

        self.finish(run, failure, started).await
    }

    /// Saves or clears the checkpoint after the sweeps, and reports.
    async fn finish(&self, run: Run, failure: Option<Error>, started: Instant) -> Result<GcReport> {
        let Run {
            counts,
            progress,
            superseded,
            deadline,
            ..
        } = run;
        let mut progress = progress.into_inner();
        let status = if superseded.into_inner() {
            PassStatus::Superseded
        } else if failure.is_some() {
            // Keep what was done; the failure itself is what gets reported.
            if progress.dirty
                && let Err(e) = self.save_checkpoint(&counts, deadline, &mut progress).await
            {
                tracing::warn!(error = %e, "could not save garbage collection progress");
            }
            PassStatus::Continuing
        } else if progress.checkpoint.is_complete() {
            self.clear_checkpoint(&counts, deadline, progress.checkpoint.version)
                .await?
        } else if progress.dirty {
            self.save_checkpoint(&counts, deadline, &mut progress)
                .await?
        } else {
            PassStatus::Continuing
        };

        let report = counts.report(status, &progress.checkpoint, started.elapsed());
        match failure {
            Some(e) => {
                tracing::warn!(error = %e, report = ?report, "garbage collection failed");
                Err(e)
            }
            None => {
                tracing::info!(
                    status = ?report.status,
                    scanned = report.scanned,
                    garbage_found = report.garbage_found,
                    deleted = report.deleted,
                    skipped_refreshed = report.skipped_refreshed,
                    pages = report.pages,
                    retries = report.retries,
                    duration_ms = report.duration.as_millis() as u64,
                    segments = report.segments,
                    segments_done = report.segments_done,
                    pass_started_at = report.pass_started_at,
                    "garbage collection finished"
                );
                Ok(report)
            }
        }
    }

    /// The saved pass to resume, or a fresh one.
    async fn starting_point(
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

    /// Reads and clears one segment page by page until it is done or the run must stop.
    async fn sweep_segment(&self, run: &Run, segment: u32, start: Option<Item>) -> Result<()> {
        let result = self.sweep_pages(run, segment, start).await;
        if result.is_err() {
            // The other segments finish the page they are on, so their progress is kept.
            run.stop.store(true, Ordering::Relaxed);
        }
        result
    }

    async fn sweep_pages(&self, run: &Run, segment: u32, mut start: Option<Item>) -> Result<()> {
        loop {
            if !run.may_start_page() {
                return Ok(());
            }
            let page_started = Instant::now();
            let page = self.sweep_page(run, segment, start.take());
            let end = match run.hard_stop {
                Some(at) => tokio::time::timeout_at(at.into(), page)
                    .await
                    .unwrap_or(Ok(PageEnd::Interrupted))?,
                None => page.await?,
            };
            let PageEnd::Finished(next) = end else {
                tracing::debug!(segment, "deadline reached mid-page; it will be read again");
                run.stop.store(true, Ordering::Relaxed);
                return Ok(());
            };
            run.page_took(page_started.elapsed());
            let segment_done = next.is_none();
            self.record_progress(run, segment, next.clone()).await?;
            if segment_done {
                return Ok(());
            }
            start = next;
        }
    }

    /// Scans one page and deletes its garbage, unless the work deadline interrupts it.
    async fn sweep_page(&self, run: &Run, segment: u32, start: Option<Item>) -> Result<PageEnd> {
        let page = self.scan_page(run, segment, start.clone()).await?;
        let garbage = page.items.unwrap_or_default();
        run.counts.add(&run.counts.pages, 1);
        run.counts.add(
            &run.counts.scanned,
            u64::try_from(page.scanned_count).unwrap_or(0),
        );
        run.counts
            .add(&run.counts.garbage_found, garbage.len() as u64);

        #[cfg(feature = "testing")]
        if let Some(hook) = &self.on_page_scanned {
            hook(ScannedPage {
                segment,
                exclusive_start_key: start,
                garbage: garbage.clone(),
            })
            .await;
        }
        #[cfg(not(feature = "testing"))]
        let _ = start;

        let interrupted = AtomicBool::new(false);
        stream::iter(garbage.into_iter().map(Ok))
            .try_for_each_concurrent(self.concurrency, |item| async {
                if !self.delete_if_garbage(run, item).await? {
                    interrupted.store(true, Ordering::Relaxed);
                }
                Ok(())
            })
            .await?;
        Ok(if interrupted.into_inner() {
            PageEnd::Interrupted
        } else {
            PageEnd::Finished(page.last_evaluated_key)
        })
    }

    /// The one Scan request: a page of one segment, garbage only, key and timestamps only.
    async fn scan_page(
        &self,
        run: &Run,
        segment: u32,
        start: Option<Item>,
    ) -> Result<aws_sdk_dynamodb::operation::scan::ScanOutput> {
        // The rule plus the names of the projection.
        let mut scan = run.rule.clone();
        scan.name("#key", &self.key)
            .name("#created", CREATED_AT)
            .name("#updated", UPDATED_AT)
            .name("#expire", EXPIRE_AT);
        self.send(&run.counts, run.work_until, || {
            self.client
                .scan()
                .table_name(&self.table)
                .segment(segment as i32)
                .total_segments(self.segments as i32)
                .limit(i32::try_from(self.page_size).unwrap_or(i32::MAX))
                .set_filter_expression(scan.condition_expression())
                .projection_expression("#key, #created, #updated, #expire")
                .set_expression_attribute_names(scan.names())
                .set_expression_attribute_values(scan.values())
                .set_exclusive_start_key(start.clone())
                .send()
        })
        .await
        .map_err(|e| Error::from_sdk(&self.table, e))
    }

    /// The one DeleteItem request: deletes the session only if it is still garbage now.
    /// Returns `false` when the work deadline came before the request could be sent.
    async fn delete_if_garbage(&self, run: &Run, item: Item) -> Result<bool> {
        let Some(key) = item.get(&self.key) else {
            return Ok(true);
        };
        let ready = async {
            if let Some(limiter) = &run.limiter {
                limiter.until_ready().await;
            }
            run.in_flight
                .acquire()
                .await
                .expect("the semaphore is never closed")
        };
        let _permit = match run.work_until {
            Some(until) => match tokio::time::timeout_at(until.into(), ready).await {
                Ok(permit) if Instant::now() < until => permit,
                _ => return Ok(false),
            },
            None => ready.await,
        };
        let rule = &run.rule;
        let deleted = self
            .send(&run.counts, run.work_until, || {
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .key(&self.key, key.clone())
                    .set_condition_expression(rule.condition_expression())
                    .set_expression_attribute_names(rule.names())
                    .set_expression_attribute_values(rule.values())
                    .send()
            })
            .await;
        match deleted {
            Ok(_) => run.counts.add(&run.counts.deleted, 1),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                run.counts.add(&run.counts.skipped_refreshed, 1);
            }
            Err(e) => return Err(Error::from_sdk(&self.table, e)),
        }
        Ok(true)
    }

    /// Notes a finished page of `segment`, and saves the checkpoint when the last save is
    /// older than [`CHECKPOINT_INTERVAL`].
    async fn record_progress(&self, run: &Run, segment: u32, next: Option<Item>) -> Result<()> {
        let mut progress = run.progress.lock().await;
        progress.checkpoint.segments[segment as usize] = match next {
            Some(key) => SegmentProgress::Pending(Some(key)),
            None => SegmentProgress::Done,
        };
        progress.dirty = true;
        if progress.saved_at.elapsed() >= CHECKPOINT_INTERVAL && !progress.checkpoint.is_complete()
        {
            let status = self
                .save_checkpoint(&run.counts, run.deadline, &mut progress)
                .await?;
            if status == PassStatus::Superseded {
                run.superseded.store(true, Ordering::Relaxed);
                run.stop.store(true, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Writes the checkpoint if it still holds the version this run read or last wrote.
    async fn save_checkpoint(
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
    async fn clear_checkpoint(
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

    /// Sends a request, retrying throttling and transient failures with exponential backoff
    /// and jitter, at most `max_retries` times and never sleeping past `retry_until`.
    async fn send<T, E, F, Fut>(
        &self,
        counts: &Counts,
        retry_until: Option<Instant>,
        request: F,
    ) -> Result<T, SdkError<E, HttpResponse>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata,
    {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(FIRST_RETRY_DELAY)
            .with_max_delay(LONGEST_RETRY_DELAY)
            .with_max_times(self.max_retries)
            .with_jitter();
        request
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(is_transient)
            .adjust(|_, delay| {
                delay
                    .filter(|delay| retry_until.is_none_or(|until| Instant::now() + *delay < until))
            })
            .notify(|e, delay| {
                counts.add(&counts.retries, 1);
                tracing::debug!(
                    code = e.as_service_error().and_then(|e| e.code()),
                    ?delay,
                    "retrying a DynamoDB request"
                );
            })
            .await
    }
}

/// Deletes the garbage in the table `config` describes with the client it carries, in one
/// pass with no deadline: the gem's `GarbageCollection.collect_garbage`, without its bugs
/// (see [`GarbageCollector`]).
///
/// # Errors
///
/// [`Error::MissingClient`] when `config` has no client, [`Error::NoGarbageLimits`] when it
/// has neither `max_age` nor `max_stale`; otherwise as [`GarbageCollector::collect`].
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
/// let report = dynamodb_session_store::collect_garbage(&config).await?;
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

/// Whether a failed request is worth sending again: throttling, a server-side or transient
/// error, a timeout or a broken connection.
fn is_transient<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> bool {
    match error {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
        SdkError::DispatchFailure(failure) => failure.is_timeout() || failure.is_io(),
        SdkError::ServiceError(service) => {
            service.err().code().is_some_and(|code| {
                THROTTLING_ERRORS.contains(&code) || TRANSIENT_ERRORS.contains(&code)
            }) || service.raw().status().is_server_error()
        }
        _ => false,
    }
}

/// The garbage rule as a DynamoDB condition at one instant: the scan's filter and every
/// delete's condition, so both decide alike.
fn garbage_rule(max_age: Option<Duration>, max_stale: Option<Duration>, now: i64) -> Expression {
    let mut rule = Expression::default();
    let mut clauses = Vec::new();
    let limits = [
        (max_age, "#created", CREATED_AT, ":created_before"),
        (max_stale, "#updated", UPDATED_AT, ":updated_before"),
    ];
    for (limit, name, attribute, value) in limits {
        if let Some(limit) = limit {
            let seconds = i64::try_from(limit.as_secs()).unwrap_or(i64::MAX);
            clauses.push(format!("{name} < {value}"));
            rule.name(name, attribute)
                .value(value, number(now.saturating_sub(seconds)));
        }
    }
    clauses.push("#expire <= :now".into());
    rule.name("#expire", EXPIRE_AT)
        .value(":now", number(now))
        .condition(clauses.join(" OR "));
    rule
}

/// How the sweep of one page ended.
enum PageEnd {
    /// Its garbage is gone; the segment continues after this key (`None`: segment done).
    Finished(Option<Item>),
    /// The deadline came first; the page is read again next time.
    Interrupted,
}

/// Where one segment of the pass stands.
#[derive(Debug, Clone, PartialEq)]
enum SegmentProgress {
    /// Not finished: the next page starts after this key (`None`: at the segment's start).
    Pending(Option<Item>),
    /// Swept to its end.
    Done,
}

/// A pass in progress, as stored in the checkpoint item.
#[derive(Debug, Clone, PartialEq)]
struct Checkpoint {
    /// The stored item's version this state was read as or last written as; 0: none stored.
    version: u64,
    pass_started_at: i64,
    segments: Vec<SegmentProgress>,
}

impl Checkpoint {
    fn fresh(segments: u32, now: i64, version: u64) -> Self {
        Checkpoint {
            version,
            pass_started_at: now,
            segments: vec![SegmentProgress::Pending(None); segments as usize],
        }
    }

    fn is_complete(&self) -> bool {
        self.segments.iter().all(|s| *s == SegmentProgress::Done)
    }

    fn segments_done(&self) -> u32 {
        self.segments
            .iter()
            .filter(|s| **s == SegmentProgress::Done)
            .count() as u32
    }

    /// The item that stores this state as `version`. Keys are kept as DynamoDB maps, so they
    /// round-trip exactly whatever their attribute types.
    fn to_item(&self, key_attribute: &str, version: u64) -> Item {
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
            (
                PASS_STARTED_AT_ATTR.to_owned(),
                number(self.pass_started_at),
            ),
            (SEGMENTS_ATTR.to_owned(), AttributeValue::L(segments)),
        ])
    }

    fn from_item(item: &Item, version: u64) -> Result<Checkpoint, String> {
        let pass_started_at = read_u64(item, PASS_STARTED_AT_ATTR)
            .and_then(|t| i64::try_from(t).ok())
            .ok_or_else(|| format!("no readable {PASS_STARTED_AT_ATTR}"))?;
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

fn checkpoint_key() -> AttributeValue {
    AttributeValue::S(CHECKPOINT_KEY.to_owned())
}

fn number_u64(n: u64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

fn read_u64(item: &Item, name: &str) -> Option<u64> {
    match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse().ok(),
        _ => None,
    }
}

/// The shared state of one invocation.
struct Run {
    rule: Expression,
    /// When `collect` must return.
    deadline: Option<Instant>,
    /// When scanning and deleting stop, leaving time to save the checkpoint.
    work_until: Option<Instant>,
    /// When a page still running is dropped.
    hard_stop: Option<Instant>,
    /// Set when a segment failed or the deadline struck: no new page starts.
    stop: AtomicBool,
    superseded: AtomicBool,
    slowest_page_micros: AtomicU64,
    counts: Counts,
    progress: tokio::sync::Mutex<Progress>,
    limiter: Option<DefaultDirectRateLimiter>,
    in_flight: tokio::sync::Semaphore,
}

impl Run {
    /// Whether a segment may read another page: nothing asked to stop, and the slowest page
    /// so far would still end before the work deadline.
    fn may_start_page(&self) -> bool {
        if self.stop.load(Ordering::Relaxed) {
            return false;
        }
        let Some(until) = self.work_until else {
            return true;
        };
        let expected = Duration::from_micros(self.slowest_page_micros.load(Ordering::Relaxed));
        let fits = Instant::now() + expected < until;
        if !fits {
            self.stop.store(true, Ordering::Relaxed);
        }
        fits
    }

    fn page_took(&self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.slowest_page_micros
            .fetch_max(micros, Ordering::Relaxed);
    }
}

struct Progress {
    checkpoint: Checkpoint,
    saved_at: Instant,
    /// Whether pages finished since the last save.
    dirty: bool,
}

#[derive(Default)]
struct Counts {
    scanned: AtomicU64,
    garbage_found: AtomicU64,
    deleted: AtomicU64,
    skipped_refreshed: AtomicU64,
    pages: AtomicU64,
    retries: AtomicU64,
}

impl Counts {
    fn add(&self, counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn report(self, status: PassStatus, checkpoint: &Checkpoint, duration: Duration) -> GcReport {
        GcReport {
            status,
            scanned: self.scanned.into_inner(),
            garbage_found: self.garbage_found.into_inner(),
            deleted: self.deleted.into_inner(),
            skipped_refreshed: self.skipped_refreshed.into_inner(),
            pages: self.pages.into_inner(),
            retries: self.retries.into_inner(),
            duration,
            segments: checkpoint.segments.len() as u32,
            segments_done: checkpoint.segments_done(),
            pass_started_at: checkpoint.pass_started_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::operation::delete_item::{DeleteItemError, DeleteItemOutput};
    use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
    use aws_sdk_dynamodb::operation::scan::ScanOutput;
    use aws_sdk_dynamodb::types::error::ProvisionedThroughputExceededException;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;

    fn config(configure: impl FnOnce(crate::ConfigBuilder) -> crate::ConfigBuilder) -> Config {
        configure(Config::builder().table_name("sessions"))
            .build()
            .unwrap()
    }

    #[test]
    fn the_rule_ors_every_configured_limit_with_expiry() {
        let rule = garbage_rule(
            Some(Duration::from_secs(100)),
            Some(Duration::from_secs(10)),
            1000,
        );
        assert_eq!(
            rule.condition_expression().unwrap(),
            "#created < :created_before OR #updated < :updated_before OR #expire <= :now"
        );
        let values = rule.values().unwrap();
        assert_eq!(values[":created_before"], number(900));
        assert_eq!(values[":updated_before"], number(990));
        assert_eq!(values[":now"], number(1000));
        assert_eq!(rule.names().unwrap()["#created"], CREATED_AT);

        let stale_only = garbage_rule(None, Some(Duration::from_secs(10)), 1000);
        assert_eq!(
            stale_only.condition_expression().unwrap(),
            "#updated < :updated_before OR #expire <= :now"
        );
        assert!(
            !stale_only.names().unwrap().contains_key("#created"),
            "DynamoDB refuses unused names"
        );
    }

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

    #[test]
    fn no_limits_is_refused() {
        let client = mock_client!(aws_sdk_dynamodb, []);
        let err = GarbageCollector::new(client, &config(|c| c)).unwrap_err();
        assert!(matches!(err, Error::NoGarbageLimits), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains("AWS_DYNAMO_DB_SESSION_MAX_AGE")
                && message.contains("AWS_DYNAMO_DB_SESSION_MAX_STALE"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn a_throttled_delete_is_retried_and_counted() {
        let no_checkpoint =
            mock!(Client::get_item).then_output(|| GetItemOutput::builder().build());
        let one_page = mock!(Client::scan).then_output(|| {
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
        let collector =
            GarbageCollector::new(client, &config(|c| c.max_stale(Duration::from_secs(60))))
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
        let collector =
            GarbageCollector::new(client, &config(|c| c.max_stale(Duration::from_secs(60))))
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
        let collector =
            GarbageCollector::new(client, &config(|c| c.max_stale(Duration::from_secs(60))))
                .unwrap()
                .with_segments(1);

        let report = collector.collect_all().await.unwrap();
        assert_eq!(report.status, PassStatus::Complete);
        assert_eq!((from_the_start.num_calls(), cleared.num_calls()), (1, 1));
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
        let collector =
            GarbageCollector::new(client, &config(|c| c.max_age(Duration::from_secs(60))))
                .unwrap()
                .with_segments(1);

        let err = collector.collect_all().await.unwrap_err();
        assert!(matches!(err, Error::DynamoDb(_)), "{err:?}");
        assert_eq!(denied.num_calls(), 1);
    }
}
