//! The scheduled event handler and its configuration.

use std::error::Error as _;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use dynamodb_session_store::deadline::{Deadline, LAMBDA_MAX_TIMEOUT};
use dynamodb_session_store::gc::{
    DEFAULT_PAGE_SIZE, DEFAULT_SEGMENTS, GarbageCollector, GcLimits, GcReport, MAX_PAGE_SIZE,
    MAX_SEGMENTS,
};
use dynamodb_session_store::{Config, Error};
use lambda_runtime::{Diagnostic, LambdaEvent};

/// The event the function is invoked with: EventBridge's scheduled event (its detail is
/// ignored, so any EventBridge event or `{ "detail-type": .., "source": .., "detail": {} }`
/// does).
pub type Event = aws_lambda_events::event::eventbridge::EventBridgeEvent;

/// The collector's extra age cap (seconds, `7d`, ...; unset, empty or `none`: no cap).
pub use dynamodb_session_store::gc::GC_MAX_AGE_VAR as MAX_AGE_VAR;
/// The collector's extra idle cap (seconds, `30m`, ...; unset, empty or `none`: no cap).
pub use dynamodb_session_store::gc::GC_MAX_STALE_VAR as MAX_STALE_VAR;
/// Items a scan page evaluates (1 to 10,000; default 500).
pub use dynamodb_session_store::gc::GC_PAGE_SIZE_VAR as PAGE_SIZE_VAR;
/// Most deletes per second (`0` or unset: no limit), as for `sessionctl gc --rate-limit`.
pub use dynamodb_session_store::gc::GC_RATE_LIMIT_VAR as RATE_LIMIT_VAR;
/// Parallel scan segments (1 to 1000; default 4). Changing it restarts a pass in progress.
pub use dynamodb_session_store::gc::GC_SEGMENTS_VAR as SEGMENTS_VAR;

/// Time kept back from the invocation's deadline: the collector stops and saves its progress
/// this long before Lambda would kill it.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(2);

/// The `session-gc` Lambda handler: a configured [`GarbageCollector`] run once per event.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> Result<(), lambda_runtime::Error> {
/// let aws = aws_config::load_from_env().await;
/// let handler = session_gc::Handler::from_env(
///     std::env::vars(),
///     aws_sdk_dynamodb::Client::new(&aws),
/// )?;
/// lambda_runtime::run(lambda_runtime::service_fn(|event| handler.handle(event))).await
/// # }
/// ```
#[derive(Debug)]
pub struct Handler {
    collector: GarbageCollector,
    deadline_margin: Duration,
}

impl Handler {
    /// Reads the configuration from `vars` (the process environment in production, a map in
    /// tests): the session store's `AWS_DYNAMO_DB_SESSION_*` variables (for the table; its
    /// `MAX_AGE` and `MAX_STALE` are checked but are not caps: every write already put them
    /// into the session's `expire_at`) and the collector's [`SEGMENTS_VAR`],
    /// [`PAGE_SIZE_VAR`], [`RATE_LIMIT_VAR`], and the caps [`MAX_AGE_VAR`] and
    /// [`MAX_STALE_VAR`], read only when set. An empty collector variable counts as unset.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the variable and its value when one does not parse or
    /// is out of range; [`Error::ConfigFile`] when a configuration file cannot be read.
    pub fn from_env<K, V>(
        vars: impl IntoIterator<Item = (K, V)>,
        client: Client,
    ) -> Result<Self, Error>
    where
        K: Into<String>,
        V: Into<String>,
    {
        let vars: Vec<(String, String)> = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let config = Config::builder()
            .env(vars.iter().cloned())
            .also_reads([
                SEGMENTS_VAR,
                PAGE_SIZE_VAR,
                RATE_LIMIT_VAR,
                MAX_AGE_VAR,
                MAX_STALE_VAR,
            ])
            .build()?;
        let segments = whole_number(&vars, SEGMENTS_VAR, 1, MAX_SEGMENTS)?;
        let page_size = whole_number(&vars, PAGE_SIZE_VAR, 1, MAX_PAGE_SIZE)?;
        let rate_limit = whole_number(&vars, RATE_LIMIT_VAR, 0, u32::MAX)?;
        let limits = GcLimits::from_env(vars.iter().map(|(k, v)| (k, v)))?;
        let collector = GarbageCollector::new(client, &config)?
            .with_limits(limits)
            .with_segments(segments.unwrap_or(DEFAULT_SEGMENTS))
            .with_page_size(page_size.unwrap_or(DEFAULT_PAGE_SIZE))
            .with_rate_limit(rate_limit.unwrap_or(0));
        tracing::info!(
            table = %config.table_name,
            cap_max_age = ?limits.max_age,
            cap_max_stale = ?limits.max_stale,
            collector = ?collector,
            "session garbage collector configured"
        );
        Ok(Handler {
            collector,
            deadline_margin: DEADLINE_MARGIN,
        })
    }

