//! [`GarbageCollector`]: the collector's settings and its entry points; each run is a
//! [`Sweep`](super::sweep::Sweep) over the collector's backend.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;

#[cfg(feature = "testing")]
use super::ScannedPage;
use super::sweep::{Settings, Sweep};
use super::{
    DEFAULT_CONCURRENCY, DEFAULT_MAX_RETRIES, DEFAULT_PAGE_SIZE, DEFAULT_SEGMENTS, GcLimits,
    GcProgress, GcReport, MAX_SEGMENTS,
};
use crate::backend::CollectorBackend;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::store::DynamoDbBackend;

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
///   the lifetimes that write applied — the configuration's `max_age` and `max_stale` (or
///   `expire_after`) or the session's own
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
/// their own variables, [`GC_MAX_AGE_VAR`](super::GC_MAX_AGE_VAR) and [`GC_MAX_STALE_VAR`](super::GC_MAX_STALE_VAR).
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
/// checkpoint item in the session table itself, under the key [`CHECKPOINT_KEY`](super::CHECKPOINT_KEY): the
/// `LastEvaluatedKey` of every segment's last finished page (`gc_segments`, a list of maps),
/// when the pass started (`gc_pass_started_at`) and a version number (`gc_version`). Session
/// keys are 43-character base64url strings, so the checkpoint can never collide with one, and
/// it has no timestamps, so the garbage rule never matches it and TTL never deletes it. The
/// next invocation resumes from it; the invocation that finishes the last segment deletes it.
///
/// Every checkpoint write is conditional on the version it read, so two collectors running at
/// once cannot move it backwards: the one that loses stops with
/// [`PassStatus::Superseded`](super::PassStatus::Superseded) (its deletes were conditional, so they stand). When the number
/// of segments changes between invocations the saved keys mean nothing any more and the pass
/// restarts from the beginning. Progress is also saved every [`CHECKPOINT_INTERVAL`](super::CHECKPOINT_INTERVAL), so a
/// crash loses little.
///
/// # Usage
///
/// On DynamoDB, built from a [`Config`] (only its table, key and validity are used) by
/// [`new`](Self::new), which keeps its own copy of the client with the SDK's retries turned
/// off, because the collector's requests are retried on its terms (counted, and never past
/// the deadline); on any other [`CollectorBackend`] (such as
/// [`MemoryStore`](crate::MemoryStore)) by [`with_backend`](Self::with_backend). Tuned with
/// the `with_*` methods; [`with_limits`](Self::with_limits) adds caps.
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
    backend: Arc<dyn CollectorBackend>,
    settings: Settings,
}

