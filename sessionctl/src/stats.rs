//! `sessionctl stats`: what the table holds, counted by a scan of the timestamps (never the
//! data), with the table's size and billing from DescribeTable.

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, BillingMode, TableDescription};
use dynamodb_session_store::attributes::{
    CREATED_AT, EXPIRE_AT, GC_PASS_STARTED_AT, LOCKED_AT, MAX_STALE, UPDATED_AT, USER_HASH,
    USER_INDEX,
};
use dynamodb_session_store::gc::{CHECKPOINT_KEY, DEFAULT_SEGMENTS, MAX_SEGMENTS};
use dynamodb_session_store::ops;
use dynamodb_session_store::{Config, SessionStore};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use crate::context::{Context, Lifetimes};
use crate::output::{Failure, bytes, count, limit, now, now_ms, relative, sdk_failure, timestamp};

/// Histogram buckets: upper bound in seconds (exclusive) and label.
const BUCKETS: [(u64, &str); 8] = [
    (60, "< 1m"),
    (600, "1m-10m"),
    (3_600, "10m-1h"),
    (6 * 3_600, "1h-6h"),
    (86_400, "6h-1d"),
    (7 * 86_400, "1d-7d"),
    (30 * 86_400, "7d-30d"),
    (u64::MAX, ">= 30d"),
];

/// Widest histogram bar, in characters.
const BAR_WIDTH: u64 = 40;

/// Count live, expired, locked and user-bound sessions, with age and idle histograms
///
/// Also shows the table's size (DynamoDB's estimate) and billing mode. Reads every item's
/// timestamps, lock and user hash with a Scan, never its data; the projection does not make
/// the Scan cheaper: it costs about half a read unit per 4 KB of table (eventually
/// consistent reads). Expiry follows the store's rule with the limits configured (or given
/// here); a lock counts while it is no older than lock_expiry_time; "locked" and "with a
/// user" count live sessions. The histograms count every session, live and expired.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    lifetimes: Lifetimes,
    /// Parallel scan segments (1-1000)
    #[arg(long, value_name = "N", default_value_t = DEFAULT_SEGMENTS,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_SEGMENTS)))]
    segments: u32,
}

pub async fn run(context: &Context, args: Args) -> Result<(), Failure> {
    let config = context.config(|b| args.lifetimes.apply(b))?;
    let client = context.client().await?;
    let table = config.table_name.clone();
    let description = describe(&client, &table).await?;
    // Shown as unknown when it cannot be read (a role without DescribeTimeToLive).
    let ttl = client
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await
        .ok()
        .map(|out| {
            out.time_to_live_description.unwrap_or_else(|| {
                aws_sdk_dynamodb::types::TimeToLiveDescription::builder().build()
            })
        });

    let spinner = (context.output.chatty() && std::io::stderr().is_terminal()).then(|| {
        let spinner = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        spinner.set_style(
            ProgressStyle::with_template("{spinner} scanning {human_pos} items, {per_sec}")
                .expect("a valid template"),
        );
        spinner.enable_steady_tick(Duration::from_millis(120));
        spinner
    });
    let (now, now_ms) = (now(), now_ms());
    let scans = (0..args.segments).map(|segment| {
        scan_segment(
            &client,
            &config,
            segment,
            args.segments,
            now,
            now_ms,
            spinner.as_ref(),
        )
    });
    let tallies = futures::future::try_join_all(scans).await;
    if let Some(spinner) = &spinner {
        spinner.finish_and_clear();
    }
    let tally = tallies?
        .into_iter()
        .fold(Tally::default(), |total, t| total.merge(t));

    let table_info = TableInfo::from_description(&table, &description, ttl.as_ref());
    let block = if std::io::stdout().is_terminal() {
        '█'
    } else {
        '#'
    };
    context.output.result(
        || text(&table_info, &config, &tally, now, block),
        || {
            json!({
                "table": table_info.json(),
                "limits": {
                    "max_age_secs": config.max_age.map(|d| d.as_secs()),
                    "max_stale_secs": config.max_stale.map(|d| d.as_secs()),
                    "lock_expiry_ms": u64::try_from(config.lock_expiry_time.as_millis()).unwrap_or(u64::MAX),
                },
                "at": now,
                "sessions": {
                    "total": tally.sessions(),
                    "live": tally.live,
                    "expired": tally.expired,
                    "locked": tally.locked,
                    "with_user": tally.with_user,
                    "unreadable": tally.unreadable,
                },
                "gc_pass_started_at": tally.gc_pass_started_at,
                "age_histogram": tally.ages.json(),
                "idle_histogram": tally.idle.json(),
            })
        },
    );
    Ok(())
}

