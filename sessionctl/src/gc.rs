//! `sessionctl gc`: one full pass of the library's garbage collector, with progress, a dry
//! run, and a clean stop on Ctrl-C that keeps the checkpoint for the next run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use aws_sdk_dynamodb::Client;
use dynamodb_session_store::gc::{
    DEFAULT_PAGE_SIZE, DEFAULT_SEGMENTS, GC_MAX_AGE_VAR, GC_MAX_STALE_VAR, GC_PAGE_SIZE_VAR,
    GC_RATE_LIMIT_VAR, GC_SEGMENTS_VAR, GarbageCollector, GcLimits, GcReport, MAX_PAGE_SIZE,
    MAX_SEGMENTS, PassStatus,
};
use dynamodb_session_store::{Error, Lifetime};

use crate::context::Context;
use crate::output::{Failure, Output, chain, count, limit, sdk_failure, seconds};
use crate::progress::GcView;

/// Delete dead sessions: one full pass of the library's garbage collector
///
/// A session is dead when its expire_at has passed: the store's own rule, so by default no
/// session the store would still open is deleted, whatever lifetime the application gave it.
/// --max-age and --max-stale are extra caps (OR): also delete sessions created longer ago, or
/// not written for longer (except those with their own `max_stale`, judged by their
/// expire_at). The store's AWS_DYNAMO_DB_SESSION_MAX_AGE / _MAX_STALE are never caps. Each is
/// deleted with a conditional DeleteItem, so a session refreshed since the scan survives
/// ("skipped as refreshed").
///
/// The pass resumes from the checkpoint the scheduled session-gc Lambda (or an interrupted
/// run) left, when --segments matches. Ctrl-C stops cleanly: the pages in progress finish,
/// progress is saved in the checkpoint, and the next run (or the Lambda) resumes. A second
/// Ctrl-C quits at once.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Extra cap: also delete sessions created longer ago: 90 (seconds), 30m, 12h, 7d or
    /// `none` [default: no cap]
    #[arg(long, value_name = "DURATION", env = GC_MAX_AGE_VAR, value_parser = parse_max_age)]
    max_age: Option<Lifetime>,
    /// Extra cap: also delete sessions not written for longer: 90 (seconds), 30m, 12h, 7d or
    /// `none` [default: no cap]
    #[arg(long, value_name = "DURATION", env = GC_MAX_STALE_VAR, value_parser = parse_max_stale)]
    max_stale: Option<Lifetime>,
    /// Parallel scan segments (1-1000). Changing it restarts a saved pass
    #[arg(long, value_name = "N", env = GC_SEGMENTS_VAR,
          default_value_t = DEFAULT_SEGMENTS,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_SEGMENTS)))]
    segments: u32,
    /// Items a scan page evaluates (1-10000)
    #[arg(long, value_name = "N", env = GC_PAGE_SIZE_VAR,
          default_value_t = DEFAULT_PAGE_SIZE,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_PAGE_SIZE)))]
    page_size: u32,
    /// Most deletes per second, so the live application keeps its capacity (0: no limit)
    #[arg(
        long,
        value_name = "N",
        env = GC_RATE_LIMIT_VAR,
        default_value_t = 0
    )]
    rate_limit: u32,
    /// Count what would be deleted; delete nothing, and neither read nor write the checkpoint
    #[arg(long)]
    dry_run: bool,
}

/// A cap in the forms the library reads for `variable`; `none` or empty: no cap.
fn parse_cap(variable: &str, text: &str) -> Result<Lifetime, String> {
    let limits = GcLimits::from_env([(variable, text)]).map_err(|e| match e {
        Error::InvalidConfig { reason, .. } => reason,
        other => other.to_string(),
    })?;
    let cap = if variable == GC_MAX_AGE_VAR {
        limits.max_age
    } else {
        limits.max_stale
    };
    Ok(cap.map_or(Lifetime::Unlimited, Lifetime::After))
}

fn parse_max_age(text: &str) -> Result<Lifetime, String> {
    parse_cap(GC_MAX_AGE_VAR, text)
}

fn parse_max_stale(text: &str) -> Result<Lifetime, String> {
    parse_cap(GC_MAX_STALE_VAR, text)
}

