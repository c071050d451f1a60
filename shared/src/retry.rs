//! The one backoff of the library's own retries: exponential with jitter, bounded in count
//! and optionally in time, so every retry loop waits the same way and none sleeps past a
//! deadline it was given.

use std::future::Future;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder, Retryable};

/// A bounded exponential backoff with jitter.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    first: Duration,
    longest: Duration,
    times: usize,
    until: Option<Instant>,
}

impl Backoff {
    /// At most `times` retries, waiting from `first` up to `longest` between them.
    pub(crate) fn exponential(first: Duration, longest: Duration, times: usize) -> Self {
        Backoff {
            first,
            longest,
            times,
            until: None,
        }
    }

    /// Gives up instead of sleeping past `until` (`None`: no such bound).
    pub(crate) fn until(mut self, until: Option<Instant>) -> Self {
        self.until = until;
        self
    }

    fn builder(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.first)
            .with_max_delay(self.longest)
            .with_max_times(self.times)
            .with_jitter()
    }

    /// The delays to wait between attempts, for loops that decide themselves when to retry
    /// (a batch whose unprocessed part is sent again).
    pub(crate) fn delays(&self) -> impl Iterator<Item = Duration> + use<> {
        let until = self.until;
        self.builder()
            .build()
            .take_while(move |delay| until.is_none_or(|until| Instant::now() + *delay < until))
    }

    /// Sends `request` until it succeeds, fails with an error `retryable` refuses, or the
    /// backoff is spent; `notify` hears of every retry before its wait.
    pub(crate) async fn retry<T, E, F, Fut>(
        &self,
        request: F,
        retryable: impl FnMut(&E) -> bool,
        notify: impl FnMut(&E, Duration),
    ) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let until = self.until;
        request
            .retry(self.builder())
            .sleep(tokio::time::sleep)
            .when(retryable)
            .adjust(move |_, delay| {
                delay.filter(|delay| until.is_none_or(|until| Instant::now() + *delay < until))
            })
            .notify(notify)
            .await
    }
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
}
