//! The session-api Lambda: the demo routes behind the DynamoDB session layer.

use lambda_http::Error;

// Lambda sends an instance one request at a time, and at 128 MB it has a fraction of a vCPU:
// a multi-threaded runtime only adds cross-thread wake-ups (bench/cpu.sh measured a
// current-thread runtime 100-240 µs of CPU cheaper per request, docs/performance.md).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    // Text or JSON, and the level, follow the function's logging configuration
    // (AWS_LAMBDA_LOG_FORMAT, AWS_LAMBDA_LOG_LEVEL or RUST_LOG).
    lambda_http::tracing::init_default_subscriber();

    // Built once per cold start: the clients and the signing keys (read again from Secrets
    // Manager only when a cookie signed by a newer secret arrives). Every request's time
    // budget is the earlier of its invocation's deadline and the function's own Timeout
    // (see session_api::app_with), whatever an emulator reports.
    let aws = aws_config::load_from_env().await;
    let layer = session_api::layer_from_env(&aws, std::env::vars().collect()).await?;
    lambda_http::run(session_api::app(layer)).await
}
