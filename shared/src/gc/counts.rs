//! The running counts of one invocation, shared by its segments, and the figures they end in.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::checkpoint::Checkpoint;
use super::{GcProgress, GcReport, PassStatus};

#[derive(Default)]
pub(super) struct Counts {
    pub(super) scanned: AtomicU64,
    pub(super) garbage_found: AtomicU64,
    pub(super) deleted: AtomicU64,
    pub(super) skipped_refreshed: AtomicU64,
    pub(super) pages: AtomicU64,
    /// Counted by the backend, which alone sees its failures (see `Retry`).
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
        &self,
        status: PassStatus,
        checkpoint: &Checkpoint,
        duration: Duration,
        dry_run: bool,
    ) -> GcReport {
        // The report is the last progress, with what only a finished run knows.
        let last = self.progress(duration, checkpoint, dry_run);
        GcReport {
            status,
            scanned: last.scanned,
            garbage_found: last.garbage_found,
            deleted: last.deleted,
            skipped_refreshed: last.skipped_refreshed,
            pages: last.pages,
            retries: last.retries,
            duration: last.elapsed,
            segments: last.segments,
            segments_done: last.segments_done,
            pass_started_at: checkpoint.pass_started_at,
            dry_run,
        }
    }
}
