//! The `Custom::SessionTable` Lambda: creates, updates and deletes the session table for
//! CloudFormation. The handler and its reasoning live in the library target.

use lambda_runtime::{Error, service_fn};
use session_table::{Handler, http_client};

#[tokio::main]
async fn main() -> Result<(), Error> {
    // Text or JSON, and the level, follow the function's logging configuration.
    lambda_runtime::tracing::init_default_subscriber();
    // Clients are built once per cold start and reused by every invocation.
    let config = aws_config::load_from_env().await;
    let handler = Handler::new(aws_sdk_dynamodb::Client::new(&config), http_client()?);
    lambda_runtime::run(service_fn(|event| handler.handle(event))).await
}
