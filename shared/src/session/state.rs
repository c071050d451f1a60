//! What the handler did to the session, recorded for the write that follows it.

use std::time::Duration;

use super::{Failure, Report};
use crate::error::{Error, Result};
use crate::keys::SessionId;
use crate::serializer::SessionData;
use crate::store::SessionRecord;

#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Load {
    #[default]
    NotLoaded,
    Loaded,
    /// The read failed: this session must not be written over in this request.
    Failed,
}

/// What the handler did to the session; read by [`finish`](super::finish) when the handler
/// has answered.
pub(super) struct State {
    /// The id of the first cookie that verified, once checked (`Some(None)`: none did).
    pub(super) cookie_id: Option<Option<SessionId>>,
    pub(super) load: Load,
    /// The stored session, as read (or as last written by this request).
    pub(super) stored: Option<(SessionId, SessionRecord)>,
    pub(super) data: SessionData,
    pub(super) changed: bool,
    pub(super) renew: bool,
    pub(super) destroy: bool,
    /// A new per-session `max_stale` (`Some(None)`: back to the configured one).
    pub(super) max_stale: Option<Option<Duration>>,
    /// A new user binding (`Some(None)`: unbound).
    pub(super) user: Option<Option<String>>,
    /// The id a new or renewed session will get, drawn early when the application asked for
    /// its cookie value.
    pub(super) next_id: Option<SessionId>,
    /// An error the error handler chose to raise: the response is replaced with its answer.
    pub(super) raised: Option<Failure>,
    /// The last error a method returned to the application: answered if the handler fails.
    pub(super) returned: Option<Failure>,
    /// An explicit operation (a revocation) failed: the response is this answer whatever
    /// the handler answers, so a 2xx never claims it happened.
    pub(super) explicit_failed: Option<Failure>,
    /// The layer has made this request's write (or given up on it): later changes would be
    /// lost, so they are refused.
    pub(super) closed: bool,
    /// How this request's errors are logged.
    pub(super) reporter: Reporter,
}

impl State {
    pub(super) fn new(reporter: Reporter) -> State {
        State {
            cookie_id: None,
            load: Load::NotLoaded,
            stored: None,
            data: SessionData::new(),
            changed: false,
            renew: false,
            destroy: false,
            max_stale: None,
            user: None,
            next_id: None,
            raised: None,
            returned: None,
            explicit_failed: None,
            closed: false,
            reporter,
        }
    }

    /// Remembers `error` for the response, reports it (the one log line it gets, even when
    /// the layer later answers with it) and hands it back.
    pub(super) fn fail<T>(&mut self, error: Error) -> Result<T> {
        let failure = Failure::of(&error);
        self.reporter.report(
            &error,
            failure,
            "a session method returned an error to the handler",
        );
        self.returned = Some(failure);
        Err(error)
    }

    /// As [`fail`](Self::fail), for an explicit operation: the response becomes the error's
    /// answer even if the handler goes on to answer 2xx.
    pub(super) fn fail_explicit<T>(&mut self, error: Error) -> Result<T> {
        self.explicit_failed = Some(Failure::of(&error));
        self.fail(error)
    }
}

/// The service's [`Report`], with the invocation's request id it logs under.
pub(super) struct Reporter {
    pub(super) report: Report,
    pub(super) request_id: Option<String>,
}

impl Reporter {
    pub(super) fn report(&self, error: &Error, failure: Failure, what: &str) {
        (self.report)(error, failure, self.request_id.as_deref(), what);
    }
}
