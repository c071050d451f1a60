//! One invocation's sweep: parallel scan segments, page by page, each page's garbage deleted
//! conditionally, until the pass is done or the deadline nears. [`Sweep`] owns the run's
//! state; the collector's settings come in as [`Settings`].

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::stream::{self, TryStreamExt};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

#[cfg(feature = "testing")]
use super::ScannedPage;
use super::checkpoint::{Checkpoint, SegmentProgress};
use super::counts::Counts;
use super::{CHECKPOINT_INTERVAL, GcProgress, GcReport, PassStatus, rule_at};
use crate::backend::{CollectorBackend, GarbageRule, GarbageScan, Retry};
use crate::error::{Error, Result};
use crate::store::now;

/// Most time kept back from the deadline to write the checkpoint (a tenth of the budget for
/// short budgets).
const CHECKPOINT_RESERVE: Duration = Duration::from_secs(1);

pub(super) type ProgressHook = Arc<dyn Fn(&GcProgress) + Send + Sync>;

#[cfg(feature = "testing")]
pub(super) type PageHook =
    Arc<dyn Fn(ScannedPage) -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

/// What a collector is configured with; every run reads it and none changes it.
pub(super) struct Settings {
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

/// How the sweep of one page ended.
enum PageEnd {
    /// Its garbage is gone; the segment continues after this key (`None`: segment done).
    Finished(Option<String>),
    /// The deadline came first; the page is read again next time.
    Interrupted,
}

/// Where the pass stands, under one lock so saves never interleave.
struct Progress {
    checkpoint: Checkpoint,
    /// The stored checkpoint's version this run read or last wrote; 0: none stored.
    version: u64,
    saved_at: Instant,
    /// Whether pages finished since the last save.
    dirty: bool,
}

/// One invocation of the collector, with all of its state.
pub(super) struct Sweep<'a> {
    backend: &'a dyn CollectorBackend,
    settings: &'a Settings,
    rule: GarbageRule,
    /// When `collect` must return.
    deadline: Option<Instant>,
    /// When scanning and deleting stop, leaving time to save the checkpoint.
    work_until: Option<Instant>,
    /// When a page still running is dropped.
    hard_stop: Option<Instant>,
    /// Set when a segment failed or the deadline struck: no new page starts.
    stop: AtomicBool,
    /// When the invocation started.
    started: Instant,
    superseded: AtomicBool,
    slowest_page_micros: AtomicU64,
    counts: Counts,
    progress: tokio::sync::Mutex<Progress>,
    limiter: Option<DefaultDirectRateLimiter>,
    in_flight: tokio::sync::Semaphore,
}

impl<'a> Sweep<'a> {
    pub(super) fn new(
        backend: &'a dyn CollectorBackend,
        settings: &'a Settings,
        deadline: Option<Instant>,
    ) -> Self {
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
        Sweep {
            backend,
            settings,
            rule: rule_at(settings.max_age, settings.max_stale, now),
            deadline,
            work_until,
            hard_stop,
            stop: AtomicBool::new(false),
            started,
            superseded: AtomicBool::new(false),
            slowest_page_micros: AtomicU64::new(0),
            counts: Counts::default(),
            progress: tokio::sync::Mutex::new(Progress {
                checkpoint: Checkpoint::fresh(settings.segments, now),
                version: 0,
                saved_at: Instant::now(),
                dirty: false,
            }),
            limiter: settings
                .rate_limit
                .map(|rate| RateLimiter::direct(Quota::per_second(rate))),
            in_flight: tokio::sync::Semaphore::new(settings.concurrency),
        }
    }