    /// Stops this long before the invocation's deadline instead of [`DEADLINE_MARGIN`].
    pub fn with_deadline_margin(mut self, margin: Duration) -> Self {
        self.deadline_margin = margin;
        self
    }

    /// The collector the handler runs.
    pub fn collector(&self) -> &GarbageCollector {
        &self.collector
    }

    /// Runs the collector until the pass is complete or the invocation's deadline (less the
    /// margin) nears, and returns what it did.
    ///
    /// The deadline comes from the context through [`Deadline::from_lambda_millis`], the rule
    /// every function of this workspace uses: Unix milliseconds on Lambda, a time budget from
    /// a local emulator (`cargo lambda watch`). A context without a deadline gets Lambda's
    /// longest timeout, so a run never goes on unbounded: the checkpoint carries the rest of
    /// the pass over to the next run.
    ///
    /// # Errors
    ///
    /// A [`Diagnostic`] carrying the whole error chain when DynamoDB fails for good; the
    /// progress made before is saved when possible, and the next invocation resumes.
    pub async fn handle(&self, event: LambdaEvent<Event>) -> Result<GcReport, Diagnostic> {
        let (event, context) = event.into_parts();
        tracing::info!(
            source = %event.source,
            detail_type = %event.detail_type,
            "collecting session garbage"
        );
        let deadline = work_deadline(context.deadline, self.deadline_margin);
        let budget = deadline.remaining();
        if budget.is_zero() {
            tracing::warn!(
                margin = ?self.deadline_margin,
                "no time left before the invocation's deadline: give the function a timeout \
                 well above the margin"
            );
        }
        tracing::debug!(?budget, "time budget of this invocation");
        self.collector
            .collect(deadline.instant())
            .await
            .map_err(|e| Diagnostic {
                error_type: "SessionGarbageCollectionFailed".into(),
                error_message: chain(&e),
            })
    }
}

/// When the collector must stop: the invocation's deadline (read by the shared rule) less
/// `margin`, or Lambda's longest timeout less `margin` when the context has none.
fn work_deadline(deadline_ms: u64, margin: Duration) -> Deadline {
    let deadline = Deadline::from_lambda_millis(deadline_ms).unwrap_or_else(|| {
        tracing::warn!(
            limit = ?LAMBDA_MAX_TIMEOUT,
            "the invocation's context has no deadline; bounding this run by Lambda's longest \
             timeout"
        );
        Deadline::after(LAMBDA_MAX_TIMEOUT)
    });
    deadline.less(margin)
}

