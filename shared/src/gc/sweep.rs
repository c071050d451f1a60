//! One invocation's sweep: parallel scan segments, page by page, each page's garbage deleted
//! conditionally, until the pass is done or the deadline nears.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, Select};
use futures::stream::{self, TryStreamExt};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

#[cfg(feature = "testing")]
use super::ScannedPage;
use super::checkpoint::{Checkpoint, SegmentProgress};
use super::{CHECKPOINT_INTERVAL, GarbageCollector, GcProgress, GcReport, PassStatus};
use crate::attributes::{CREATED_AT, EXPIRE_AT, MAX_STALE, UPDATED_AT};
use crate::error::{Error, Result};
use crate::expression::Expression;
use crate::store::{now, number};

/// Most time kept back from the deadline to write the checkpoint (a tenth of the budget for
/// short budgets).
const CHECKPOINT_RESERVE: Duration = Duration::from_secs(1);

pub(super) type Item = HashMap<String, AttributeValue>;

impl GarbageCollector {
    pub(super) async fn run(&self, deadline: Option<Instant>) -> Result<GcReport> {
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
        // A dry run neither resumes nor disturbs a pass in progress.
        let checkpoint = if self.dry_run {
            Checkpoint::fresh(self.segments, now, 0)
        } else {
            self.starting_point(&counts, deadline, now).await?
        };
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
            stop_flag: self.stop_flag.clone(),
            started,
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
        let status = if self.dry_run {
            // Nothing to save or clear: a dry run never touches the checkpoint.
            if failure.is_none() && progress.checkpoint.is_complete() {
                PassStatus::Complete
            } else {
                PassStatus::Continuing
            }
        } else if superseded.into_inner() {
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

        let report = counts.report(
            status,
            &progress.checkpoint,
            started.elapsed(),
            self.dry_run,
        );
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
                    dry_run = report.dry_run,
                    "garbage collection finished"
                );
                Ok(report)
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

        if self.dry_run {
            // Counted as garbage found; nothing is deleted.
            return Ok(PageEnd::Finished(page.last_evaluated_key));
        }
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
                // Explicit, so the request matches a role limited to these attributes
                // (`dynamodb:Select` = SPECIFIC_ATTRIBUTES with `dynamodb:Attributes`).
                .select(Select::SpecificAttributes)
                .projection_expression("#key, #created, #updated, #expire")
                // Stated, not implied by the projection: the template's IAM condition requires
                // it, so the collector's role can never Scan for `data`.
                .select(aws_sdk_dynamodb::types::Select::SpecificAttributes)
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

    /// Notes a finished page of `segment`, saves the checkpoint when the last save is older
    /// than [`CHECKPOINT_INTERVAL`] (never in a dry run), and calls the progress hook.
    async fn record_progress(&self, run: &Run, segment: u32, next: Option<Item>) -> Result<()> {
        let mut progress = run.progress.lock().await;
        progress.checkpoint.segments[segment as usize] = match next {
            Some(key) => SegmentProgress::Pending(Some(key)),
            None => SegmentProgress::Done,
        };
        progress.dirty = true;
        if let Some(hook) = &self.on_progress {
            // Under the lock: calls never overlap, and their counts never go backwards.
            hook(
                &run.counts
                    .progress(run.started.elapsed(), &progress.checkpoint, self.dry_run),
            );
        }
        if !self.dry_run
            && progress.saved_at.elapsed() >= CHECKPOINT_INTERVAL
            && !progress.checkpoint.is_complete()
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
}

/// The garbage rule as a DynamoDB condition at one instant: the scan's filter and every
/// delete's condition, so both decide alike. `expire_at <= now` is the store's own test of a
/// passed `expire_at` (`ends_at <= now`), and a missing `expire_at` fails it, as the store
/// never ends a session by an `expire_at` it does not have; the caps are ORed on.
pub(super) fn garbage_rule(
    max_age: Option<Duration>,
    max_stale: Option<Duration>,
    now: i64,
) -> Expression {
    let mut rule = Expression::default();
    let mut clauses = Vec::new();
    if let Some(limit) = max_age {
        clauses.push("#created < :created_before".to_owned());
        rule.name("#created", CREATED_AT).value(
            ":created_before",
            number(now.saturating_sub(seconds(limit))),
        );
    }
    if let Some(limit) = max_stale {
        // A session with its own `max_stale` ("remember me") is judged by its expire_at.
        clauses.push(
            "(#updated < :updated_before AND attribute_not_exists(#session_max_stale))".to_owned(),
        );
        rule.name("#updated", UPDATED_AT)
            .name("#session_max_stale", MAX_STALE)
            .value(
                ":updated_before",
                number(now.saturating_sub(seconds(limit))),
            );
    }
    clauses.push("#expire <= :now".into());
    rule.name("#expire", EXPIRE_AT)
        .value(":now", number(now))
        .condition(clauses.join(" OR "));
    rule
}

fn seconds(limit: Duration) -> i64 {
    i64::try_from(limit.as_secs()).unwrap_or(i64::MAX)
}

/// How the sweep of one page ended.
pub(super) enum PageEnd {
    /// Its garbage is gone; the segment continues after this key (`None`: segment done).
    Finished(Option<Item>),
    /// The deadline came first; the page is read again next time.
    Interrupted,
}

/// The shared state of one invocation.
pub(super) struct Run {
    pub(super) rule: Expression,
    /// When `collect` must return.
    pub(super) deadline: Option<Instant>,
    /// When scanning and deleting stop, leaving time to save the checkpoint.
    pub(super) work_until: Option<Instant>,
    /// When a page still running is dropped.
    pub(super) hard_stop: Option<Instant>,
    /// Set when a segment failed or the deadline struck: no new page starts.
    pub(super) stop: AtomicBool,
    /// Set from outside (`GarbageCollector::with_stop_flag`): no new page starts.
    pub(super) stop_flag: Option<Arc<AtomicBool>>,
    /// When the invocation started.
    pub(super) started: Instant,
    pub(super) superseded: AtomicBool,
    pub(super) slowest_page_micros: AtomicU64,
    pub(super) counts: Counts,
    pub(super) progress: tokio::sync::Mutex<Progress>,
    pub(super) limiter: Option<DefaultDirectRateLimiter>,
    pub(super) in_flight: tokio::sync::Semaphore,
}

impl Run {
    /// Whether a segment may read another page: nothing asked to stop (a failure, the
    /// deadline, the stop flag), and the slowest page so far would still end before the work
    /// deadline.
    pub(super) fn may_start_page(&self) -> bool {
        if self.stop.load(Ordering::Relaxed) {
            return false;
        }
        if self
            .stop_flag
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::Relaxed))
        {
            tracing::info!("asked to stop; the pages in progress finish and progress is kept");
            self.stop.store(true, Ordering::Relaxed);
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

    pub(super) fn page_took(&self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.slowest_page_micros
            .fetch_max(micros, Ordering::Relaxed);
    }
}

pub(super) struct Progress {
    pub(super) checkpoint: Checkpoint,
    pub(super) saved_at: Instant,
    /// Whether pages finished since the last save.
    pub(super) dirty: bool,
}

#[derive(Default)]
pub(super) struct Counts {
    pub(super) scanned: AtomicU64,
    pub(super) garbage_found: AtomicU64,
    pub(super) deleted: AtomicU64,
    pub(super) skipped_refreshed: AtomicU64,
    pub(super) pages: AtomicU64,
    pub(super) retries: AtomicU64,
}

impl Counts {
    pub(super) fn add(&self, counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The running counts, for the progress hook.
    pub(super) fn progress(
        &self,
        elapsed: Duration,
        checkpoint: &Checkpoint,
        dry_run: bool,
    ) -> GcProgress {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        GcProgress {
            scanned: read(&self.scanned),
            garbage_found: read(&self.garbage_found),
            deleted: read(&self.deleted),
            skipped_refreshed: read(&self.skipped_refreshed),
            pages: read(&self.pages),
            retries: read(&self.retries),
            elapsed,
            segments: checkpoint.segments.len() as u32,
            segments_done: checkpoint.segments_done(),
            dry_run,
        }
    }

    pub(super) fn report(
        self,
        status: PassStatus,
        checkpoint: &Checkpoint,
        duration: Duration,
        dry_run: bool,
    ) -> GcReport {
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
            dry_run,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_default_the_rule_is_the_stored_expiry_alone() {
        let rule = garbage_rule(None, None, 1000);
        assert_eq!(rule.condition_expression().unwrap(), "#expire <= :now");
        assert_eq!(
            rule.names().unwrap().len(),
            1,
            "DynamoDB refuses unused names"
        );
        assert_eq!(rule.values().unwrap()[":now"], number(1000));
    }

    #[test]
    fn the_rule_ors_every_cap_with_expiry() {
        let rule = garbage_rule(
            Some(Duration::from_secs(100)),
            Some(Duration::from_secs(10)),
            1000,
        );
        assert_eq!(
            rule.condition_expression().unwrap(),
            "#created < :created_before OR (#updated < :updated_before AND \
             attribute_not_exists(#session_max_stale)) OR #expire <= :now"
        );
        let values = rule.values().unwrap();
        assert_eq!(values[":created_before"], number(900));
        assert_eq!(values[":updated_before"], number(990));
        assert_eq!(values[":now"], number(1000));
        assert_eq!(rule.names().unwrap()["#created"], CREATED_AT);

        let stale_only = garbage_rule(None, Some(Duration::from_secs(10)), 1000);
        assert_eq!(
            stale_only.condition_expression().unwrap(),
            "(#updated < :updated_before AND attribute_not_exists(#session_max_stale)) OR \
             #expire <= :now"
        );
        assert!(
            !stale_only.names().unwrap().contains_key("#created"),
            "DynamoDB refuses unused names"
        );
    }
}
