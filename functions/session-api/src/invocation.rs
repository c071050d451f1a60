//! What belongs to one invocation rather than to the process, so that the concurrent runtime
//! (`AWS_LAMBDA_MAX_CONCURRENCY` above 1) can serve several at once.
//!
//! The deadline and the request id already come from each request's own
//! `lambda_http::Context` (see [`app_with`](crate::app_with) and the layer). The X-Ray trace
//! id does not, by default: the SDK puts it on its calls from the `_X_AMZN_TRACE_ID`
//! variable, which the sequential runtime sets per invocation and the concurrent one cannot
//! (one process, several invocations). [`TraceHeader`] takes it from the invocation's context
//! instead, through a task-local value the invocation's future carries.

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use dynamodb_session_store::metrics::emf::{Emf, EmfSettings};
use lambda_http::tower::ServiceExt as _;
use lambda_http::{Request, service_fn};

use crate::Routes;

tokio::task_local! {
    /// The X-Ray trace header of the invocation this task is serving.
    static TRACE_ID: Option<String>;
}

/// The header the SDK's recursion detection would set from `_X_AMZN_TRACE_ID`.
const TRACE_HEADER: &str = "x-amzn-trace-id";

/// Puts the invocation's X-Ray trace id on every AWS call made while serving it.
#[derive(Debug)]
pub struct TraceHeader;

impl Intercept for TraceHeader {
    fn name(&self) -> &'static str {
        "InvocationTraceHeader"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // Outside an invocation (the start's secret read), or with no trace id, the
        // request keeps whatever the SDK gave it.
        if let Ok(Some(trace)) = TRACE_ID.try_with(Clone::clone) {
            context
                .request_mut()
                .headers_mut()
                .insert(TRACE_HEADER, trace);
        }
        Ok(())
    }
}

/// What the function's `main` runs once logging is set up: the EMF recorder (on by default
/// on Lambda: `SESSION_METRICS`, `SESSION_METRICS_NAMESPACE`, `SESSION_METRICS_DIMENSIONS`),
/// the clients and the layer from the environment, then [`run`].
///
/// # Errors
///
/// A bad metrics or store variable, the signing secret that cannot be read (both before
/// any request is served), and [`run`]'s.
pub async fn start() -> Result<(), lambda_http::Error> {
    let metrics = EmfSettings::from_env(std::env::vars())
        .map_err(crate::Error::from)?
        .map(EmfSettings::install)
        .transpose()
        .map_err(crate::Error::from)?;
    // Built once per cold start: the clients and the signing keys (read again from Secrets
    // Manager only when a cookie signed by a newer secret arrives). Every request's time
    // budget is the earlier of its invocation's deadline and the function's own Timeout
    // (see app_with), whatever an emulator reports.
    let aws = dynamodb_session_store::sdk::load(std::env::vars()).await?;
    let layer = crate::layer_from_env(&aws, std::env::vars().collect()).await?;
    run(crate::app(layer), metrics).await
}

/// Serves `routes` on the Lambda runtime: concurrently when `AWS_LAMBDA_MAX_CONCURRENCY`
/// is above 1, one invocation at a time otherwise (the runtime decides). Each request is
/// served inside its invocation's scope (its trace id for [`TraceHeader`]) and, with
/// `metrics`, the EMF records are written once it is answered.
///
/// # Errors
///
/// The runtime's, when it cannot reach the Runtime API.
pub async fn run(routes: Routes, metrics: Option<Emf>) -> Result<(), lambda_http::Error> {
    lambda_http::run_concurrent(service_fn(move |request: Request| {
        let trace = request
            .extensions()
            .get::<lambda_http::Context>()
            .and_then(|context| context.xray_trace_id.clone());
        let routes = routes.clone();
        TRACE_ID.scope(trace, async move {
            let answer = routes.oneshot(request).await;
            // After each answer, as the EMF crate's own layer does; under the concurrent
            // runtime a record may also hold counts of invocations still running, which
            // CloudWatch sums alike.
            if let Some(metrics) = metrics
                && let Err(error) = metrics.flush()
            {
                tracing::warn!(%error, "could not write the EMF metrics");
            }
            answer
        })
    }))
    .await
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::Client;
    use aws_sdk_dynamodb::config::{Credentials, Region};
    use aws_smithy_http_client::test_util::{CaptureRequestReceiver, capture_request};

    use super::*;

    fn client() -> (Client, CaptureRequestReceiver) {
        let (http, requests) = capture_request(None);
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version_latest()
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("id", "secret", None, None, "test"))
            .http_client(http)
            .interceptor(TraceHeader)
            .build();
        (Client::from_conf(config), requests)
    }

    fn trace_header(requests: CaptureRequestReceiver) -> Option<String> {
        let request = requests.expect_request();
        request.headers().get(TRACE_HEADER).map(str::to_owned)
    }

    #[tokio::test]
    async fn concurrent_invocations_each_send_their_own_trace_id() {
        let (first, first_sent) = client();
        let (second, second_sent) = client();
        let (outside, outside_sent) = client();
        let call = |client: Client| async move {
            // The captured answer is not a DynamoDB one: only the request matters here.
            let _ = client.get_item().table_name("sessions").send().await;
        };
        // Polled together in one task, as the runtime's workers interleave invocations.
        tokio::join!(
            TRACE_ID.scope(Some("Root=1-first".to_owned()), call(first)),
            TRACE_ID.scope(Some("Root=1-second".to_owned()), call(second)),
            call(outside),
        );
        assert_eq!(trace_header(first_sent).as_deref(), Some("Root=1-first"));
        assert_eq!(trace_header(second_sent).as_deref(), Some("Root=1-second"));
        assert_eq!(trace_header(outside_sent), None);
    }
}
