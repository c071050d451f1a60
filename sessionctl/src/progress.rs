//! The collector's progress on standard error: a progress bar on a terminal, plain log lines
//! (no control characters) otherwise, nothing with `--quiet`.

use std::io::IsTerminal as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dynamodb_session_store::gc::GcProgress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::output::{count, span};

/// How often a plain progress line is written when standard error is not a terminal (the
/// first page always gets one).
const LINE_INTERVAL: Duration = Duration::from_secs(10);

/// How progress is shown.
pub enum GcView {
    /// A bar redrawn in place on a terminal.
    Bar(ProgressBar),
    /// A line now and then.
    Lines {
        approximate_items: Option<u64>,
        last: Mutex<Option<Instant>>,
    },
    /// Nothing.
    Silent,
}

impl GcView {
    /// A bar when standard error is a terminal, lines otherwise; nothing when `quiet`.
    /// `approximate_items` (DescribeTable's `ItemCount`, updated every few hours) sizes the
    /// bar and gives an ETA; without it the bar is a spinner.
    pub fn new(quiet: bool, approximate_items: Option<u64>, dry_run: bool) -> GcView {
        if quiet {
            return GcView::Silent;
        }
        if !std::io::stderr().is_terminal() {
            return GcView::Lines {
                approximate_items,
                last: Mutex::new(None),
            };
        }
        let verb = if dry_run { "gc --dry-run" } else { "gc" };
        // The count is DynamoDB's estimate, hence `~`; without one, no bar and no ETA.
        let (bar, template) = match approximate_items {
            Some(items) => (
                ProgressBar::with_draw_target(Some(items), ProgressDrawTarget::stderr()),
                "{spinner} {prefix} {elapsed_precise} [{wide_bar}] {human_pos}/~{human_len} \
                 scanned, {msg}, {rate}, ETA {eta}",
            ),
            None => (
                ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
                "{spinner} {prefix} {elapsed_precise} {human_pos} scanned, {msg}, {rate}",
            ),
        };
        let style = ProgressStyle::with_template(template)
            .expect("a valid template")
            .with_key(
                "rate",
                |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                    let _ = write!(out, "{} items/s", count(state.per_sec().round() as u64));
                },
            )
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(verb);
        bar.set_message(if dry_run {
            "0 would be deleted".to_owned()
        } else {
            "0 deleted, 0 skipped".to_owned()
        });
        bar.enable_steady_tick(Duration::from_millis(120));
        GcView::Bar(bar)
    }

    /// Shows the running counts after a page.
    pub fn update(&self, progress: &GcProgress) {
        match self {
            GcView::Bar(bar) => {
                if bar.length().is_some_and(|len| progress.scanned > len) {
                    // The item count is approximate: the table may hold more.
                    bar.set_length(progress.scanned);
                }
                bar.set_position(progress.scanned);
                bar.set_message(short_counts(&progress.into()));
            }
            GcView::Lines {
                approximate_items,
                last,
            } => {
                let mut last = last.lock().expect("never poisoned");
                if last.is_some_and(|at| at.elapsed() < LINE_INTERVAL) {
                    return;
                }
                *last = Some(Instant::now());
                eprintln!("{}", line(&progress.into(), *approximate_items));
            }
            GcView::Silent => {}
        }
    }

    /// Clears the bar before the summary is printed.
    pub fn finish(&self) {
        if let GcView::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }

    /// Prints a note without tearing the bar.
    pub fn note(&self, text: &str) {
        match self {
            GcView::Bar(bar) => bar.suspend(|| eprintln!("{text}")),
            GcView::Lines { .. } => eprintln!("{text}"),
            GcView::Silent => {}
        }
    }
}

/// The counts a progress display shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Snapshot {
    pub scanned: u64,
    pub garbage_found: u64,
    pub deleted: u64,
    pub skipped_refreshed: u64,
    pub elapsed: Duration,
    pub dry_run: bool,
}

impl From<&GcProgress> for Snapshot {
    fn from(p: &GcProgress) -> Self {
        Snapshot {
            scanned: p.scanned,
            garbage_found: p.garbage_found,
            deleted: p.deleted,
            skipped_refreshed: p.skipped_refreshed,
            elapsed: p.elapsed,
            dry_run: p.dry_run,
        }
    }
}

/// The counts in the bar, where space is short.
fn short_counts(progress: &Snapshot) -> String {
    if progress.dry_run {
        format!("{} would be deleted", count(progress.garbage_found))
    } else {
        format!(
            "{} deleted, {} skipped",
            count(progress.deleted),
            count(progress.skipped_refreshed)
        )
    }
}

fn counts(progress: &Snapshot) -> String {
    if progress.dry_run {
        format!("{} would be deleted", count(progress.garbage_found))
    } else {
        format!(
            "{} deleted, {} skipped as refreshed",
            count(progress.deleted),
            count(progress.skipped_refreshed)
        )
    }
}

/// One plain progress line: counts, rate and, when the table's size allows, an ETA.
pub fn line(progress: &Snapshot, approximate_items: Option<u64>) -> String {
    let elapsed = progress.elapsed.as_secs_f64().max(0.001);
    let rate = progress.scanned as f64 / elapsed;
    let mut text = format!("sessionctl gc: {} scanned", count(progress.scanned));
    let items = approximate_items.filter(|items| *items > 0);
    if let Some(items) = items {
        let percent = (progress.scanned as f64 / items as f64 * 100.0).min(100.0);
        text.push_str(&format!(" of ~{} ({percent:.0}%)", count(items)));
    }
    text.push_str(&format!(
        ", {}, {} items/s",
        counts(progress),
        count(rate.round() as u64)
    ));
    if let Some(items) = items
        && items > progress.scanned
        && rate > 0.0
    {
        let eta = ((items - progress.scanned) as f64 / rate).ceil() as u64;
        text.push_str(&format!(", ETA {}", span(eta)));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_hold_counts_rate_and_eta_and_no_control_characters() {
        let progress = Snapshot {
            scanned: 2_000,
            deleted: 1_990,
            skipped_refreshed: 3,
            elapsed: Duration::from_secs(8),
            ..Snapshot::default()
        };
        let text = line(&progress, Some(10_000));
        assert_eq!(
            text,
            "sessionctl gc: 2,000 scanned of ~10,000 (20%), 1,990 deleted, 3 skipped as \
             refreshed, 250 items/s, ETA 32s"
        );
        assert!(text.chars().all(|c| !c.is_control()));
        assert_eq!(
            line(&progress, None),
            "sessionctl gc: 2,000 scanned, 1,990 deleted, 3 skipped as refreshed, 250 items/s"
        );
        let dry = Snapshot {
            dry_run: true,
            garbage_found: 7,
            ..progress
        };
        assert!(line(&dry, Some(0)).contains("7 would be deleted"));
    }
}
