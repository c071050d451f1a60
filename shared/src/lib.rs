//! DynamoDB-backed HTTP sessions for Rust on AWS Lambda.
//!
//! The Rust successor of Amazon's Ruby gem `aws-sessionstore-dynamodb`: sessions live in a
//! DynamoDB table, one item each, addressed by a keyed hash of a 256-bit id that travels in
//! an HMAC-SHA256-signed cookie.
//!
//! * [`Config`] — every option of the gem, from code, the environment and a YAML file.
//! * [`SessionStore`] — load, create, save, touch, renew and delete sessions.
//! * [`SessionTable`] — create the table (on-demand, TTL on `expire_at`) and delete it.
//! * [`SessionLayer`] — a tower layer for any `http` service (`lambda_http`, axum, hyper)
//!   that gives every request a lazy [`Session`] and writes it back only when needed.
//! * [`MemoryStore`] — the same semantics in memory, to unit-test handlers without DynamoDB
//!   (any [`SessionBackend`] plugs in).
//! * [`GarbageCollector`] — deletes dead sessions by `max_age` / `max_stale` / `expire_at`,
//!   refresh-safe and resumable across Lambda invocations.
//!
//! # Examples
//!
//! ```no_run
//! use dynamodb_session_store::{SessionData, SessionStore};
//!
//! # async fn demo() -> Result<(), dynamodb_session_store::Error> {
//! // AWS_DYNAMO_DB_SESSION_SECRET_KEY and friends come from the environment.
//! let store = SessionStore::from_env().await?;
//! store.create_table().await?;
//!
//! let mut data = SessionData::new();
//! data.insert("cart".into(), serde_json::json!(["apple"]));
//! let (id, record) = store.create(&data).await?;
//! println!("Set-Cookie: session={}", store.cookie_value(&id));
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod attributes;
#[cfg(feature = "axum")]
mod axum;
mod config;
mod deadline;
mod error;
mod error_handler;
mod expression;
mod gc;
mod keys;
mod retry;
mod serializer;
mod service;
mod session;
mod store;
mod table;

pub use config::{
    BillingMode, Concurrency, Config, ConfigBuilder, DEFAULT_COMPRESS_ABOVE, DEFAULT_MAX_STALE,
    ENV_PREFIX, LEGACY_ENV_PREFIX, LayerOptions, Lifetime, MIN_SECRET_KEY_LEN, SecretKey,
};
pub use deadline::{Deadline, LAMBDA_MAX_TIMEOUT};
pub use error::{Error, Result};
pub use error_handler::{DefaultErrorHandler, ErrorAction, ErrorHandler};
pub use gc::{
    CHECKPOINT_INTERVAL, CHECKPOINT_KEY, Checkpoint, DEFAULT_CONCURRENCY, DEFAULT_MAX_RETRIES,
    DEFAULT_PAGE_SIZE, DEFAULT_SEGMENTS, GC_MAX_AGE_VAR, GC_MAX_STALE_VAR, GC_PAGE_SIZE_VAR,
    GC_RATE_LIMIT_VAR, GC_SEGMENTS_VAR, GarbageCollector, GcLimits, GcProgress, GcReport,
    MAX_PAGE_SIZE, MAX_SEGMENTS, PassStatus, ScannedPage, SegmentProgress, collect_garbage,
};
pub use keys::SessionId;
pub use keys::refresh::{SecretSource, SigningSecrets};
pub use serializer::{JsonSerializer, SessionData, SessionSerializer};
pub use service::{DEFAULT_DEADLINE_MARGIN, RequestSessionExt, SessionLayer, SessionService};
pub use session::Session;
pub use store::{
    Changes, CollectorBackend, EndedBy, GarbagePage, GarbageRule, GarbageScan, Guard, Locked,
    MAX_ITEM_BYTES, MemoryStore, Replaced, Retry, SessionBackend, SessionRecord, SessionStore,
    StoredCheckpoint, StoredItem, StoredLock, UserSession, UserSessionPage, Written,
};
pub use table::{Creation, Deletion, ExistingTable, LOGICAL_ID_TAG, STACK_ID_TAG, SessionTable};

/// The cookie crate's `SameSite`, for [`SessionLayer::with_same_site`].
pub use cookie::SameSite;
