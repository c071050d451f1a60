//! The pluggable error policy (the gem's `error_handler` and `raise_errors`).

use std::fmt::Debug;

use crate::error::Error;

/// What to do with an error the session layer met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorAction {
    /// Fail the request: the layer answers with an error response.
    Raise,
    /// Carry on: the request proceeds (with an empty session if loading failed).
    /// The layer still never writes a session whose load failed.
    Ignore,
}

/// Decides, for each error, whether the request fails or carries on.
///
/// Implement it to report errors to your own monitoring, or to change which ones reach the
/// client.
///
/// # Examples
///
/// ```
/// use dynamodb_session_store::Error;
/// use dynamodb_session_store::error_handler::{ErrorAction, ErrorHandler};
///
/// /// Fails every request on any error, hard or soft.
/// #[derive(Debug)]
/// struct Strict;
///
/// impl ErrorHandler for Strict {
///     fn handle_error(&self, error: &Error, _request: &http::request::Parts) -> ErrorAction {
///         tracing::error!(%error, "session store failed");
///         ErrorAction::Raise
///     }
/// }
///
/// let config = dynamodb_session_store::Config::builder()
///     .error_handler(Strict)
///     .build()
///     .unwrap();
/// ```
pub trait ErrorHandler: Debug + Send + Sync + 'static {
    /// Called once per error, with the request it happened in.
    fn handle_error(&self, error: &Error, request: &http::request::Parts) -> ErrorAction;
}

/// The gem's default policy: hard errors ([`Error::is_hard`]) always raise; other errors raise
/// only when `raise_errors` is set, and are otherwise logged (WARN) through `tracing` and
/// ignored. A raised error is logged by the layer, once, with the response it causes.
///
/// The policy covers implicit work only (a failed read, a touch): the failure of a write the
/// handler asked for (data, a renewal, a logout, a binding, a revocation) is always answered,
/// whatever this handler says.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultErrorHandler {
    raise_errors: bool,
}

impl DefaultErrorHandler {
    /// A handler that raises soft errors too when `raise_errors` is true.
    pub fn new(raise_errors: bool) -> Self {
        DefaultErrorHandler { raise_errors }
    }
}

impl ErrorHandler for DefaultErrorHandler {
    fn handle_error(&self, error: &Error, request: &http::request::Parts) -> ErrorAction {
        if self.raise_errors || error.is_hard() {
            // Not logged here: the layer logs every error it answers or hands to the
            // handler, once, with its request id.
            ErrorAction::Raise
        } else {
            tracing::warn!(kind = error.kind(), error = %error,
                source = ?std::error::Error::source(error),
                method = %request.method, path = request.uri.path(),
                "session error ignored (raise_errors is off)");
            ErrorAction::Ignore
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts() -> http::request::Parts {
        http::Request::new(()).into_parts().0
    }

    #[test]
    fn hard_errors_always_raise() {
        let soft = Error::SessionTooLarge { size: 2, limit: 1 };
        let hard = Error::LockWaitTimeout {
            waited: std::time::Duration::from_secs(1),
        };
        let lenient = DefaultErrorHandler::new(false);
        let strict = DefaultErrorHandler::new(true);
        assert_eq!(lenient.handle_error(&hard, &parts()), ErrorAction::Raise);
        assert_eq!(lenient.handle_error(&soft, &parts()), ErrorAction::Ignore);
        assert_eq!(strict.handle_error(&soft, &parts()), ErrorAction::Raise);
    }
}
