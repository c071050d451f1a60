//! The session-api Lambda: the demo routes behind the DynamoDB session layer.

// At 128 MB an instance has a fraction of a vCPU: a multi-threaded runtime only adds
// cross-thread wake-ups (bench/cpu.sh measured a current-thread runtime 100-240 µs of CPU
// cheaper per request, docs/performance.md). In Lambda's concurrent mode the invocations
// interleave on this one thread; they wait on DynamoDB, not on the CPU.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    // Text or JSON, and the level, follow the function's logging configuration
    // (AWS_LAMBDA_LOG_FORMAT, AWS_LAMBDA_LOG_LEVEL or RUST_LOG).
    lambda_http::tracing::init_default_subscriber();
    // Metrics, clients, layer, then the runtime (concurrent where the platform allows it):
    // in the library, so the tests run exactly this.
    session_api::start().await
}
