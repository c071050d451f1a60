//! What the layer, the store and the collector count, through the [`metrics`] facade.
//!
//! The library records; it never installs a recorder. Until the application installs one
//! (session-api and session-gc install the CloudWatch EMF recorder of [`emf`], feature
//! `emf`), every call below is the facade's no-op: an atomic load and nothing else, no
//! allocation (the keys are static).
//!
//! The names are CloudWatch metric names. Each constant's documentation gives its unit (as
//! [`describe`] registers it) and the dimension it carries, if any: [`OPERATION`] on the
//! DynamoDB figures, [`STATUS`] on the layer's error answers. Counters are summed per flush
//! (one EMF record per invocation); the two latencies are lists of values per flush, so
//! CloudWatch keeps their percentiles.

mod dynamodb;
#[cfg(feature = "emf")]
pub mod emf;

use std::time::Duration;

use ::metrics::{Key, KeyName, Label, Level, Metadata, Unit};

pub(crate) use dynamodb::DynamoDbCalls;

/// Sessions stored under a new id (`Count`).
pub const SESSIONS_CREATED: &str = "SessionsCreated";
/// Sessions read and opened, live and unexpired (`Count`).
pub const SESSIONS_LOADED: &str = "SessionsLoaded";
/// Sessions moved to a fresh id (`Count`).
pub const SESSIONS_RENEWED: &str = "SessionsRenewed";
/// Sessions deleted by the application (`destroy`, `delete`, an emptied session), not by the
/// collector (`Count`).
pub const SESSIONS_DESTROYED: &str = "SessionsDestroyed";
/// Writes of new data to an existing session (`Count`).
pub const SESSION_WRITES: &str = "SessionWrites";
/// Expiry-only writes of unchanged sessions (`Count`).
pub const SESSION_TOUCHES: &str = "SessionTouches";
/// Requests that found their session locked and waited for it (`Count`).
pub const LOCK_WAITS: &str = "LockWaits";
/// How long each of those requests waited, whether it then got the lock or not
/// (`Milliseconds`).
pub const LOCK_WAIT_TIME: &str = "LockWaitTime";
/// Writes refused because another request wrote first or broke this one's lock (`Count`).
pub const CONFLICTS: &str = "Conflicts";
/// The layer's own error answers, with the dimension [`STATUS`]: `503`, `409`, `413` or
/// `500` (`Count`).
pub const ERROR_ANSWERS: &str = "ErrorAnswers";
/// DynamoDB calls, retries included, with the dimension [`OPERATION`] (`Count`).
pub const DYNAMODB_CALLS: &str = "DynamoDbCalls";
/// Each DynamoDB call's time from send to answer, retries included, with the dimension
/// [`OPERATION`] (`Milliseconds`).
pub const DYNAMODB_LATENCY: &str = "DynamoDbLatency";
/// Bytes of session data written: the stored (sealed, when sealing is on) data attribute of
/// every create, renewal and write (`Bytes`).
pub const SEALED_BYTES_WRITTEN: &str = "SealedBytesWritten";
/// Items the collector read (`Count`).
pub const GC_SCANNED: &str = "GcScanned";
/// Dead sessions the collector deleted (`Count`).
pub const GC_DELETED: &str = "GcDeleted";
/// Sessions the collector found dead but left, refreshed since it read them (`Count`).
pub const GC_SKIPPED_REFRESHED: &str = "GcSkippedRefreshed";
/// Collector requests DynamoDB throttled, each sent again (`Count`).
pub const GC_THROTTLED: &str = "GcThrottled";
/// Collector passes over the whole table finished (`Count`).
pub const GC_PASSES_COMPLETE: &str = "GcPassesComplete";

/// The dimension of [`DYNAMODB_CALLS`] and [`DYNAMODB_LATENCY`]: the DynamoDB operation
/// (`GetItem`, `UpdateItem`, ..., `Other` for one this list does not name).
pub const OPERATION: &str = "Operation";
/// The dimension of [`ERROR_ANSWERS`]: the answer's HTTP status.
pub const STATUS: &str = "Status";

