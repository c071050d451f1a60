//! The `bootstrap` itself, as Lambda starts it. Run outside Lambda it must stop at once and
//! say which part of the Lambda environment is missing, rather than wait or fail obscurely.
//! (`scripts/invoke-session-table` runs this same binary against a local Runtime API; cargo
//! builds it for this test, with the workspace's features, so the script compiles nothing.)

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn outside_lambda_the_bootstrap_stops_naming_what_is_missing() {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_session-table"))
        .env_remove("AWS_LAMBDA_FUNCTION_NAME")
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .env("AWS_REGION", "us-east-1")
        .output()
        .expect("the bootstrap runs");
    assert!(!output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("AWS_LAMBDA_FUNCTION_NAME"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "it waited for something"
    );
}