pub async fn run(context: &Context, args: Args) -> Result<(), Failure> {
    let config = context.config(|b| b)?;
    let limits = GcLimits {
        max_age: args.max_age.and_then(Lifetime::duration),
        max_stale: args.max_stale.and_then(Lifetime::duration),
    };
    let client = context.client().await?;
    let table = config.table_name.clone();
    let approximate_items = approximate_item_count(&client, &table, &context.output).await?;

    let view = Arc::new(GcView::new(
        !context.output.chatty(),
        approximate_items,
        args.dry_run,
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn(stop_on_ctrl_c(stop.clone(), view.clone()));
    let hook_view = view.clone();
    let collector = GarbageCollector::new(client, &config)?
        .with_limits(limits)
        .with_segments(args.segments)
        .with_page_size(args.page_size)
        .with_rate_limit(args.rate_limit)
        .with_dry_run(args.dry_run)
        .with_stop_flag(stop.clone())
        .on_progress(move |progress| hook_view.update(progress));
    let result = collector.collect_all().await;
    view.finish();
    watcher.abort();
    let report = result?;
    let interrupted = stop.load(Ordering::Relaxed) && report.status == PassStatus::Continuing;

    context.output.result(
        || summary(&table, &report, &limits, interrupted),
        || {
            let mut json = serde_json::to_value(&report).expect("a report serializes");
            json["table"] = table.clone().into();
            json["interrupted"] = interrupted.into();
            json
        },
    );
    if interrupted {
        return Err(Failure::Interrupted(if args.dry_run {
            "stopped by Ctrl-C; nothing was deleted".into()
        } else {
            "stopped by Ctrl-C; progress is saved in the checkpoint, and the next \
             `sessionctl gc` (with the same --segments) or the scheduled session-gc resumes \
             the pass"
                .into()
        }));
    }
    Ok(())
}

/// The table's approximate item count (DynamoDB updates it about every six hours), which
/// sizes the progress bar; also where a missing table is found. Without permission to
/// describe the table (the scheduled collector's role has none), the pass runs without a
/// count: no ETA.
async fn approximate_item_count(
    client: &Client,
    table: &str,
    output: &Output,
) -> Result<Option<u64>, Failure> {
    match client.describe_table().table_name(table).send().await {
        Ok(described) => Ok(described
            .table
            .and_then(|t| t.item_count)
            .and_then(|n| u64::try_from(n).ok())
            .filter(|n| *n > 0)),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            Err(sdk_failure(table, e))
        }
        Err(e) => {
            output.note(&format!(
                "sessionctl gc: no item count, so no ETA (DescribeTable failed: {})",
                chain(&aws_sdk_dynamodb::Error::from(e))
            ));
            Ok(None)
        }
    }
}

/// First Ctrl-C: ask the collector to stop after the pages in progress. Second: quit now.
async fn stop_on_ctrl_c(stop: Arc<AtomicBool>, view: Arc<GcView>) {
    if tokio::signal::ctrl_c().await.is_err() {
        return;
    }
    stop.store(true, Ordering::Relaxed);
    view.note(
        "sessionctl gc: stopping after the pages in progress, saving progress \
         (Ctrl-C again to quit at once)",
    );
    if tokio::signal::ctrl_c().await.is_ok() {
        eprintln!("sessionctl: interrupted: quit at once; pages in progress were not recorded");
        std::process::exit(130);
    }
}

fn summary(table: &str, report: &GcReport, limits: &GcLimits, interrupted: bool) -> String {
    let status = match (report.status, interrupted) {
        (_, true) => "interrupted",
        (PassStatus::Complete, _) => "complete",
        (PassStatus::Continuing, _) => "continuing",
        (PassStatus::Superseded, _) => "superseded (another collector took the pass over)",
    };
    let rate = |n: u64| {
        let secs = report.duration.as_secs_f64();
        if secs > 0.0 {
            format!(" ({}/s)", count((n as f64 / secs).round() as u64))
        } else {
            String::new()
        }
    };
    let mut text = format!(
        "gc{} of table {table}: {status} in {}\n",
        if report.dry_run { " --dry-run" } else { "" },
        seconds(report.duration)
    );
    text.push_str(&format!(
        "  limits            max_age {}, max_stale {}, and expire_at\n",
        limit(limits.max_age),
        limit(limits.max_stale)
    ));
    text.push_str(&format!(
        "  scanned           {} items{}\n",
        count(report.scanned),
        rate(report.scanned)
    ));
    if report.dry_run {
        text.push_str(&format!(
            "  would delete      {} sessions (nothing was deleted)\n",
            count(report.garbage_found)
        ));
    } else {
        text.push_str(&format!(
            "  deleted           {} sessions{}\n",
            count(report.deleted),
            rate(report.deleted)
        ));
        text.push_str(&format!(
            "  skipped           {} refreshed since the scan, or already gone\n",
            count(report.skipped_refreshed)
        ));
    }
    text.push_str(&format!(
        "  pages             {} in {} segment{} ({} done), {} retries\n",
        count(report.pages),
        report.segments,
        if report.segments == 1 { "" } else { "s" },
        report.segments_done,
        count(report.retries)
    ));
    text
}