/// Every metric with its unit and meaning, as [`describe`] registers them.
pub const ALL: [(&str, Unit, &str); 18] = [
    (
        SESSIONS_CREATED,
        Unit::Count,
        "sessions stored under a new id",
    ),
    (SESSIONS_LOADED, Unit::Count, "sessions read and opened"),
    (
        SESSIONS_RENEWED,
        Unit::Count,
        "sessions moved to a fresh id",
    ),
    (SESSIONS_DESTROYED, Unit::Count, "sessions deleted"),
    (SESSION_WRITES, Unit::Count, "writes of new session data"),
    (SESSION_TOUCHES, Unit::Count, "expiry-only writes"),
    (LOCK_WAITS, Unit::Count, "requests that waited for a lock"),
    (LOCK_WAIT_TIME, Unit::Milliseconds, "time waited for a lock"),
    (
        CONFLICTS,
        Unit::Count,
        "writes refused by a concurrent request",
    ),
    (ERROR_ANSWERS, Unit::Count, "the layer's error answers"),
    (DYNAMODB_CALLS, Unit::Count, "DynamoDB calls"),
    (
        DYNAMODB_LATENCY,
        Unit::Milliseconds,
        "DynamoDB call latency",
    ),
    (
        SEALED_BYTES_WRITTEN,
        Unit::Bytes,
        "bytes of session data written",
    ),
    (GC_SCANNED, Unit::Count, "items the collector read"),
    (GC_DELETED, Unit::Count, "dead sessions deleted"),
    (
        GC_SKIPPED_REFRESHED,
        Unit::Count,
        "dead sessions refreshed meanwhile",
    ),
    (GC_THROTTLED, Unit::Count, "collector requests throttled"),
    (GC_PASSES_COMPLETE, Unit::Count, "collector passes finished"),
];

/// Registers every metric's unit and description with the installed recorder (the EMF
/// recorder writes a metric's unit only when it was described). Call it once, after
/// installing the recorder.
pub fn describe() {
    ::metrics::with_recorder(|recorder| {
        for (name, unit, description) in ALL {
            let (name, description) = (KeyName::from_const_str(name), description.into());
            match unit {
                Unit::Milliseconds => recorder.describe_histogram(name, Some(unit), description),
                _ => recorder.describe_counter(name, Some(unit), description),
            }
        }
    });
}

static METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, None);

/// Adds `n` to the counter `name` (one of this module's constants).
pub(crate) fn count(name: &'static str, n: u64) {
    count_key(&Key::from_static_name(name), n);
}

fn count_key(key: &Key, n: u64) {
    ::metrics::with_recorder(|recorder| recorder.register_counter(key, &METADATA).increment(n));
}

fn record_key(key: &Key, value: Duration) {
    let millis = value.as_secs_f64() * 1000.0;
    ::metrics::with_recorder(|recorder| recorder.register_histogram(key, &METADATA).record(millis));
}

/// A session written by `what` (created, renewed or a data write), with `bytes` of data.
pub(crate) fn written(what: &'static str, bytes: usize) {
    count(what, 1);
    count(SEALED_BYTES_WRITTEN, bytes as u64);
}

/// A request's wait for a lock: `waits` sleeps in all, `waited` from its first try to
/// its last. Nothing when it got the lock at once.
pub(crate) fn lock_waited(waits: u32, waited: Duration) {
    if waits > 0 {
        count(LOCK_WAITS, 1);
        record_key(&Key::from_static_name(LOCK_WAIT_TIME), waited);
    }
}

/// A refusal that is a conflict with another request (a lost lock or a version moved on).
pub(crate) fn refused(error: &crate::Error) {
    if matches!(
        error,
        crate::Error::LockLost | crate::Error::VersionConflict
    ) {
        count(CONFLICTS, 1);
    }
}

/// One of the layer's error answers.
pub(crate) fn answered(status: http::StatusCode) {
    static LABELS: [[Label; 1]; 4] = [
        [Label::from_static_parts(STATUS, "503")],
        [Label::from_static_parts(STATUS, "409")],
        [Label::from_static_parts(STATUS, "413")],
        [Label::from_static_parts(STATUS, "500")],
    ];
    let labels = match status.as_u16() {
        503 => &LABELS[0],
        409 => &LABELS[1],
        413 => &LABELS[2],
        _ => &LABELS[3],
    };
    count_key(&Key::from_static_parts(ERROR_ANSWERS, labels), 1);
}

/// A collector request sent again after `code`: counted when it is throttling.
pub(crate) fn gc_retried(code: Option<&str>) {
    use aws_runtime::retries::classifiers::THROTTLING_ERRORS;
    if code.is_some_and(|code| THROTTLING_ERRORS.contains(&code)) {
        count(GC_THROTTLED, 1);
    }
}

/// One collector invocation's figures, from its report.
pub(crate) fn gc_reported(report: &crate::gc::GcReport) {
    count(GC_SCANNED, report.scanned);
    count(GC_DELETED, report.deleted);
    count(GC_SKIPPED_REFRESHED, report.skipped_refreshed);
    if report.status == crate::gc::PassStatus::Complete {
        count(GC_PASSES_COMPLETE, 1);
    }
}
