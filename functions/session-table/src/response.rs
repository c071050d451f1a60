//! The answer to CloudFormation: a JSON document PUT to the request's pre-signed `ResponseURL`.

use std::cell::Cell;
use std::collections::HashMap;
use std::time::Duration;

use aws_lambda_events::event::cloudformation::{
    CloudFormationCustomResourceResponse, CloudFormationCustomResourceResponseStatus,
};
use dynamodb_session_store::deadline::Deadline;
use dynamodb_session_store::retry::Backoff;
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;

/// CloudFormation refuses responses over 4096 bytes; a long error chain must not be the
/// reason the stack never hears back. The other fields are bounded well below the rest.
const MAX_REASON_BYTES: usize = 2048;

/// The longest wait between two deliveries, however many attempts `Delivery` allows.
const LONGEST_RETRY_DELAY: Duration = Duration::from_secs(60);

/// What the work came to: the status and what goes with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// SUCCESS or FAILED.
    pub status: CloudFormationCustomResourceResponseStatus,
    /// The resource's physical id after this request.
    pub physical_resource_id: String,
    /// Shown in the stack's events; required by CloudFormation when FAILED.
    pub reason: String,
    /// Values templates read with `!GetAtt`.
    pub data: HashMap<String, String>,
}

impl Outcome {
    /// A success with `data` for `!GetAtt`.
    pub fn success(
        physical_resource_id: impl Into<String>,
        reason: impl Into<String>,
        data: HashMap<String, String>,
    ) -> Self {
        Outcome {
            status: CloudFormationCustomResourceResponseStatus::Success,
            physical_resource_id: physical_resource_id.into(),
            reason: reason.into(),
            data,
        }
    }

    /// A failure; `reason` is what the stack's events show.
    pub fn failed(physical_resource_id: impl Into<String>, reason: impl Into<String>) -> Self {
        Outcome {
            status: CloudFormationCustomResourceResponseStatus::Failed,
            physical_resource_id: physical_resource_id.into(),
            reason: reason.into(),
            data: HashMap::new(),
        }
    }

    /// Whether this is a FAILED outcome.
    pub fn is_failed(&self) -> bool {
        self.status == CloudFormationCustomResourceResponseStatus::Failed
    }
}

/// The request fields every response echoes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Echo {
    /// The stack's ARN.
    pub stack_id: String,
    /// The request's id (not the Lambda invocation's).
    pub request_id: String,
    /// The resource's name in the template.
    pub logical_resource_id: String,
}

/// The response document for `outcome`, with `reason` cut to fit CloudFormation's limit.
pub fn response_body(echo: &Echo, outcome: &Outcome) -> CloudFormationCustomResourceResponse {
    // The event type is non-exhaustive: built from its default, field by field.
    let mut response = CloudFormationCustomResourceResponse::default();
    response.status = outcome.status.clone();
    response.reason = Some(truncate(&outcome.reason, MAX_REASON_BYTES));
    response.physical_resource_id = outcome.physical_resource_id.clone();
    response.stack_id = echo.stack_id.clone();
    response.request_id = echo.request_id.clone();
    response.logical_resource_id = echo.logical_resource_id.clone();
    response.no_echo = false;
    response.data = outcome.data.clone();
    response
}

/// How hard to try delivering the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Attempts in all, the first included (at least one is always made).
    pub attempts: u32,
    /// Wait before the second attempt; it doubles for each further one, plus up to as much
    /// again of random jitter.
    pub first_retry_delay: Duration,
    /// Longest wait for one attempt.
    pub attempt_timeout: Duration,
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            attempts: 4,
            first_retry_delay: Duration::from_millis(500),
            attempt_timeout: Duration::from_secs(5),
        }
    }
}

/// The response could not be delivered.
#[derive(Debug, thiserror::Error)]
#[error("could not deliver the response to CloudFormation after {attempts} attempts: {last}")]
pub struct DeliveryFailed {
    /// Attempts made.
    pub attempts: u32,
    /// The last attempt's failure.
    pub last: String,
}

/// One failed attempt: whether another could help, and what went wrong.
#[derive(Debug)]
struct AttemptFailed {
    retryable: bool,
    failure: String,
}

