//! One rule for the time an invocation has left, shared by every function and the layer.
//!
//! Lambda tells each invocation its deadline in Unix milliseconds. Local emulators do not
//! all agree: `cargo lambda watch` sends a time budget (`600000`, ten minutes) instead, and a
//! context built by hand in a test carries `0`. One function reads all three, so the HTTP
//! layer, the collector and the custom resource never disagree about how much time is left.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// 2000-01-01T00:00:00Z in Unix milliseconds: no real deadline is earlier, so a smaller
/// value is an emulator's time budget.
const YEAR_2000_MS: u64 = 946_684_800_000;

/// The longest a Lambda invocation may run; an emulator's budget is capped to it.
pub const LAMBDA_MAX_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// The moment by which work must be done, as an [`Instant`].
///
/// The layer reads it from the request extensions: insert one to bound a request's session
/// work on any host; on Lambda (feature `lambda`) the layer derives it from the invocation's
/// context.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use dynamodb_session_store::deadline::Deadline;
///
/// // A real Lambda deadline: Unix milliseconds, a minute from now.
/// let now_ms = std::time::SystemTime::now()
///     .duration_since(std::time::UNIX_EPOCH)
///     .unwrap()
///     .as_millis() as u64;
/// let real = Deadline::from_lambda_millis(now_ms + 60_000).unwrap();
/// assert!(real.remaining() > Duration::from_secs(58));
///
/// // `cargo lambda watch` sends a budget instead: ten minutes.
/// let emulated = Deadline::from_lambda_millis(600_000).unwrap();
/// assert!(emulated.remaining() > Duration::from_secs(590));
///
/// // No deadline at all.
/// assert!(Deadline::from_lambda_millis(0).is_none());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deadline(Instant);

impl Deadline {
    /// The deadline at `instant`.
    pub fn at(instant: Instant) -> Self {
        Deadline(instant)
    }

    /// The deadline `budget` from now.
    pub fn after(budget: Duration) -> Self {
        Deadline(Instant::now() + budget)
    }

    /// Reads a Lambda context's `deadline` field: Unix milliseconds on Lambda; a value that
    /// cannot be a Unix time of this century is a local emulator's time budget (capped at
    /// [`LAMBDA_MAX_TIMEOUT`]); `0` means no deadline is known.
    pub fn from_lambda_millis(deadline_ms: u64) -> Option<Self> {
        if deadline_ms == 0 {
            return None;
        }
        let remaining = if deadline_ms < YEAR_2000_MS {
            Duration::from_millis(deadline_ms).min(LAMBDA_MAX_TIMEOUT)
        } else {
            let now_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                .unwrap_or(0);
            Duration::from_millis(deadline_ms.saturating_sub(now_ms))
        };
        Some(Deadline::after(remaining))
    }

    /// The same deadline `margin` earlier (never before now's `Instant` arithmetic allows).
    pub fn less(self, margin: Duration) -> Self {
        Deadline(self.0.checked_sub(margin).unwrap_or(self.0))
    }

    /// The deadline as an [`Instant`].
    pub fn instant(self) -> Instant {
        self.0
    }

    /// Time left until the deadline; zero once it has passed.
    pub fn remaining(self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    /// Whether the deadline has passed.
    pub fn has_passed(self) -> bool {
        self.remaining().is_zero()
    }
}

impl From<Instant> for Deadline {
    fn from(instant: Instant) -> Self {
        Deadline(instant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now_ms() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    }

    #[test]
    fn a_real_deadline_is_unix_milliseconds() {
        let deadline = Deadline::from_lambda_millis(now_ms() + 30_000).unwrap();
        let left = deadline.remaining();
        assert!(left <= Duration::from_secs(30), "{left:?}");
        assert!(left > Duration::from_secs(25), "{left:?}");
        let passed = Deadline::from_lambda_millis(now_ms() - 1_000).unwrap();
        assert!(passed.has_passed());
    }

    #[test]
    fn an_emulators_budget_is_read_as_one_and_capped() {
        let deadline = Deadline::from_lambda_millis(600_000).unwrap();
        let left = deadline.remaining();
        assert!(left <= Duration::from_secs(600) && left > Duration::from_secs(590));
        let huge = Deadline::from_lambda_millis(YEAR_2000_MS - 1).unwrap();
        assert!(huge.remaining() <= LAMBDA_MAX_TIMEOUT);
    }

    #[test]
    fn no_deadline_is_none() {
        assert_eq!(Deadline::from_lambda_millis(0), None);
    }

    #[test]
    fn less_moves_it_earlier() {
        let deadline = Deadline::after(Duration::from_secs(10)).less(Duration::from_secs(4));
        let left = deadline.remaining();
        assert!(left <= Duration::from_secs(6) && left > Duration::from_secs(5));
    }
}
