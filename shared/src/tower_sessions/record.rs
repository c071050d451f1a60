//! A tower-sessions `Record` and this store's [`SessionRecord`]: data, expiry, errors.

use std::time::Duration;

use cookie::time::{OffsetDateTime, PrimitiveDateTime};
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::session_store;

use crate::error::Error;
use crate::serializer::SessionData;
use crate::store::SessionRecord;

/// The record's data as session data.
pub(super) fn data_of(record: &Record) -> SessionData {
    record
        .data
        .iter()
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// The session's own idle limit that makes its `expire_at` the record's expiry: each save
/// of a tower-sessions record carries its new expiry, and the store sets `expire_at` to the
/// save's time plus this limit (capped by `max_age`), to the second: the store counts
/// whole seconds.
pub(super) fn idle_limit(expiry_date: OffsetDateTime) -> Duration {
    let left = expiry_date - OffsetDateTime::now_utc();
    let seconds = left.whole_seconds() + i64::from(left.subsec_nanoseconds() > 0);
    Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
}

/// The tower-sessions record of a stored session.
pub(super) fn record_of(id: Id, stored: &SessionRecord) -> session_store::Result<Record> {
    // Only a session with no limit at all lacks `expire_at`; tower-sessions needs a date.
    let expiry_date = match stored.expire_at {
        Some(at) => OffsetDateTime::from_unix_timestamp(at)
            .map_err(|_| session_store::Error::Decode("expire_at out of range".into()))?,
        None => PrimitiveDateTime::MAX.assume_utc(),
    };
    Ok(Record {
        id,
        data: stored
            .data
            .iter()
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect(),
        expiry_date,
    })
}

/// A store error on a write, as tower-sessions classifies errors. The text is the store
/// error's, which names no id, cookie or data.
pub(super) fn encode_error(error: Error) -> session_store::Error {
    match error {
        Error::Serialization(_) | Error::SessionTooLarge { .. } => {
            session_store::Error::Encode(error.to_string())
        }
        other => session_store::Error::Backend(other.to_string()),
    }
}

/// A store error on a read.
pub(super) fn decode_error(error: Error) -> session_store::Error {
    match error {
        Error::Serialization(_) | Error::MalformedItem(_) => {
            session_store::Error::Decode(error.to_string())
        }
        other => session_store::Error::Backend(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_idle_limit_reaches_the_expiry_and_never_goes_negative() {
        let in_an_hour = OffsetDateTime::now_utc() + cookie::time::Duration::seconds(3600);
        let limit = idle_limit(in_an_hour).as_secs();
        assert!((3599..=3600).contains(&limit), "{limit}");
        let past = OffsetDateTime::now_utc() - cookie::time::Duration::seconds(10);
        assert_eq!(idle_limit(past), Duration::ZERO);
    }
}
