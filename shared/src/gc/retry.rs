//! Retrying the collector's requests on its own terms: throttling and transient failures
//! only, exponential backoff with jitter, counted, and never sleeping past the deadline.

use std::future::Future;
use std::time::{Duration, Instant};

use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use backon::{ExponentialBuilder, Retryable};

use super::GarbageCollector;
use super::sweep::Counts;

const FIRST_RETRY_DELAY: Duration = Duration::from_millis(50);
const LONGEST_RETRY_DELAY: Duration = Duration::from_secs(5);

impl GarbageCollector {
    /// Sends a request, retrying throttling and transient failures with exponential backoff
    /// and jitter, at most `max_retries` times and never sleeping past `retry_until`.
    pub(super) async fn send<T, E, F, Fut>(
        &self,
        counts: &Counts,
        retry_until: Option<Instant>,
        request: F,
    ) -> Result<T, SdkError<E, HttpResponse>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata,
    {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(FIRST_RETRY_DELAY)
            .with_max_delay(LONGEST_RETRY_DELAY)
            .with_max_times(self.max_retries)
            .with_jitter();
        request
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(is_transient)
            .adjust(|_, delay| {
                delay
                    .filter(|delay| retry_until.is_none_or(|until| Instant::now() + *delay < until))
            })
            .notify(|e, delay| {
                counts.add(&counts.retries, 1);
                tracing::debug!(
                    code = e.as_service_error().and_then(|e| e.code()),
                    ?delay,
                    "retrying a DynamoDB request"
                );
            })
            .await
    }
}

/// Whether a failed request is worth sending again: throttling, a server-side or transient
/// error, a timeout or a broken connection.
fn is_transient<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> bool {
    match error {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
        SdkError::DispatchFailure(failure) => failure.is_timeout() || failure.is_io(),
        SdkError::ServiceError(service) => {
            service.err().code().is_some_and(|code| {
                THROTTLING_ERRORS.contains(&code) || TRANSIENT_ERRORS.contains(&code)
            }) || service.raw().status().is_server_error()
        }
        _ => false,
    }
}
