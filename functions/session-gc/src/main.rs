//! The `session-gc` Lambda: deletes dead sessions on an EventBridge schedule. The handler and
//! its configuration live in the library target.

use dynamodb_session_store::metrics::emf::EmfSettings;
use lambda_runtime::{Error, service_fn};
use session_gc::Handler;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // Text or JSON, and the level, follow the function's logging configuration.
    lambda_runtime::tracing::init_default_subscriber();
    // CloudWatch metrics as EMF records on stdout, on by default on Lambda (SESSION_METRICS,
    // SESSION_METRICS_NAMESPACE, SESSION_METRICS_DIMENSIONS): a bad value fails the start.
    let metrics = EmfSettings::from_env(std::env::vars())?
        .map(EmfSettings::install)
        .transpose()?;
    // The client and the configuration are made once per cold start; a bad variable fails
    // the start, naming the variable and its value, before anything is deleted.
    let aws = dynamodb_session_store::sdk::load(std::env::vars()).await?;
    let handler = Handler::from_env(std::env::vars(), aws_sdk_dynamodb::Client::new(&aws))?;
    lambda_runtime::run(service_fn(|event| async {
        let report = handler.handle(event).await;
        // Once per invocation, after the collector's counts are in (see the EMF crate's
        // own flushing layer, which this matches).
        if let Some(metrics) = metrics
            && let Err(error) = metrics.flush()
        {
            tracing::warn!(%error, "could not write the EMF metrics");
        }
        report
    }))
    .await
}
