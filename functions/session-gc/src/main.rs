//! The `session-gc` Lambda: deletes dead sessions on an EventBridge schedule. The handler and
//! its configuration live in the library target.

use lambda_runtime::{Error, service_fn};
use session_gc::Handler;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // Text or JSON, and the level, follow the function's logging configuration.
    lambda_runtime::tracing::init_default_subscriber();
    // The client and the configuration are made once per cold start; a bad variable fails
    // the start, naming the variable and its value, before anything is deleted.
    let aws = aws_config::load_from_env().await;
    let handler = Handler::from_env(std::env::vars(), aws_sdk_dynamodb::Client::new(&aws))?;
    lambda_runtime::run(service_fn(|event| handler.handle(event))).await
}