impl fmt::Debug for GarbageCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        f.debug_struct("GarbageCollector")
            .field("backend", &self.backend)
            .field("max_age", &s.max_age)
            .field("max_stale", &s.max_stale)
            .field("segments", &s.segments)
            .field("page_size", &s.page_size)
            .field("concurrency", &s.concurrency)
            .field("rate_limit", &s.rate_limit)
            .field("max_retries", &s.max_retries)
            .field("dry_run", &s.dry_run)
            .field("on_progress", &s.on_progress.is_some())
            .field("stop_flag", &s.stop_flag.is_some())
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
        // The collector retries on its own terms (counted, never past the deadline); SDK
        // retries underneath would multiply the attempts and hide them.
        let client = Client::from_conf(
            client
                .config()
                .to_builder()
                .retry_config(RetryConfig::disabled())
                .build(),
        );
        Ok(GarbageCollector::with_backend(DynamoDbBackend::new(
            client,
            config.table_name.clone(),
            config.table_key.clone(),
        )))
    }

    /// A collector on any [`CollectorBackend`], such as [`MemoryStore`](crate::MemoryStore),
    /// with the same defaults and rules as [`new`](Self::new).
    ///
    /// # Examples
    ///
    /// ```
    /// use dynamodb_session_store::gc::GarbageCollector;
    /// use dynamodb_session_store::{Config, MemoryStore, SessionData, SessionStore};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), dynamodb_session_store::Error> {
    /// let memory = MemoryStore::new();
    /// let config = Config::builder().secret_key("0123456789abcdef0123456789abcdef").build()?;
    /// let store = SessionStore::with_backend(config, memory.clone())?;
    /// store.create(&SessionData::new()).await?;
    ///
    /// let report = GarbageCollector::with_backend(memory.clone()).collect_all().await?;
    /// assert_eq!((report.scanned, report.deleted), (1, 0), "a live session stays");
    /// assert_eq!(memory.len(), 1);
    /// # Ok(()) }
    /// ```
    pub fn with_backend(backend: impl CollectorBackend) -> Self {
        GarbageCollector {
            backend: Arc::new(backend),
            settings: Settings {
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
            },
        }
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
        self.settings.max_age = limits.max_age.map(at_least_a_second);
        self.settings.max_stale = limits.max_stale.map(at_least_a_second);
        self
    }

    /// Parallel scan segments, clamped to `1..=`[`MAX_SEGMENTS`]. Changing it between
    /// invocations restarts the pass.
    pub fn with_segments(mut self, segments: u32) -> Self {
        self.settings.segments = segments.clamp(1, MAX_SEGMENTS);
        self
    }

    /// Items a scan page evaluates (the scan's `Limit`), at least 1.
    pub fn with_page_size(mut self, page_size: u32) -> Self {
        self.settings.page_size = page_size.max(1);
        self
    }

    /// Most deletes in flight at once, across all segments; at least 1.
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.settings.concurrency = concurrency.max(1);
        self
    }

    /// Most deletes per second, so the collector never starves the live application on a
    /// provisioned table; `0` removes the limit. Bursts of up to one second's worth.
    pub fn with_rate_limit(mut self, deletes_per_second: u32) -> Self {
        self.settings.rate_limit = NonZeroU32::new(deletes_per_second);
        self
    }

    /// Most retries of one request after throttling or a transient failure.
    pub fn with_max_retries(mut self, retries: usize) -> Self {
        self.settings.max_retries = retries;
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
        self.settings.dry_run = dry_run;
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
        self.settings.on_progress = Some(Arc::new(hook));
        self
    }

    /// Stops cleanly once `stop` is set (by a Ctrl-C handler, say): no segment starts another
    /// page, the pages already running finish, and the progress is saved in the checkpoint
    /// as when a deadline comes, so the invocation ends with [`PassStatus::Continuing`](super::PassStatus::Continuing) and
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
        self.settings.stop_flag = Some(stop);
        self
    }

    /// Runs `hook` after each page is scanned and before its garbage is deleted (test builds
    /// only: it lets a test refresh a session at exactly that moment).
    #[cfg(feature = "testing")]
    pub fn on_page_scanned<F>(mut self, hook: F) -> Self
    where
        F: Fn(ScannedPage) -> futures::future::BoxFuture<'static, ()> + Send + Sync + 'static,
    {
        self.settings.on_page_scanned = Some(std::sync::Arc::new(hook));
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
        Sweep::new(self.backend.as_ref(), &self.settings, Some(deadline))
            .run()
            .await
    }

    /// Sweeps with no deadline until the pass is complete (resuming a saved one), like the
    /// gem's `collect_garbage`. Meant for scripts and small tables; on Lambda use
    /// [`collect`](Self::collect).
    ///
    /// # Errors
    ///
    /// As [`collect`](Self::collect).
    pub async fn collect_all(&self) -> Result<GcReport> {
        Sweep::new(self.backend.as_ref(), &self.settings, None)
            .run()
            .await
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
    use aws_smithy_mocks::mock_client;

    use super::*;
    use crate::gc::{GC_MAX_AGE_VAR, GC_MAX_STALE_VAR};

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
            assert_eq!(
                (collector.settings.max_age, collector.settings.max_stale),
                (None, None)
            );
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
        assert_eq!(capped.settings.max_stale, Some(Duration::from_secs(1800)));
        let removed = capped.with_limits(GcLimits::default());
        assert_eq!(
            (removed.settings.max_age, removed.settings.max_stale),
            (None, None)
        );

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
}