    /// How the backend may retry a request that must be done by `until`.
    fn retry(&self, until: Option<Instant>) -> Retry<'_> {
        Retry {
            max_retries: self.settings.max_retries,
            until,
            retries: &self.counts.retries,
        }
    }

    pub(super) async fn run(mut self) -> Result<GcReport> {
        // A dry run neither resumes nor disturbs a pass in progress.
        if !self.settings.dry_run {
            self.resume().await?;
        }
        let pending = self.progress.get_mut().checkpoint.pending();
        let sweeps = pending
            .into_iter()
            .map(|(segment, start)| self.sweep_segment(segment, start));
        let failure = futures::future::join_all(sweeps)
            .await
            .into_iter()
            .find_map(Result::err);
        self.finish(failure).await
    }

    /// Takes over the saved pass, if there is one this run can continue.
    async fn resume(&mut self) -> Result<()> {
        let segments = self.settings.segments;
        let stored = self
            .backend
            .load_checkpoint(self.retry(self.deadline))
            .await?;
        let progress = self.progress.get_mut();
        let Some(stored) = stored else {
            return Ok(());
        };
        // Whatever is kept, the next write must replace the version read.
        progress.version = stored.version;
        match stored.pass {
            Ok(saved) if saved.segments.len() == segments as usize => {
                tracing::info!(
                    pass_started_at = saved.pass_started_at,
                    segments,
                    segments_done = saved.segments_done(),
                    "resuming a garbage collection pass"
                );
                progress.checkpoint = saved;
            }
            Ok(saved) => {
                tracing::info!(
                    saved_segments = saved.segments.len(),
                    segments,
                    "segment count changed since the saved pass; restarting the pass"
                );
            }
            Err(reason) => {
                tracing::warn!(
                    reason,
                    "unreadable garbage collection checkpoint; restarting the pass"
                );
            }
        }
        Ok(())
    }

    /// Saves or clears the checkpoint after the sweeps, and reports.
    async fn finish(self, failure: Option<Error>) -> Result<GcReport> {
        let dry_run = self.settings.dry_run;
        let mut progress = self.progress.lock().await;
        let status = if dry_run {
            // Nothing to save or clear: a dry run never touches the checkpoint.
            if failure.is_none() && progress.checkpoint.is_complete() {
                PassStatus::Complete
            } else {
                PassStatus::Continuing
            }
        } else if self.superseded.load(Ordering::Relaxed) {
            PassStatus::Superseded
        } else if failure.is_some() {
            // Keep what was done; the failure itself is what gets reported.
            if progress.dirty
                && let Err(e) = self.save(&mut progress).await
            {
                tracing::warn!(error = %e, "could not save garbage collection progress");
            }
            PassStatus::Continuing
        } else if progress.checkpoint.is_complete() {
            self.clear(progress.version).await?
        } else if progress.dirty {
            self.save(&mut progress).await?
        } else {
            PassStatus::Continuing
        };
        let report = self.counts.report(
            status,
            &progress.checkpoint,
            self.started.elapsed(),
            dry_run,
        );
        crate::metrics::gc_reported(&report);
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

    /// Writes the checkpoint if it still holds the version this run read or last wrote.
    async fn save(&self, progress: &mut Progress) -> Result<PassStatus> {
        let expected = progress.version;
        let written = self
            .backend
            .save_checkpoint(&progress.checkpoint, expected, self.retry(self.deadline))
            .await?;
        if !written {
            tracing::warn!(
                "another garbage collector moved the checkpoint; leaving the pass to it"
            );
            return Ok(PassStatus::Superseded);
        }
        progress.version = expected + 1;
        progress.saved_at = Instant::now();
        progress.dirty = false;
        Ok(PassStatus::Continuing)
    }

    /// Deletes the checkpoint of a finished pass, if it still holds `version`.
    async fn clear(&self, version: u64) -> Result<PassStatus> {
        if version == 0 {
            return Ok(PassStatus::Complete);
        }
        if self
            .backend
            .clear_checkpoint(version, self.retry(self.deadline))
            .await?
        {
            Ok(PassStatus::Complete)
        } else {
            tracing::warn!("another garbage collector moved the checkpoint of this finished pass");
            Ok(PassStatus::Superseded)
        }
    }

    /// Reads and clears one segment page by page until it is done or the run must stop.
    async fn sweep_segment(&self, segment: u32, start: Option<String>) -> Result<()> {
        let result = self.sweep_pages(segment, start).await;
        if result.is_err() {
            // The other segments finish the page they are on, so their progress is kept.
            self.stop.store(true, Ordering::Relaxed);
        }
        result
    }

    async fn sweep_pages(&self, segment: u32, mut start: Option<String>) -> Result<()> {
        loop {
            if !self.may_start_page() {
                return Ok(());
            }
            let page_started = Instant::now();
            let page = self.sweep_page(segment, start.take());
            let end = match self.hard_stop {
                Some(at) => tokio::time::timeout_at(at.into(), page)
                    .await
                    .unwrap_or(Ok(PageEnd::Interrupted))?,
                None => page.await?,
            };
            let PageEnd::Finished(next) = end else {
                tracing::debug!(segment, "deadline reached mid-page; it will be read again");
                self.stop.store(true, Ordering::Relaxed);
                return Ok(());
            };
            self.page_took(page_started.elapsed());
            let segment_done = next.is_none();
            self.record_progress(segment, next.clone()).await?;
            if segment_done {
                return Ok(());
            }
            start = next;
        }
    }

    /// Scans one page and deletes its garbage, unless the work deadline interrupts it.
    async fn sweep_page(&self, segment: u32, start: Option<String>) -> Result<PageEnd> {
        let scan = GarbageScan {
            segment,
            total_segments: self.settings.segments,
            limit: self.settings.page_size,
            after: start,
        };
        let page = self
            .backend
            .scan_garbage(&scan, &self.rule, self.retry(self.work_until))
            .await?;
        let counts = &self.counts;
        counts.add(&counts.pages, 1);
        counts.add(&counts.scanned, page.scanned);
        counts.add(&counts.garbage_found, page.garbage.len() as u64);

        #[cfg(feature = "testing")]
        if let Some(hook) = &self.settings.on_page_scanned {
            hook(ScannedPage {
                segment,
                exclusive_start_key: scan.after.clone(),
                garbage: page.garbage.clone(),
            })
            .await;
        }

        if self.settings.dry_run {
            // Counted as garbage found; nothing is deleted.
            return Ok(PageEnd::Finished(page.next));
        }
        let interrupted = AtomicBool::new(false);
        stream::iter(page.garbage.iter().map(Ok))
            .try_for_each_concurrent(self.settings.concurrency, |key| async {
                if !self.delete_if_garbage(key).await? {
                    interrupted.store(true, Ordering::Relaxed);
                }
                Ok(())
            })
            .await?;
        Ok(if interrupted.into_inner() {
            PageEnd::Interrupted
        } else {
            PageEnd::Finished(page.next)
        })
    }

    /// Deletes the session only if it is still garbage now. Returns `false` when the work
    /// deadline came before the request could be sent.
    async fn delete_if_garbage(&self, key: &str) -> Result<bool> {
        let ready = async {
            if let Some(limiter) = &self.limiter {
                limiter.until_ready().await;
            }
            self.in_flight
                .acquire()
                .await
                .expect("the semaphore is never closed")
        };
        let _permit = match self.work_until {
            Some(until) => match tokio::time::timeout_at(until.into(), ready).await {
                Ok(permit) if Instant::now() < until => permit,
                _ => return Ok(false),
            },
            None => ready.await,
        };
        let deleted = self
            .backend
            .delete_if_garbage(key, &self.rule, self.retry(self.work_until))
            .await?;
        let counts = &self.counts;
        if deleted {
            counts.add(&counts.deleted, 1);
        } else {
            counts.add(&counts.skipped_refreshed, 1);
        }
        Ok(true)
    }

    /// Notes a finished page of `segment`, saves the checkpoint when the last save is older
    /// than [`CHECKPOINT_INTERVAL`] (never in a dry run), and calls the progress hook.
    async fn record_progress(&self, segment: u32, next: Option<String>) -> Result<()> {
        let mut progress = self.progress.lock().await;
        progress.checkpoint.segments[segment as usize] = match next {
            Some(key) => SegmentProgress::Pending(Some(key)),
            None => SegmentProgress::Done,
        };
        progress.dirty = true;
        if let Some(hook) = &self.settings.on_progress {
            // Under the lock: calls never overlap, and their counts never go backwards.
            hook(&self.counts.progress(
                self.started.elapsed(),
                &progress.checkpoint,
                self.settings.dry_run,
            ));
        }
        if !self.settings.dry_run
            && progress.saved_at.elapsed() >= CHECKPOINT_INTERVAL
            && !progress.checkpoint.is_complete()
        {
            let status = self.save(&mut progress).await?;
            if status == PassStatus::Superseded {
                self.superseded.store(true, Ordering::Relaxed);
                self.stop.store(true, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Whether a segment may read another page: nothing asked to stop (a failure, the
    /// deadline, the stop flag), and the slowest page so far would still end before the work
    /// deadline.
    fn may_start_page(&self) -> bool {
        if self.stop.load(Ordering::Relaxed) {
            return false;
        }
        if self
            .settings
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

    fn page_took(&self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.slowest_page_micros
            .fetch_max(micros, Ordering::Relaxed);
    }
}
