//! The session-api Lambda: the demo routes behind the DynamoDB session layer.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    // Text or JSON, and the level, follow the function's logging configuration
    // (AWS_LAMBDA_LOG_FORMAT, AWS_LAMBDA_LOG_LEVEL or RUST_LOG).
    lambda_http::tracing::init_default_subscriber();
    // Metrics, clients, layer, then the runtime (concurrent where the platform allows it):
    // in the library, so the tests run exactly this.
    session_api::start().await
}
