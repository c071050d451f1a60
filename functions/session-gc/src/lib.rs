//! The session garbage collector as a Lambda function, run by an EventBridge schedule.
//!
//! Every invocation runs [`GarbageCollector::collect`](dynamodb_session_store::gc::GarbageCollector::collect)
//! until shortly before the invocation's deadline. A pass over a big table spans several
//! invocations: each one saves its progress in a checkpoint item in the session table and the
//! next scheduled one continues from it (see
//! [`GarbageCollector`](dynamodb_session_store::gc::GarbageCollector)). It stops
//! [`DEADLINE_MARGIN`] before the deadline; give the function a timeout of a few minutes.
//!
//! Configuration comes from the environment, read once per cold start:
//!
//! | variable | default | |
//! |---|---|---|
//! | `AWS_DYNAMO_DB_SESSION_TABLE_NAME` | `sessions` | the session table |
//! | `AWS_DYNAMO_DB_SESSION_TABLE_KEY` | `session_id` | its hash key attribute |
//! | `AWS_DYNAMO_DB_SESSION_GC_MAX_AGE` | none | extra cap: delete sessions created longer ago (seconds, or `7d`, `12h`, ...) |
//! | `AWS_DYNAMO_DB_SESSION_GC_MAX_STALE` | none | extra cap: delete sessions not written for longer, except those with their own `max_stale` |
//! | `AWS_DYNAMO_DB_SESSION_GC_SEGMENTS` | 4 | parallel scan segments, 1 to 1000 |
//! | `AWS_DYNAMO_DB_SESSION_GC_PAGE_SIZE` | 500 | items a scan page evaluates |
//! | `AWS_DYNAMO_DB_SESSION_GC_RATE_LIMIT` | none | most deletes per second (`0`: no limit) |
//!
//! By default a session is garbage once its `expire_at` has passed, the store's own rule: every
//! write sets `expire_at` from the lifetimes in force (the configuration's, the layer's, the
//! session's own), so the collector never deletes a session the store would still open. The
//! two caps are extra (OR), read only when set; the store's `AWS_DYNAMO_DB_SESSION_MAX_AGE`
//! and `AWS_DYNAMO_DB_SESSION_MAX_STALE` are never caps. Every other session store variable
//! (for example `AWS_DYNAMO_DB_SESSION_CONFIG_FILE`) is read too and checked the same way.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod handler;

pub use handler::{
    DEADLINE_MARGIN, Event, Handler, MAX_AGE_VAR, MAX_STALE_VAR, PAGE_SIZE_VAR, RATE_LIMIT_VAR,
    SEGMENTS_VAR,
};