async fn describe(client: &Client, table: &str) -> Result<TableDescription, Failure> {
    client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map_err(|e| sdk_failure(table, e))?
        .table
        .ok_or_else(|| Failure::Failed(format!("DescribeTable returned no table for {table:?}")))
}

/// Scans one segment, page by page, projecting only the timestamps, lock and user hash.
async fn scan_segment(
    client: &Client,
    config: &Config,
    segment: u32,
    segments: u32,
    now: i64,
    now_ms: i64,
    spinner: Option<&ProgressBar>,
) -> Result<Tally, Failure> {
    let table = &config.table_name;
    let mut tally = Tally::default();
    let mut start: Option<HashMap<String, AttributeValue>> = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .segment(segment as i32)
            .total_segments(segments as i32)
            .projection_expression("#k, #c, #u, #e, #s, #h, #l, #g")
            .expression_attribute_names("#k", &config.table_key)
            .expression_attribute_names("#c", CREATED_AT)
            .expression_attribute_names("#u", UPDATED_AT)
            .expression_attribute_names("#e", EXPIRE_AT)
            .expression_attribute_names("#s", MAX_STALE)
            .expression_attribute_names("#h", USER_HASH)
            .expression_attribute_names("#l", LOCKED_AT)
            .expression_attribute_names("#g", GC_PASS_STARTED_AT)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| sdk_failure(table, e))?;
        let items = page.items.unwrap_or_default();
        if let Some(spinner) = spinner {
            spinner.inc(items.len() as u64);
        }
        for item in &items {
            tally.add(item, config, now, now_ms);
        }
        match page.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => return Ok(tally),
        }
    }
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse().ok(),
        _ => None,
    }
}

/// The counts of a scan.
#[derive(Debug, Default)]
struct Tally {
    live: u64,
    expired: u64,
    /// Live sessions whose lock still holds.
    locked: u64,
    /// Live sessions bound to a user.
    with_user: u64,
    /// Items without readable timestamps: neither live nor expired, in no histogram.
    unreadable: u64,
    ages: Histogram,
    idle: Histogram,
    gc_pass_started_at: Option<i64>,
}

impl Tally {
    fn sessions(&self) -> u64 {
        self.live + self.expired + self.unreadable
    }

    fn add(
        &mut self,
        item: &HashMap<String, AttributeValue>,
        config: &Config,
        now: i64,
        now_ms: i64,
    ) {
        let key = item.get(&config.table_key);
        if key == Some(&AttributeValue::S(CHECKPOINT_KEY.to_owned())) {
            self.gc_pass_started_at = number(item, GC_PASS_STARTED_AT);
            return;
        }
        // A sign-out's revocation marker is no session.
        if let Some(AttributeValue::S(key)) = key
            && key.starts_with(SessionStore::REVOCATION_MARKER_PREFIX)
        {
            return;
        }
        // Read as the store reads it; without the time of its last write it is no session.
        let stored = match ops::decode_item(item) {
            Ok(stored) if item.contains_key(UPDATED_AT) => stored,
            _ => {
                self.unreadable += 1;
                return;
            }
        };
        self.ages.add(now.saturating_sub(stored.created_at));
        self.idle.add(now.saturating_sub(stored.updated_at));
        if stored.is_expired(config, now) {
            self.expired += 1;
            return;
        }
        self.live += 1;
        if stored.is_locked(config, now_ms) {
            self.locked += 1;
        }
        if stored.user_hash.is_some() {
            self.with_user += 1;
        }
    }

    fn merge(mut self, other: Tally) -> Tally {
        self.live += other.live;
        self.expired += other.expired;
        self.locked += other.locked;
        self.with_user += other.with_user;
        self.unreadable += other.unreadable;
        self.ages.merge(&other.ages);
        self.idle.merge(&other.idle);
        self.gc_pass_started_at = self.gc_pass_started_at.or(other.gc_pass_started_at);
        self
    }
}

/// Counts of sessions by a duration, in [`BUCKETS`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
}

impl Histogram {
    fn add(&mut self, seconds: i64) {
        let seconds = u64::try_from(seconds).unwrap_or(0);
        let bucket = BUCKETS
            .iter()
            .position(|(upper, _)| seconds < *upper)
            .unwrap_or(BUCKETS.len() - 1);
        self.counts[bucket] += 1;
    }

    fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts) {
            *mine += theirs;
        }
    }

    fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The histogram drawn with `block`, one line per bucket, bars scaled to the largest.
    fn draw(&self, title: &str, block: char) -> String {
        let largest = self.counts.iter().copied().max().unwrap_or(0).max(1);
        let mut text = format!("{title} ({} sessions)\n", count(self.total()));
        for ((_, label), n) in BUCKETS.iter().zip(self.counts) {
            // Any non-zero count shows at least one block.
            let width = (n * BAR_WIDTH).div_ceil(largest);
            let bar: String = std::iter::repeat_n(block, width as usize).collect();
            text.push_str(&format!("  {label:>7} |{bar:<40} {}\n", count(n)));
        }
        text
    }

    fn json(&self) -> serde_json::Value {
        let mut from = 0;
        let buckets: Vec<serde_json::Value> = BUCKETS
            .iter()
            .zip(self.counts)
            .map(|((upper, label), n)| {
                let bucket = json!({
                    "label": label,
                    "from_secs": from,
                    "to_secs": (*upper != u64::MAX).then_some(*upper),
                    "count": n,
                });
                from = *upper;
                bucket
            })
            .collect();
        buckets.into()
    }
}

/// What DescribeTable and DescribeTimeToLive say about the table.
struct TableInfo {
    name: String,
    status: String,
    billing_mode: String,
    capacity: Option<(i64, i64)>,
    approximate_items: Option<i64>,
    approximate_bytes: Option<i64>,
    user_index: bool,
    ttl_status: String,
    ttl_attribute: Option<String>,
}

impl TableInfo {
    fn from_description(
        name: &str,
        table: &TableDescription,
        ttl: Option<&aws_sdk_dynamodb::types::TimeToLiveDescription>,
    ) -> TableInfo {
        let billing_mode = table
            .billing_mode_summary
            .as_ref()
            .and_then(|s| s.billing_mode.clone())
            // A table never switched to on-demand has no summary: it is provisioned.
            .unwrap_or(BillingMode::Provisioned);
        let capacity = (billing_mode == BillingMode::Provisioned)
            .then_some(table.provisioned_throughput.as_ref())
            .flatten()
            .map(|t| {
                (
                    t.read_capacity_units.unwrap_or_default(),
                    t.write_capacity_units.unwrap_or_default(),
                )
            });
        TableInfo {
            name: name.to_owned(),
            status: table
                .table_status
                .as_ref()
                .map_or_else(|| "UNKNOWN".into(), |s| s.as_str().to_owned()),
            billing_mode: billing_mode.as_str().to_owned(),
            capacity,
            approximate_items: table.item_count,
            approximate_bytes: table.table_size_bytes,
            user_index: table
                .global_secondary_indexes
                .iter()
                .flatten()
                .any(|index| index.index_name.as_deref() == Some(USER_INDEX)),
            ttl_status: match ttl {
                None => "UNKNOWN (DescribeTimeToLive failed)".into(),
                Some(t) => t
                    .time_to_live_status
                    .as_ref()
                    .map_or_else(|| "DISABLED".into(), |s| s.as_str().to_owned()),
            },
            ttl_attribute: ttl.and_then(|t| t.attribute_name.clone()),
        }
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "name": self.name,
            "status": self.status,
            "billing_mode": self.billing_mode,
            "read_capacity": self.capacity.map(|c| c.0),
            "write_capacity": self.capacity.map(|c| c.1),
            "approximate_item_count": self.approximate_items,
            "approximate_size_bytes": self.approximate_bytes,
            "user_index": self.user_index,
            "ttl": { "status": self.ttl_status, "attribute": self.ttl_attribute },
        })
    }
}

