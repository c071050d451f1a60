//! The layer's own answers to session errors: one status per kind of failure, no details in
//! the body. The axum `IntoResponse` for [`Error`] uses the same table.

use std::time::Duration;

use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Response, StatusCode};

use crate::error::Error;

/// The response a session error calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// The lock could not be taken in time, or the deadline came first: 503, retry shortly.
    Busy,
    /// Another request changed, locked or deleted the session first: 409, the client may
    /// retry.
    Conflict,
    /// The session would not fit in one item: 413.
    TooLarge,
    /// Anything else: 500.
    Failure,
}

impl Answer {
    pub(crate) fn for_error(error: &Error) -> Answer {
        match error {
            Error::LockWaitTimeout { .. } | Error::DeadlineExceeded => Answer::Busy,
            Error::VersionConflict | Error::LockLost | Error::ConditionalCheckFailed => {
                Answer::Conflict
            }
            Error::SessionTooLarge { .. } => Answer::TooLarge,
            _ => Answer::Failure,
        }
    }

    pub(crate) fn status(self) -> StatusCode {
        match self {
            Answer::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Answer::Conflict => StatusCode::CONFLICT,
            Answer::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Answer::Failure => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn message(self) -> &'static str {
        match self {
            Answer::Busy => "the session is busy with another request; retry shortly",
            Answer::Conflict => "the session was changed by a concurrent request; retry",
            Answer::TooLarge => "the session would exceed the size limit",
            Answer::Failure => "the session store failed",
        }
    }

    /// The response: `{"error": "..."}` with the status, and `Retry-After` (whole seconds,
    /// at least 1) for [`Answer::Busy`].
    pub(crate) fn response<B: From<String>>(self, retry_after: Duration) -> Response<B> {
        let body = serde_json::json!({ "error": self.message() }).to_string();
        let mut response = Response::new(B::from(body));
        *response.status_mut() = self.status();
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if self == Answer::Busy {
            let seconds = retry_after.as_secs().max(1);
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_kind_has_its_status_and_no_details() {
        let cases = [
            (
                Error::LockWaitTimeout {
                    waited: Duration::from_secs(1),
                },
                503,
            ),
            (Error::DeadlineExceeded, 503),
            (Error::VersionConflict, 409),
            (Error::LockLost, 409),
            (Error::ConditionalCheckFailed, 409),
            (Error::SessionTooLarge { size: 2, limit: 1 }, 413),
            (Error::MissingSecretKey, 500),
        ];
        for (error, status) in cases {
            let response: Response<String> =
                Answer::for_error(&error).response(Duration::from_millis(1500));
            assert_eq!(response.status().as_u16(), status, "{error:?}");
            assert!(!response.body().contains("limit is"), "{}", response.body());
            assert_eq!(
                response.headers().contains_key(RETRY_AFTER),
                status == 503,
                "{error:?}"
            );
        }
    }
}
