//! The layer's own answers to session errors: one status per kind of failure, no details in
//! the body. The axum `IntoResponse` for [`Error`] uses the same table.

use std::time::Duration;

use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Response, StatusCode};

use crate::error::Error;
use crate::session::Failure;

/// The status a failure is answered with.
pub(crate) fn status(failure: Failure) -> StatusCode {
    match failure {
        Failure::Busy => StatusCode::SERVICE_UNAVAILABLE,
        Failure::Conflict => StatusCode::CONFLICT,
        Failure::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Failure::Other => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn message(failure: Failure) -> &'static str {
    match failure {
        Failure::Busy => "the session is busy with another request; retry shortly",
        Failure::Conflict => "the session was changed by a concurrent request; retry",
        Failure::TooLarge => "the session would exceed the size limit",
        Failure::Other => "the session store failed",
    }
}

/// The response to `failure`: `{"error": "..."}` with its status, and `Retry-After` (whole
/// seconds, at least 1) for [`Failure::Busy`].
pub(crate) fn response<B: From<String>>(failure: Failure, retry_after: Duration) -> Response<B> {
    let body = serde_json::json!({ "error": message(failure) }).to_string();
    let mut response = Response::new(B::from(body));
    *response.status_mut() = status(failure);
    crate::metrics::answered(status(failure));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if failure == Failure::Busy {
        let seconds = retry_after.as_secs().max(1);
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// Logs an error the layer answers or hands to a handler: once, at WARN when its answer is a
/// 409, 413 or 503 (contention and limits a client may retry) and at ERROR otherwise, with
/// its kind, its source chain and the invocation's request id. The error types carry no
/// cookie, secret, session data or user id, so neither does the line.
pub(crate) fn log_error(error: &Error, failure: Failure, request_id: Option<&str>, what: &str) {
    let chain = match error {
        // serde_json's messages quote the offending value, which is session data.
        Error::Serialization(e) => format!("{:?} error", e.classify()),
        _ => std::iter::successors(std::error::Error::source(error), |e| e.source())
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(": "),
    };
    let kind = error.kind();
    let status = status(failure).as_u16();
    let request_id = request_id.unwrap_or("-");
    if failure == Failure::Other {
        tracing::error!(kind, %error, chain, status, request_id, "{what}");
    } else {
        tracing::warn!(kind, %error, chain, status, request_id, "{what}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::throttled;

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
            (throttled(), 503),
        ];
        for (error, status) in cases {
            let response: Response<String> =
                response(Failure::of(&error), Duration::from_millis(1500));
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
