//! When a stored session is dead or locked, decided as the store decides it on read.

use std::time::Duration;

use dynamodb_session_store::Config;

/// A session's timestamps and limits as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Times {
    pub created_at: i64,
    pub updated_at: i64,
    pub expire_at: Option<i64>,
    /// The session's own idle limit in seconds ("remember me"), overriding `max_stale`.
    pub max_stale: Option<u64>,
}

impl Times {
    /// The store's rule (`SessionStore::load` treats such a session as absent): its
    /// `expire_at` has passed, or `created_at + max_age`, or `updated_at` + the idle limit
    /// (its own, else the configured `max_stale`).
    pub fn is_expired(&self, config: &Config, now: i64) -> bool {
        let past = |t: Option<i64>| t.is_some_and(|t| t <= now);
        let after = |from: i64, limit: Option<Duration>| {
            limit.map(|d| from.saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)))
        };
        past(self.expire_at)
            || past(after(self.created_at, config.max_age))
            || past(after(self.updated_at, self.idle_limit(config)))
    }

    /// When the session ends by the store's rule, and which limit ends it: the earliest of
    /// its `expire_at`, `created_at + max_age` and `updated_at` + the idle limit. `None`
    /// without any limit.
    pub fn ends_at(&self, config: &Config) -> Option<(i64, &'static str)> {
        let after = |from: i64, limit: Option<Duration>| {
            limit.map(|d| from.saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)))
        };
        [
            (self.expire_at, "its expire_at"),
            (
                after(self.created_at, config.max_age),
                "max_age after creation",
            ),
            (
                after(self.updated_at, self.idle_limit(config)),
                "the idle limit after the last write",
            ),
        ]
        .into_iter()
        .filter_map(|(at, why)| at.map(|at| (at, why)))
        .min_by_key(|(at, _)| *at)
    }

    /// The idle limit that applies: the session's own, else the configured one.
    pub fn idle_limit(&self, config: &Config) -> Option<Duration> {
        self.max_stale.map(Duration::from_secs).or(config.max_stale)
    }
}

/// Whether a lock taken at `locked_at_ms` still holds at `now_ms`: no older than
/// `lock_expiry_time`, as the store's lock condition has it (an older one may be broken by
/// the next request).
pub fn lock_holds(locked_at_ms: i64, config: &Config, now_ms: i64) -> bool {
    let expiry = i64::try_from(config.lock_expiry_time.as_millis()).unwrap_or(i64::MAX);
    locked_at_ms >= now_ms.saturating_sub(expiry)
}

#[cfg(test)]
mod tests {
    use dynamodb_session_store::Lifetime;

    use super::*;

    fn config(max_age: Option<u64>, max_stale: Option<u64>) -> Config {
        let lifetime =
            |l: Option<u64>| l.map_or(Lifetime::Unlimited, |s| Duration::from_secs(s).into());
        Config::builder()
            .max_age(lifetime(max_age))
            .max_stale(lifetime(max_stale))
            .build()
            .unwrap()
    }

    #[test]
    fn expiry_follows_the_stores_rule() {
        let times = Times {
            created_at: 1000,
            updated_at: 1500,
            expire_at: Some(3000),
            max_stale: None,
        };
        let unlimited = config(None, None);
        assert!(!times.is_expired(&unlimited, 2999));
        assert!(
            times.is_expired(&unlimited, 3000),
            "expire_at itself is dead"
        );
        assert!(times.is_expired(&config(Some(500), None), 1500));
        assert!(!times.is_expired(&config(Some(501), None), 1500));
        assert!(times.is_expired(&config(None, Some(100)), 1600));
        // The session's own idle limit wins over the configured one.
        let remembered = Times {
            max_stale: Some(10_000),
            ..times
        };
        let no_expiry = Times {
            expire_at: None,
            ..remembered
        };
        assert!(!no_expiry.is_expired(&config(None, Some(100)), 1600));
        assert!(no_expiry.is_expired(&config(None, Some(100)), 11_500));
        assert_eq!(
            times.ends_at(&config(Some(5_000), Some(100))),
            Some((1600, "the idle limit after the last write"))
        );
        assert_eq!(times.ends_at(&unlimited), Some((3000, "its expire_at")));
        let forever = Times {
            expire_at: None,
            ..times
        };
        assert_eq!(forever.ends_at(&unlimited), None);
    }

    #[test]
    fn a_lock_holds_until_lock_expiry_time() {
        let config = Config::builder()
            .lock_expiry_time(Duration::from_millis(500))
            .build()
            .unwrap();
        assert!(lock_holds(10_000, &config, 10_500));
        assert!(!lock_holds(10_000, &config, 10_501));
    }
}
