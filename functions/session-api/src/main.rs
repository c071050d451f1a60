//! The session-api Lambda: the demo routes behind the DynamoDB session layer.

use dynamodb_session_store::metrics::emf::EmfSettings;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    // Text or JSON, and the level, follow the function's logging configuration
    // (AWS_LAMBDA_LOG_FORMAT, AWS_LAMBDA_LOG_LEVEL or RUST_LOG).
    lambda_http::tracing::init_default_subscriber();
    // CloudWatch metrics as EMF records on stdout, on by default on Lambda (SESSION_METRICS,
    // SESSION_METRICS_NAMESPACE, SESSION_METRICS_DIMENSIONS): a bad value fails the start.
    let metrics = EmfSettings::from_env(std::env::vars())?
        .map(EmfSettings::install)
        .transpose()?;

    // Built once per cold start: the clients and the signing keys (read again from Secrets
    // Manager only when a cookie signed by a newer secret arrives). Every request's time
    // budget is the earlier of its invocation's deadline and the function's own Timeout
    // (see session_api::app_with), whatever an emulator reports.
    let aws = aws_config::load_from_env().await;
    let layer = session_api::layer_from_env(&aws, std::env::vars().collect()).await?;
    session_api::run(session_api::app(layer), metrics).await
}
