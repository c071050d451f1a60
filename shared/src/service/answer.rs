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
            // Throttling that outlasted the SDK's retries passes with time: retry, as for a
            // lock.
            Error::DynamoDb(e) if is_throttling(e) => Answer::Busy,
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

/// The error codes DynamoDB throttles with, at the top level or (a transaction cancelled
/// because one of its items was throttled) as a cancellation reason.
fn is_throttling(error: &aws_sdk_dynamodb::Error) -> bool {
    use aws_sdk_dynamodb::error::ProvideErrorMetadata as _;
    let throttling = |code: Option<&str>| {
        matches!(
            code,
            Some(
                "ThrottlingException"
                    | "ProvisionedThroughputExceededException"
                    | "ProvisionedThroughputExceeded"
                    | "RequestLimitExceeded"
                    | "ThrottlingError"
            )
        )
    };
    match error {
        aws_sdk_dynamodb::Error::TransactionCanceledException(cancelled) => cancelled
            .cancellation_reasons()
            .iter()
            .any(|reason| throttling(reason.code())),
        _ => throttling(error.code()),
    }
}

/// Logs an error the layer answers or hands to a handler: once, at WARN when its answer is a
/// 409, 413 or 503 (contention and limits a client may retry) and at ERROR otherwise, with
/// its kind, its source chain and the invocation's request id. The error types carry no
/// cookie, secret, session data or user id, so neither does the line.
pub(crate) fn log_error(error: &Error, answer: Answer, request_id: Option<&str>, what: &str) {
    let chain = match error {
        // serde_json's messages quote the offending value, which is session data.
        Error::Serialization(e) => format!("{:?} error", e.classify()),
        _ => std::iter::successors(std::error::Error::source(error), |e| e.source())
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(": "),
    };
    let kind = error.kind();
    let status = answer.status().as_u16();
    let request_id = request_id.unwrap_or("-");
    if matches!(answer, Answer::Failure) {
        tracing::error!(kind, %error, chain, status, request_id, "{what}");
    } else {
        tracing::warn!(kind, %error, chain, status, request_id, "{what}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A throttling error as the SDK reports it once its retries are used up.
    fn throttled() -> Error {
        use aws_sdk_dynamodb::error::ErrorMetadata;
        use aws_sdk_dynamodb::types::error::ProvisionedThroughputExceededException;
        let code = "ProvisionedThroughputExceededException";
        let exception = ProvisionedThroughputExceededException::builder()
            .message("rate exceeded")
            .meta(ErrorMetadata::builder().code(code).build())
            .build();
        Error::DynamoDb(Box::new(
            aws_sdk_dynamodb::Error::ProvisionedThroughputExceededException(exception),
        ))
    }

    /// A transaction DynamoDB cancelled for these reasons (`None`: the item was fine).
    fn cancelled(reasons: &[Option<&str>]) -> Error {
        use aws_sdk_dynamodb::types::CancellationReason;
        use aws_sdk_dynamodb::types::error::TransactionCanceledException;
        let reasons = reasons
            .iter()
            .map(|code| {
                let reason = CancellationReason::builder();
                match code {
                    Some(code) => reason.code(*code).build(),
                    None => reason.code("None").build(),
                }
            })
            .collect();
        let exception = TransactionCanceledException::builder()
            .set_cancellation_reasons(Some(reasons))
            .build();
        Error::DynamoDb(Box::new(
            aws_sdk_dynamodb::Error::TransactionCanceledException(exception),
        ))
    }

    #[test]
    fn a_transaction_cancelled_by_throttling_is_busy_and_others_are_failures() {
        assert_eq!(
            Answer::for_error(&cancelled(&[None, Some("ThrottlingError")])),
            Answer::Busy
        );
        assert_eq!(
            Answer::for_error(&cancelled(&[Some("ProvisionedThroughputExceeded"), None])),
            Answer::Busy
        );
        assert_eq!(
            Answer::for_error(&cancelled(&[None, Some("ValidationError")])),
            Answer::Failure
        );
    }

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