/// An error and its sources, `: `-separated, for the Lambda error response.
fn chain(error: &Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// A whole number from `min` to `max` read from the variable `name`; `None` when unset or
/// empty.
fn whole_number(
    vars: &[(String, String)],
    name: &str,
    min: u32,
    max: u32,
) -> Result<Option<u32>, Error> {
    // The last occurrence wins, as when a map is built from the list.
    let Some((_, raw)) = vars.iter().rev().find(|(var, _)| var == name) else {
        return Ok(None);
    };
    let value = raw.trim();
    if value.is_empty() {
        return Ok(None);
    }
    match value.parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
        _ => Err(Error::InvalidConfig {
            origin: name.to_owned(),
            value: raw.clone(),
            reason: format!("expected a whole number from {min} to {max}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client that is never called: these tests stop before any request.
    fn offline_client() -> Client {
        Client::from_conf(
            aws_sdk_dynamodb::Config::builder()
                .behavior_version_latest()
                .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
                .build(),
        )
    }

    fn from_env(vars: &[(&str, &str)]) -> Result<Handler, Error> {
        Handler::from_env(vars.iter().copied(), offline_client())
    }

    #[test]
    fn reads_the_store_and_collector_variables() {
        let handler = from_env(&[
            ("AWS_DYNAMO_DB_SESSION_TABLE_NAME", "my-sessions"),
            (MAX_STALE_VAR, "1800"),
            (SEGMENTS_VAR, "8"),
            (PAGE_SIZE_VAR, " 100 "),
            (RATE_LIMIT_VAR, ""),
        ])
        .unwrap();
        let described = format!("{:?}", handler.collector());
        for expected in [
            "\"my-sessions\"",
            "segments: 8",
            "page_size: 100",
            "rate_limit: None",
            "max_age: None",
            "max_stale: Some(1800s)",
        ] {
            assert!(described.contains(expected), "{expected} in {described}");
        }
    }

    #[test]
    fn the_stores_lifetimes_never_become_caps() {
        for store in [
            &[][..],
            &[("AWS_DYNAMO_DB_SESSION_MAX_STALE", "600")][..],
            &[
                ("AWS_DYNAMO_DB_SESSION_MAX_AGE", "3600"),
                ("AWS_DYNAMO_DB_SESSION_MAX_STALE", "none"),
            ][..],
            &[(MAX_AGE_VAR, ""), (MAX_STALE_VAR, "none")][..],
        ] {
            let handler = from_env(store).unwrap();
            let described = format!("{:?}", handler.collector());
            assert!(
                described.contains("max_age: None") && described.contains("max_stale: None"),
                "{store:?}: {described}"
            );
        }
    }

    #[test]
    fn bad_values_name_the_variable_and_the_value() {
        for (var, value) in [
            (SEGMENTS_VAR, "0"),
            (SEGMENTS_VAR, "1001"),
            (PAGE_SIZE_VAR, "many"),
            (RATE_LIMIT_VAR, "-5"),
            (MAX_AGE_VAR, "soon"),
            (MAX_STALE_VAR, "0"),
            ("AWS_DYNAMO_DB_SESSION_MAX_AGE", "soon"),
        ] {
            let err = from_env(&[(MAX_STALE_VAR, "60"), (var, value)]).unwrap_err();
            match &err {
                Error::InvalidConfig {
                    origin, value: v, ..
                } => assert_eq!((origin.as_str(), v.as_str()), (var, value)),
                other => panic!("{var}={value}: unexpected {other:?}"),
            }
            let message = err.to_string();
            assert!(
                message.contains(var) && message.contains(value),
                "{message}"
            );
        }
    }

    fn now_ms() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    }

    #[test]
    fn the_deadline_keeps_the_margin() {
        let budget = work_deadline(now_ms() + 60_000, Duration::from_secs(5)).remaining();
        // The context has millisecond resolution.
        assert!(budget <= Duration::from_millis(55_001), "{budget:?}");
        assert!(budget > Duration::from_secs(50), "{budget:?}");
        assert!(work_deadline(now_ms() - 1_000, Duration::from_secs(5)).has_passed());
    }

    #[test]
    fn an_emulators_budget_is_read_as_one() {
        let budget = work_deadline(600_000, Duration::from_secs(2)).remaining();
        assert!(budget <= Duration::from_secs(598), "{budget:?}");
        assert!(budget > Duration::from_secs(590), "{budget:?}");
    }

    #[test]
    fn no_deadline_is_lambdas_longest_timeout() {
        let budget = work_deadline(0, Duration::from_secs(2)).remaining();
        assert!(
            budget <= LAMBDA_MAX_TIMEOUT - Duration::from_secs(2),
            "{budget:?}"
        );
        assert!(
            budget > LAMBDA_MAX_TIMEOUT - Duration::from_secs(10),
            "{budget:?}"
        );
    }

    #[test]
    fn the_fixture_is_a_scheduled_event() {
        let event: Event =
            serde_json::from_str(include_str!("../../../tests/data/scheduled-event.json")).unwrap();
        assert_eq!(event.source, "aws.events");
        assert_eq!(event.detail_type, "Scheduled Event");
    }
}
