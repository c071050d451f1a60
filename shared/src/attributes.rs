//! The item layout: attribute names shared by the store, the table and the collector.
//!
//! | attribute | type | meaning |
//! |---|---|---|
//! | `<table_key>` | S | keyed hash of the session id (never the cookie value) |
//! | [`DATA`] | S | the session data (JSON by default) |
//! | [`CREATED_AT`] | N | Unix seconds of the first save |
//! | [`UPDATED_AT`] | N | Unix seconds of the last write |
//! | [`EXPIRE_AT`] | N | Unix seconds after which the session is dead: the TTL attribute |
//! | [`VERSION`] | N | bumped by every data write; guards renewals and optimistic saves |
//! | [`MAX_STALE`] | N | this session's own `max_stale` in seconds ("remember me"), if set |
//! | [`USER_HASH`] | S | keyed hash of the user the session is bound to (never the user id); the key of the [`USER_INDEX`] |
//! | [`LOCKED_AT`] / [`LOCK_OWNER`] | N / S | pessimistic locking, while a request holds the lock |

/// The serialized session data.
pub const DATA: &str = "data";
/// Unix seconds of creation.
pub const CREATED_AT: &str = "created_at";
/// Unix seconds of the last write.
pub const UPDATED_AT: &str = "updated_at";
/// Unix seconds after which the session is dead; DynamoDB's TTL reads it.
pub const EXPIRE_AT: &str = "expire_at";
/// A counter every data write increments.
pub const VERSION: &str = "version";
/// The session's own `max_stale`, in seconds, when it has one.
pub const MAX_STALE: &str = "max_stale";
/// The keyed hash of the user a session is bound to.
pub const USER_HASH: &str = "user_hash";
/// The global secondary index on [`USER_HASH`] (keys only): a user's sessions.
pub const USER_INDEX: &str = "user_hash-index";
/// Unix milliseconds at which the lock was taken.
pub const LOCKED_AT: &str = "locked_at";
/// The token of the request holding the lock.
pub const LOCK_OWNER: &str = "lock_owner";

/// On the collector's checkpoint item ([`CHECKPOINT_KEY`](crate::gc::CHECKPOINT_KEY)): Unix
/// seconds at which its current pass started.
pub const GC_PASS_STARTED_AT: &str = "gc_pass_started_at";