/// PUTs `body` to the pre-signed `url`, retrying network failures, throttling (429) and
/// server errors (5xx) with the library's exponential backoff and jitter, never sleeping past
/// `deadline` and bounding each attempt by the time left. Other answers, redirects included,
/// are final: a 4xx will not get better, and the answer belongs at the URL it was given.
///
/// The Content-Type header is sent empty: the URL is signed without one, and S3 refuses
/// a request whose signed headers differ.
///
/// # Errors
///
/// [`DeliveryFailed`] when every attempt failed, or a final answer (4xx: an expired or
/// malformed URL; 3xx) made retrying pointless.
pub async fn deliver(
    http: &reqwest::Client,
    url: &str,
    body: &CloudFormationCustomResourceResponse,
    delivery: &Delivery,
    deadline: Option<Deadline>,
) -> Result<(), DeliveryFailed> {
    let body = serde_json::to_vec(body).expect("the response document always serializes");
    let attempts = Cell::new(0u32);
    let attempt = || {
        attempts.set(attempts.get() + 1);
        let attempt = attempts.get();
        let timeout = match deadline {
            Some(deadline) => delivery.attempt_timeout.min(deadline.remaining()),
            None => delivery.attempt_timeout,
        };
        let request = http
            .put(url)
            .header(CONTENT_TYPE, "")
            .body(body.clone())
            .timeout(timeout);
        async move {
            match request.send().await {
                Ok(answer) if answer.status().is_success() => {
                    tracing::info!(attempt, "response delivered to CloudFormation");
                    Ok(())
                }
                Ok(answer) => {
                    let status = answer.status();
                    Err(AttemptFailed {
                        retryable: status.is_server_error()
                            || status == StatusCode::TOO_MANY_REQUESTS,
                        failure: format!("HTTP status {status}"),
                    })
                }
                // The error's text names the URL, whose query is a credential: keep only the kind.
                Err(e) => Err(AttemptFailed {
                    retryable: true,
                    failure: describe(&e.without_url()),
                }),
            }
        }
    };
    // No retry whose wait would end at or past the deadline: Lambda would kill it.
    Backoff::exponential(
        delivery.first_retry_delay,
        LONGEST_RETRY_DELAY,
        delivery.attempts.saturating_sub(1) as usize,
    )
    .until(deadline.map(|d| d.instant()))
    .retry(
        attempt,
        |e| e.retryable,
        |e, delay| {
            tracing::warn!(
                attempt = attempts.get(),
                failure = %e.failure,
                ?delay,
                "response not delivered; retrying"
            );
        },
    )
    .await
    .map_err(|e| {
        tracing::warn!(
            attempt = attempts.get(),
            retryable = e.retryable,
            failure = %e.failure,
            "response not delivered; giving up"
        );
        DeliveryFailed {
            attempts: attempts.get(),
            last: e.failure,
        }
    })
}

/// An error and its sources on one line.
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // SDK errors often repeat their source's text; say it once.
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn truncate(text: &str, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text.to_owned();
    }
    let mut end = max_bytes - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo() -> Echo {
        Echo {
            stack_id: "arn:aws:cloudformation:us-east-1:123456789012:stack/s/guid".into(),
            request_id: "request-1".into(),
            logical_resource_id: "SessionTable".into(),
        }
    }

    #[test]
    fn the_body_has_every_field_cloudformation_reads() {
        let data = HashMap::from([("TableName".to_owned(), "sessions".to_owned())]);
        let body = response_body(&echo(), &Outcome::success("sessions", "created", data));
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "Status": "SUCCESS",
                "Reason": "created",
                "PhysicalResourceId": "sessions",
                "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/s/guid",
                "RequestId": "request-1",
                "LogicalResourceId": "SessionTable",
                "NoEcho": false,
                "Data": {"TableName": "sessions"},
            })
        );
        let failed = response_body(&echo(), &Outcome::failed("sessions", "boom"));
        assert_eq!(serde_json::to_value(&failed).unwrap()["Status"], "FAILED");
    }

    #[test]
    fn long_reasons_are_cut_on_a_character_boundary() {
        let reason = "é".repeat(3000);
        let body = response_body(&echo(), &Outcome::failed("x", reason));
        let cut = body.reason.unwrap();
        assert!(cut.len() <= MAX_REASON_BYTES, "{}", cut.len());
        assert!(cut.ends_with('…'));
        assert_eq!(truncate("short", MAX_REASON_BYTES), "short");
    }

    #[test]
    fn describe_joins_the_source_chain_without_repeats() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let err = Outer(std::io::Error::other("inner"));
        assert_eq!(describe(&err), "outer: inner");
    }
}
