//! What the session tells the service once it is finished with: plain values, which the
//! service turns into headers and answers.

use super::Failure;

/// What the response must carry once the session is finished with.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// The session was read: responses vary by cookie.
    pub(crate) read: bool,
    /// The cookie to send, if any.
    pub(crate) cookie: Option<CookieUpdate>,
    /// Replace the response with the answer to this failure.
    pub(crate) failure: Option<Failure>,
}

/// A change to the client's cookie.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CookieUpdate {
    /// The session was written under `value`'s id.
    Issue {
        /// The signed cookie value.
        value: String,
        /// When the session expires server-side (Unix seconds), if it does.
        expire_at: Option<i64>,
        /// When the write behind this cookie happened (Unix seconds): `Max-Age` counts from
        /// the same clock reading as `expire_at`, so it is exact.
        written_at: i64,
        /// The id is new to the client (new or renewed session): the cookie must be sent.
        /// Otherwise it only needs re-sending when it carries a lifetime that moved.
        new_id: bool,
        /// The session has its own `max_stale` ("remember me"): its cookie is persistent.
        own_lifetime: bool,
    },
    /// The session is gone: expire the client's cookie.
    Remove,
}
