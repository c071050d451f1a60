//! DynamoDB-backed HTTP sessions for Rust on AWS Lambda.
//!
//! The Rust successor of Amazon's Ruby gem `aws-sessionstore-dynamodb`: sessions live in a
//! DynamoDB table, one item each, addressed by a keyed hash of a 256-bit id that travels in
//! an HMAC-SHA256-signed cookie.
//!
//! The root holds what a handler author uses every day:
//!
//! * [`Config`] — every option of the gem, from code, the environment and a YAML file.
//! * [`SessionStore`] — load, create, save, touch, renew and delete sessions.
//! * [`SessionLayer`] — a tower layer for any `http` service (`lambda_http`, axum, hyper)
//!   that gives every request a lazy [`Session`] and writes it back only when needed.
//! * [`MemoryStore`] — the same semantics in memory, to unit-test handlers without DynamoDB.
//!
//! The rest lives in a module per concern:
//!
//! | module | for |
//! |---|---|
//! | [`config`] | the options, their sources and defaults |
//! | [`store`] | the store and the values it returns (records, a user's sessions) |
//! | [`backend`] | the storage trait a store runs on, for writing another backend |
//! | [`service`] | the layer's service and its future |
//! | [`keys`] | session ids, and the sources a process reads rotated secrets from |
//! | [`serializer`] | how session data is encoded |
//! | [`error_handler`] | the pluggable policy for backend errors |
//! | [`deadline`] | the time an invocation has left |
//! | [`table`] | creating, inspecting and deleting the session table |
//! | [`gc`] | the garbage collector |
//! | [`attributes`] | the item layout |
//! | [`ops`] | the operators' API, for tools such as `sessionctl` |
//! | [`retry`] | the one backoff every retry loop (the functions' too) waits with |
//! | [`sdk`] | the AWS SDK configuration the functions load (TLS roots that cost no cold start) |
//! | [`metrics`] | the metric names the layer and the collector record (CloudWatch EMF with `emf`) |
//! | `tower_sessions` | (feature `tower-sessions`) the store under tower-sessions and axum-login |
//!
//! # Examples
//!
//! ```no_run
//! use dynamodb_session_store::ops::StoreOps as _;
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
pub mod config;
pub mod deadline;
mod error;
pub mod error_handler;
mod expression;
pub mod gc;
pub mod keys;
pub mod metrics;
pub mod ops;
pub mod retry;
pub mod sdk;
pub mod serializer;
pub mod service;
mod session;
pub mod store;
pub mod table;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(feature = "tower-sessions")]
pub mod tower_sessions;

pub mod backend {
    //! The storage a [`SessionStore`](crate::SessionStore) runs on: the [`SessionBackend`]
    //! trait — a small set of atomic, conditional operations on one item per session — and
    //! the values it takes and returns. Implement it to run the store on another database;
    //! [`MemoryStore`](crate::MemoryStore) is the reference, and the integration tests'
    //! conformance suite is the contract.
    pub use crate::store::backend::*;
}

pub use config::{Concurrency, Config, ConfigBuilder, Lifetime};
pub use error::{Error, Result};
pub use keys::SessionId;
pub use serializer::SessionData;
pub use service::{RequestSessionExt, SessionLayer};
pub use session::Session;
pub use store::{MemoryStore, SessionRecord, SessionStore};
#[cfg(feature = "tower-sessions")]
pub use tower_sessions::TowerSessionsStore;

/// The cookie crate's `SameSite`, for [`SessionLayer::with_same_site`].
pub use cookie::SameSite;
