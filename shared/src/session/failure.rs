//! What kind of failure a session error is, as far as a client can act on it. The service
//! turns a [`Failure`] into its HTTP answer; the session only records which one it met.

use crate::error::Error;

/// A session error, classed by what the client can do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The lock could not be taken in time, or the deadline came first: retry shortly.
    Busy,
    /// Another request changed, locked or deleted the session first: the client may retry.
    Conflict,
    /// The session would not fit in one item.
    TooLarge,
    /// Anything else.
    Other,
}

impl Failure {
    pub(crate) fn of(error: &Error) -> Failure {
        match error {
            Error::LockWaitTimeout { .. } | Error::DeadlineExceeded => Failure::Busy,
            // Throttling that outlasted the SDK's retries passes with time: retry, as for a
            // lock.
            Error::DynamoDb(e) if is_throttling(e) => Failure::Busy,
            Error::VersionConflict | Error::LockLost | Error::ConditionalCheckFailed => {
                Failure::Conflict
            }
            Error::SessionTooLarge { .. } => Failure::TooLarge,
            _ => Failure::Other,
        }
    }
}

/// How the session reports an error it met: given by the service, which knows the answer a
/// [`Failure`] calls for and so what its log line says. The arguments are the error, its
/// class, the invocation's request id and what happened.
pub(crate) type Report = fn(&Error, Failure, Option<&str>, &str);

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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A throttling error as the SDK reports it once its retries are used up.
    pub(crate) fn throttled() -> Error {
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
            Failure::of(&cancelled(&[None, Some("ThrottlingError")])),
            Failure::Busy
        );
        assert_eq!(
            Failure::of(&cancelled(&[Some("ProvisionedThroughputExceeded"), None])),
            Failure::Busy
        );
        assert_eq!(
            Failure::of(&cancelled(&[None, Some("ValidationError")])),
            Failure::Other
        );
    }
}