fn text(table: &TableInfo, config: &Config, tally: &Tally, now: i64, block: char) -> String {
    let mut text = format!(
        "table {} ({}, {}",
        table.name, table.status, table.billing_mode
    );
    if let Some((read, write)) = table.capacity {
        text.push_str(&format!(", {read} RCU / {write} WCU"));
    }
    text.push_str(")\n");
    let approximate = |n: Option<i64>| n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
    text.push_str(&format!(
        "  size           ~{} items, ~{} (DynamoDB's estimate, updated about every 6 hours)\n",
        count(approximate(table.approximate_items)),
        bytes(approximate(table.approximate_bytes))
    ));
    text.push_str(&format!(
        "  TTL            {}{}\n",
        table.ttl_status,
        table
            .ttl_attribute
            .as_deref()
            .map(|a| format!(" on {a}"))
            .unwrap_or_default()
    ));
    text.push_str(&format!(
        "  user index     {}\n",
        if table.user_index {
            USER_INDEX
        } else {
            "missing (run `sessionctl create-table` to add it)"
        }
    ));
    text.push_str(&format!(
        "  gc             {}\n",
        match tally.gc_pass_started_at {
            Some(at) => format!(
                "a pass in progress, started {} ({})",
                timestamp(at),
                relative(at, now)
            ),
            None => "no pass in progress".into(),
        }
    ));
    text.push_str(&format!(
        "limits           max_age {}, max_stale {}, lock_expiry_time {} ms\n",
        limit(config.max_age),
        limit(config.max_stale),
        config.lock_expiry_time.as_millis()
    ));
    text.push_str(&format!(
        "sessions         {} at {}\n",
        count(tally.sessions()),
        timestamp(now)
    ));
    text.push_str(&format!("  live           {}\n", count(tally.live)));
    text.push_str(&format!("    locked       {}\n", count(tally.locked)));
    text.push_str(&format!("    with a user  {}\n", count(tally.with_user)));
    text.push_str(&format!(
        "  expired        {} (not yet removed: `sessionctl gc` or TTL deletes them)\n",
        count(tally.expired)
    ));
    if tally.unreadable > 0 {
        text.push_str(&format!(
            "  unreadable     {} (no updated_at, or attributes of the wrong type)\n",
            count(tally.unreadable)
        ));
    }
    text.push('\n');
    text.push_str(&tally.ages.draw("age: time since creation", block));
    text.push('\n');
    text.push_str(&tally.idle.draw("idle: time since the last write", block));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_bucket_every_duration_and_scale_their_bars() {
        let mut h = Histogram::default();
        for seconds in [-5, 0, 59, 60, 3_599, 86_400, 40 * 86_400] {
            h.add(seconds);
        }
        assert_eq!(h.counts, [3, 1, 1, 0, 0, 1, 0, 1]);
        assert_eq!(h.total(), 7);
        let drawn = h.draw("age", '#');
        let lines: Vec<&str> = drawn.lines().collect();
        assert_eq!(lines[0], "age (7 sessions)");
        assert!(lines[1].contains(&"#".repeat(40)), "{drawn}");
        // 1 of at most 3: a third of the width, rounded up.
        assert!(
            lines[2].ends_with(&format!("|{:<40} 1", "#".repeat(14))),
            "{drawn}"
        );
        assert!(
            lines[4].ends_with("|                                         0"),
            "{drawn}"
        );
        let json = h.json();
        assert_eq!(json[0]["to_secs"], 60);
        assert_eq!(json[7]["to_secs"], serde_json::Value::Null);
        assert_eq!(json[7]["from_secs"], 30 * 86_400);
    }

    #[test]
    fn the_tally_skips_the_checkpoint_and_markers_and_counts_by_the_rule() {
        let config = Config::builder()
            .max_stale(Duration::from_secs(600))
            .build()
            .unwrap();
        let n = |v: i64| AttributeValue::N(v.to_string());
        let s = |v: &str| AttributeValue::S(v.to_owned());
        let now = 1_000_000;
        let mut tally = Tally::default();
        let items = [
            HashMap::from([
                ("session_id".to_owned(), s(CHECKPOINT_KEY)),
                (GC_PASS_STARTED_AT.to_owned(), n(now - 60)),
            ]),
            // Live, locked a moment ago, bound to a user.
            HashMap::from([
                ("session_id".to_owned(), s("a")),
                (CREATED_AT.to_owned(), n(now - 30)),
                (UPDATED_AT.to_owned(), n(now - 30)),
                (LOCKED_AT.to_owned(), n(now * 1000 - 100)),
                (USER_HASH.to_owned(), s("h")),
            ]),
            // Stale by the configured `max_stale`.
            HashMap::from([
                ("session_id".to_owned(), s("b")),
                (CREATED_AT.to_owned(), n(now - 700)),
                (UPDATED_AT.to_owned(), n(now - 700)),
            ]),
            // The same, but with its own longer `max_stale`, and an old lock.
            HashMap::from([
                ("session_id".to_owned(), s("c")),
                (CREATED_AT.to_owned(), n(now - 700)),
                (UPDATED_AT.to_owned(), n(now - 700)),
                (MAX_STALE.to_owned(), n(3_600)),
                (LOCKED_AT.to_owned(), n(now * 1000 - 10_000)),
            ]),
            HashMap::from([("session_id".to_owned(), s("d"))]),
            // A sign-out's revocation marker, live and looking like a session otherwise.
            HashMap::from([
                (
                    "session_id".to_owned(),
                    s(&format!("{}h", SessionStore::REVOCATION_MARKER_PREFIX)),
                ),
                (CREATED_AT.to_owned(), n(now - 30)),
                (UPDATED_AT.to_owned(), n(now - 30)),
                (EXPIRE_AT.to_owned(), n(now + 3_600)),
                ("bound_at".to_owned(), n(now * 1000 - 30_000)),
            ]),
        ];
        for item in &items {
            tally.add(item, &config, now, now * 1000);
        }
        assert_eq!(
            (
                tally.live,
                tally.expired,
                tally.locked,
                tally.with_user,
                tally.unreadable
            ),
            (2, 1, 1, 1, 1)
        );
        assert_eq!(tally.sessions(), 4);
        assert_eq!(tally.ages.total(), 3);
        assert_eq!(tally.gc_pass_started_at, Some(now - 60));
    }
}
