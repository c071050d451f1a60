//! The one backoff of every retry in the workspace (the library's own and the functions'):
//! exponential with jitter for failures, constant with jitter for waiting on a lock; bounded
//! in count and optionally in time, so every retry loop waits the same way and none sleeps
//! past a deadline it was given.

use std::future::Future;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ConstantBuilder, ExponentialBuilder, Retryable};

/// A bounded backoff with jitter: what to wait between the attempts of a retry loop.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use dynamodb_session_store::retry::Backoff;
///
/// # tokio_test_block_on(async {
/// let backoff = Backoff::exponential(Duration::from_millis(1), Duration::from_millis(4), 2);
/// let mut attempts = 0;
/// let answer: Result<(), &str> = backoff
///     .retry(|| { attempts += 1; async { Err("throttled") } }, |_| true, |_, _| {})
///     .await;
/// assert_eq!((answer, attempts), (Err("throttled"), 3));
/// # });
/// # fn tokio_test_block_on(f: impl std::future::Future) {
/// #     tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(f);
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    schedule: Schedule,
    until: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
enum Schedule {
    /// Doubling from `first` up to `longest`, with up to as much again of jitter.
    Exponential {
        first: Duration,
        longest: Duration,
        times: usize,
    },
    /// `delay` plus up to a quarter of it again, as often as the time bound allows.
    Constant { delay: Duration },
}

impl Backoff {
    /// At most `times` retries, waiting from `first` up to `longest` between them.
    pub fn exponential(first: Duration, longest: Duration, times: usize) -> Self {
        Backoff {
            schedule: Schedule::Exponential {
                first,
                longest,
                times,
            },
            until: None,
        }
    }

    /// Retries every `delay` plus jitter (so waiters spread out instead of retrying in step),
    /// with no bound on the count: give it one with [`until`](Self::until).
    pub fn constant(delay: Duration) -> Self {
        Backoff {
            schedule: Schedule::Constant { delay },
            until: None,
        }
    }

    /// Gives up instead of sleeping past `until` (`None`: no such bound).
    pub fn until(mut self, until: Option<Instant>) -> Self {
        self.until = until;
        self
    }

    /// The delays to wait between attempts, for loops that decide themselves when to retry
    /// (a batch whose unprocessed part is sent again). Each delay is checked against the time
    /// bound when it is asked for.
    pub fn delays(&self) -> impl Iterator<Item = Duration> + Send + Sync + Unpin + use<> {
        let until = self.until;
        let delays: Box<dyn Iterator<Item = Duration> + Send + Sync + Unpin> = match self.schedule {
            Schedule::Exponential {
                first,
                longest,
                times,
            } => Box::new(
                ExponentialBuilder::default()
                    .with_min_delay(first)
                    .with_max_delay(longest)
                    .with_max_times(times)
                    .with_jitter()
                    .build(),
            ),
            Schedule::Constant { delay } => Box::new(
                ConstantBuilder::default()
                    .with_delay(delay)
                    .without_max_times()
                    .build()
                    .map(|delay| delay + jitter(delay / 4)),
            ),
        };
        delays.take_while(move |delay| until.is_none_or(|until| Instant::now() + *delay < until))
    }

    /// Sends `request` until it succeeds, fails with an error `retryable` refuses, or the
    /// backoff is spent; `notify` hears of every retry before its wait.
    ///
    /// # Errors
    ///
    /// The last attempt's error: one `retryable` refused, or any once the backoff is spent.
    pub async fn retry<T, E, F, Fut>(
        &self,
        request: F,
        retryable: impl FnMut(&E) -> bool,
        notify: impl FnMut(&E, Duration),
    ) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        request
            .retry(self.delays())
            .sleep(tokio::time::sleep)
            .when(retryable)
            .notify(notify)
            .await
    }
}

/// A random duration in `[0, max)`.
fn jitter(max: Duration) -> Duration {
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX).max(1);
    let random = getrandom::u64().unwrap_or(0);
    Duration::from_nanos(random % nanos)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn retries_what_it_is_told_to_as_often_as_allowed() {
        let attempts = AtomicUsize::new(0);
        let notified = AtomicUsize::new(0);
        let backoff = Backoff::exponential(Duration::from_millis(1), Duration::from_millis(2), 3);
        let result: Result<(), &str> = backoff
            .retry(
                || async {
                    attempts.fetch_add(1, Ordering::Relaxed);
                    Err("busy")
                },
                |e| *e == "busy",
                |_, _| {
                    notified.fetch_add(1, Ordering::Relaxed);
                },
            )
            .await;
        assert_eq!(result, Err("busy"));
        assert_eq!(
            attempts.into_inner(),
            4,
            "the first attempt and three retries"
        );
        assert_eq!(notified.into_inner(), 3);
    }

    #[tokio::test]
    async fn never_sleeps_past_its_bound() {
        let attempts = AtomicUsize::new(0);
        let backoff = Backoff::exponential(Duration::from_secs(5), Duration::from_secs(5), 3)
            .until(Some(Instant::now() + Duration::from_secs(1)));
        let result: Result<(), &str> = backoff
            .retry(
                || async {
                    attempts.fetch_add(1, Ordering::Relaxed);
                    Err("busy")
                },
                |_| true,
                |_, _| {},
            )
            .await;
        assert!(result.is_err());
        assert_eq!(attempts.into_inner(), 1);
        assert_eq!(backoff.delays().count(), 0);
    }

    #[test]
    fn a_constant_backoff_waits_its_delay_plus_at_most_a_quarter() {
        let delay = Duration::from_millis(100);
        let delays: Vec<_> = Backoff::constant(delay).delays().take(50).collect();
        assert_eq!(delays.len(), 50, "no bound on the count");
        assert!(delays.iter().all(|d| *d >= delay && *d < delay + delay / 4));
        let bounded = Backoff::constant(delay).until(Some(Instant::now() + delay / 2));
        assert_eq!(bounded.delays().count(), 0, "no wait past the bound");
    }
}
